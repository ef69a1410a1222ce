import * as pulumi from "@pulumi/pulumi";
import type { ConnectionArgs } from "./connection";
import { defaultUnitName } from "../schemas/names";
import { claimSettings, hostIdOf, ownerIdentity, programStackTag } from "./owners";
import { providerFor, refuseImport } from "./provider";
import { resourceUrn } from "./urn";

/**
 * Where the queue interrupts go:
 * - `"spread"`: one CPU per queue, round-robin: one thread of every core (the NIC's NUMA node
 *   first, then the other nodes), then the hyperthread siblings (queue 0 on the node's first CPU);
 * - `"numa-local"`: every queue interrupt on all CPUs of the NIC's NUMA node;
 * - `{ map: { 0: "2", 1: "3" } }`: the CPUs of each queue, by queue index (other queues are left
 *   as they are);
 * - `{ cpus: "0-7" }`: one CPU list for every queue interrupt.
 *
 * CPUs are cpulists as the kernel writes them: `"0-3,8,10-11"`.
 */
export type IrqPolicy =
  "spread" | "numa-local" | { map: Record<number | string, string> } | { cpus: string };

export interface IrqAffinityArgs {
  /**
   * How to reach the host over SSH: the fields of `@pulumi/command`'s `remote.ConnectionArgs`
   * plus `sudo` and `commandTimeout`, each a `pulumi.Input` (e.g. another resource's outputs).
   * Stored as a secret.
   */
  readonly connection: pulumi.Input<ConnectionArgs>;
  /**
   * The NIC, e.g. `eth0`; a bond or VLAN stands for the NICs below it (each gets the policy).
   * Changing it replaces the resource (the old pins are put back first).
   */
  readonly interface: pulumi.Input<string>;
  /** Where the queue interrupts go; see {@link IrqPolicy}. */
  readonly policy: pulumi.Input<IrqPolicy>;
  /**
   * CPUs "spread" and "numa-local" leave alone, as a cpulist: a housekeeping CPU 0, CPUs
   * isolated for an application. Default: none.
   */
  readonly exclude?: pulumi.Input<string>;
  /**
   * How irqbalance is kept from moving the pinned interrupts, where it is installed:
   * `"ban"` (default) adds `--banirq=N` for each of them to its options (`/etc/default/irqbalance`
   * or `/etc/sysconfig/irqbalance`) and restarts it, so it keeps balancing everything else;
   * `"stop"` stops and disables it. Both are undone on destroy.
   */
  readonly irqbalance?: pulumi.Input<"ban" | "stop">;
  /**
   * Re-apply at every boot and whenever the interface's queues change (a udev rule on its
   * queues), by queue name, through `nettune-irqaffinity-<name>-<tag>.service` (`<tag>`: its stack\'s); removed on destroy.
   * Default true.
   */
  readonly persist?: pulumi.Input<boolean>;
}

/** One queue interrupt as pinned. */
export interface IrqPin {
  /** The network device whose queue it is: the interface, or a device below it. */
  device: string;
  queue: number;
  /** `rxtx` (a queue pair or completion vector), `rx` or `tx`. */
  role: string;
  irq: number;
  /** Its action name in /proc/interrupts (`virtio3-input.0`), by which it is found again. */
  action: string;
  /** The CPUs set, as a cpulist. */
  cpus: string;
  /** Where the kernel delivered it right after the change (`effective_affinity_list`). */
  effective: string | null;
}

/**
 * The CPUs that serve each queue interrupt of a NIC: placed by a policy ("spread" over the NIC's
 * NUMA node, "numa-local", an explicit map or one CPU list), kept from irqbalance, re-applied by
 * queue name at boot and when the queues change, and put back on destroy.
 *
 * Declare it after an `RssQueues` on the same interface (`dependsOn`): changing the queue count
 * creates and removes queue interrupts.
 *
 * ```ts
 * new nettune.IrqAffinity("eth0-irqs", { connection, interface: "eth0", policy: "spread", exclude: "0" },
 *   { dependsOn: [rss] });
 * ```
 */
export class IrqAffinity extends pulumi.dynamic.Resource {
  /** The policy as declared. */
  declare public readonly policy: pulumi.Output<IrqPolicy>;
  /** The queue interrupts nettune pinned, by queue. */
  declare public readonly applied: pulumi.Output<IrqPin[]>;
  /** Each pinned interrupt's CPUs before nettune first set them, by action name; put back on destroy. */
  declare public readonly originals: pulumi.Output<Record<string, string>>;
  /** The devices whose queues are pinned, with their driver and NUMA node (null: none). */
  declare public readonly devices: pulumi.Output<
    { ifname: string; driver: string; numaNode: number | null }[]
  >;
  /** irqbalance as it was when nettune first applied. */
  declare public readonly irqbalanceBefore: pulumi.Output<{
    installed: boolean;
    active: boolean;
    enabled: string;
  }>;
  /** The systemd unit file (`/etc/systemd/system/…`) that re-applies the pins, or null with `persist: false`. */
  declare public readonly unitPath: pulumi.Output<string | null>;
  /** Messages from the last operation. */
  declare public readonly warnings: pulumi.Output<string[]>;

  constructor(name: string, args: IrqAffinityArgs, opts?: pulumi.CustomResourceOptions) {
    refuseImport("IrqAffinity", name, opts);
    super(
      providerFor("IrqAffinity"),
      name,
      {
        // Names the resource in check errors; the provider drops it (not part of the state).
        __nettuneName: name,
        // Who owns its settings across stacks (the ownership record on the host).
        __nettuneOwner: ownerIdentity("IrqAffinity", name),
        // Lets the provider show its messages under this resource (./urn.ts).
        __nettuneUrn: resourceUrn("IrqAffinity", name, opts),
        connection: pulumi.secret(args.connection),
        interface: args.interface,
        policy: args.policy,
        exclude: args.exclude,
        irqbalance: args.irqbalance,
        persist: args.persist,
        unitName: defaultUnitName("IrqAffinity", name, programStackTag()),
        applied: undefined,
        originals: undefined,
        devices: undefined,
        irqbalanceBefore: undefined,
        unitPath: undefined,
        warnings: undefined,
      },
      { ...opts, additionalSecretOutputs: ["connection"] },
      "nettune",
      "IrqAffinity",
    );
    // One owner for the queue interrupts of an interface.
    pulumi
      .all([pulumi.unsecret(pulumi.output(args.connection)), pulumi.output(args.interface)])
      .apply(([conn, ifname]) => {
        const hostId = hostIdOf(conn);
        if (!hostId || typeof ifname !== "string") return;
        claimSettings(`IrqAffinity ${name}`, hostId, [
          { id: `irq-affinity:${ifname}`, input: "interface" },
        ]);
      });
  }
}
