/**
 * xdp-loader on the host (tools/xdp-loader): render its command lines as argument lists and
 * read the one JSON object it prints. No I/O here: the XdpProgram spec copies the binary to
 * {@link LOADER_HOST_PATH} and runs these through a transport.
 *
 * The loader prints `{"error": "...", "code": "..."}` and exits non-zero on failure;
 * {@link parseLoaderOutput} turns that into an {@link XdpLoaderError} carrying the code.
 */
import { ParseError } from "./errors";
import { assertInterfaceName } from "./ip";
import { fieldReader, isObject, type FieldReader, type Json } from "./json";

/** Where nettune puts the loader on a host. */
export const LOADER_HOST_PATH = "/usr/local/lib/nettune/xdp-loader";
/** Where setup builds the loader, relative to the checkout (a link into the tools cache). */
export const LOADER_BUILD_PATH = ".tools/bin/xdp-loader";
/** Where nettune's pins live in bpffs, one folder per XdpProgram resource. */
export const PIN_ROOT = "/sys/fs/bpf/nettune";

const TOOL = "xdp-loader";

export type XdpMode = "native" | "generic" | "hw";

/** The loader's stable error codes (tools/xdp-loader/errors.go). */
export type LoaderErrorCode =
  | "usage"
  | "failed"
  | "no-such-device"
  | "no-bpffs"
  | "bad-object"
  | "no-such-program"
  | "verifier"
  | "foreign-program"
  | "foreign-link"
  | "not-ours"
  | "pin-dir-in-use"
  | "mode-change"
  | "link-mismatch"
  | "links-unsupported"
  | "mtu-too-large"
  | "mode-unsupported"
  | "attach-failed"
  | "nothing-attached"
  | "save-exists"
  | "no-save"
  | "bad-constant"
  | "no-such-map";

/** A failure the loader reported, with its code and any extra fields it added (progId, mtu…). */
export class XdpLoaderError extends Error {
  /** A {@link LoaderErrorCode}; a newer loader may add codes, so typed as string. */
  readonly code: string;
  readonly extra: Json;
  constructor(code: string, message: string, extra: Json = {}) {
    super(`${TOOL}: ${message} (${code})`);
    this.name = "XdpLoaderError";
    this.code = code;
    this.extra = extra;
  }
}

// ---------------------------------------------------------------------------------------------
// Command lines

/** A pin dir name: bpffs refuses dots, and the id must stay one path component. */
export function pinDirFor(id: string): string {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(id)) {
    throw new RangeError(`invalid XDP pin id ${JSON.stringify(id)} (letters, digits, _ and -)`);
  }
  return `${PIN_ROOT}/${id}`;
}

export function renderShow(dev: string, loader = LOADER_HOST_PATH): string[] {
  assertInterfaceName(dev);
  return [loader, "show", "--dev", dev];
}

export interface AttachArgs {
  readonly dev: string;
  readonly obj: string;
  readonly prog: string;
  readonly mode: XdpMode;
  readonly pinDir: string;
  /** Refuse unless the pin dir's link has this id (the id recorded in state). */
  readonly expectLinkId?: number;
  /** After a takeover: replace this foreign program atomically. */
  readonly replaceProgId?: number;
  /** Attach through netlink even where bpf links work. */
  readonly noLink?: boolean;
  /** Values for the object's `volatile const` globals (none when empty). */
  readonly constants?: Readonly<Record<string, unknown>>;
}

/**
 * The loader's constants argument: the JSON in base64, which needs no quoting in a shell or
 * a unit file. None when there are no constants.
 */
export function constantsArgv(constants: Readonly<Record<string, unknown>> | undefined): string[] {
  if (constants === undefined || Object.keys(constants).length === 0) return [];
  return ["--consts-base64", Buffer.from(canonicalJson(constants)).toString("base64")];
}

/** JSON with the keys sorted: the same constants give the same command line. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

export function renderAttach(a: AttachArgs, loader = LOADER_HOST_PATH): string[] {
  assertInterfaceName(a.dev);
  const argv = [loader, "attach", "--dev", a.dev, "--obj", a.obj, "--prog", a.prog];
  argv.push("--mode", a.mode, "--pin-dir", a.pinDir);
  if (a.expectLinkId !== undefined) argv.push("--expect-link-id", String(a.expectLinkId));
  if (a.replaceProgId !== undefined) argv.push("--replace-prog-id", String(a.replaceProgId));
  if (a.noLink === true) argv.push("--no-link");
  argv.push(...constantsArgv(a.constants));
  return argv;
}

export function renderDetach(dev: string, pinDir: string, loader = LOADER_HOST_PATH): string[] {
  assertInterfaceName(dev);
  return [loader, "detach", "--dev", dev, "--pin-dir", pinDir];
}

export function renderTakeover(dev: string, save: string, loader = LOADER_HOST_PATH): string[] {
  assertInterfaceName(dev);
  return [loader, "takeover", "--dev", dev, "--save", save];
}

/** `overPinDir`: atomically replace the program pinned there (ours) instead of "only if none". */
export function renderRestore(
  dev: string,
  save: string,
  overPinDir?: string,
  loader = LOADER_HOST_PATH,
): string[] {
  assertInterfaceName(dev);
  const argv = [loader, "restore", "--dev", dev, "--save", save];
  if (overPinDir !== undefined) argv.push("--over-pin-dir", overPinDir);
  return argv;
}

