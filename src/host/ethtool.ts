/**
 * ethtool on the host: parse what `ethtool -k/-l/-g/-x/-i` print and render `ethtool -K/-L/-G/-X`
 * as argument lists. No I/O here: `specs/` runs these through a transport.
 *
 * The parsers take the tool's stdout; stdout and stderr joined also works, which is how a
 * driver's "Operation not supported" is recognised (ParseError with `unsupported: true`).
 * Every parser is checked against real output of several drivers in test/fixtures/ethtool.
 */
import { ParseError } from "./errors";
import { assertInterfaceName } from "./ip";
import { isObject } from "./json";

const TOOL_FEATURES = "ethtool -k";
const TOOL_FEATURES_JSON = "ethtool --json -k";
const TOOL_CHANNELS = "ethtool -l";
const TOOL_RINGS = "ethtool -g";
const TOOL_RSS = "ethtool -x";
const TOOL_DRIVER = "ethtool -i";

const UNSUPPORTED = /\bOperation not supported\b/;

// ---------------------------------------------------------------------------------------------
// Shared line handling

interface Line {
  /** 1-based line number in the original text. */
  readonly n: number;
  /** The line as printed, for error messages. */
  readonly raw: string;
  /** Trimmed: tabs and spaces at either end do not matter. */
  readonly text: string;
}

function contentLines(text: string): Line[] {
  return text
    .split(/\r?\n/)
    .map((raw, i) => ({ n: i + 1, raw, text: raw.trim() }))
    .filter((l) => l.text !== "");
}

/** The i-th capture group; the regexps below make every group they use mandatory. */
function group(m: RegExpExecArray, i: number): string {
  return m[i] ?? "";
}

function throwIfUnsupported(tool: string, text: string): void {
  const line = text.split(/\r?\n/).find((l) => UNSUPPORTED.test(l));
  if (line !== undefined) {
    throw new ParseError(tool, `not supported by this device (${line.trim()})`, text, {
      unsupported: true,
    });
  }
}

/** Matches the first line against `re`; otherwise explains why the text is not this tool's. */
function readHeader(
  tool: string,
  text: string,
  lines: readonly Line[],
  re: RegExp,
  expected: string,
): RegExpExecArray {
  const first = lines[0];
  if (!first) {
    throwIfUnsupported(tool, text);
    throw new ParseError(tool, "no output", text);
  }
  const m = re.exec(first.text);
  if (m) return m;
  throwIfUnsupported(tool, text);
  throw ParseError.atLine(tool, text, first.n, first.raw, `expected "${expected}"`);
}

// ---------------------------------------------------------------------------------------------
// ethtool -k

/** One offload feature as `ethtool -k` shows it. */
export interface EthtoolFeature {
  /** Whether the feature is active now. */
  readonly on: boolean;
  /** `[fixed]`: the driver does not let it change. */
  readonly fixed: boolean;
  /**
   * Present only when the state asked for differs from the active one (`[requested on]`,
   * `[requested off]`), e.g. TSO asked on while scatter-gather, which it needs, is off.
   */
  readonly requested?: boolean;
}

/** What `ethtool -k IF` (or `ethtool --json -k IF`) reports. */
export interface EthtoolFeatures {
  readonly interface: string;
  /**
   * Every feature by its long name (`generic-receive-offload`), sub-features included
   * (`tx-tcp-segmentation` under `tcp-segmentation-offload`). Features this kernel does not
   * know are simply absent.
   */
  readonly features: Readonly<Record<string, EthtoolFeature>>;
}

const FEATURES_HEADER = /^Features for (\S+):$/;
const FEATURE_LINE =
  /^([A-Za-z0-9][A-Za-z0-9_-]*):\s+(on|off)(?:\s+\[(fixed|requested on|requested off)\])?$/;

/**
 * Parses `ethtool -k IF`.
 *
 * Accepts indented sub-features (tabs or spaces), `[fixed]`, `[requested on]`,
 * `[requested off]`, and blank lines anywhere.
 *
 * @throws ParseError naming `ethtool -k` for any other line.
 * @example
 * const { features } = parseEthtoolFeatures(stdout);
 * features["generic-receive-offload"]?.on; // true
 */
