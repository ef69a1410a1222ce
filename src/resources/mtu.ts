import * as pulumi from "@pulumi/pulumi";
import type { ConnectionArgs } from "./connection";
import { ownerIdentity, programStackTag } from "./owners";
import { deployName } from "../schemas/names";
import { providerFor, refuseImport } from "./provider";
import { resourceUrn } from "./urn";

export interface MtuArgs {
  /**
   * How to reach the host over SSH: the fields of `@pulumi/command`'s `remote.ConnectionArgs`
   * plus `sudo` and `commandTimeout`, each a `pulumi.Input` (e.g. another resource's outputs).
   * Stored as a secret.
   */
  readonly connection: pulumi.Input<ConnectionArgs>;
  /** The interface, e.g. `eth0`. Changing it replaces the resource. */
  readonly interface: pulumi.Input<string>;
  /** The MTU in bytes, 68-65535, and within the driver's min/max (checked at preview). 9000 for jumbo frames. */
  readonly mtu: pulumi.Input<number>;
  /** Transmit queue length (`ip link set … txqueuelen`); the guide suggests 10000 on busy links. Default: unchanged. */
  readonly txQueueLength?: pulumi.Input<number>;
  /**
   * IPv4 addresses to ping with "don't fragment" at the new size after applying. If any does not
   * answer, the old MTU is put back and the update fails: every device on the path must agree.
   * Default: none.
   */
  readonly verifyPeers?: pulumi.Input<pulumi.Input<string>[]>;
  /** Re-apply at boot with a systemd unit (removed on destroy). Default true. */
  readonly persist?: pulumi.Input<boolean>;
  /**
   * When SSH runs over this interface, the host undoes the change by itself after this many
   * seconds unless a new SSH connection confirms it (commit-confirmed). 5-3600, default 60.
   */
  readonly rollbackAfter?: pulumi.Input<number>;
}

/**
 * An interface's MTU (and transmit queue length), checked against the driver's limits,
 * optionally verified end to end, applied commit-confirmed when it carries the SSH connection,
 * persisted across reboots and restored on destroy.
 *
 * ```ts
 * new nettune.Mtu("eth0-jumbo", { connection, interface: "eth0", mtu: 9000, verifyPeers: ["10.0.0.2"] });
 * ```
 */
export class Mtu extends pulumi.dynamic.Resource {
  /** The MTU as last applied or, after a refresh, as live on the host. */
  declare public readonly mtu: pulumi.Output<number>;
  /**
   * The link before nettune first set it: its MTU, and its transmit queue length (null where
   * the host reports none); put back on destroy (the queue length only if declared).
   */
  declare public readonly originals: pulumi.Output<{ mtu: number; txQueueLength: number | null }>;
  /** Whether SSH ran over this interface (so the change was applied commit-confirmed). */
  declare public readonly carriesSsh: pulumi.Output<boolean>;
  /** The systemd unit file (`/etc/systemd/system/…`) that re-applies the MTU at boot, or null without persist. */
  declare public readonly unitPath: pulumi.Output<string | null>;
  /** Messages from the last operation (a value changed outside nettune, and the like). */
  declare public readonly warnings: pulumi.Output<string[]>;

  constructor(name: string, args: MtuArgs, opts?: pulumi.CustomResourceOptions) {
    refuseImport("Mtu", name, opts);
    super(
      providerFor("Mtu"),
      name,
      {
        // Names the resource in check errors; the provider drops it (not part of the state).
        __nettuneName: name,
        // Who owns its settings across stacks (the ownership record on the host).
        __nettuneOwner: ownerIdentity("Mtu", name),
        // Lets the provider show its messages under this resource (./urn.ts).
        __nettuneUrn: resourceUrn("Mtu", name, opts),
        connection: pulumi.secret(args.connection),
        interface: args.interface,
        mtu: args.mtu,
        txQueueLength: args.txQueueLength,
        verifyPeers: args.verifyPeers,
        persist: args.persist,
        rollbackAfter: args.rollbackAfter,
        resourceName: deployName(name, programStackTag()),
        originals: undefined,
        carriesSsh: undefined,
        unitPath: undefined,
        warnings: undefined,
      },
      { ...opts, additionalSecretOutputs: ["connection"] },
      "nettune",
      "Mtu",
    );
  }
}
