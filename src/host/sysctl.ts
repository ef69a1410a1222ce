/**
 * sysctl on the host: render the scripts that read, apply (all-or-nothing) and persist keys,
 * and parse what they print. No I/O here: `handlers/` runs these through a transport.
 *
 * Keys are read and written through /proc/sys directly, many per script, so a whole set costs
 * one SSH round trip. Every value is quoted by `shellQuote`.
 */
import { shellQuote } from "../transport/quote";
import { ParseError } from "./errors";
import { formatSysctl, normalizeSysctl, type SysctlValue } from "../schemas/sysctl";

export const SYSCTL_D = "/etc/sysctl.d";

/**
 * net.ipv4.tcp_rmem -> net/ipv4/tcp_rmem; net.ipv4.conf.eth0/100.rp_filter ->
 * net/ipv4/conf/eth0.100/rp_filter (sysctl(8)'s form for names with a dot). Names are validated
 * (sysctlKeyName): a '/' only ever stands between two name characters, so no segment can become
 * "." or "..".
 */
export function sysctlPath(key: string): string {
  return key
    .split(".")
    .map((segment) => segment.split("/").join("."))
    .join("/");
}

export type ReadResult =
  | { readonly key: string; readonly ok: true; readonly value: string; readonly writable: boolean }
  | { readonly key: string; readonly ok: false; readonly error: string };

/** One script that prints `ok|err <TAB> key <TAB> value-or-error` per key. */
export function renderSysctlRead(keys: readonly string[]): string {
  const lines = ["set -f"];
  for (const key of keys) {
    const p = shellQuote(`/proc/sys/${sysctlPath(key)}`);
    const k = shellQuote(key);
    lines.push(
      // The last field says whether the key can be written here: a network namespace shows
      // some global keys (net.core.rmem_max, …) read-only.
      `if v=$(cat ${p} 2>&1); then if [ -w ${p} ]; then w=rw; else w=ro; fi; ` +
        `printf 'ok\\t%s\\t%s\\t%s\\n' ${k} "$(echo $v)" "$w"; ` +
        `else printf 'err\\t%s\\t%s\\n' ${k} "$(echo $v | sed 's/^cat: //')"; fi`,
    );
  }
  return lines.join("\n");
}

/** Output of a sysctl script that cannot be read: a ParseError naming `sysctl`. */
export class SysctlParseError extends ParseError {
  constructor(message: string, output: string) {
    super("sysctl", message, output);
  }
}

export function parseSysctlRead(stdout: string, keys: readonly string[]): Map<string, ReadResult> {
  const out = new Map<string, ReadResult>();
  for (const line of stdout.split("\n")) {
    if (!line) continue;
    const [status, key, ...rest] = line.split("\t");
    const flag =
      rest.length > 1 && (rest.at(-1) === "rw" || rest.at(-1) === "ro") ? rest.pop() : "rw";
    const text = rest.join("\t");
    if (!key || (status !== "ok" && status !== "err")) {
      throw new SysctlParseError(`unexpected line ${JSON.stringify(line)}`, stdout);
    }
    out.set(
      key,
      status === "ok"
        ? { key, ok: true, value: normalizeSysctl(text), writable: flag === "rw" }
        : { key, ok: false, error: text.trim() },
    );
  }
  for (const k of keys) {
    if (!out.has(k)) throw new SysctlParseError(`no result for ${k}`, stdout);
  }
  return out;
}

export interface ApplyStep {
  readonly key: string;
  /** The value to write. */
  readonly value: SysctlValue | string;
  /**
   * What to put back if a later step fails (the value live before this apply), or null for the
   * value the script itself read first (the key must be in `capture`).
   */
  readonly rollback: string | null;
}

export interface PersistFile {
  readonly path: string;
  /** The file's content, or undefined to remove it. */
  readonly content: string | undefined;
  /** Reload it with `sysctl -p` once written (its values are live already). */
  readonly reload: boolean;
}

/**
 * One all-or-nothing script: read the `capture` keys first (printing `orig <TAB> key <TAB>
 * value` for each), write each key, read every key back and compare, then write (or remove)
 * the persistence file. A capture key that cannot be read stops it before anything is written:
 *   unreadable <TAB> key <TAB> reason            (exit 6)
 * On the first later failure, every key already written is put back to its `rollback` value in
 * reverse order and the script exits non-zero after printing
 *   failed <TAB> key <TAB> kernel's reason        (exit 3)
 *   mismatch <TAB> key <TAB> wrote <TAB> got     (exit 4)
 *   persist <TAB> path <TAB> reason              (exit 5)
 */
