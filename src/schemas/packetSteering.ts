/**
 * PacketSteering's inputs: RPS (`rps_cpus`), RFS (`rps_sock_flow_entries`, `rps_flow_cnt`) and
 * XPS (`xps_cpus` or `xps_rxqs`) of one interface. CPUs and queues are cpulists (`0-3,8`), never
 * hex masks: nettune renders the kernel's mask itself. No I/O: shared by the resource class and
 * the handler.
 */
import { z } from "zod";
import { cpuListProblem, MAX_CPU } from "../host/cpus";
import { connectionSchema } from "./connection";
import { interfaceSchema, persistSchema, unitNameSchema } from "./link";

/** The largest `net.core.rps_sock_flow_entries` the kernel takes (rps_sock_flow_sysctl: 1 << 29). */
export const MAX_FLOW_ENTRIES = 2 ** 29;

/** More queues than any NIC has; the interface's own queues are the real bound, checked at preview. */
export const MAX_QUEUE = 4095;

/** A cpulist (`0-3,8`): CPUs, or for `xps.rxqs` rx queue numbers. */
function listSchema(what: "CPUs" | "rx queues", max: number) {
  return z.string({ error: `expected a list of ${what} such as 0-3,8` }).superRefine((v, ctx) => {
    const problem = cpuListProblem(v);
    if (problem) {
      const message =
        what === "CPUs"
          ? problem
          : problem.replace(/CPUs/g, "rx queues").replace(/CPU/g, "rx queue");
      ctx.addIssue({ code: "custom", message });
      return;
    }
    const top = Math.max(...v.split(/[,-]/).map((n) => Number(n.trim())));
    if (top > max) ctx.addIssue({ code: "custom", message: `${top} is above ${max}` });
  });
}

const cpuList = listSchema("CPUs", MAX_CPU);
const rxqList = listSchema("rx queues", MAX_QUEUE);

/** A record keyed by queue number (`{ 0: "0-1", 1: "2-3" }`). */
function perQueue<T extends z.ZodType<string>>(value: T, kind: "rx" | "tx") {
  return z
    .record(
      z
        .string()
        .regex(/^(0|[1-9]\d{0,3})$/, `keys must be ${kind} queue numbers such as 0, 1, 2`)
        .refine((k) => Number(k) <= MAX_QUEUE, `${kind} queue numbers go up to ${MAX_QUEUE}`),
      value,
    )
    .refine((r) => Object.keys(r).length > 0, `name at least one ${kind} queue`);
}

/** One cpulist for every queue, or one per queue. */
const cpusForQueues = (kind: "rx" | "tx") =>
  z.union([cpuList, perQueue(cpuList, kind)], {
    error: `expected a list of CPUs such as "0-3", or one per ${kind} queue such as { 0: "0-1", 1: "2-3" }`,
  });

const rfsSchema = z.strictObject(
  {
    flowEntries: z
      .number({ error: "flowEntries must be a number of flow entries, a power of two" })
      .int("flowEntries must be an integer")
      .min(1, "flowEntries must be at least 1 (0 would turn RFS off: leave rfs out instead)")
      .max(
        MAX_FLOW_ENTRIES,
        `flowEntries must be at most ${MAX_FLOW_ENTRIES} (2^29, the kernel's limit)`,
      )
      .refine(
        (n) => (n & (n - 1)) === 0,
        "flowEntries must be a power of two (the kernel rounds up to one), e.g. 32768",
      ),
  },
  { error: "rfs must be { flowEntries: N }" },
);

const xpsSchema = z.union(
  [
    z.strictObject({ cpus: cpusForQueues("tx") }),
    z.strictObject({ rxqs: perQueue(rxqList, "tx") }),
  ],
  {
    error:
      'xps must be { cpus: "0-3" } (or one cpulist per tx queue) or { rxqs: { 0: "0", 1: "1" } } (rx queues per tx queue)',
  },
);

export const packetSteeringSchema = z
  .strictObject({
    connection: connectionSchema,
    interface: interfaceSchema,
    rps: cpusForQueues("rx").optional(),
    rfs: rfsSchema.optional(),
    xps: xpsSchema.optional(),
    persist: persistSchema,
    unitName: unitNameSchema,
  })
  .superRefine((v, ctx) => {
    if (v.rps === undefined && v.rfs === undefined && v.xps === undefined) {
      ctx.addIssue({ code: "custom", path: [], message: "declare rps, rfs and/or xps" });
    }
  });

export type PacketSteeringInputs = z.output<typeof packetSteeringSchema>;
/** CPUs for every queue, or per queue number. */
export type QueueCpus = string | Record<string, string>;
export type XpsInputs = NonNullable<PacketSteeringInputs["xps"]>;
