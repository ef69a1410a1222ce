/**
 * The fleet benchmark's Pulumi program: on every host a SysctlSet, a CongestionControl and a
 * NicOffloads on the host's own interface (the one SSH arrives on). With no hosts it declares
 * nothing: the empty stack the benchmark's floor is measured with.
 */
import * as nettune from "nettune";
import { connectionOf, type HostArg } from "../../test/programs/sysctl";

export interface FleetHostArg {
  /** Unique across the fleet (hosts come from several sandboxes): names the resources. */
  label: string;
  host: HostArg;
  interface: string;
  offloads: Record<string, boolean>;
}

export interface FleetProgramArgs {
  hosts: FleetHostArg[];
  values: Record<string, number | number[]>;
  algorithm: string;
}

export default function program(args: FleetProgramArgs): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const h of args.hosts) {
    const connection = connectionOf(h.host);
    new nettune.SysctlSet(`${h.label}-sysctl`, {
      connection,
      values: args.values,
      persist: "both",
    });
    const cc = new nettune.CongestionControl(`${h.label}-congestion`, {
      connection,
      algorithm: args.algorithm,
    });
    // Not persisted: the Ansible side sets the live features only, so both do the same work.
    new nettune.NicOffloads(`${h.label}-offloads`, {
      connection,
      interface: h.interface,
      features: h.offloads,
      persist: false,
    });
    out[`${h.label}_observedAlgorithm`] = cc.observedAlgorithm;
  }
  return out;
}
