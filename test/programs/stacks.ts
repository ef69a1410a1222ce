/**
 * Test program: SysctlSets and NicOffloads on sandbox hosts, run as several stacks of one
 * project against one host (ownership across stacks). A set's file may be named, so the same
 * set name can live in two stacks.
 */
import * as nettune from "nettune";
import sysctl, { connectionOf, type SetArg, type HostArg } from "./sysctl";

export interface StackOffloadsArg {
  name: string;
  host: HostArg;
  interface: string;
  features: Record<string, boolean>;
}

export default function program(args: {
  sets?: SetArg[];
  offloads?: StackOffloadsArg[];
}): Record<string, unknown> {
  const out = sysctl({ sets: args.sets ?? [] });
  for (const o of args.offloads ?? []) {
    const r = new nettune.NicOffloads(o.name, {
      connection: connectionOf(o.host),
      interface: o.interface,
      features: o.features,
    });
    out[`${o.name}_features`] = r.features;
  }
  return out;
}