// ---------------------------------------------------------------------------------------------
// Results

export interface AttachedProgram {
  readonly progId: number;
  /** The kernel's name (at most 15 characters). */
  readonly name: string;
  readonly tag: string;
  readonly mode: XdpMode;
  /** The bpf_link holding it, null when attached through netlink. */
  readonly linkId: number | null;
  /** Our pin (`…/link` or `…/prog` under the pin root), null when not nettune's. */
  readonly pinned: string | null;
}

export interface ShowResult {
  /** The native or generic program (or the offloaded one when it is alone); null when none. */
  readonly attached: AttachedProgram | null;
  /** Every attached program; two when the kernel reports several modes. */
  readonly programs: readonly AttachedProgram[];
  readonly multi: boolean;
  readonly ifindex: number;
  readonly mtu: number;
  readonly driver: string;
  /** Whether a bpffs is mounted at /sys/fs/bpf. */
  readonly bpffs: boolean;
}

export interface AttachResult {
  readonly progId: number;
  readonly linkId: number | null;
  readonly tag: string;
  readonly name: string;
  readonly mode: XdpMode;
  readonly via: "link" | "netlink";
  readonly maps: readonly string[];
  /** Maps kept from the previous object (same name, compatible), with their contents. */
  readonly reusedMaps: readonly string[];
  readonly pinDir: string;
  readonly updated: boolean;
  readonly previousProgId: number | null;
  readonly mountedBpffs: boolean;
  /** Why netlink was used instead of a bpf_link, when it was. */
  readonly linkFallback?: string;
}

export interface DetachResult {
  readonly detached: boolean;
  readonly alreadyGone: boolean;
  readonly progId: number | null;
  readonly linkId: number | null;
  readonly pinDir: string;
}

export interface TakeoverResult {
  readonly dev: string;
  readonly ifindex: number;
  readonly progId: number;
  readonly name: string;
  readonly tag: string;
  readonly mode: XdpMode;
  readonly flags: number;
  readonly saveDir: string;
  readonly mountedBpffs: boolean;
}

export interface RestoreResult {
  readonly restored: boolean;
  readonly alreadyGone: boolean;
  readonly progId: number;
  readonly mode: XdpMode | "";
  readonly replaced: number | null;
}

// ---------------------------------------------------------------------------------------------
// Parsing

const MODES: readonly string[] = ["native", "generic", "hw"];

/**
 * The loader's JSON object, or its error as an XdpLoaderError.
 *
 * @throws XdpLoaderError when the loader reported an error (whatever the exit status)
 * @throws ParseError when stdout is not one JSON object
 */
export function parseLoaderOutput(stdout: string): Json {
  const text = stdout.trim();
  if (text === "") throw new ParseError(TOOL, "no output", stdout);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (cause) {
    throw new ParseError(TOOL, `invalid JSON: ${(cause as Error).message}`, stdout, { cause });
  }
  if (!isObject(data)) throw new ParseError(TOOL, "expected a JSON object", stdout);
  if (typeof data.error === "string") {
    const { error, code, ...extra } = data;
    throw new XdpLoaderError(typeof code === "string" ? code : "failed", error, extra);
  }
  return data;
}

interface Reader extends FieldReader {
  readonly need: (field: string) => number;
  readonly needStr: (field: string) => string;
  readonly numOrNull: (field: string) => number | null;
  readonly strOrNull: (field: string) => string | null;
  readonly bool: (field: string) => boolean;
  readonly mode: (field: string) => XdpMode;
  readonly strings: (field: string) => string[];
}