export function parseEthtoolFeatures(text: string): EthtoolFeatures {
  const lines = contentLines(text);
  const header = readHeader(TOOL_FEATURES, text, lines, FEATURES_HEADER, "Features for IF:");
  const features: Record<string, EthtoolFeature> = {};
  for (const line of lines.slice(1)) {
    const m = FEATURE_LINE.exec(line.text);
    if (!m) throw ParseError.atLine(TOOL_FEATURES, text, line.n, line.raw);
    const name = group(m, 1);
    if (Object.hasOwn(features, name)) {
      throw ParseError.atLine(TOOL_FEATURES, text, line.n, line.raw, `${name} repeated`);
    }
    const on = group(m, 2) === "on";
    const suffix = m[3];
    features[name] =
      suffix === "requested on" || suffix === "requested off"
        ? { on, fixed: false, requested: suffix === "requested on" }
        : { on, fixed: suffix === "fixed" };
  }
  return { interface: group(header, 1), features };
}

/**
 * Parses `ethtool --json -k IF` into the same shape as {@link parseEthtoolFeatures}, so both
 * give equal results for the same device.
 *
 * ethtool's JSON has `fixed` and `requested` for every feature (null for the groups such as
 * `tx-checksumming`); `requested` is kept only where the text form would show it.
 *
 * @throws ParseError naming `ethtool --json -k` for invalid JSON or an unexpected shape.
 * @example
 * parseEthtoolFeaturesJson(stdout).features["large-receive-offload"]; // { on: false, fixed: true }
 */
export function parseEthtoolFeaturesJson(jsonText: string): EthtoolFeatures {
  const tool = TOOL_FEATURES_JSON;
  if (jsonText.trim() === "") {
    throwIfUnsupported(tool, jsonText);
    throw new ParseError(tool, "no output", jsonText);
  }
  let data: unknown;
  try {
    data = JSON.parse(jsonText);
  } catch (cause) {
    throwIfUnsupported(tool, jsonText);
    throw new ParseError(tool, `invalid JSON: ${(cause as Error).message}`, jsonText, { cause });
  }
  if (!Array.isArray(data) || data.length !== 1 || !isObject(data[0])) {
    throw new ParseError(tool, "expected an array with one device object", jsonText);
  }
  const device = data[0];
  const ifname = device["ifname"];
  if (typeof ifname !== "string") throw new ParseError(tool, '"ifname" is missing', jsonText);
  const features: Record<string, EthtoolFeature> = {};
  for (const [name, value] of Object.entries(device)) {
    if (name === "ifname") continue;
    const active = isObject(value) ? value["active"] : undefined;
    const fixed = isObject(value) ? value["fixed"] : undefined;
    const requested = isObject(value) ? value["requested"] : undefined;
    if (
      typeof active !== "boolean" ||
      (typeof fixed !== "boolean" && fixed !== null) ||
      (typeof requested !== "boolean" && requested !== null)
    ) {
      throw new ParseError(tool, `feature "${name}" is not {active, fixed, requested}`, jsonText);
    }
    features[name] =
      fixed !== true && typeof requested === "boolean" && requested !== active
        ? { on: active, fixed: false, requested }
        : { on: active, fixed: fixed === true };
  }
  return { interface: ifname, features };
}

// ---------------------------------------------------------------------------------------------
// ethtool -l and ethtool -g: a header, then "Pre-set maximums:" and "Current hardware settings:"

interface Entry {
  readonly key: string;
  readonly value: string;
  readonly line: Line;
}

interface Sections {
  readonly interface: string;
  readonly max: Map<string, Entry>;
  readonly current: Map<string, Entry>;
}

const SECTION_MAX = "Pre-set maximums:";
const SECTION_CURRENT = "Current hardware settings:";
const KEY_VALUE = /^([A-Za-z][A-Za-z0-9 /_-]*?):\s*(\S.*)$/;

