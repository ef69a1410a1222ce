/**
 * Test program: one or more SysctlSets on sandbox hosts, shaped by the test's arguments.
 * The private key is read from its file here, so it never travels in test arguments.
 */
import * as fs from "node:fs";
import * as nettune from "nettune";

export interface HostArg {
  address: string;
  port: number;
  user: string;
  privateKeyPath: string;
  hostKey?: string;
  sudo?: boolean;
}

export interface SetArg {
  name: string;
  host: HostArg;
  values: Record<string, unknown>;
  persist?: "runtime" | "persistent" | "both";
  fileName?: string;
  behindNat?: boolean;
  /**
   * Take `values` through the output of the set of this name, declared earlier in `sets`: the
   * values are unknown at preview while that set is being created.
   */
  valuesFrom?: string;
}

export function connectionOf(h: HostArg) {
  return {
    host: h.address,
    port: h.port,
    user: h.user,
    privateKey: fs.readFileSync(h.privateKeyPath, "utf8"),
    hostKey: h.hostKey,
    sudo: h.sudo,
  };
}

export default function program(args: { sets: SetArg[] }): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const made = new Map<string, nettune.SysctlSet>();
  for (const s of args.sets) {
    const values = s.values as nettune.SysctlValues;
    const from = s.valuesFrom === undefined ? undefined : made.get(s.valuesFrom);
    if (s.valuesFrom !== undefined && !from) throw new Error(`valuesFrom: no set ${s.valuesFrom}`);
    const set = new nettune.SysctlSet(s.name, {
      connection: connectionOf(s.host),
      values: from ? from.applied.apply(() => values) : values,
      persist: s.persist,
      fileName: s.fileName,
      behindNat: s.behindNat,
    });
    made.set(s.name, set);
    out[`${s.name}_values`] = set.values;
    out[`${s.name}_originals`] = set.originals;
    out[`${s.name}_filePath`] = set.filePath;
  }
  return out;
}
