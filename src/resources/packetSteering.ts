import * as pulumi from "@pulumi/pulumi";
import type { ConnectionArgs } from "./connection";
import { defaultUnitName } from "../schemas/names";
import { claimSettings, hostIdOf, type Setting, ownerIdentity, programStackTag } from "./owners";
import { providerFor, refuseImport } from "./provider";
import { resourceUrn } from "./urn";

/**
 * CPUs for a NIC's queues: one cpulist for every queue (`"0-3"`, `"0,2,4-7"`), or one per queue
 * number (`{ 0: "0-1", 1: "2-3" }`). Never a hex mask: nettune renders the kernel's mask.
 */
export type QueueCpuList = string | Record<number | string, string>;

/** Receive Flow Steering: steer each flow to the CPU where its consuming thread runs. */
export interface RfsArgs {
  /**
   * Entries of the global socket flow table (`net.core.rps_sock_flow_entries`): a power of two
   * up to 2^29; 32768 suits a moderately loaded server. Each rx queue's `rps_flow_cnt` gets
   * flowEntries / (number of rx queues), rounded up to a power of two.
   */
  readonly flowEntries: pulumi.Input<number>;
}

/** Transmit Packet Steering: which tx queue the CPUs (or the rx queues) of a flow send on. */
export type XpsArgs =
  /** CPUs that send on each tx queue (`queues/tx-N/xps_cpus`): one cpulist, or one per tx queue. */
  | { readonly cpus: pulumi.Input<QueueCpuList> }
  /**
   * Per tx queue, the rx queues whose flows send on it (`queues/tx-N/xps_rxqs`), as lists of rx
   * queue numbers: `{ 0: "0", 1: "1" }` pairs each tx queue with its rx queue.
   */
  | { readonly rxqs: pulumi.Input<Record<number | string, string>> };

export interface PacketSteeringArgs {
  /**
   * How to reach the host over SSH: the fields of `@pulumi/command`'s `remote.ConnectionArgs`
   * plus `sudo` and `commandTimeout`, each a `pulumi.Input` (e.g. another resource's outputs).
   * Stored as a secret.
   */
  readonly connection: pulumi.Input<ConnectionArgs>;
  /** The interface, e.g. `eth0`. Changing it replaces the resource (the old one is restored first). */
  readonly interface: pulumi.Input<string>;
  /**
   * Receive Packet Steering: the CPUs that process the packets of each rx queue
   * (`queues/rx-N/rps_cpus`), one cpulist for every rx queue or one per queue. Default: unchanged.
   */
  readonly rps?: pulumi.Input<QueueCpuList>;
  /**
   * Receive Flow Steering (`net.core.rps_sock_flow_entries` and each rx queue's `rps_flow_cnt`).
   * Only where the host owns the initial network namespace: a container in its own network
   * namespace cannot set it (preview fails). Default: unchanged.
   */
  readonly rfs?: pulumi.Input<RfsArgs>;
  /** Transmit Packet Steering: `{ cpus }` or `{ rxqs }`. Default: unchanged. */
  readonly xps?: pulumi.Input<XpsArgs>;
  /**
   * Write the files again at every boot with a systemd unit
   * `nettune-packetsteering-<name>-<tag>.service` (`<tag>`: its stack\'s), removed on destroy. Default true.
   */
  readonly persist?: pulumi.Input<boolean>;
}

/**
 * RPS, RFS and XPS of one interface: CPUs as cpulists, checked at preview against the host's
 * online CPUs and the interface's queues, written as the kernel's masks, read back and verified,
 * persisted, and restored on destroy.
 *
 * ```ts
 * new nettune.PacketSteering("eth0-steering", {
 *   connection, interface: "eth0", rps: "0-7", rfs: { flowEntries: 32768 }, xps: { cpus: { 0: "0-3", 1: "4-7" } },
 * });
 * ```
 */
export class PacketSteering extends pulumi.dynamic.Resource {
  /** RPS as declared, or as live after a refresh. */
  declare public readonly rps: pulumi.Output<QueueCpuList | undefined>;
  /** RFS as declared, or as live after a refresh. */
  declare public readonly rfs: pulumi.Output<{ flowEntries: number } | undefined>;
  /** XPS as declared, or as live after a refresh. */
  declare public readonly xps: pulumi.Output<
    { cpus: QueueCpuList } | { rxqs: Record<string, string> } | undefined
  >;
  /** Each file nettune set (`rx-0/rps_cpus`, `net.core.rps_sock_flow_entries`), as the kernel printed it before; put back on destroy. */
  declare public readonly originals: pulumi.Output<Record<string, string>>;
  /** What nettune set per file: CPU and queue lists as cpulists, counts as numbers (text). */
  declare public readonly applied: pulumi.Output<Record<string, string>>;
  /** The `rps_flow_cnt` each rx queue got from `rfs.flowEntries`, or null without `rfs`. */
  declare public readonly rpsFlowCnt: pulumi.Output<number | null>;
  /** The interface's driver, as `ethtool -i` reports it. */
  declare public readonly driver: pulumi.Output<string>;
  /** The systemd unit file (`/etc/systemd/system/…`) that writes the files at boot, or null with `persist: false`. */
  declare public readonly unitPath: pulumi.Output<string | null>;
  /** Messages from the last operation (RPS that may be redundant, values changed outside nettune). */
  declare public readonly warnings: pulumi.Output<string[]>;

  constructor(name: string, args: PacketSteeringArgs, opts?: pulumi.CustomResourceOptions) {
    refuseImport("PacketSteering", name, opts);
    super(
      providerFor("PacketSteering"),
      name,
      {
        // Names the resource in check errors; the provider drops it (not part of the state).
        __nettuneName: name,
        // Who owns its settings across stacks (the ownership record on the host).
        __nettuneOwner: ownerIdentity("PacketSteering", name),
        // Lets the provider show its messages under this resource (./urn.ts).
        __nettuneUrn: resourceUrn("PacketSteering", name, opts),
        connection: pulumi.secret(args.connection),
        interface: args.interface,
        rps: args.rps,
        rfs: args.rfs,
        xps: args.xps,
        persist: args.persist,
        unitName: defaultUnitName("PacketSteering", name, programStackTag()),
        originals: undefined,
        applied: undefined,
        rpsFlowCnt: undefined,
        driver: undefined,
        unitPath: undefined,
        warnings: undefined,
      },
      { ...opts, additionalSecretOutputs: ["connection"] },
      "nettune",
      "PacketSteering",
    );
    // One owner per setting: the interface's RPS, RFS and XPS files and the global flow table.
    pulumi
      .all([
        pulumi.unsecret(pulumi.output(args.connection)),
        pulumi.output(args.interface),
        pulumi.output(args.rps),
        pulumi.output(args.rfs),
        pulumi.output(args.xps),
      ])
      .apply(([conn, ifname, rps, rfs, xps]) => {
        const hostId = hostIdOf(conn);
        if (!hostId || typeof ifname !== "string") return;
        const settings: Setting[] = [];
        if (rps !== undefined) settings.push({ id: `rps:${ifname}`, input: "rps" });
        if (rfs !== undefined) {
          settings.push({ id: `rfs:${ifname}`, input: "rfs" });
          settings.push({ id: "sysctl:net.core.rps_sock_flow_entries", input: "rfs.flowEntries" });
        }
        if (xps !== undefined) settings.push({ id: `xps:${ifname}`, input: "xps" });
        claimSettings(`PacketSteering ${name}`, hostId, settings);
      });
  }
}
