import * as pulumi from "@pulumi/pulumi";
import type { ConnectionArgs } from "./connection";
import { defaultUnitName } from "../schemas/names";
import { ownerIdentity, programStackTag } from "./owners";
import { providerFor, refuseImport } from "./provider";
import { resourceUrn } from "./urn";

/** How RSS spreads received flows over the rx queues (`ethtool -X`). */
export type RssIndirection =
  /** Evenly over the first N rx queues (`ethtool -X IF equal N`). */
  | { equal: pulumi.Input<number> }
  /** Queue i gets a share proportional to `weights[i]`; 0 leaves a queue out (`ethtool -X IF weight …`). */
  | { weights: pulumi.Input<pulumi.Input<number>[]> };

export interface RssQueuesArgs {
  /**
   * How to reach the host over SSH: the fields of `@pulumi/command`'s `remote.ConnectionArgs`
   * plus `sudo` and `commandTimeout`, each a `pulumi.Input` (e.g. another resource's outputs).
   * Stored as a secret.
   */
  readonly connection: pulumi.Input<ConnectionArgs>;
  /** The interface, e.g. `eth0`. Changing it replaces the resource (the old one is restored first). */
  readonly interface: pulumi.Input<string>;
  /**
   * Combined (rx+tx) channels, for NICs that have them (most physical NICs, virtio_net): a
   * count or "max" for the driver's maximum. Excludes `rx` and `tx`. Default: unchanged.
   */
  readonly combined?: pulumi.Input<number | "max">;
  /** Receive channels, for NICs with separate rx and tx channels (veth, some older NICs): a count or "max". Default: unchanged. */
  readonly rx?: pulumi.Input<number | "max">;
  /** Transmit channels, for NICs with separate rx and tx channels: a count or "max". Default: unchanged. */
  readonly tx?: pulumi.Input<number | "max">;
  /**
   * The RSS indirection table, where the driver has one (`ethtool -x` works): `{ equal: N }` or
   * `{ weights: [...] }`. The driver's default table is put back on destroy. Default: unchanged.
   */
  readonly indirection?: pulumi.Input<RssIndirection>;
  /**
   * Re-apply at every boot with a systemd unit `nettune-rssqueues-<name>-<tag>.service` (`<tag>`: its stack\'s), removed on
   * destroy. Default true.
   */
  readonly persist?: pulumi.Input<boolean>;
}

/**
 * The channel (queue) counts of one interface and optionally its RSS indirection table: checked
 * at preview against the driver's maximums and its kind (combined or separate rx/tx channels),
 * applied with `ethtool -L`/`-X`, read back and verified, persisted, restored on destroy.
 *
 * ```ts
 * new nettune.RssQueues("eth0-rss", { connection, interface: "eth0", combined: "max" });
 * ```
 */
export class RssQueues extends pulumi.dynamic.Resource {
  /** The combined channel count as declared, or as live after a refresh ("max" while it still is). */
  declare public readonly combined: pulumi.Output<number | "max" | undefined>;
  /** The rx channel count as declared, or as live after a refresh. */
  declare public readonly rx: pulumi.Output<number | "max" | undefined>;
  /** The tx channel count as declared, or as live after a refresh. */
  declare public readonly tx: pulumi.Output<number | "max" | undefined>;
  /** The counts nettune set, "max" resolved to the driver's maximum. */
  declare public readonly applied: pulumi.Output<{ rx?: number; tx?: number; combined?: number }>;
  /** The counts before nettune first set them; put back on destroy. */
  declare public readonly originals: pulumi.Output<{
    rx: number | null;
    tx: number | null;
    combined: number | null;
  }>;
  /** The driver's pre-set maximums. */
  declare public readonly maximums: pulumi.Output<{
    rx: number | null;
    tx: number | null;
    combined: number | null;
  }>;
  /** Whether nettune set the indirection table (destroy puts the driver's default back). */
  declare public readonly indirectionSet: pulumi.Output<boolean>;
  /** The interface's driver, as `ethtool -i` reports it. */
  declare public readonly driver: pulumi.Output<string>;
  /** The systemd unit file (`/etc/systemd/system/…`) that re-applies the counts at boot, or null with `persist: false`. */
  declare public readonly unitPath: pulumi.Output<string | null>;
  /** Messages from the last operation. */
  declare public readonly warnings: pulumi.Output<string[]>;

  constructor(name: string, args: RssQueuesArgs, opts?: pulumi.CustomResourceOptions) {
    refuseImport("RssQueues", name, opts);
    super(
      providerFor("RssQueues"),
      name,
      {
        // Names the resource in check errors; the provider drops it (not part of the state).
        __nettuneName: name,
        // Who owns its settings across stacks (the ownership record on the host).
        __nettuneOwner: ownerIdentity("RssQueues", name),
        // Lets the provider show its messages under this resource (./urn.ts).
        __nettuneUrn: resourceUrn("RssQueues", name, opts),
        connection: pulumi.secret(args.connection),
        interface: args.interface,
        combined: args.combined,
        rx: args.rx,
        tx: args.tx,
        indirection: args.indirection,
        persist: args.persist,
        unitName: defaultUnitName("RssQueues", name, programStackTag()),
        originals: undefined,
        applied: undefined,
        maximums: undefined,
        indirectionSet: undefined,
        driver: undefined,
        unitPath: undefined,
        warnings: undefined,
      },
      { ...opts, additionalSecretOutputs: ["connection"] },
      "nettune",
      "RssQueues",
    );
  }
}
