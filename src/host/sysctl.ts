/**
 * sysctl on the host: render the scripts that read keys and the sysctl.d file, and parse what
 * they print; keys are written by the all-or-nothing steps of ./steps.ts. No I/O here:
 * `specs/` runs these through a transport.
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
