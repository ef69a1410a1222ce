/** IrqAffinity's inputs. No I/O: shared by the resource class and the handler. */
import { z } from "zod";
import { connectionSchema } from "./connection";
import { interfaceSchema, persistSchema, unitNameSchema } from "./link";
import { cpuListProblem, normalizeCpuList } from "../host/cpus";

/** More queues than any NIC has; the NIC's own queues are the real bound, checked at preview. */
const MAX_QUEUE = 4095;

/** A cpulist as users write it (`"0-3,8"`), kept in the kernel's form (`"0-3,8"`). */
export function cpuListSchema(what: string) {
  return z
    .string({ error: `${what} must be a CPU list such as "0-3,8"` })
    .superRefine((v, ctx) => {
      const problem = cpuListProblem(v);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    })
    .transform((v) => normalizeCpuList(v));
}

const queueMapSchema = z
  .record(z.string(), cpuListSchema("each CPU list of map"), {
    error: 'map must be an object from queue index to CPU list, e.g. { 0: "2", 1: "3" }',
  })
  .superRefine((map, ctx) => {
    const seen = new Map<number, string>();
    const keys = Object.keys(map);
    if (keys.length === 0) {
      ctx.addIssue({ code: "custom", message: "map must name at least one queue" });
    }
    for (const key of keys) {
      if (!/^\d+$/.test(key) || Number(key) > MAX_QUEUE) {
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `"${key}" is not a queue index: use 0 to ${MAX_QUEUE}`,
        });
        continue;
      }
      const q = Number(key);
      const other = seen.get(q);
      if (other !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `queue ${q} is given twice (as "${other}" and "${key}")`,
        });
      }
      seen.set(q, key);
    }
  })
  .transform((map) =>
    Object.fromEntries(
      Object.entries(map)
        .map(([k, v]) => [String(Number(k)), v] as const)
        .sort(([a], [b]) => Number(a) - Number(b)),
    ),
  );

/**
 * How the queue IRQs are placed:
 * - `"spread"`: one CPU per queue, round-robin: one thread of every core (the NIC's NUMA node
 *   first), then the hyperthread siblings;
 * - `"numa-local"`: every queue IRQ on all CPUs of the NIC's node;
 * - `{ map: { 0: "2", 1: "3" } }`: the CPUs of each queue, by queue index;
 * - `{ cpus: "0-7" }`: one CPU list for every queue IRQ.
 */
export const irqPolicySchema = z.union(
  [
    z.literal("spread"),
    z.literal("numa-local"),
    z.strictObject({ map: queueMapSchema }),
    z.strictObject({ cpus: cpuListSchema("cpus") }),
  ],
  {
    error:
      'policy must be "spread", "numa-local", { map: { <queue>: "<cpus>" } } or { cpus: "<cpus>" }',
  },
);

export type IrqPolicy = z.output<typeof irqPolicySchema>;

export const irqAffinitySchema = z
  .strictObject({
    connection: connectionSchema,
    interface: interfaceSchema,
    policy: irqPolicySchema,
    exclude: cpuListSchema("exclude").optional(),
    irqbalance: z
      .enum(["ban", "stop"], { error: 'irqbalance must be "ban" or "stop"' })
      .default("ban"),
    persist: persistSchema,
    unitName: unitNameSchema,
  })
  .superRefine((v, ctx) => {
    if (v.exclude !== undefined && typeof v.policy !== "string") {
      ctx.addIssue({
        code: "custom",
        path: ["exclude"],
        message:
          'exclude applies to the "spread" and "numa-local" policies; a map or cpus list names its CPUs itself',
      });
    }
  });

export type IrqAffinityInputs = z.output<typeof irqAffinitySchema>;
