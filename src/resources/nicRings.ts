import * as pulumi from "@pulumi/pulumi";
import type { ConnectionArgs } from "./connection";
import { defaultUnitName } from "../schemas/names";
import { ownerIdentity, programStackTag } from "./owners";
import { providerFor, refuseImport } from "./provider";
import { resourceUrn } from "./urn";

export interface NicRingsArgs {
  /**
   * How to reach the host over SSH: the fields of `@pulumi/command`'s `remote.ConnectionArgs`
   * plus `sudo` and `commandTimeout`, each a `pulumi.Input` (e.g. another resource's outputs).
   * Stored as a secret.
   */
  readonly connection: pulumi.Input<ConnectionArgs>;
  /** The interface, e.g. `eth0`. Changing it replaces the resource (the old one is restored first). */
  readonly interface: pulumi.Input<string>;
  /**
   * Receive ring size in descriptors, or "max" for the driver's maximum. Larger rings absorb
   * bursts (fewer rx drops) at the cost of memory and latency. Default: unchanged.
   */
  readonly rx?: pulumi.Input<number | "max">;
  /** Transmit ring size in descriptors, or "max". Default: unchanged. */
  readonly tx?: pulumi.Input<number | "max">;
  /**
   * Re-apply at every boot with a systemd unit `nettune-nicrings-<name>-<tag>.service` (`<tag>`: its stack\'s), removed on
   * destroy. Default true.
   */
  readonly persist?: pulumi.Input<boolean>;
}

/**
 * The rx/tx ring sizes of one interface: checked at preview against the driver's maximums
 * (drivers without rings, such as veth, fail there), applied with `ethtool -G`, read back and
 * verified, persisted, restored on destroy. Many drivers reset the NIC to resize its rings: the
 * link goes down for a moment.
 *
 * ```ts
 * new nettune.NicRings("eth0-rings", { connection, interface: "eth0", rx: "max", tx: "max" });
 * ```
 */
export class NicRings extends pulumi.dynamic.Resource {
  /** The rx ring size as declared, or as live after a refresh. */
  declare public readonly rx: pulumi.Output<number | "max" | undefined>;
  /** The tx ring size as declared, or as live after a refresh. */
  declare public readonly tx: pulumi.Output<number | "max" | undefined>;
  /** The sizes nettune set, "max" resolved to the driver's maximum. */
  declare public readonly applied: pulumi.Output<{ rx?: number; tx?: number }>;
  /** The sizes before nettune first set them; put back on destroy. */
  declare public readonly originals: pulumi.Output<{ rx: number | null; tx: number | null }>;
  /** The driver's pre-set maximums. */
  declare public readonly maximums: pulumi.Output<{ rx: number | null; tx: number | null }>;
  /** The interface's driver, as `ethtool -i` reports it. */
  declare public readonly driver: pulumi.Output<string>;
  /** The systemd unit file (`/etc/systemd/system/…`) that re-applies the sizes at boot, or null with `persist: false`. */
  declare public readonly unitPath: pulumi.Output<string | null>;
  /** Messages from the last operation. */
  declare public readonly warnings: pulumi.Output<string[]>;

  constructor(name: string, args: NicRingsArgs, opts?: pulumi.CustomResourceOptions) {
    refuseImport("NicRings", name, opts);
    super(
      providerFor("NicRings"),
      name,
      {
        // Names the resource in check errors; the provider drops it (not part of the state).
        __nettuneName: name,
        // Who owns its settings across stacks (the ownership record on the host).
        __nettuneOwner: ownerIdentity("NicRings", name),
        // Lets the provider show its messages under this resource (./urn.ts).
        __nettuneUrn: resourceUrn("NicRings", name, opts),
        connection: pulumi.secret(args.connection),
        interface: args.interface,
        rx: args.rx,
        tx: args.tx,
        persist: args.persist,
        unitName: defaultUnitName("NicRings", name, programStackTag()),
        originals: undefined,
        applied: undefined,
        maximums: undefined,
        driver: undefined,
        unitPath: undefined,
        warnings: undefined,
      },
      { ...opts, additionalSecretOutputs: ["connection"] },
      "nettune",
      "NicRings",
    );
  }
}
