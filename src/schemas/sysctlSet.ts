/**
 * SysctlSet's inputs: the schema the provider validates with, and the warnings the resource
 * class shows at preview. No I/O: shared by the resource class and the handler.
 */
import { z } from "zod";
import { connectionSchema } from "./connection";
import { persistSchema, sysctlFileName, validateSysctl, type SysctlValue } from "./sysctl";

const valuesSchema = z
  .record(z.string(), z.unknown(), { error: "values must be an object of sysctl keys and values" })
  .superRefine((values, ctx) => {
    const keys = Object.keys(values);
    if (keys.length === 0)
      ctx.addIssue({ code: "custom", message: "values must declare at least one key", path: [] });
    if (keys.length > 500)
      ctx.addIssue({ code: "custom", message: "values may declare at most 500 keys", path: [] });
    for (const key of keys) {
      const problem = validateSysctl(key, values[key]);
      if (problem) ctx.addIssue({ code: "custom", message: problem, path: [key] });
    }
  })
  .transform((v) => v as Record<string, SysctlValue>);

export const sysctlSetSchema = z.strictObject({
  connection: connectionSchema,
  values: valuesSchema,
  persist: persistSchema.default("both"),
  fileName: sysctlFileName,
  behindNat: z.boolean({ error: "behindNat must be true or false" }).default(false),
});

export type SysctlSetInputs = z.output<typeof sysctlSetSchema>;

/** Risky settings the guide warns about; shown at preview, never blocking. */
export function sysctlWarnings(
  values: Readonly<Record<string, unknown>>,
  behindNat: boolean,
): string[] {
  const w: string[] = [];
  const v = (k: string) => values[k];
  if (v("net.ipv4.tcp_syncookies") === 0) {
    w.push(
      "net.ipv4.tcp_syncookies = 0 leaves the host open to SYN floods; keep 1 unless you have another defence",
    );
  }
  if (v("net.ipv4.tcp_timestamps") === 0) {
    w.push("net.ipv4.tcp_timestamps = 0 loses PAWS protection and accurate RTT measurement");
  }
  if (v("net.ipv4.tcp_sack") === 0) {
    w.push("net.ipv4.tcp_sack = 0 makes recovery from packet loss much slower; it rarely helps");
  }
  if (v("net.ipv4.tcp_tw_reuse") === 1 && behindNat) {
    w.push(
      "net.ipv4.tcp_tw_reuse = 1 on a server behind NAT can break connections from clients sharing an address; it is meant for clients and proxies",
    );
  }
  const big = 64 * 1024 * 1024;
  for (const k of ["net.core.rmem_max", "net.core.wmem_max"]) {
    const x = v(k);
    if (typeof x === "number" && x > big)
      w.push(`${k} = ${x} is above 64 MiB: very large buffers cause bufferbloat`);
  }
  for (const k of ["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"]) {
    const x = v(k);
    if (Array.isArray(x) && typeof x[2] === "number" && x[2] > big) {
      w.push(`${k} max = ${x[2]} is above 64 MiB: very large buffers cause bufferbloat`);
    }
  }
  return w;
}
