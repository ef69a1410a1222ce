/**
 * XdpProgram's inputs as the provider receives them: the resource class compiled the program
 * (or read the prebuilt object) on the machine running Pulumi and passes the object as base64
 * with its sha256. No I/O.
 */
import { z } from "zod";
import { connectionSchema } from "./connection";
import { interfaceSchema, persistSchema, rollbackAfterSchema, unitNameSchema } from "./link";

/** What the live state says when nettune's program is not the one attached (refresh). */
export const NOT_ATTACHED = "none";

export const xdpModeSchema = z.enum(["native", "generic", "hw"], {
  error: 'mode must be "native", "generic" or "hw"',
});

/** An integer constant: a number, or a string of digits for values past 2^53. */
const constantScalar = z.union([
  z.number().int("must be a whole number"),
  z.boolean(),
  z.string().regex(/^-?\d{1,20}$/, "must be a whole number (a string of digits for 64-bit values)"),
]);

/** A constant's value: an integer, a boolean, or a list of them (a list of lists for 2-D arrays). */
export const xdpConstantSchema = z.union([
  constantScalar,
  z.array(z.union([constantScalar, z.array(constantScalar).max(4096)])).max(4096),
]);

/** Values for the object's `volatile const` globals, set when the program is loaded. */
export const xdpConstantsSchema = z
  .record(
    z
      .string()
      .regex(
        /^[A-Za-z_][A-Za-z0-9_]{0,127}$/,
        "constants: each name must be a C identifier (a `volatile const` global of the object)",
      ),
    xdpConstantSchema,
    { error: "constants must be an object of constant name to value" },
  )
  .superRefine((consts, ctx) => {
    // The loader's command line carries them (as base64): keep it well inside one argument.
    if (JSON.stringify(consts).length > 64 * 1024)
      ctx.addIssue({ code: "custom", message: "constants: at most 64 KiB of values in all" });
  });

export const xdpProgramSchema = z.strictObject({
  connection: connectionSchema,
  interface: interfaceSchema,
  /** The program (function) in the object: its `SEC("xdp")` function's name. */
  programName: z
    .string({ error: "programName must be the name of the XDP function in the object" })
    .regex(
      /^[A-Za-z_][A-Za-z0-9_]{0,127}$/,
      "programName must be a C identifier: the name of the XDP function in the object",
    ),
  mode: xdpModeSchema.default("native"),
  /**
   * Values for the object's `volatile const` globals, set by the loader before the program is
   * loaded (the verifier sees them as constants). A change replaces the program atomically.
   */
  constants: xdpConstantsSchema.default({}),
  /** Replace a program nettune did not attach (it is put back on destroy). */
  takeOver: z.boolean({ error: "takeOver must be true or false" }).default(false),
  persist: persistSchema,
  unitName: unitNameSchema,
  /**
   * Seconds after which the host undoes an attach on the interface SSH runs over by itself,
   * unless a new SSH connection confirmed it (commit-confirmed, as Mtu and NicOffloads).
   */
  rollbackAfter: rollbackAfterSchema,
  /** sha256 of the object: what the diff sees. `none` only in refreshed state (not attached). */
  objectSha256: z
    .string({ error: "objectSha256 must be a sha256 in hex" })
    .regex(/^([0-9a-f]{64}|none)$/, "objectSha256 must be 64 lower-case hex digits"),
  /**
   * The object's bytes in base64, for the upload. Empty in the state's outputs (the next update
   * brings its own); apply checks it against objectSha256.
   */
  objectBase64: z.string({ error: "objectBase64 must be base64 text" }),
});

export type XdpProgramInputs = z.output<typeof xdpProgramSchema>;
