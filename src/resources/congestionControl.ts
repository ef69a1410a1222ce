import * as pulumi from "@pulumi/pulumi";
import type { ConnectionArgs } from "./connection";
import type { SavedQdisc } from "../schemas/publicTypes";
import { claimSettings, hostIdOf, type Setting, ownerIdentity, programStackTag } from "./owners";
import { deployName } from "../schemas/names";
import { providerFor, refuseImport } from "./provider";
import { resourceUrn } from "./urn";

export type { SavedQdisc };

export interface CongestionControlArgs {
  /**
   * How to reach the host over SSH: the fields of `@pulumi/command`'s `remote.ConnectionArgs`
   * plus `sudo` and `commandTimeout`, each a `pulumi.Input` (e.g. another resource's outputs).
   * Stored as a secret.
   */
  readonly connection: pulumi.Input<ConnectionArgs>;
  /**
   * The TCP congestion control algorithm of new connections (`net.ipv4.tcp_congestion_control`),
   * e.g. `bbr` or `cubic`. Checked at preview against what the host offers; a built-in algorithm
   * needs nothing, one the kernel has as a module is loaded (and listed in modules-load.d).
   */
  readonly algorithm: pulumi.Input<string>;
  /**
   * The qdisc to pair with it, e.g. `fq` for bbr: set as `net.core.default_qdisc` (the root qdisc
   * of interfaces created from now on, and of each queue under mq) and as the root qdisc of
   * `interfaces`. Qdiscs that need parameters (tbf, …) are refused. Default: neither is changed.
   */
  readonly qdisc?: pulumi.Input<string>;
  /**
   * Where the host cannot take `qdisc` (a kernel without it, no modprobe for its module, a
   * container without net.core.default_qdisc): the qdisc to set instead, or `"none"` to set no
   * qdisc (the algorithm runs alone; bbr then paces by itself). Preview says what was chosen and
   * why; `applied` shows it. Default: a host without `qdisc` fails at preview naming it.
   */
  readonly qdiscFallback?: pulumi.Input<string>;
  /**
   * Interfaces whose root qdisc is replaced by `qdisc` now (`tc qdisc replace dev IF root QDISC`),
   * and put back on destroy. Needs `qdisc`. Default: none.
   */
  readonly interfaces?: pulumi.Input<pulumi.Input<string>[]>;
  /**
   * Keep the settings across reboots: the two sysctls in an /etc/sysctl.d file, modules in an
   * /etc/modules-load.d file, and a systemd unit per interface; all removed on destroy. Default true.
   */
  readonly persist?: pulumi.Input<boolean>;
}

/**
 * The TCP congestion control algorithm of new connections and its qdisc: made available (module
 * loaded where needed), checked against what the host offers, applied all-or-nothing, verified on
 * a new TCP connection, persisted, and restored on destroy.
 *
 * ```ts
 * new nettune.CongestionControl("bbr", { connection, algorithm: "bbr", qdisc: "fq", interfaces: ["eth0"] });
 * ```
 */
export class CongestionControl extends pulumi.dynamic.Resource {
  /** The algorithm as last applied or, after a refresh, as live on the host. */
  declare public readonly algorithm: pulumi.Output<string>;
  /** The qdisc as declared or, after a refresh, as live (the default qdisc or a listed interface's root). */
  declare public readonly qdisc: pulumi.Output<string | undefined>;
  /** The interfaces whose root qdisc is set, as declared. */
  declare public readonly interfaces: pulumi.Output<string[]>;
  /** The algorithm a TCP connection opened on the host after the last apply or refresh got (from `ss -tin`), or null if none could be opened. */
  declare public readonly observedAlgorithm: pulumi.Output<string | null>;
  /**
   * What the host had before nettune first set it, put back on destroy: the algorithm,
   * net.core.default_qdisc (null when nettune does not set it: no qdisc, or the host has no such
   * key) and each listed interface's root qdisc.
   */
  declare public readonly originals: pulumi.Output<{
    algorithm: string;
    defaultQdisc: string | null;
    qdiscs: Record<string, SavedQdisc>;
  }>;
  /** What nettune set: the algorithm, the default qdisc and the interfaces' root qdisc (null where none). */
  declare public readonly applied: pulumi.Output<{
    algorithm: string;
    defaultQdisc: string | null;
    qdisc: string | null;
  }>;
  /** The live root qdisc kind of each listed interface. */
  declare public readonly rootQdiscs: pulumi.Output<Record<string, string>>;
  /** Kernel modules loaded for the algorithm or qdisc. */
  declare public readonly modules: pulumi.Output<string[]>;
  /** The sysctl.d file this resource owns (`/etc/sysctl.d/…`), or null without persist. */
  declare public readonly filePath: pulumi.Output<string | null>;
  /** The modules-load.d file this resource owns (`/etc/modules-load.d/…`), or null. */
  declare public readonly modulesFilePath: pulumi.Output<string | null>;
  /** The systemd unit files (`/etc/systemd/system/…`) that set the interfaces' root qdisc at boot. */
  declare public readonly unitPaths: pulumi.Output<string[]>;
  /** Messages from the last operation (a key the host lacks, values changed outside nettune, …). */
  declare public readonly warnings: pulumi.Output<string[]>;

  constructor(name: string, args: CongestionControlArgs, opts?: pulumi.CustomResourceOptions) {
    refuseImport("CongestionControl", name, opts);
    super(
      providerFor("CongestionControl"),
      name,
      {
        // Names the resource in check errors; the provider drops it (not part of the state).
        __nettuneName: name,
        // Who owns its settings across stacks (the ownership record on the host).
        __nettuneOwner: ownerIdentity("CongestionControl", name),
        // Lets the provider show its messages under this resource (./urn.ts).
        __nettuneUrn: resourceUrn("CongestionControl", name, opts),
        connection: pulumi.secret(args.connection),
        algorithm: args.algorithm,
        qdisc: args.qdisc,
        qdiscFallback: args.qdiscFallback,
        interfaces: args.interfaces,
        persist: args.persist,
        resourceName: deployName(name, programStackTag()),
        observedAlgorithm: undefined,
        originals: undefined,
        applied: undefined,
        rootQdiscs: undefined,
        modules: undefined,
        filePath: undefined,
        modulesFilePath: undefined,
        unitPaths: undefined,
        warnings: undefined,
      },
      { ...opts, additionalSecretOutputs: ["connection"] },
      "nettune",
      "CongestionControl",
    );
    // One owner per setting: the algorithm and default qdisc keys, each interface's root qdisc.
    pulumi
      .all([
        pulumi.unsecret(pulumi.output(args.connection)),
        pulumi.output(args.qdisc),
        pulumi.output(args.interfaces),
      ])
      .apply(([conn, qdisc, interfaces]) => {
        const hostId = hostIdOf(conn);
        if (!hostId) return;
        const settings: Setting[] = [
          { id: "sysctl:net.ipv4.tcp_congestion_control", input: "algorithm" },
        ];
        if (typeof qdisc === "string") {
          settings.push({ id: "sysctl:net.core.default_qdisc", input: "qdisc" });
          for (const i of interfaces ?? []) {
            settings.push({ id: `root-qdisc:${i}`, input: `interfaces (${i})` });
          }
        }
        claimSettings(`CongestionControl ${name}`, hostId, settings);
      });
  }
}
