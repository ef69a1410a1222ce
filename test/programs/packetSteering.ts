/**
 * Test program: PacketSteering resources on sandbox hosts, shaped by the test's arguments.
 * Each resource's outputs are exported as `<name>_<output>`.
 */
import * as nettune from "nettune";
import { connectionOf, type HostArg } from "./sysctl";

export interface SteeringArg {
  name: string;
  host: HostArg;
  interface: string;
  rps?: nettune.QueueCpuList;
  rfs?: { flowEntries: number };
  xps?: { cpus: nettune.QueueCpuList } | { rxqs: Record<string, string> };
  persist?: boolean;
}

export interface SteeringProgramArgs {
  steering: SteeringArg[];
}

export default function program(args: SteeringProgramArgs): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of args.steering) {
    const r = new nettune.PacketSteering(a.name, {
      connection: connectionOf(a.host),
      interface: a.interface,
      rps: a.rps,
      rfs: a.rfs,
      xps: a.xps,
      persist: a.persist,
    });
    out[`${a.name}_originals`] = r.originals;
    out[`${a.name}_applied`] = r.applied;
    out[`${a.name}_rpsFlowCnt`] = r.rpsFlowCnt;
    out[`${a.name}_unitPath`] = r.unitPath;
    out[`${a.name}_warnings`] = r.warnings;
  }
  return out;
}
