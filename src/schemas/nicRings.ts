/** NicRings' inputs. No I/O: shared by the resource class and the handler. */
import { z } from "zod";
import { connectionSchema } from "./connection";
import { countSchema, interfaceSchema, persistSchema, unitNameSchema } from "./link";

/** Larger than any driver's ring; the driver's maximum is the real bound, checked at preview. */
const MAX_RING = 65536;

export const nicRingsSchema = z
  .strictObject({
    connection: connectionSchema,
    interface: interfaceSchema,
    rx: countSchema(MAX_RING).optional(),
    tx: countSchema(MAX_RING).optional(),
    persist: persistSchema,
    unitName: unitNameSchema,
  })
  .superRefine((v, ctx) => {
    if (v.rx === undefined && v.tx === undefined)
      ctx.addIssue({ code: "custom", path: [], message: "declare rx, tx or both" });
  });

export type NicRingsInputs = z.output<typeof nicRingsSchema>;
