import * as pulumi from "@pulumi/pulumi";
import type { ConnectionArgs } from "./connection";
import { defaultUnitName } from "../schemas/names";
import { ownerIdentity, programStackTag } from "./owners";
import { providerFor, refuseImport } from "./provider";
import { resourceUrn } from "./urn";

/**
 * Offload features by ethtool's short name or by the long name `ethtool -k` prints
 * (`generic-receive-offload`); true turns a feature on, false off. Features left out are not
 * touched.
 */
export interface NicFeatures {
  /** Generic receive offload (`generic-receive-offload`): merge received packets in software. The guide: on. */
  gro?: pulumi.Input<boolean>;
  /** Large receive offload (`large-receive-offload`): merge in the NIC. Conflicts with GRO and breaks forwarding; the guide: off. */
  lro?: pulumi.Input<boolean>;
  /** TCP segmentation offload (`tcp-segmentation-offload`): the NIC cuts large TCP sends. Needs `sg` and `tx`. */
  tso?: pulumi.Input<boolean>;
  /** Generic segmentation offload (`generic-segmentation-offload`): segment in software just before the driver. */
  gso?: pulumi.Input<boolean>;
  /** Scatter-gather (`scatter-gather`): send from non-contiguous buffers. TSO and GSO need it. */
  sg?: pulumi.Input<boolean>;
  /** Receive checksum offload (`rx-checksumming`). */
  rx?: pulumi.Input<boolean>;
  /** Transmit checksum offload (`tx-checksumming`). TSO needs it. */
  tx?: pulumi.Input<boolean>;
  /** Receive hashing (`receive-hashing`): the NIC's flow hash, used by RSS and RPS. */
  rxhash?: pulumi.Input<boolean>;
  /** n-tuple filters (`ntuple-filters`): flow steering rules in the NIC (`ethtool -N`). */
  ntuple?: pulumi.Input<boolean>;
  /** VLAN tag stripping on receive (`rx-vlan-offload`). */
  rxvlan?: pulumi.Input<boolean>;
  /** VLAN tag insertion on transmit (`tx-vlan-offload`). */
  txvlan?: pulumi.Input<boolean>;
  [name: string]: pulumi.Input<boolean> | undefined;
}

export interface NicOffloadsArgs {
  /**
   * How to reach the host over SSH: the fields of `@pulumi/command`'s `remote.ConnectionArgs`
   * plus `sudo` and `commandTimeout`, each a `pulumi.Input` (e.g. another resource's outputs).
   * Stored as a secret.
   */
  readonly connection: pulumi.Input<ConnectionArgs>;
  /** The interface, e.g. `eth0`. Changing it replaces the resource (the old one is restored first). */
  readonly interface: pulumi.Input<string>;
  /** The features to set. A `[fixed]` feature asked to change, or LRO and GRO both on, fails preview. */
  readonly features: pulumi.Input<NicFeatures>;
  /**
   * Re-apply the features at every boot with a systemd unit `nettune-nicoffloads-<name>-<tag>.service` (`<tag>`: its stack\'s),
   * removed on destroy. Default true; false sets the live state only.
   */
  readonly persist?: pulumi.Input<boolean>;
  /**
   * When SSH runs over this interface, the host puts the previous features back by itself after
   * this many seconds unless a new SSH connection confirms the change (commit-confirmed).
   * 5-3600, default 60.
   */
  readonly rollbackAfter?: pulumi.Input<number>;
}

/**
 * Offload features of one interface: checked against the driver at preview (unknown or
 * `[fixed]` features fail there), applied with one `ethtool -K`, read back and verified,
 * persisted across reboots, and restored on destroy.
 *
 * ```ts
 * new nettune.NicOffloads("eth0-offloads", { connection, interface: "eth0",
 *   features: { tso: true, gso: true, gro: true, lro: false } });
 * ```
 */
export class NicOffloads extends pulumi.dynamic.Resource {
  /** The features as declared, or as live on the host after a refresh. */
  declare public readonly features: pulumi.Output<Record<string, boolean>>;
  /** What nettune set, by long name. */
  declare public readonly applied: pulumi.Output<Record<string, boolean>>;
  /** Each feature's state before nettune first set it, by long name; put back on destroy. */
  declare public readonly originals: pulumi.Output<Record<string, boolean>>;
  /** The interface's driver, as `ethtool -i` reports it. */
  declare public readonly driver: pulumi.Output<string>;
  /** The systemd unit file (`/etc/systemd/system/…`) that re-applies the features at boot, or null with `persist: false`. */
  declare public readonly unitPath: pulumi.Output<string | null>;
  /** Messages from the last operation (features changed outside nettune, and the like). */
  declare public readonly warnings: pulumi.Output<string[]>;

  constructor(name: string, args: NicOffloadsArgs, opts?: pulumi.CustomResourceOptions) {
    refuseImport("NicOffloads", name, opts);
    super(
      providerFor("NicOffloads"),
      name,
      {
        // Names the resource in check errors; the provider drops it (not part of the state).
        __nettuneName: name,
        // Who owns its settings across stacks (the ownership record on the host).
        __nettuneOwner: ownerIdentity("NicOffloads", name),
        // Lets the provider show its messages under this resource (./urn.ts).
        __nettuneUrn: resourceUrn("NicOffloads", name, opts),
        connection: pulumi.secret(args.connection),
        interface: args.interface,
        features: args.features,
        persist: args.persist,
        rollbackAfter: args.rollbackAfter,
        unitName: defaultUnitName("NicOffloads", name, programStackTag()),
        originals: undefined,
        applied: undefined,
        driver: undefined,
        unitPath: undefined,
        warnings: undefined,
      },
      { ...opts, additionalSecretOutputs: ["connection"] },
      "nettune",
      "NicOffloads",
    );
  }
}
