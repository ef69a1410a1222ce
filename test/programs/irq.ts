/**
 * Test program: IrqAffinity resources on sandbox hosts, shaped by the test's arguments. Each
 * resource's outputs are exported as `<name>_<output>`.
 */
import * as nettune from "nettune";
import { connectionOf, type HostArg } from "./sysctl";

export interface IrqArg {
  name: string;
  host: HostArg;
  interface: string;
  policy: nettune.IrqPolicy;
  exclude?: string;
  irqbalance?: "ban" | "stop";
  persist?: boolean;
}

export interface IrqProgramArgs {
  irqs?: IrqArg[];
}

export default function program(args: IrqProgramArgs): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of args.irqs ?? []) {
    const r = new nettune.IrqAffinity(a.name, {
      connection: connectionOf(a.host),
      interface: a.interface,
      policy: a.policy,
      exclude: a.exclude,
      irqbalance: a.irqbalance,
      persist: a.persist,
    });
    out[`${a.name}_applied`] = r.applied;
    out[`${a.name}_originals`] = r.originals;
    out[`${a.name}_devices`] = r.devices;
    out[`${a.name}_irqbalanceBefore`] = r.irqbalanceBefore;
    out[`${a.name}_unitPath`] = r.unitPath;
    out[`${a.name}_warnings`] = r.warnings;
  }
  return out;
}
