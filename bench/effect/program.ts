/**
 * The effect benchmark's Pulumi program: on each host, NicOffloads on the link between the two
 * hosts and, when the arguments ask for them, the guide's SysctlSet and a CongestionControl.
 * Each `pulumi up` of the benchmark moves the stack to the next state it measures.
 */
import * as nettune from "nettune";
import { connectionOf, type HostArg } from "../../test/programs/sysctl";

export interface EffectProgramArgs {
  hosts: HostArg[];
  /** The interface of the host-to-host link on every host. */
  lanInterface: string;
  offloads: Record<string, boolean>;
  sysctls?: Record<string, number | number[]>;
  algorithm?: string;
}

export default function program(args: EffectProgramArgs): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  args.hosts.forEach((h, i) => {
    const name = `host${i + 1}`;
    const connection = connectionOf(h);
    const offloads = new nettune.NicOffloads(`${name}-lan-offloads`, {
      connection,
      interface: args.lanInterface,
      features: args.offloads,
      persist: false,
    });
    out[`${name}_offloads`] = offloads.features;
    out[`${name}_offloadOriginals`] = offloads.originals;
    if (args.sysctls) {
      new nettune.SysctlSet(`${name}-guide`, {
        connection,
        values: args.sysctls,
        persist: "runtime",
      });
    }
    if (args.algorithm) {
      const cc = new nettune.CongestionControl(`${name}-congestion`, {
        connection,
        algorithm: args.algorithm,
        persist: false,
      });
      out[`${name}_observedAlgorithm`] = cc.observedAlgorithm;
    }
  });
  return out;
}
