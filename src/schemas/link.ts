/**
 * The input schemas the interface resources (NicOffloads, RssQueues, NicRings) share, and Mtu's
 * too for `interface` and `rollbackAfter`: the interface name, `persist`, the unit name, queue
 * and ring counts, the commit-confirmed timer, and the default unit name a resource class gives.
 * No I/O: shared by the resource classes and the handlers.
 */
import { z } from "zod";
import { isValidInterfaceName } from "../host/ip";

/**
 * An interface name: what the kernel accepts (1-15 characters, IFNAMSIZ - 1, no `/`, `:` or
 * white space, not `.` or `..`) narrowed to letters, digits and `_ . + -`, not starting with
 * `-`. Real names (eth0, enp3s0f1, bond0.100, br-1a2b) fit; anything a shell, a systemd unit
 * or `/sys/class/net/<name>` would read specially does not.
 */
export const interfaceSchema = z
  .string({ error: "interface must be an interface name such as eth0" })
  .refine((name) => isValidInterfaceName(name) && /^[A-Za-z0-9_.+-]+$/.test(name), {
    message:
      "must be an interface name: 1-15 letters, digits and _ . + - (not starting with -, not . or ..)",
  });

/** `persist`: re-apply the settings at every boot through a systemd unit. */
export const persistSchema = z.boolean({ error: "persist must be true or false" }).default(true);

/** The unit a resource owns, named by the resource class from the Pulumi resource name. */
export const unitNameSchema = z
  .string({ error: "unitName must be a systemd unit name" })
  .regex(
    /^nettune-[a-z]+-[A-Za-z0-9:_.-]{1,100}\.service$/,
    "must be nettune-<kind>-<name>.service with letters, digits and : _ . - in the name",
  );

/** A queue or ring count as declared: a positive integer, or "max" for the driver's maximum. */
export type Count = number | "max";

/**
 * A count from 1 to `limit`, or "max". Never 0: an interface without a queue (or a ring) cuts
 * the host off, the SSH connection first.
 */
export function countSchema(limit: number) {
  return z
    .union([z.literal("max"), z.number()], { error: 'expected a positive integer or "max"' })
    .superRefine((value, ctx) => {
      if (value === "max") return;
      if (!Number.isInteger(value))
        ctx.addIssue({ code: "custom", message: `expected an integer (got ${value})` });
      else if (value < 1)
        ctx.addIssue({
          code: "custom",
          message: `must be at least 1 (got ${value}): an interface needs at least one`,
        });
      else if (value > limit)
        ctx.addIssue({ code: "custom", message: `must be at most ${limit} (got ${value})` });
    });
}

/** The commit-confirmed timer of a resource's input `rollbackAfter`, in seconds. */
export const DEFAULT_ROLLBACK_AFTER = 60;
export const rollbackAfterSchema = z
  .number({ error: "rollbackAfter must be a number of seconds" })
  .int("rollbackAfter must be whole seconds")
  .min(5, "rollbackAfter must be at least 5 seconds")
  .max(3600, "rollbackAfter must be at most 3600 seconds")
  .default(DEFAULT_ROLLBACK_AFTER);
