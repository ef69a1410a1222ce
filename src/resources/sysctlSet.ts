import * as pulumi from "@pulumi/pulumi";
import type { ConnectionArgs } from "./connection";
import type { SysctlValue } from "../schemas/publicTypes";
import { sysctlWarnings } from "../schemas/sysctlSet";
import {
  claimSettings,
  hostIdOf,
  resetClaims,
  type Setting,
  ownerIdentity,
  programStackTag,
} from "./owners";
import { defaultSysctlFileName } from "../schemas/names";
import { providerFor, refuseImport } from "./provider";
import { resourceUrn } from "./urn";

type Triplet = readonly [min: number, def: number, max: number];

/**
 * Kernel parameters by name. The keys below are typed and range-checked; any other key is
 * accepted when its name is well formed and it exists on the host.
 */
export interface SysctlValues {
  /** Listen backlog limit (default 4096). The guide: 65535 for busy API servers. */
  "net.core.somaxconn"?: pulumi.Input<number>;
  /** Half-open connections per listener. The guide: 8192-16384. */
  "net.ipv4.tcp_max_syn_backlog"?: pulumi.Input<number>;
  /** Packets queued per CPU before the kernel drops (global: not settable in a namespace). */
  "net.core.netdev_max_backlog"?: pulumi.Input<number>;
  /** Largest receive buffer a socket may request (bytes). */
  "net.core.rmem_max"?: pulumi.Input<number>;
  /** Largest send buffer a socket may request (bytes). */
  "net.core.wmem_max"?: pulumi.Input<number>;
  /** Default receive buffer (bytes). */
  "net.core.rmem_default"?: pulumi.Input<number>;
  /** Default send buffer (bytes). */
  "net.core.wmem_default"?: pulumi.Input<number>;
  /** TCP receive buffer [min, default, max]; min <= default <= max. */
  "net.ipv4.tcp_rmem"?: pulumi.Input<Triplet>;
  /** TCP send buffer [min, default, max]; min <= default <= max. */
  "net.ipv4.tcp_wmem"?: pulumi.Input<Triplet>;
  /** TCP memory thresholds in pages [low, pressure, high]. */
  "net.ipv4.tcp_mem"?: pulumi.Input<Triplet>;
  /** 0 off, 1 reuse TIME-WAIT for outgoing connections, 2 loopback only. Not for servers behind NAT. */
  "net.ipv4.tcp_tw_reuse"?: pulumi.Input<0 | 1 | 2>;
  /** FIN-WAIT-2 timeout (s), 1-600. */
  "net.ipv4.tcp_fin_timeout"?: pulumi.Input<number>;
  /** Algorithm of new connections; checked against tcp_available_congestion_control. */
  "net.ipv4.tcp_congestion_control"?: pulumi.Input<string>;
  /** Ephemeral ports [low, high], low < high. */
  "net.ipv4.ip_local_port_range"?: pulumi.Input<readonly [low: number, high: number]>;
  /** 0 keeps the congestion window across idle periods. */
  "net.ipv4.tcp_slow_start_after_idle"?: pulumi.Input<0 | 1>;
  /** TCP Fast Open flags: 1 client, 2 server, 3 both. */
  "net.ipv4.tcp_fastopen"?: pulumi.Input<number>;
  /** 0 off (loses PAWS and RTT accuracy), 1 on, 2 on without random offset. */
  "net.ipv4.tcp_timestamps"?: pulumi.Input<0 | 1 | 2>;
  /** Selective acknowledgements; 0 slows loss recovery. */
  "net.ipv4.tcp_sack"?: pulumi.Input<0 | 1>;
  /** SYN cookies; 0 opens the host to SYN floods. */
  "net.ipv4.tcp_syncookies"?: pulumi.Input<0 | 1 | 2>;
  /** Orphaned sockets before they are reset. */
  "net.ipv4.tcp_max_orphans"?: pulumi.Input<number>;
  /** Root qdisc given to new interfaces (fq with bbr where the kernel has it). */
  "net.core.default_qdisc"?: pulumi.Input<string>;
  /** System-wide open file limit (global: not settable in a container or namespace). */
  "fs.file-max"?: pulumi.Input<number>;
  [key: string]: pulumi.Input<SysctlValue> | undefined;
}