function reader(entry: unknown, where: string, text: string): Reader {
  const r = fieldReader(TOOL, entry, where, text);
  const need = (f: string) => r.num(f) ?? r.fail(f, "a number");
  const needStr = (f: string) => r.str(f) ?? r.fail(f, "a string");
  return {
    ...r,
    need,
    needStr,
    numOrNull: (f) => r.num(f) ?? null,
    strOrNull: (f) => r.str(f) ?? null,
    bool: (f) => {
      const v = r.entry[f];
      return typeof v === "boolean" ? v : r.fail(f, "a boolean");
    },
    mode: (f) => {
      const m = needStr(f);
      return MODES.includes(m) ? (m as XdpMode) : r.fail(f, "native, generic or hw");
    },
    strings: (f) => {
      const v = r.entry[f];
      return Array.isArray(v) && v.every((s) => typeof s === "string")
        ? v
        : r.fail(f, "a list of strings");
    },
  };
}

function attachedProgram(entry: unknown, where: string, text: string): AttachedProgram {
  const r = reader(entry, where, text);
  return {
    progId: r.need("progId"),
    name: r.str("name") ?? "",
    tag: r.str("tag") ?? "",
    mode: r.mode("mode"),
    linkId: r.numOrNull("linkId"),
    pinned: r.strOrNull("pinned"),
  };
}

/** `xdp-loader show`. */
export function parseShow(stdout: string): ShowResult {
  const data = parseLoaderOutput(stdout);
  const r = reader(data, "show", stdout);
  const list = data.programs;
  if (!Array.isArray(list)) r.fail("programs", "a list");
  const programs = (list as unknown[]).map((p, i) => attachedProgram(p, `program ${i}`, stdout));
  return {
    attached: data.attached === null ? null : attachedProgram(data.attached, "attached", stdout),
    programs,
    multi: r.bool("multi"),
    ifindex: r.need("ifindex"),
    mtu: r.need("mtu"),
    driver: r.str("driver") ?? "",
    bpffs: r.bool("bpffs"),
  };
}

/** `xdp-loader attach`. */
export function parseAttach(stdout: string): AttachResult {
  const r = reader(parseLoaderOutput(stdout), "attach", stdout);
  const via = r.needStr("via");
  if (via !== "link" && via !== "netlink") r.fail("via", "link or netlink");
  const fallback = r.str("linkFallback");
  return {
    progId: r.need("progId"),
    linkId: r.numOrNull("linkId"),
    tag: r.needStr("tag"),
    name: r.needStr("name"),
    mode: r.mode("mode"),
    via: via as "link" | "netlink",
    maps: r.strings("maps"),
    reusedMaps: r.strings("reusedMaps"),
    pinDir: r.needStr("pinDir"),
    updated: r.bool("updated"),
    previousProgId: r.numOrNull("previousProgId"),
    mountedBpffs: r.bool("mountedBpffs"),
    ...(fallback === undefined ? {} : { linkFallback: fallback }),
  };
}

/** `xdp-loader detach`. */
export function parseDetach(stdout: string): DetachResult {
  const r = reader(parseLoaderOutput(stdout), "detach", stdout);
  return {
    detached: r.bool("detached"),
    alreadyGone: r.bool("alreadyGone"),
    progId: r.numOrNull("progId"),
    linkId: r.numOrNull("linkId"),
    pinDir: r.needStr("pinDir"),
  };
}

/** `xdp-loader takeover`. */
export function parseTakeover(stdout: string): TakeoverResult {
  const r = reader(parseLoaderOutput(stdout), "takeover", stdout);
  return {
    dev: r.needStr("dev"),
    ifindex: r.need("ifindex"),
    progId: r.need("progId"),
    name: r.str("name") ?? "",
    tag: r.str("tag") ?? "",
    mode: r.mode("mode"),
    flags: r.need("flags"),
    saveDir: r.needStr("saveDir"),
    mountedBpffs: r.bool("mountedBpffs"),
  };
}

/** `xdp-loader restore`. */
export function parseRestore(stdout: string): RestoreResult {
  const r = reader(parseLoaderOutput(stdout), "restore", stdout);
  const mode = r.str("mode") ?? "";
  if (mode !== "" && !MODES.includes(mode)) r.fail("mode", "native, generic or hw");
  return {
    restored: r.bool("restored"),
    alreadyGone: r.bool("alreadyGone"),
    progId: r.need("progId"),
    mode: mode as XdpMode | "",
    replaced: r.numOrNull("replaced"),
  };
}

export function renderCounters(pinDir: string, map: string, loader = LOADER_HOST_PATH): string[] {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(map))
    throw new RangeError(`invalid map name ${JSON.stringify(map)}`);
  return [loader, "counters", "--pin-dir", pinDir, "--map", map];
}

/** `counters`: the map's u64 counters, summed over CPUs (exact up to 2^53). */
export function parseCounters(stdout: string): number[] {
  const data = parseLoaderOutput(stdout);
  const values = data.values;
  if (!Array.isArray(values) || !values.every((v) => typeof v === "number"))
    throw new ParseError(TOOL, "counters: expected values to be a list of numbers", stdout);
  return values;
}
