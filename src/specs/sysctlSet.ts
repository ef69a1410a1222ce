/**
 * SysctlSet: a set of kernel parameters on one host, applied all-or-nothing, optionally
 * persisted in one /etc/sysctl.d file the resource owns, restored on delete.
 */
import {
  formatSysctl,
  normalizeSysctl,
  parseSysctlValue,
  type SysctlValue,
} from "../schemas/sysctl";
import { sysctlSetSchema, type SysctlSetInputs } from "../schemas/sysctlSet";
import {
  SYSCTL_D,
  parseFileRead,
  parseSysctlRead,
  renderFileRead,
  renderSysctlConf,
  renderSysctlRead,
  type ReadResult,
} from "../host/sysctl";
import * as protocol from "../host/steps";
import { shellQuote } from "../transport/quote";
import type { Transport } from "../transport/types";
import type { Failure } from "../engine/lifecycle";
import { restoreOrWarn } from "../engine/restore";
import { handlerOf, type ProbeFor, type Spec } from "../engine/spec";

export interface SysctlSetOutputs extends SysctlSetInputs {
  /**
   * The live value of each key before nettune first set it, typed as `values` are (numbers,
   * lists of numbers, words); put back on delete.
   */
  originals: Record<string, SysctlValue>;
  /**
   * The kernel's text of each original whose typed form would print otherwise (rare: leading
   * zeros, a number in a list beyond 2^53): what delete writes back for that key. Internal, not documented.
   */
  originalsText: Record<string, string>;
  /** What nettune set (live and/or in the file). */
  applied: Record<string, SysctlValue>;
  /** The sysctl.d file this resource owns, when persist is "persistent" or "both". */
  filePath: string | null;
  /** Messages from the last operation the user should read. */
  warnings: string[];
}

const CC_KEY = "net.ipv4.tcp_congestion_control";
const CC_AVAILABLE = "net.ipv4.tcp_available_congestion_control";

const runtimeOf = (p: SysctlSetInputs["persist"]) => p === "runtime" || p === "both";
const fileOf = (p: SysctlSetInputs["persist"]) => p === "persistent" || p === "both";
const textOf = (v: SysctlValue | string) => (typeof v === "string" ? v : formatSysctl(v));
/** Two values as the kernel prints them: `1` and "1", `[4096, 87380]` and "4096\t87380". */
const same = (a: SysctlValue | string | undefined, b: SysctlValue | string | undefined) =>
  a !== undefined && b !== undefined && normalizeSysctl(textOf(a)) === normalizeSysctl(textOf(b));

/**
 * Originals as the kernel printed them, typed as the inputs are (the way refresh reads values),
 * with the text of any whose typed form would not print back the same kept for restore.
 */
export function typedOriginals(
  texts: Readonly<Record<string, string>>,
): Pick<SysctlSetOutputs, "originals" | "originalsText"> {
  const originals: Record<string, SysctlValue> = {};
  const originalsText: Record<string, string> = {};
  for (const [key, text] of Object.entries(texts)) {
    const value = parseSysctlValue(text);
    originals[key] = value;
    if (formatSysctl(value) !== normalizeSysctl(text)) originalsText[key] = text;
  }
  return { originals, originalsText };
}

/** The text delete (or an update that gives a key back) writes to restore `key`. */
function originalText(olds: SysctlSetOutputs, key: string): string | undefined {
  const value = olds.originals[key];
  return olds.originalsText[key] ?? (value === undefined ? undefined : formatSysctl(value));
}

/**
 * The set's journal of originals on the host: written by create before its first write (or by
 * the user data of `nettune.cloudInit` before it applies the set), read by a create that finds
 * it, removed by delete. A create whose answer was lost, run again, still records the values
 * the host had before nettune.
 */
export function journalPathOf(fileName: string): string {
  return `${protocol.JOURNAL_DIR}/sysctl-${fileName}`;
}

function filePathOf(inputs: SysctlSetInputs): string | null {
  return fileOf(inputs.persist) ? `${SYSCTL_D}/${inputs.fileName}` : null;
}

// ---------------------------------------------------------------------------------------------
// Reading