export function renderSysctlApply(
  steps: readonly ApplyStep[],
  persist?: PersistFile,
  capture: readonly string[] = [],
): string {
  const lines = ["set -f", "r0() { :; }"];
  capture.forEach((key, j) => {
    const p = shellQuote(`/proc/sys/${sysctlPath(key)}`);
    const k = shellQuote(key);
    lines.push(
      `if ! c${j}=$(cat ${p} 2>&1); then ` +
        `printf 'unreadable\\t%s\\t%s\\n' ${k} "$(echo $c${j} | sed 's/^cat: //')"; exit 6; fi`,
      `c${j}=$(echo $c${j}); printf 'orig\\t%s\\t%s\\n' ${k} "$c${j}"`,
    );
  });
  steps.forEach((s, i) => {
    const p = shellQuote(`/proc/sys/${sysctlPath(s.key)}`);
    const v = shellQuote(typeof s.value === "string" ? s.value : formatSysctl(s.value));
    let rollback: string;
    if (s.rollback === null) {
      const j = capture.indexOf(s.key);
      if (j < 0)
        throw new Error(`renderSysctlApply: ${s.key} rolls back to a value it does not read`);
      rollback = `"$c${j}"`;
    } else {
      rollback = shellQuote(s.rollback);
    }
    lines.push(
      // tee reports the kernel's errno ("Invalid argument"); the shell's printf would not.
      `if ! e=$(printf '%s\\n' ${v} 2>&1 | tee ${p} 2>&1 >/dev/null); then ` +
        `printf 'failed\\t%s\\t%s\\n' ${shellQuote(s.key)} "$(echo $e | sed 's/^.*: //')"; r${i}; exit 3; fi`,
      `r${i + 1}() { printf '%s\\n' ${rollback} > ${p} 2>/dev/null; r${i}; }`,
    );
  });
  const all = `r${steps.length}`;
  for (const s of steps) {
    const p = shellQuote(`/proc/sys/${sysctlPath(s.key)}`);
    const want = shellQuote(
      normalizeSysctl(typeof s.value === "string" ? s.value : formatSysctl(s.value)),
    );
    lines.push(
      `g=$(echo $(cat ${p} 2>&1)); if [ "$g" != ${want} ]; then ` +
        `printf 'mismatch\\t%s\\t%s\\t%s\\n' ${shellQuote(s.key)} ${want} "$g"; ${all}; exit 4; fi`,
    );
  }
  if (persist) lines.push(...renderPersist(persist, all));
  lines.push("echo applied");
  return lines.join("\n");
}

function renderPersist(persist: PersistFile, undo: string): string[] {
  const f = shellQuote(persist.path);
  const dir = shellQuote(persist.path.slice(0, persist.path.lastIndexOf("/")));
  const tmp = shellQuote(
    `${persist.path.slice(0, persist.path.lastIndexOf("/"))}/.${persist.path.slice(persist.path.lastIndexOf("/") + 1)}.nettune-tmp`,
  );
  if (persist.content === undefined) {
    return [
      `if ! e=$(rm -f ${f} 2>&1); then printf 'persist\\t%s\\t%s\\n' ${f} "$(echo $e)"; ${undo}; exit 5; fi`,
    ];
  }
  // The new file is reloaded while still a temp file and only then moved into place, so a
  // failed reload leaves the previous file as it was.
  const reload = persist.reload ? ` && sysctl -q -p ${tmp}` : "";
  const lines = [
    `if ! e=$( { mkdir -p ${dir} && umask 022 && printf '%s' ${shellQuote(persist.content)} > ${tmp}${reload} && mv -f ${tmp} ${f}; } 2>&1 ); then ` +
      `rm -f ${tmp}; printf 'persist\\t%s\\t%s\\n' ${f} "$(echo $e)"; ${undo}; exit 5; fi`,
  ];
  return lines;
}

export type ApplyOutcome =
  | {
      readonly ok: true;
      /** The captured keys' values before anything was written, normalized. */
      readonly originals: Readonly<Record<string, string>>;
    }
  | {
      readonly ok: false;
      readonly kind: "unreadable";
      readonly key: string;
      readonly reason: string;
    }
  | { readonly ok: false; readonly kind: "failed"; readonly key: string; readonly reason: string }
  | {
      readonly ok: false;
      readonly kind: "mismatch";
      readonly key: string;
      readonly wrote: string;
      readonly got: string;
    }
  | { readonly ok: false; readonly kind: "persist"; readonly key: string; readonly reason: string };

export function parseSysctlApply(stdout: string, exitCode: number | null): ApplyOutcome {
  const lines = stdout.split("\n").filter(Boolean);
  if (exitCode === 0 && lines.at(-1) === "applied") {
    const originals: Record<string, string> = {};
    for (const line of lines) {
      const [tag, key, ...value] = line.split("\t");
      if (tag === "orig" && key) originals[key] = normalizeSysctl(value.join("\t"));
    }
    return { ok: true, originals };
  }
  for (const line of lines) {
    const [tag, key = "", a = "", b = ""] = line.split("\t");
    if (tag === "unreadable")
      return { ok: false, kind: "unreadable", key, reason: a || "cannot be read" };
    if (tag === "failed")
      return { ok: false, kind: "failed", key, reason: a || "rejected by the kernel" };
    if (tag === "mismatch") return { ok: false, kind: "mismatch", key, wrote: a, got: b };
    if (tag === "persist") return { ok: false, kind: "persist", key, reason: a };
  }
  throw new SysctlParseError(`apply ended with exit code ${exitCode} and no result`, stdout);
}

/** The sysctl.d file a SysctlSet owns: a header naming the owner, then `key = value` lines. */
export function renderSysctlConf(
  owner: string,
  values: Readonly<Record<string, SysctlValue>>,
): string {
  const lines = [
    `# Managed by nettune (${owner}). Changes here are overwritten; edit the Pulumi program instead.`,
  ];
  for (const key of Object.keys(values).sort())
    lines.push(`${key} = ${formatSysctl(values[key]!)}`);
  return lines.join("\n") + "\n";
}

/** Reads a file's content with a marker when it does not exist (for verifying persistence). */
export function renderFileRead(path: string): string {
  const f = shellQuote(path);
  return `if [ -f ${f} ]; then echo present; cat ${f}; else echo absent; fi`;
}

export function parseFileRead(stdout: string): string | undefined {
  const nl = stdout.indexOf("\n");
  const head = nl < 0 ? stdout.trim() : stdout.slice(0, nl);
  if (head === "absent") return undefined;
  if (head === "present") return nl < 0 ? "" : stdout.slice(nl + 1);
  throw new SysctlParseError("unexpected file read output", stdout);
}
