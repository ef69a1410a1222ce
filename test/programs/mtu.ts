/** Test program: one Mtu resource on a sandbox host, shaped by the test's arguments. */
import * as nettune from "nettune";
import { connectionOf, type HostArg } from "./sysctl";

export interface MtuArg {
  name: string;
  host: HostArg;
  interface: string;
  mtu: number;
  txQueueLength?: number;
  verifyPeers?: string[];
  persist?: boolean;
  rollbackAfter?: number;
}

export default function program(args: { mtus: MtuArg[] }): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const m of args.mtus) {
    const r = new nettune.Mtu(m.name, {
      connection: connectionOf(m.host),
      interface: m.interface,
      mtu: m.mtu,
      txQueueLength: m.txQueueLength,
      verifyPeers: m.verifyPeers,
      persist: m.persist,
      rollbackAfter: m.rollbackAfter,
    });
    out[`${m.name}_mtu`] = r.mtu;
    out[`${m.name}_originals`] = r.originals;
    out[`${m.name}_carriesSsh`] = r.carriesSsh;
    out[`${m.name}_unitPath`] = r.unitPath;
    out[`${m.name}_warnings`] = r.warnings;
  }
  return out;
}