interface Facts {
  /** What the probe read of each key; empty where it read none (create reads in its script). */
  readonly keys: ReadonlyMap<string, ReadResult>;
  /** At preview of a new set: whether its sysctl.d file exists without nettune's header. */
  readonly foreignFile?: boolean;
  /** The sysctl.d file's content on refresh of a persistent-only set; undefined when absent. */
  readonly file?: string;
}

const NOTHING_READ: Facts = { keys: new Map() };

const FILE_MARK = "--nettune-file--";

/**
 * Reads `keys` and, with `file`, whether that file exists and is not nettune's, in one round trip.
 */
async function readKeys(t: Transport, keys: readonly string[], file?: string): Promise<Facts> {
  if (keys.length === 0 && file === undefined) return NOTHING_READ;
  const owned =
    file === undefined
      ? ""
      : `\necho ${FILE_MARK}; f=${shellQuote(file)}; ` +
        `if [ -e "$f" ] && [ "$(head -c ${protocol.MANAGED_HEADER.length} "$f")" != ${shellQuote(protocol.MANAGED_HEADER)} ]; then echo foreign; fi`;
  const res = await t.exec({ script: `${keys.length > 0 ? renderSysctlRead(keys) : ":"}${owned}` });
  const [read = "", tail] = res.stdout.split(`${FILE_MARK}\n`);
  return {
    keys: keys.length > 0 ? parseSysctlRead(read, keys) : new Map(),
    ...(file === undefined ? {} : { foreignFile: (tail ?? "").trim() === "foreign" }),
  };
}

/** The keys a probe reads: what each operation needs, in one round trip. */
function keysToRead(inputs: SysctlSetInputs, why: ProbeFor<SysctlSetOutputs>) {
  const declared = Object.keys(inputs.values);
  const withCc = (keys: string[]) => (keys.includes(CC_KEY) ? [...keys, CC_AVAILABLE] : keys);
  switch (why.op) {
    case "create":
      return [];
    case "update": {
      const removed = runtimeOf(why.olds.persist)
        ? Object.keys(why.olds.applied).filter((k) => inputs.values[k] === undefined)
        : [];
      return withCc([...declared, ...removed]);
    }
    case "read":
      return runtimeOf(why.olds.persist) ? declared : [];
    case "delete":
      return runtimeOf(why.olds.persist) ? Object.keys(why.olds.applied) : [];
    default:
      return withCc(declared);
  }
}

// ---------------------------------------------------------------------------------------------
// Applying

const UNDONE = "nothing was changed: every key written in this step was put back";

/** A step and, for messages, the key and value it writes; none for the sysctl.d file. */
type Planned =
  | { readonly step: protocol.Step; readonly key: string; readonly value: string }
  | { readonly step: protocol.Step };

/**
 * One key: write, read back, undone to the value the same script read before its first write
 * (the key is added to `capture` if it is not there yet).
 */
function keyStep(key: string, value: SysctlValue | string, capture: string[]): Planned {
  const text = textOf(value);
  if (!capture.includes(key)) capture.push(key);
  return {
    step: protocol.sysctlWriteStep(`values[${JSON.stringify(key)}]`, key, text, null),
    key,
    value: text,
  };
}

function fileStep(inputs: SysctlSetInputs, path: string): Planned {
  const content = renderSysctlConf(inputs.fileName, inputs.values);
  // The new file is loaded while still a temp file: a failed reload leaves the old file as it was.
  const load = runtimeOf(inputs.persist) ? (tmp: string) => `sysctl -q -p ${tmp}` : undefined;
  return { step: protocol.fileWriteStep("persist", path, content, { load }) };
}

/**
 * One round trip: read the `capture` keys (a missing one stops it before anything is written),
 * run the steps, undo them all on the first failure. Returns the captured values.
 */
