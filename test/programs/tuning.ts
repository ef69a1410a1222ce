/**
 * Test program: NetworkTuning components on sandbox hosts, from a profile by name plus
 * overrides. Each component's `chosen` and its children's URNs are exported as `<name>_*`.
 */
import * as nettune from "nettune";
import { connectionOf, type HostArg } from "./sysctl";

export interface TuningArg {
  name: string;
  host: HostArg;
  interface: string;
  profile?: nettune.ProfileName;
  overrides?: nettune.TuningOverrides;
  waitForCloudInit?: boolean;
}

export interface TuningProgramArgs {
  tunings?: TuningArg[];
}

export default function program(args: TuningProgramArgs): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of args.tunings ?? []) {
    const t = new nettune.NetworkTuning(a.name, {
      connection: { ...connectionOf(a.host), waitForCloudInit: a.waitForCloudInit },
      interface: a.interface,
      ...(a.profile ? { profile: nettune.profiles[a.profile] } : {}),
      ...a.overrides,
    });
    out[`${a.name}_chosen`] = t.chosen;
    out[`${a.name}_children`] = t.resources.map((r) => r.urn);
  }
  return out;
}
