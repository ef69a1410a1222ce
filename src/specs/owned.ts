/**
 * What each resource kind owns on its host, from its validated inputs: the settings an
 * ownership record lists (src/host/owners.ts) and another stack's resource may not set.
 */
import type { OwnedSetting } from "../host/owners";
import { unitName } from "../host/systemd";
import { SYSCTL_D } from "../host/sysctl";
import { resolveFeatureName } from "../host/ethtool";
import { modulesFileOf, sysctlFileOf } from "./congestionControl";

type Inputs = Record<string, unknown>;

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const keysOf = (v: unknown): string[] =>
  v && typeof v === "object" && !Array.isArray(v) ? Object.keys(v) : [];

/** Per-interface settings: `<what>:<interface>`, named in errors by `input`. */
function link(inputs: Inputs, what: string, input: string): OwnedSetting[] {
  const i = str(inputs.interface);
  return i === undefined ? [] : [{ id: `${what}:${i}`, input }];
}

/** The unit of a link resource, when it writes one. */
function unit(inputs: Inputs, always = false): OwnedSetting[] {
  const u = str(inputs.unitName);
  return u !== undefined && (always || inputs.persist !== false)
    ? [{ id: `unit:${u}`, input: "unitName" }]
    : [];
}

/**
 * What each kind owns on its host, from its validated inputs. The ids match the program's
 * one-owner claims (src/resources/owners.ts) where both exist.
 */
const OWNED: Readonly<Record<string, (inputs: Inputs) => OwnedSetting[]>> = {
  SysctlSet(inputs) {
    const out: OwnedSetting[] = keysOf(inputs.values).map((k) => ({
      id: `sysctl:${k}`,
      input: `values[${JSON.stringify(k)}]`,
    }));
    const file = str(inputs.fileName);
    if (inputs.persist !== "runtime" && file !== undefined)
      out.push({ id: `file:${SYSCTL_D}/${file}`, input: "fileName" });
    return out;
  },
  CongestionControl(inputs) {
    const out: OwnedSetting[] = [
      { id: "sysctl:net.ipv4.tcp_congestion_control", input: "algorithm" },
    ];
    const name = str(inputs.resourceName) ?? "";
    const qdisc = str(inputs.qdisc);
    const interfaces = Array.isArray(inputs.interfaces) ? inputs.interfaces.map(String) : [];
    if (qdisc !== undefined) {
      out.push({ id: "sysctl:net.core.default_qdisc", input: "qdisc" });
      for (const i of interfaces) out.push({ id: `root-qdisc:${i}`, input: `interfaces (${i})` });
    }
    if (inputs.persist !== false) {
      out.push({ id: `file:${sysctlFileOf(name)}`, input: "persist" });
      out.push({ id: `file:${modulesFileOf(name)}`, input: "persist" });
      if (qdisc !== undefined)
        for (const i of interfaces)
          out.push({ id: `unit:${unitName("qdisc", `${name}-${i}`)}`, input: "persist" });
    }
    return out;
  },
  Mtu(inputs) {
    const out = link(inputs, "mtu", "mtu");
    if (inputs.txQueueLength !== undefined)
      out.push(...link(inputs, "txqueuelen", "txQueueLength"));
    if (inputs.persist !== false && str(inputs.resourceName) !== undefined)
      out.push({ id: `unit:${unitName("mtu", str(inputs.resourceName)!)}`, input: "persist" });
    return out;
  },
  NicOffloads(inputs) {
    const i = str(inputs.interface);
    const out: OwnedSetting[] =
      i === undefined
        ? []
        : keysOf(inputs.features).map((f) => ({
            id: `feature:${i}:${resolveFeatureName(f)}`,
            input: `features.${f}`,
          }));
    return [...out, ...unit(inputs)];
  },
  RssQueues(inputs) {
    const out = link(inputs, "channels", "combined");
    if (inputs.indirection !== undefined)
      out.push(...link(inputs, "rss-indirection", "indirection"));
    return [...out, ...unit(inputs)];
  },
  NicRings: (inputs) => [...link(inputs, "rings", "rx"), ...unit(inputs)],
  IrqAffinity: (inputs) => [...link(inputs, "irq-affinity", "interface"), ...unit(inputs)],
  PacketSteering(inputs) {
    const out: OwnedSetting[] = [];
    if (inputs.rps !== undefined) out.push(...link(inputs, "rps", "rps"));
    if (inputs.rfs !== undefined) out.push(...link(inputs, "rfs", "rfs"));
    if (inputs.xps !== undefined) out.push(...link(inputs, "xps", "xps"));
    return [...out, ...unit(inputs)];
  },
  // The unit name also names the program's pins, with or without persistence.
  XdpProgram: (inputs) => [...link(inputs, "xdp", "interface"), ...unit(inputs, true)],
};

/** What a resource of `kind` with these (validated) inputs owns on its host. */
export function ownedSettings(kind: string, inputs: unknown): OwnedSetting[] {
  const f = OWNED[kind];
  return f && inputs && typeof inputs === "object" ? f(inputs as Inputs) : [];
}
