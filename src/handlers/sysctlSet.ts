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
  parseSysctlApply,
  parseSysctlRead,
  renderFileRead,
  renderSysctlApply,
  renderSysctlConf,
  renderSysctlRead,
  type ApplyStep,
  type PersistFile,
  type ReadResult,
} from "../host/sysctl";
import type { Transport } from "../transport/types";
import {
  diffResult,
  sameHost,
  type DiffResult,
  type Failure,
  type ResourceHandler,
} from "../engine/lifecycle";

export interface SysctlSetOutputs extends SysctlSetInputs {
  /** The live value of each key before nettune first set it, as the kernel printed it. */
  originals: Record<string, string>;
  /** What nettune set (live and/or in the file). */
  applied: Record<string, SysctlValue>;
  /** The sysctl.d file this resource owns, when persist is "persistent" or "both". */
  filePath: string | null;
  /** Messages from the last operation the user should read. */
  warnings: string[];
}

const runtimeOf = (p: SysctlSetInputs["persist"]) => p === "runtime" || p === "both";
const fileOf = (p: SysctlSetInputs["persist"]) => p === "persistent" || p === "both";
const same = (a: SysctlValue | string | undefined, b: SysctlValue | string | undefined) =>
  a !== undefined &&
  b !== undefined &&
  normalizeSysctl(typeof a === "string" ? a : formatSysctl(a)) ===
    normalizeSysctl(typeof b === "string" ? b : formatSysctl(b));

function filePathOf(inputs: SysctlSetInputs): string | null {
  return fileOf(inputs.persist) ? `${SYSCTL_D}/${inputs.fileName}` : null;
}

async function readKeys(t: Transport, keys: readonly string[]): Promise<Map<string, ReadResult>> {
  if (keys.length === 0) return new Map();
  const res = await t.exec({ script: renderSysctlRead(keys) });
  return parseSysctlRead(res.stdout, keys);
}

function missingKeyError(t: Transport, r: ReadResult): string {
  return r.ok ? "" : `key ${r.key} cannot be read on ${t.target}: ${r.error}`;
}

/** Runs one apply script; returns the values of the `capture` keys it read before writing. */
async function applyOrThrow(
  t: Transport,
  steps: ApplyStep[],
  persist: PersistFile | undefined,
  capture: readonly string[] = [],
): Promise<Readonly<Record<string, string>>> {
  const res = await t.exec(
    { script: renderSysctlApply(steps, persist, capture) },
    { allowFailure: true },
  );
  const out = parseSysctlApply(res.stdout, res.exitCode);
  if (out.ok) return out.originals;
  const undone = "nothing was changed: every key written in this step was put back";
  switch (out.kind) {
    case "unreadable":
      throw new Error(`key ${out.key} cannot be read on ${t.target}: ${out.reason}`);
    case "failed":
      throw new Error(
        `sysctl ${out.key}: the kernel rejected the value on ${t.target}: ${out.reason}; ${undone}`,
      );
    case "mismatch":
      throw new Error(
        `sysctl ${out.key}: wrote ${out.wrote}, kernel reports ${out.got} on ${t.target} (clamped or ignored); ${undone}`,
      );
    case "persist":
      throw new Error(
        `sysctl: could not write ${out.key} on ${t.target}: ${out.reason}; ${undone}`,
      );
  }
}