function readSections(tool: string, text: string, headerRe: RegExp, expected: string): Sections {
  const lines = contentLines(text);
  const header = readHeader(tool, text, lines, headerRe, expected);
  const max = new Map<string, Entry>();
  const current = new Map<string, Entry>();
  let section: Map<string, Entry> | undefined;
  const seen = new Set<string>();
  for (const line of lines.slice(1)) {
    if (line.text === SECTION_MAX || line.text === SECTION_CURRENT) {
      if (seen.has(line.text)) {
        throw ParseError.atLine(tool, text, line.n, line.raw, "section repeated");
      }
      seen.add(line.text);
      section = line.text === SECTION_MAX ? max : current;
      continue;
    }
    const m = KEY_VALUE.exec(line.text);
    if (!m || !section) throw ParseError.atLine(tool, text, line.n, line.raw);
    const key = group(m, 1);
    if (section.has(key)) throw ParseError.atLine(tool, text, line.n, line.raw, `${key} repeated`);
    section.set(key, { key, value: group(m, 2).trim(), line });
  }
  for (const name of [SECTION_MAX, SECTION_CURRENT]) {
    if (!seen.has(name)) throw new ParseError(tool, `no "${name}" section`, text);
  }
  return { interface: group(header, 1), max, current };
}

/** A count as printed: a number, or null for `n/a`. */
function readCount(tool: string, text: string, entry: Entry): number | null {
  if (entry.value === "n/a") return null;
  if (/^\d+$/.test(entry.value)) return Number(entry.value);
  throw ParseError.atLine(tool, text, entry.line.n, entry.line.raw, "expected a number or n/a");
}

/** Reads the four keys every ethtool version prints into an object; they must all be there. */
function readKnown<K extends string>(
  tool: string,
  text: string,
  section: Map<string, Entry>,
  sectionName: string,
  keys: Readonly<Record<string, K>>,
): Record<K, number | null> {
  const out = {} as Record<K, number | null>;
  for (const [printed, field] of Object.entries(keys)) {
    const entry = section.get(printed);
    if (!entry) throw new ParseError(tool, `no "${printed}" under "${sectionName}"`, text);
    out[field] = readCount(tool, text, entry);
  }
  return out;
}

/** Channel (queue) counts; null where the driver has no such channel type (`n/a`). */
export interface EthtoolChannelCounts {
  readonly rx: number | null;
  readonly tx: number | null;
  readonly other: number | null;
  readonly combined: number | null;
}

/** What `ethtool -l IF` reports. */
export interface EthtoolChannels {
  readonly interface: string;
  /** "Pre-set maximums". */
  readonly max: EthtoolChannelCounts;
  /** "Current hardware settings". */
  readonly current: EthtoolChannelCounts;
}

const CHANNEL_KEYS = { RX: "rx", TX: "tx", Other: "other", Combined: "combined" } as const;

/**
 * Parses `ethtool -l IF`.
 *
 * A driver without channel support (lo, bridge, macvlan, vxlan, ifb) makes ethtool fail with
 * `netlink error: Operation not supported` on stderr: pass stdout and stderr joined and this
 * throws a ParseError with `unsupported: true`, rather than returning an empty result.
 *
 * @throws ParseError naming `ethtool -l`.
 * @example
 * const ch = parseEthtoolChannels(stdout);
 * ch.max.combined; // 8, or null on a NIC with separate rx/tx queues such as veth
 */
export function parseEthtoolChannels(text: string): EthtoolChannels {
  const s = readSections(
    TOOL_CHANNELS,
    text,
    /^Channel parameters for (\S+):$/,
    "Channel parameters for IF:",
  );
  for (const entry of [...s.max.values(), ...s.current.values()]) {
    if (!Object.hasOwn(CHANNEL_KEYS, entry.key)) {
      throw ParseError.atLine(TOOL_CHANNELS, text, entry.line.n, entry.line.raw);
    }
  }
  return {
    interface: s.interface,
    max: readKnown(TOOL_CHANNELS, text, s.max, SECTION_MAX, CHANNEL_KEYS),
    current: readKnown(TOOL_CHANNELS, text, s.current, SECTION_CURRENT, CHANNEL_KEYS),
  };
}

