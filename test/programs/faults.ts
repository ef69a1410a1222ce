/**
 * Test program for the fault tests: a SysctlSet, NicOffloads and an Mtu on sandbox hosts, with
 * short SSH timeouts so that a cut path fails an operation in seconds, not minutes.
 */
import * as nettune from "nettune";
import { connectionOf, type HostArg } from "./sysctl";

export interface FaultsProgramArgs {
  sysctl?: {
    host: HostArg;
    values: Record<string, number>;
    persist: "runtime" | "persistent" | "both";
  };
  offloads?: {
    host: HostArg;
    interface: string;
    features: Record<string, boolean>;
    rollbackAfter: number;
  };
  mtu?: {
    host: HostArg;
    interface: string;
    mtu: number;
    rollbackAfter: number;
    verifyPeers?: string[];
  };
}

/** A connection that gives up quickly: a cut path fails the operation in seconds. */
const quick = (h: HostArg) => ({
  ...connectionOf(h),
  commandTimeout: 8,
  dialErrorLimit: 2,
  perDialTimeout: 3,
});

export default function program(args: FaultsProgramArgs): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (args.sysctl) {
    const s = new nettune.SysctlSet("faults", {
      connection: quick(args.sysctl.host),
      values: args.sysctl.values,
      persist: args.sysctl.persist,
    });
    out.sysctl_originals = s.originals;
  }
  if (args.offloads) {
    const o = new nettune.NicOffloads("faults", {
      connection: quick(args.offloads.host),
      interface: args.offloads.interface,
      features: args.offloads.features,
      rollbackAfter: args.offloads.rollbackAfter,
    });
    out.offloads_originals = o.originals;
  }
  if (args.mtu) {
    const m = new nettune.Mtu("faults", {
      connection: quick(args.mtu.host),
      interface: args.mtu.interface,
      mtu: args.mtu.mtu,
      rollbackAfter: args.mtu.rollbackAfter,
      verifyPeers: args.mtu.verifyPeers,
    });
    out.mtu_originals = m.originals;
  }
  return out;
}