export const sysctlSetHandler: ResourceHandler<SysctlSetInputs, SysctlSetOutputs> = {
  kind: "SysctlSet",
  schema: sysctlSetSchema,
  replaceOn: ["connection", "persist", "fileName"],

  async hostCheck(inputs, ctx) {
    const keys = Object.keys(inputs.values);
    const extra = "net.ipv4.tcp_available_congestion_control";
    const wantsCc = keys.includes("net.ipv4.tcp_congestion_control");
    const read = await readKeys(ctx.transport, wantsCc ? [...keys, extra] : keys);
    const failures: Failure[] = [];
    for (const key of keys) {
      const r = read.get(key)!;
      if (!r.ok) {
        failures.push({
          property: `values[${JSON.stringify(key)}]`,
          reason: `no such key on ${ctx.transport.target}: ${r.error}`,
        });
      } else if (!r.writable && runtimeOf(inputs.persist)) {
        failures.push({
          property: `values[${JSON.stringify(key)}]`,
          reason:
            `${key} is read-only on ${ctx.transport.target} (a kernel-wide key seen from inside a ` +
            `container or network namespace); set it on the machine itself, or use persist "persistent"`,
        });
      }
    }
    const cc = read.get(extra);
    const algo = inputs.values["net.ipv4.tcp_congestion_control"];
    if (wantsCc && cc?.ok && typeof algo === "string" && !cc.value.split(" ").includes(algo)) {
      failures.push({
        property: `values["net.ipv4.tcp_congestion_control"]`,
        reason: `${algo} is not available on ${ctx.transport.target}; available: ${cc.value}`,
      });
    }
    return failures;
  },

  diff(_id, olds, news): DiffResult {
    const replaces: string[] = [];
    if (!sameHost(olds.connection, news.connection)) replaces.push("connection");
    if (olds.persist !== news.persist) replaces.push("persist");
    if (olds.fileName !== news.fileName && (fileOf(olds.persist) || fileOf(news.persist)))
      replaces.push("fileName");
    const detailedDiff: NonNullable<DiffResult["detailedDiff"]> = {};
    const keys = new Set([...Object.keys(olds.values), ...Object.keys(news.values)]);
    for (const key of keys) {
      const a = olds.values[key];
      const b = news.values[key];
      const path = `values[${JSON.stringify(key)}]`;
      if (a === undefined) detailedDiff[path] = { kind: "add", inputDiff: true };
      else if (b === undefined) detailedDiff[path] = { kind: "delete", inputDiff: true };
      else if (!same(a, b)) detailedDiff[path] = { kind: "update", inputDiff: true };
    }
    return diffResult(detailedDiff, replaces, olds, news, olds.behindNat !== news.behindNat);
  },

  async create(inputs, ctx) {
    const t = ctx.transport;
    const keys = Object.keys(inputs.values);
    const filePath = filePathOf(inputs);
    // One round trip: the script reads every key's original first (a missing key stops it
    // before anything is written), rolls back to those values on failure, and reports them.
    const steps: ApplyStep[] = runtimeOf(inputs.persist)
      ? keys.map((key) => ({ key, value: inputs.values[key]!, rollback: null }))
      : [];
    const persist = filePath
      ? {
          path: filePath,
          content: renderSysctlConf(inputs.fileName, inputs.values),
          reload: runtimeOf(inputs.persist),
        }
      : undefined;
    const originals = { ...(await applyOrThrow(t, steps, persist, keys)) };
    const id = `${inputs.connection.user}@${inputs.connection.host}:${inputs.connection.port}/sysctl/${inputs.fileName}`;
    return {
      id,
      outs: { ...inputs, originals, applied: { ...inputs.values }, filePath, warnings: [] },
    };
  },

  async read(_id, olds, ctx) {
    const t = ctx.transport;
    const keys = Object.keys(olds.values);
    const values: Record<string, SysctlValue> = {};
    if (runtimeOf(olds.persist)) {
      const live = await readKeys(t, keys);
      for (const [k, r] of live) if (r.ok) values[k] = parseSysctlValue(r.value);
    } else if (olds.filePath) {
      // Persistent only: what counts is the file the next boot applies.
      const res = await t.exec({ script: renderFileRead(olds.filePath) });
      const content = parseFileRead(res.stdout) ?? "";
      for (const line of content.split("\n")) {
        const m = /^\s*([^#;=\s][^=\s]*)\s*=\s*(.*)$/.exec(line);
        if (m && keys.includes(m[1]!)) values[m[1]!] = parseSysctlValue(m[2]!);
      }
    }
    const props: SysctlSetOutputs = { ...olds, values, warnings: [] };
    const { originals: _o, applied: _a, filePath: _f, warnings: _w, ...inputs } = props;
    return { props, inputs };
  },

  async update(_id, olds, news, ctx) {
    const t = ctx.transport;
    const warnings: string[] = [];
    const changed = Object.keys(news.values).filter(
      (k) => !same(olds.applied[k], news.values[k]) || !same(olds.values[k], news.values[k]),
    );
    const removed = Object.keys(olds.applied).filter((k) => news.values[k] === undefined);
    const originals: Record<string, string> = {};
    for (const k of Object.keys(news.values))
      if (olds.originals[k] !== undefined) originals[k] = olds.originals[k]!;
    const live = await readKeys(t, [...changed, ...removed]);
    for (const r of live.values())
      if (!r.ok && changed.includes(r.key)) throw new Error(missingKeyError(t, r));
    const steps: ApplyStep[] = [];
    if (runtimeOf(news.persist)) {
      for (const key of changed) {
        const r = live.get(key)!;
        const now = r.ok ? r.value : "";
        if (originals[key] === undefined) originals[key] = now;
        steps.push({ key, value: news.values[key]!, rollback: now });
      }
      for (const key of removed) {
        const r = live.get(key)!;
        const orig = olds.originals[key];
        if (!r.ok || orig === undefined) continue;
        if (same(r.value, olds.applied[key])) steps.push({ key, value: orig, rollback: r.value });
        else {
          warnings.push(
            `${key}: left at ${r.value} on ${t.target}: it was changed outside nettune after it was set to ${formatSysctl(olds.applied[key]!)}`,
          );
        }
      }
    }
    const filePath = filePathOf(news);
    const persist = filePath
      ? {
          path: filePath,
          content: renderSysctlConf(news.fileName, news.values),
          reload: runtimeOf(news.persist),
        }
      : undefined;
    await applyOrThrow(t, steps, persist);
    for (const w of warnings) ctx.warn(w);
    return { ...news, originals, applied: { ...news.values }, filePath, warnings };
  },

  async delete(_id, olds, ctx) {
    const t = ctx.transport;
    const keys = Object.keys(olds.applied);
    const steps: ApplyStep[] = [];
    if (runtimeOf(olds.persist)) {
      const live = await readKeys(t, keys);
      for (const key of keys) {
        const r = live.get(key)!;
        const orig = olds.originals[key];
        if (!r.ok) {
          ctx.warn(
            `${key}: cannot be read on ${t.target} any more (${r.error}); nothing to restore`,
          );
        } else if (orig === undefined) {
          continue;
        } else if (same(r.value, olds.applied[key])) {
          if (!same(r.value, orig)) steps.push({ key, value: orig, rollback: r.value });
        } else {
          ctx.warn(
            `${key}: left at ${r.value} on ${t.target}: it was changed outside nettune after it was set to ${formatSysctl(olds.applied[key]!)}`,
          );
        }
      }
    }
    const persist = olds.filePath
      ? { path: olds.filePath, content: undefined, reload: false }
      : undefined;
    await applyOrThrow(t, steps, persist);
  },
};