// ---------------------------------------------------------------------------------------------
// ethtool -g

/** Ring (descriptor queue) sizes; null where the driver has no such ring (`n/a`). */
export interface EthtoolRingSizes {
  readonly rx: number | null;
  readonly rxMini: number | null;
  readonly rxJumbo: number | null;
  readonly tx: number | null;
}

/** What `ethtool -g IF` reports. */
export interface EthtoolRings {
  readonly interface: string;
  readonly max: EthtoolRingSizes;
  readonly current: EthtoolRingSizes;
  /**
   * The other lines under "Current hardware settings", by their printed name (`RX Buf Len`,
   * `CQE Size`, `TX Push`, `TCP data split`, …, which vary with the ethtool version): a number,
   * null for `n/a`, or the text as printed (`off`).
   */
  readonly extra: Readonly<Record<string, number | string | null>>;
  /** The same for "Pre-set maximums" (newer ethtool prints `TX push buff len` there too). */
  readonly extraMax: Readonly<Record<string, number | string | null>>;
}

const RING_KEYS = { RX: "rx", "RX Mini": "rxMini", "RX Jumbo": "rxJumbo", TX: "tx" } as const;

/**
 * Parses `ethtool -g IF`.
 *
 * @throws ParseError naming `ethtool -g` (with `unsupported: true` for drivers without rings,
 *   such as veth, when stderr is part of the text).
 * @example
 * const rings = parseEthtoolRings(stdout);
 * rings.current.rx; // 256
 * rings.extra["TCP data split"]; // null (n/a)
 */
export function parseEthtoolRings(text: string): EthtoolRings {
  const s = readSections(
    TOOL_RINGS,
    text,
    /^Ring parameters for (\S+):$/,
    "Ring parameters for IF:",
  );
  const extras = (section: Map<string, Entry>): Record<string, number | string | null> => {
    const out: Record<string, number | string | null> = {};
    for (const { key, value } of section.values()) {
      if (Object.hasOwn(RING_KEYS, key)) continue;
      out[key] = value === "n/a" ? null : /^\d+$/.test(value) ? Number(value) : value;
    }
    return out;
  };
  return {
    interface: s.interface,
    max: readKnown(TOOL_RINGS, text, s.max, SECTION_MAX, RING_KEYS),
    current: readKnown(TOOL_RINGS, text, s.current, SECTION_CURRENT, RING_KEYS),
    extra: extras(s.current),
    extraMax: extras(s.max),
  };
}

// ---------------------------------------------------------------------------------------------
// ethtool -x

/** What `ethtool -x IF` reports about receive-side scaling. */
export interface EthtoolRss {
  readonly interface: string;
  /** "with N RX ring(s)". */
  readonly ringCount: number;
  /** The RSS context, when not the default one (`ethtool -x IF context N`). */
  readonly context?: number;
  /** The indirection table: the rx queue of each hash bucket, in bucket order. */
  readonly indirection: readonly number[];
  /** The hash key as printed (`6d:5a:…`); absent when the driver does not expose it. */
  readonly hashKey?: string;
  /** Hash functions and whether each is in use, e.g. `{ toeplitz: true, xor: false }`. */
  readonly hashFunctions: Readonly<Record<string, boolean>>;
  /** "RSS input transformation" (newer ethtool), e.g. `{ "symmetric-xor": false }`. */
  readonly inputTransformation?: Readonly<Record<string, boolean>>;
}

const RSS_HEADER =
  /^RX flow hash indirection table for (\S+) with (\d+) RX ring\(s\)(?:, context (\d+))?:$/;
const RSS_ROW = /^(\d+):((?:\s+\d+)+)$/;
const RSS_KEY = /^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2})*$/;
const RSS_FLAG = /^(\S+):\s+(on|off)$/;

