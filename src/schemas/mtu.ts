/** Mtu's inputs. No I/O: shared by the resource class and the handler. */
import { z } from "zod";
import { connectionSchema } from "./connection";
import { interfaceSchema, rollbackAfterSchema } from "./link";

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

export const mtuSchema = z.strictObject({
  connection: connectionSchema,
  interface: interfaceSchema,
  mtu: z
    .number({ error: "mtu must be a number" })
    .int("mtu must be an integer")
    .min(68, "mtu must be at least 68 (the IPv4 minimum)")
    .max(65535, "mtu must be at most 65535"),
  txQueueLength: z
    .number({ error: "txQueueLength must be a number" })
    .int("txQueueLength must be an integer")
    .min(0, "txQueueLength must not be negative")
    .max(4_294_967_295, "txQueueLength is too large")
    .optional(),
  verifyPeers: z
    .array(z.string().regex(IPV4, "must be an IPv4 address such as 198.18.2.1"), {
      error: "verifyPeers must be a list of IPv4 addresses",
    })
    .max(16, "verifyPeers takes at most 16 addresses")
    .default([]),
  persist: z.boolean({ error: "persist must be true or false" }).default(true),
  rollbackAfter: rollbackAfterSchema,
  resourceName: z.string().min(1),
});

export type MtuInputs = z.output<typeof mtuSchema>;