async function runPlanned(
  t: Transport,
  planned: readonly Planned[],
  capture: readonly string[],
  journal?: string,
): Promise<Readonly<Record<string, string>>> {
  if (planned.length === 0 && capture.length === 0) return {};
  const steps = planned.map((p) => p.step);
  const res = await t.exec(
    { script: protocol.renderSteps(steps, { capture, journal }) },
    { allowFailure: true },
  );
  const out = protocol.parseSteps(res.stdout, res.exitCode);
  // The journal's value of a key wins: it was read before nettune (or cloud-init) first set it.
  if (out.ok)
    return Object.fromEntries(capture.map((k) => [k, out.journal[k] ?? out.captured[k]!]));
  if (out.kind === "unreadable")
    throw new Error(`key ${out.key} cannot be read on ${t.target}: ${out.reason}`);
  const p = planned[out.index];
  if (!p) throw new Error(`sysctl: apply failed on ${t.target}: ${out.reason}; ${UNDONE}`);
  if (!("key" in p)) {
    throw new Error(`sysctl: could not ${p.step.action} on ${t.target}: ${out.reason}; ${UNDONE}`);
  }
  if (out.status === protocol.SYSCTL_STEP.readBack) {
    throw new Error(
      `sysctl ${p.key}: wrote ${normalizeSysctl(p.value)}, kernel reports ${out.reason} on ${t.target} (clamped or ignored); ${UNDONE}`,
    );
  }
  throw new Error(
    `sysctl ${p.key}: the kernel rejected the value on ${t.target}: ${out.reason || "rejected by the kernel"}; ${UNDONE}`,
  );
}