/**
 * Parses `ethtool -x IF`.
 *
 * A device without an indirection table is an error, not an empty table: virtio_net with one
 * queue prints the header, then `Operation not supported` where the table would be, and veth,
 * lo or bridge fail with `Cannot get RX ring count: Operation not supported`. Both throw a
 * ParseError with `unsupported: true`. A missing hash key alone leaves `hashKey` undefined.
 *
 * @throws ParseError naming `ethtool -x`.
 * @example
 * const rss = parseEthtoolRss(stdout);
 * rss.indirection.filter((q) => q === 0).length; // buckets that land on queue 0
 */
export function parseEthtoolRss(text: string): EthtoolRss {
  const tool = TOOL_RSS;
  const lines = contentLines(text);
  const header = readHeader(tool, text, lines, RSS_HEADER, "RX flow hash indirection table for");
  const iface = group(header, 1);
  const indirection: number[] = [];
  const hashFunctions: Record<string, boolean> = {};
  let inputTransformation: Record<string, boolean> | undefined;
  let keyParts: string[] | undefined;
  let section: "table" | "key" | "functions" | "transformation" = "table";

  for (const line of lines.slice(1)) {
    const t = line.text;
    if (t === "RSS hash key:") {
      section = "key";
      keyParts = [];
      continue;
    }
    if (t === "RSS hash function:") {
      section = "functions";
      continue;
    }
    if (t === "RSS input transformation:") {
      section = "transformation";
      inputTransformation = {};
      continue;
    }
    if (t === "Operation not supported") {
      if (section === "table") {
        throw new ParseError(tool, `${iface} has no RSS indirection table (${t})`, text, {
          unsupported: true,
        });
      }
      continue; // no hash key, or no hash function, on this device
    }
    if (section === "table") {
      const m = RSS_ROW.exec(t);
      if (!m) throw ParseError.atLine(tool, text, line.n, line.raw);
      // Each row starts with the index of its first bucket: a gap means lost lines.
      if (Number(group(m, 1)) !== indirection.length) {
        throw ParseError.atLine(
          tool,
          text,
          line.n,
          line.raw,
          `expected bucket ${indirection.length}`,
        );
      }
      indirection.push(...group(m, 2).trim().split(/\s+/).map(Number));
    } else if (section === "key") {
      if (!RSS_KEY.test(t)) throw ParseError.atLine(tool, text, line.n, line.raw);
      keyParts?.push(t);
    } else {
      const m = RSS_FLAG.exec(t);
      if (!m) throw ParseError.atLine(tool, text, line.n, line.raw);
      const target = section === "functions" ? hashFunctions : (inputTransformation ??= {});
      target[group(m, 1)] = group(m, 2) === "on";
    }
  }
  if (indirection.length === 0) throw new ParseError(tool, "no indirection table entries", text);
  const hashKey = keyParts && keyParts.length > 0 ? keyParts.join(":").toLowerCase() : undefined;
  const context = header[3] === undefined ? undefined : Number(header[3]);
  return {
    interface: iface,
    ringCount: Number(group(header, 2)),
    ...(context === undefined ? {} : { context }),
    indirection,
    ...(hashKey === undefined ? {} : { hashKey }),
    hashFunctions,
    ...(inputTransformation === undefined ? {} : { inputTransformation }),
  };
}

// ---------------------------------------------------------------------------------------------
// ethtool -i

/** What `ethtool -i IF` reports. */
export interface EthtoolDriverInfo {
  /** The kernel driver, e.g. `virtio_net`, `veth`, `mlx5_core`. */
  readonly driver: string;
  readonly version?: string;
  readonly firmwareVersion?: string;
  /** e.g. `0000:00:03.0`; absent when ethtool prints nothing there. */
  readonly busInfo?: string;
  /** Every line, by its printed key (`supports-statistics`: `yes`, …). */
  readonly fields: Readonly<Record<string, string>>;
}

/**
 * Parses `ethtool -i IF`.
 *
 * @throws ParseError naming `ethtool -i` (`unsupported: true` for lo, which has no driver info).
 * @example
 * parseEthtoolDriverInfo(stdout).driver; // "virtio_net"
 */
