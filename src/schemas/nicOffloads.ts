/**
 * NicOffloads' inputs: the feature names it accepts (long names as `ethtool -k` prints them, or
 * ethtool's short names) and the schema. No I/O: shared by the resource class and the handler.
 */
import { z } from "zod";
import { FEATURE_ALIASES, resolveFeatureName } from "../host/ethtool";
import { connectionSchema } from "./connection";
import { interfaceSchema, persistSchema, rollbackAfterSchema, unitNameSchema } from "./link";

/**
 * Every feature name `ethtool -k` prints on Linux 4.x to 6.18 (some only on older kernels).
 * ethtool's short names are in FEATURE_ALIASES.
 */
export const FEATURE_NAMES: readonly string[] = Object.freeze([
  "rx-checksumming",
  "tx-checksumming",
  "tx-checksum-ipv4",
  "tx-checksum-ip-generic",
  "tx-checksum-ipv6",
  "tx-checksum-fcoe-crc",
  "tx-checksum-sctp",
  "scatter-gather",
  "tx-scatter-gather",
  "tx-scatter-gather-fraglist",
  "tcp-segmentation-offload",
  "tx-tcp-segmentation",
  "tx-tcp-ecn-segmentation",
  "tx-tcp-mangleid-segmentation",
  "tx-tcp6-segmentation",
  "tx-tcp-accecn-segmentation",
  "udp-fragmentation-offload",
  "generic-segmentation-offload",
  "generic-receive-offload",
  "large-receive-offload",
  "rx-vlan-offload",
  "tx-vlan-offload",
  "ntuple-filters",
  "receive-hashing",
  "highdma",
  "rx-vlan-filter",
  "vlan-challenged",
  "tx-lockless",
  "netns-local",
  "tx-gso-robust",
  "tx-fcoe-segmentation",
  "tx-gre-segmentation",
  "tx-gre-csum-segmentation",
  "tx-ipxip4-segmentation",
  "tx-ipxip6-segmentation",
  "tx-udp_tnl-segmentation",
  "tx-udp_tnl-csum-segmentation",
  "tx-gso-partial",
  "tx-tunnel-remcsum-segmentation",
  "tx-sctp-segmentation",
  "tx-esp-segmentation",
  "tx-udp-segmentation",
  "tx-gso-list",
  "fcoe-mtu",
  "tx-nocache-copy",
  "loopback",
  "rx-fcs",
  "rx-all",
  "tx-vlan-stag-hw-insert",
  "rx-vlan-stag-hw-parse",
  "rx-vlan-stag-filter",
  "l2-fwd-offload",
  "busy-poll",
  "hw-tc-offload",
  "esp-hw-offload",
  "esp-tx-csum-hw-offload",
  "rx-udp_tunnel-port-offload",
  "tls-hw-tx-offload",
  "tls-hw-rx-offload",
  "rx-gro-hw",
  "tls-hw-record",
  "rx-gro-list",
  "macsec-hw-offload",
  "rx-udp-gro-forwarding",
  "hsr-tag-ins-offload",
  "hsr-tag-rm-offload",
  "hsr-fwd-offload",
  "hsr-dup-offload",
]);

const KNOWN = new Set(FEATURE_NAMES);

const SHORT_NAMES = Object.keys(FEATURE_ALIASES).join(" ");

const featuresSchema = z
  .record(z.string(), z.unknown(), {
    error: "features must be an object of feature names and true/false",
  })
  .superRefine((features, ctx) => {
    const names = Object.keys(features);
    if (names.length === 0)
      ctx.addIssue({ code: "custom", message: "features must name at least one", path: [] });
    const seen = new Map<string, string>();
    for (const name of names) {
      const long = resolveFeatureName(name);
      if (!KNOWN.has(long)) {
        ctx.addIssue({
          code: "custom",
          path: [name],
          message:
            `unknown feature ${JSON.stringify(name)}: expected a short name (${SHORT_NAMES}) ` +
            "or a long name as `ethtool -k` prints it (generic-receive-offload)",
        });
        continue;
      }
      if (typeof features[name] !== "boolean") {
        ctx.addIssue({
          code: "custom",
          path: [name],
          message: `expected true or false (got ${JSON.stringify(features[name])})`,
        });
      }
      const other = seen.get(long);
      if (other !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: [name],
          message: `${name} and ${other} are the same feature (${long}); declare it once`,
        });
      }
      seen.set(long, name);
    }
    const on = (long: string) => {
      const name = seen.get(long);
      return name !== undefined && features[name] === true;
    };
    if (on("large-receive-offload") && on("generic-receive-offload")) {
      ctx.addIssue({
        code: "custom",
        path: [seen.get("large-receive-offload")!],
        message:
          "LRO conflicts with GRO: LRO merges packets in a way that breaks forwarding and " +
          "bridging, and GRO does the same job safely; turn one of them off (the guide: gro on, lro off)",
      });
    }
  })
  .transform((v) => v as Record<string, boolean>);

export const nicOffloadsSchema = z.strictObject({
  connection: connectionSchema,
  interface: interfaceSchema,
  features: featuresSchema,
  persist: persistSchema,
  unitName: unitNameSchema,
  rollbackAfter: rollbackAfterSchema,
});

export type NicOffloadsInputs = z.output<typeof nicOffloadsSchema>;