export const sysctlSetSpec: Spec<SysctlSetInputs, SysctlSetOutputs, Facts> = {
  kind: "SysctlSet",
  schema: sysctlSetSchema,
  replaceOn: ["connection", "persist", "fileName"],
  keyed: { values: (a, b) => same(a as SysctlValue, b as SysctlValue) },
  // behindNat only changes the warnings preview shows.
  shows: (field) => field !== "behindNat",
  // Without a file, the file name only names the resource: renaming it changes nothing.
  normalize: (olds, news) =>
    fileOf(olds.persist) || fileOf(news.persist) ? news : { ...news, fileName: olds.fileName },
  outputs: ["originals", "originalsText", "applied", "filePath"],
  id: (inputs) => `sysctl/${inputs.fileName}`,

  async probe(t, inputs, why) {
    // A new set's file must not be one nettune did not write (a distribution's 99-sysctl.conf).
    const file = why.op === "check" ? (filePathOf(inputs) ?? undefined) : undefined;
    const facts = await readKeys(t, keysToRead(inputs, why), file);
    if (why.op !== "read" || runtimeOf(why.olds.persist) || !why.olds.filePath) return { facts };
    // Persistent only: what counts is the file the next boot applies.
    const res = await t.exec({ script: renderFileRead(why.olds.filePath) });
    return { facts: { ...facts, file: parseFileRead(res.stdout) } };
  },

  check(inputs, facts, target) {
    const failures: Failure[] = [];
    if (facts.foreignFile)
      failures.push({
        property: "fileName",
        reason:
          `${SYSCTL_D}/${inputs.fileName} exists on ${target} and nettune did not write it; ` +
          "nettune writes and removes only files it made: choose another fileName",
      });
    for (const key of Object.keys(inputs.values)) {
      const r = facts.keys.get(key);
      const property = `values[${JSON.stringify(key)}]`;
      if (!r) continue;
      if (!r.ok) {
        failures.push({ property, reason: `no such key on ${target}: ${r.error}` });
      } else if (!r.writable && runtimeOf(inputs.persist)) {
        failures.push({
          property,
          reason:
            `${key} is read-only on ${target} (a kernel-wide key seen from inside a ` +
            `container or network namespace); set it on the machine itself, or use persist "persistent"`,
        });
      }
    }
    const cc = facts.keys.get(CC_AVAILABLE);
    const algo = inputs.values[CC_KEY];
    if (cc?.ok && typeof algo === "string" && !cc.value.split(" ").includes(algo)) {
      failures.push({
        property: `values["${CC_KEY}"]`,
        reason: `${algo} is not available on ${target}; available: ${cc.value}`,
      });
    }
    return failures;
  },

  // Live values only: a set that writes just its file (persist "persistent") changes what the
  // next boot applies, which a preview check does not read.
  asDeclared: (inputs, facts) =>
    runtimeOf(inputs.persist) &&
    Object.entries(inputs.values).every(([key, v]) => {
      const r = facts.keys.get(key);
      return r?.ok === true && same(r.value, v);
    }),

  async apply(ctx, facts, olds, news) {
    const t = ctx.transport;
    const keys = Object.keys(news.values);
    const runtime = runtimeOf(news.persist);
    const filePath = filePathOf(news);
    const planned: Planned[] = [];
    const capture: string[] = [];
    if (!olds) {
      // One round trip: the script reads every key's original first (a missing key stops it
      // before anything is written), each write is undone to it, and it reports them.
      capture.push(...keys);
      // Checked before anything is written: the file must be absent or nettune's.
      if (filePath) planned.push({ step: protocol.fileOwnedStep("fileName", filePath) });
      if (runtime) for (const key of keys) planned.push(keyStep(key, news.values[key]!, capture));
      if (filePath) planned.push(fileStep(news, filePath));
      const texts = await runPlanned(t, planned, capture, journalPathOf(news.fileName));
      return { ...typedOriginals(texts), applied: { ...news.values }, filePath, warnings: [] };
    }
    const live = (key: string) => {
      const r = facts.keys.get(key);
      return r?.ok ? r.value : undefined;
    };
    const originals: Record<string, string> = {};
    for (const key of keys) {
      const original = originalText(olds, key) ?? live(key);
      if (original !== undefined) originals[key] = original;
      // Only what differs from the live value is written: a drifted key is set again.
      if (runtime && !same(live(key), news.values[key]))
        planned.push(keyStep(key, news.values[key]!, capture));
    }
    if (runtime) {
      // Keys no longer declared go back to their originals, where still ours.
      for (const key of Object.keys(olds.applied).filter((k) => news.values[k] === undefined)) {
        const r = restoreOrWarn<string>({
          what: key,
          live: live(key),
          applied: formatSysctl(olds.applied[key]!),
          original: originalText(olds, key),
          where: t.target,
          same,
        });
        if (r.action === "restore") planned.push(keyStep(key, r.to, capture));
        else if (r.action === "warn") ctx.warn(r.message);
      }
    }
    if (filePath) planned.push(fileStep(news, filePath));
    await runPlanned(t, planned, capture);
    return {
      ...typedOriginals(originals),
      applied: { ...news.values },
      filePath,
      warnings: [],
    };
  },

  async release(ctx, facts, olds) {
    const t = ctx.transport;
    const planned: Planned[] = [];
    const capture: string[] = [];
    if (runtimeOf(olds.persist)) {
      for (const [key, applied] of Object.entries(olds.applied)) {
        const r = facts?.keys.get(key);
        if (r && !r.ok) {
          ctx.warn(
            `${key}: cannot be read on ${t.target} any more (${r.error}); nothing to restore`,
          );
          continue;
        }
        const back = restoreOrWarn<string>({
          what: key,
          live: r?.value,
          applied: formatSysctl(applied),
          original: originalText(olds, key),
          where: t.target,
          same,
        });
        if (back.action === "restore") planned.push(keyStep(key, back.to, capture));
        else if (back.action === "warn") ctx.warn(back.message);
      }
    }
    if (olds.filePath) planned.push({ step: protocol.fileRemoveStep("persist", olds.filePath) });
    // Last: the journal is only removed once every original is back.
    planned.push({
      step: {
        property: "journal",
        action: "remove the journal of originals",
        run:
          `rm -f ${shellQuote(journalPathOf(olds.fileName))}; ` +
          `d=${protocol.JOURNAL_DIR}; rmdir "$d" "\${d%/*}" 2>/dev/null; true`,
      },
    });
    await runPlanned(t, planned, capture);
  },

  live(olds, facts) {
    const values: Record<string, SysctlValue> = {};
    if (runtimeOf(olds.persist)) {
      for (const [k, r] of facts?.keys ?? []) if (r.ok) values[k] = parseSysctlValue(r.value);
    } else {
      for (const line of (facts?.file ?? "").split("\n")) {
        const m = /^\s*([^#;=\s][^=\s]*)\s*=\s*(.*)$/.exec(line);
        if (m && Object.hasOwn(olds.values, m[1]!)) values[m[1]!] = parseSysctlValue(m[2]!);
      }
    }
    return { values };
  },
};

export const sysctlSetHandler = handlerOf(sysctlSetSpec);