export function parseEthtoolDriverInfo(text: string): EthtoolDriverInfo {
  const tool = TOOL_DRIVER;
  const fields: Record<string, string> = {};
  for (const line of contentLines(text)) {
    const m = /^([a-z][a-z-]*):(.*)$/.exec(line.text);
    if (!m) {
      throwIfUnsupported(tool, text);
      throw ParseError.atLine(tool, text, line.n, line.raw);
    }
    fields[group(m, 1)] = group(m, 2).trim();
  }
  const driver = fields["driver"];
  if (!driver) {
    throwIfUnsupported(tool, text);
    throw new ParseError(tool, 'no "driver" line', text);
  }
  const optional = (key: string): string | undefined => fields[key] || undefined;
  const version = optional("version");
  const firmwareVersion = optional("firmware-version");
  const busInfo = optional("bus-info");
  return {
    driver,
    ...(version === undefined ? {} : { version }),
    ...(firmwareVersion === undefined ? {} : { firmwareVersion }),
    ...(busInfo === undefined ? {} : { busInfo }),
    fields,
  };
}

// ---------------------------------------------------------------------------------------------
// Renderers: argument lists, never shell strings (quoting happens in the transport).

/**
 * ethtool's short feature names and the long names `ethtool -k` prints. `ethtool -K` accepts
 * both; compare parsed state through {@link resolveFeatureName}.
 */
export const FEATURE_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  rx: "rx-checksumming",
  tx: "tx-checksumming",
  sg: "scatter-gather",
  tso: "tcp-segmentation-offload",
  gso: "generic-segmentation-offload",
  gro: "generic-receive-offload",
  lro: "large-receive-offload",
  rxvlan: "rx-vlan-offload",
  txvlan: "tx-vlan-offload",
  ntuple: "ntuple-filters",
  rxhash: "receive-hashing",
});

/**
 * The long name of a feature: `tso` → `tcp-segmentation-offload`; other names are returned as
 * they are.
 *
 * @example
 * parseEthtoolFeatures(stdout).features[resolveFeatureName("gro")]?.on;
 */
export function resolveFeatureName(name: string): string {
  return Object.hasOwn(FEATURE_ALIASES, name) ? (FEATURE_ALIASES[name] ?? name) : name;
}

const FEATURE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

function assertCount(what: string, n: number, min = 0): void {
  if (!Number.isSafeInteger(n) || n < min) {
    throw new RangeError(`${what} must be an integer of at least ${min}, got ${n}`);
  }
}

/**
 * `ethtool -K IF name on|off …`, in the order given; names are passed as written (short or
 * long).
 *
 * @throws RangeError for an empty set, an invalid name, or the same feature given twice under
 *   two names (`tso` and `tcp-segmentation-offload`).
 * @example
 * renderEthtoolFeatures("eth0", { gro: true, lro: false });
 * // ["ethtool", "-K", "eth0", "gro", "on", "lro", "off"]
 */
export function renderEthtoolFeatures(
  ifname: string,
  features: Readonly<Record<string, boolean>>,
): string[] {
  assertInterfaceName(ifname);
  const entries = Object.entries(features);
  if (entries.length === 0) throw new RangeError("renderEthtoolFeatures: no features");
  const seen = new Map<string, string>();
  const argv = ["ethtool", "-K", ifname];
  for (const [name, on] of entries) {
    if (!FEATURE_NAME.test(name))
      throw new RangeError(`invalid feature name ${JSON.stringify(name)}`);
    const long = resolveFeatureName(name);
    const other = seen.get(long);
    if (other !== undefined) throw new RangeError(`feature ${name} given twice (also as ${other})`);
    seen.set(long, name);
    argv.push(name, on ? "on" : "off");
  }
  return argv;
}

/** Channel counts to set; the ones left out are not changed. */
export interface EthtoolChannelSettings {
  readonly rx?: number;
  readonly tx?: number;
  readonly other?: number;
  readonly combined?: number;
}

/**
 * `ethtool -L IF [rx N] [tx N] [other N] [combined N]`.
 *
 * @example
 * renderEthtoolChannels("eth0", { combined: 8 }); // ["ethtool", "-L", "eth0", "combined", "8"]
 */
