/** RssQueues' inputs. No I/O: shared by the resource class and the handler. */
import { z } from "zod";
import { connectionSchema } from "./connection";
import { countSchema, interfaceSchema, persistSchema, unitNameSchema } from "./link";

/** More channels than any NIC has; the driver's maximum is the real bound, checked at preview. */
const MAX_CHANNELS = 1024;

const indirectionSchema = z
  .strictObject(
    {
      equal: z
        .number({ error: "equal must be a number of queues" })
        .int("equal must be an integer")
        .min(1, "equal must be at least 1")
        .max(MAX_CHANNELS, `equal must be at most ${MAX_CHANNELS}`)
        .optional(),
      weights: z
        .array(
          z
            .number({ error: "each weight must be a number" })
            .int("each weight must be an integer")
            .min(0, "weights must not be negative")
            .max(65535, "a weight must be at most 65535"),
          { error: "weights must be a list of numbers, one per rx queue" },
        )
        .min(1, "weights must name at least one queue")
        .max(MAX_CHANNELS, `weights may name at most ${MAX_CHANNELS} queues`)
        .optional(),
    },
    { error: "indirection must be { equal: N } or { weights: [...] }" },
  )
  .superRefine((v, ctx) => {
    if ((v.equal === undefined) === (v.weights === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: [],
        message: "indirection takes exactly one of equal and weights",
      });
    }
    if (v.weights && !v.weights.some((w) => w > 0)) {
      ctx.addIssue({
        code: "custom",
        path: ["weights"],
        message: "at least one weight must be above 0: no queue would receive anything",
      });
    }
  });

export type Indirection = z.output<typeof indirectionSchema>;

export const rssQueuesSchema = z
  .strictObject({
    connection: connectionSchema,
    interface: interfaceSchema,
    combined: countSchema(MAX_CHANNELS).optional(),
    rx: countSchema(MAX_CHANNELS).optional(),
    tx: countSchema(MAX_CHANNELS).optional(),
    indirection: indirectionSchema.optional(),
    persist: persistSchema,
    unitName: unitNameSchema,
  })
  .superRefine((v, ctx) => {
    if (v.combined !== undefined && (v.rx !== undefined || v.tx !== undefined)) {
      ctx.addIssue({
        code: "custom",
        path: ["combined"],
        message:
          "combined excludes rx and tx: a NIC has either combined channels or separate rx and tx ones",
      });
    }
    if (
      v.combined === undefined &&
      v.rx === undefined &&
      v.tx === undefined &&
      v.indirection === undefined
    ) {
      ctx.addIssue({
        code: "custom",
        path: [],
        message: "declare combined, rx and/or tx, or indirection",
      });
    }
  });

export type RssQueuesInputs = z.output<typeof rssQueuesSchema>;