export interface SysctlSetArgs {
  /**
   * How to reach the host over SSH: the fields of `@pulumi/command`'s `remote.ConnectionArgs`
   * plus `sudo` and `commandTimeout`, each a `pulumi.Input` (e.g. another resource's outputs).
   * Stored as a secret.
   */
  readonly connection: pulumi.Input<ConnectionArgs>;
  /** The kernel parameters to set, by sysctl name. */
  readonly values: pulumi.Input<SysctlValues>;
  /**
   * "runtime" sets the live values only; "persistent" writes the sysctl.d file only (applied at
   * the next boot); "both" (default) does both and reloads the file so it matches what is live.
   */
  readonly persist?: pulumi.Input<"runtime" | "persistent" | "both">;
  /**
   * The file in /etc/sysctl.d this resource owns. Default `90-nettune-<name>-<tag>.conf`, the tag
   * being its stack's (6 hex digits): two stacks' resources of one name never share a file.
   */
  readonly fileName?: pulumi.Input<string>;
  /**
   * Set when the host is a server reached through NAT: then tcp_tw_reuse = 1 draws a warning,
   * as it can break connections from clients that share an address. Default false.
   */
  readonly behindNat?: pulumi.Input<boolean>;
}

/** Forgets the claims of earlier programs (tests run several programs in one process). */
export const resetSysctlClaims = resetClaims;

/**
 * A set of kernel parameters on one host: validated at preview, applied all-or-nothing, read
 * back and verified, persisted in one /etc/sysctl.d file, and restored on destroy.
 *
 * ```ts
 * new nettune.SysctlSet("web", { connection, values: {
 *   "net.core.somaxconn": 65535,
 *   "net.ipv4.tcp_rmem": [4096, 87380, 33554432],
 * }});
 * ```
 */
export class SysctlSet extends pulumi.dynamic.Resource {
  /** The values as last applied or, after a refresh, as live on the host. */
  declare public readonly values: pulumi.Output<Record<string, SysctlValue>>;
  /** What nettune set. */
  declare public readonly applied: pulumi.Output<Record<string, SysctlValue>>;
  /**
   * The live value of each key before nettune first set it, typed as `values` are (`65535`,
   * `[4096, 131072, 6291456]`, `"cubic"`); put back on destroy.
   */
  declare public readonly originals: pulumi.Output<Record<string, SysctlValue>>;
  /** Where the values live: the running kernel, the sysctl.d file, or both. */
  declare public readonly persist: pulumi.Output<"runtime" | "persistent" | "both">;
  /** The sysctl.d file this resource owns, or null with persist "runtime". */
  declare public readonly filePath: pulumi.Output<string | null>;
  /** Messages from the last operation (values changed outside nettune, and the like). */
  declare public readonly warnings: pulumi.Output<string[]>;

  constructor(name: string, args: SysctlSetArgs, opts?: pulumi.CustomResourceOptions) {
    refuseImport("SysctlSet", name, opts);
    const connection = pulumi.secret(args.connection);
    super(
      providerFor("SysctlSet"),
      name,
      {
        // Names the resource in check errors; the provider drops it (not part of the state).
        __nettuneName: name,
        // Who owns its settings across stacks (the ownership record on the host).
        __nettuneOwner: ownerIdentity("SysctlSet", name),
        // Lets the provider show its messages under this resource (./urn.ts).
        __nettuneUrn: resourceUrn("SysctlSet", name, opts),
        connection,
        values: args.values,
        persist: args.persist,
        fileName: args.fileName ?? defaultSysctlFileName(name, programStackTag()),
        behindNat: args.behindNat,
        originals: undefined,
        applied: undefined,
        filePath: undefined,
        warnings: undefined,
      },
      { ...opts, additionalSecretOutputs: ["connection"] },
      "nettune",
      "SysctlSet",
    );
    // Program-side checks that need the whole program: risky settings, one owner per key.
    pulumi
      .all([
        pulumi.unsecret(pulumi.output(args.connection)),
        pulumi.output(args.values),
        pulumi.output(args.behindNat),
        pulumi.output(args.fileName ?? defaultSysctlFileName(name, programStackTag())),
        pulumi.output(args.persist),
      ])
      .apply(([conn, values, behindNat, fileName, persist]) => {
        const v = (values ?? {}) as Record<string, unknown>;
        for (const w of sysctlWarnings(v, behindNat ?? false)) void pulumi.log.warn(w, this);
        const hostId = hostIdOf(conn);
        if (!hostId) return;
        const settings: Setting[] = Object.keys(v).map((k) => ({
          id: `sysctl:${k}`,
          input: `values["${k}"]`,
        }));
        if (persist !== "runtime" && typeof fileName === "string")
          settings.push({ id: `file:/etc/sysctl.d/${fileName}`, input: "fileName" });
        claimSettings(`SysctlSet ${name}`, hostId, settings);
      });
  }
}