export function renderEthtoolChannels(ifname: string, channels: EthtoolChannelSettings): string[] {
  assertInterfaceName(ifname);
  const argv = ["ethtool", "-L", ifname];
  for (const key of ["rx", "tx", "other", "combined"] as const) {
    const n = channels[key];
    if (n === undefined) continue;
    assertCount(`channels ${key}`, n);
    argv.push(key, String(n));
  }
  if (argv.length === 3) throw new RangeError("renderEthtoolChannels: nothing to set");
  return argv;
}

/** Ring sizes to set; the ones left out are not changed. */
export interface EthtoolRingSettings {
  readonly rx?: number;
  readonly rxMini?: number;
  readonly rxJumbo?: number;
  readonly tx?: number;
}

/**
 * `ethtool -G IF [rx N] [rx-mini N] [rx-jumbo N] [tx N]`.
 *
 * @example
 * renderEthtoolRings("eth0", { rx: 4096, tx: 4096 });
 * // ["ethtool", "-G", "eth0", "rx", "4096", "tx", "4096"]
 */
export function renderEthtoolRings(ifname: string, rings: EthtoolRingSettings): string[] {
  assertInterfaceName(ifname);
  const argv = ["ethtool", "-G", ifname];
  const keys = [
    ["rx", "rx"],
    ["rxMini", "rx-mini"],
    ["rxJumbo", "rx-jumbo"],
    ["tx", "tx"],
  ] as const;
  for (const [field, arg] of keys) {
    const n = rings[field];
    if (n === undefined) continue;
    assertCount(`rings ${field}`, n, 1);
    argv.push(arg, String(n));
  }
  if (argv.length === 3) throw new RangeError("renderEthtoolRings: nothing to set");
  return argv;
}

/**
 * `ethtool -X IF equal N`: spread the indirection table evenly over the first N rx queues.
 *
 * @example
 * renderEthtoolRssEqual("eth0", 4); // ["ethtool", "-X", "eth0", "equal", "4"]
 */
export function renderEthtoolRssEqual(ifname: string, queues: number): string[] {
  assertInterfaceName(ifname);
  assertCount("RSS queue count", queues, 1);
  return ["ethtool", "-X", ifname, "equal", String(queues)];
}

/**
 * `ethtool -X IF weight W0 W1 …`: queue i gets a share of the buckets proportional to Wi.
 *
 * @example
 * renderEthtoolRssWeights("eth0", [6, 2]); // ["ethtool", "-X", "eth0", "weight", "6", "2"]
 */
export function renderEthtoolRssWeights(ifname: string, weights: readonly number[]): string[] {
  assertInterfaceName(ifname);
  if (weights.length === 0) throw new RangeError("RSS weights: none given");
  weights.forEach((w, i) => assertCount(`RSS weight ${i}`, w));
  // ethtool refuses an all-zero table: no queue would receive anything.
  if (!weights.some((w) => w > 0)) throw new RangeError("RSS weights: all are 0");
  return ["ethtool", "-X", ifname, "weight", ...weights.map(String)];
}

/** The read commands whose output the parsers above take. */
export type EthtoolShow = "features" | "featuresJson" | "channels" | "rings" | "rss" | "driverInfo";

const SHOW_OPTIONS: Record<EthtoolShow, readonly string[]> = {
  features: ["-k"],
  featuresJson: ["--json", "-k"],
  channels: ["-l"],
  rings: ["-g"],
  rss: ["-x"],
  driverInfo: ["-i"],
};

/**
 * The read command for one of the parsers: `features` → `ethtool -k IF` for
 * {@link parseEthtoolFeatures}, `channels` → `ethtool -l IF`, and so on.
 *
 * @example
 * renderEthtoolShow("rss", "eth0"); // ["ethtool", "-x", "eth0"]
 */
export function renderEthtoolShow(what: EthtoolShow, ifname: string): string[] {
  assertInterfaceName(ifname);
  return ["ethtool", ...SHOW_OPTIONS[what], ifname];
}
