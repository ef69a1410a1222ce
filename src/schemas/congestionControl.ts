/**
 * CongestionControl's inputs and the root qdisc it saves to put back (an output the resource
 * class types). No I/O: shared by the resource class and the handler.
 */
import { z } from "zod";
import { isValidInterfaceName } from "../host/ip";
import { unfitRootQdisc } from "../host/tc";
import { connectionSchema } from "./connection";

const NAME = /^[a-z][a-z0-9_]{0,14}$/;

export const congestionControlSchema = z
  .strictObject({
    connection: connectionSchema,
    algorithm: z
      .string({ error: "algorithm must be a name such as bbr or cubic" })
      .regex(NAME, "must be a lower-case name of letters, digits and _ (at most 15 characters)"),
    qdisc: z
      .string({ error: "qdisc must be a name such as fq or fq_codel" })
      .regex(NAME, "must be a lower-case name of letters, digits and _ (at most 15 characters)")
      .superRefine((kind, ctx) => {
        const why = unfitRootQdisc(kind);
        if (why) ctx.addIssue({ code: "custom", message: why });
      })
      .optional(),
    qdiscFallback: z
      .string({ error: 'qdiscFallback must be a qdisc name such as fq_codel, or "none"' })
      .regex(NAME, "must be a lower-case name of letters, digits and _ (at most 15 characters)")
      .superRefine((kind, ctx) => {
        const why = kind === "none" ? undefined : unfitRootQdisc(kind);
        if (why) ctx.addIssue({ code: "custom", message: why });
      })
      .optional(),
    interfaces: z
      .array(
        z
          .string({ error: "expected an interface name such as eth0" })
          .refine(
            isValidInterfaceName,
            "must be an interface name of 1-15 characters without /, : or spaces",
          ),
        { error: "interfaces must be a list of interface names" },
      )
      .max(64, "interfaces takes at most 64 names")
      .refine((l) => new Set(l).size === l.length, "interfaces must not repeat a name")
      .default([]),
    persist: z.boolean({ error: "persist must be true or false" }).default(true),
    resourceName: z.string().min(1),
  })
  .superRefine((v, ctx) => {
    if (v.qdiscFallback !== undefined && v.qdisc === undefined) {
      ctx.addIssue({
        code: "custom",
        message: "qdiscFallback needs qdisc: it is used where the host cannot take qdisc",
        path: ["qdiscFallback"],
      });
    }
    if (v.interfaces.length > 0 && v.qdisc === undefined) {
      ctx.addIssue({
        code: "custom",
        message: "interfaces needs qdisc: the root qdisc to give them",
        path: ["interfaces"],
      });
    }
  });

export type CongestionControlInputs = z.output<typeof congestionControlSchema>;

/** An interface's root qdisc as it was (zod-free, in ./publicTypes: it is in the public types). */
export type { SavedQdisc } from "./publicTypes";
