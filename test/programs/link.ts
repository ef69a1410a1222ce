/**
 * Test program: NicOffloads, RssQueues and NicRings on sandbox hosts, shaped by the test's
 * arguments. Each resource's outputs are exported as `<name>_<output>`.
 */
import * as nettune from "nettune";
import { connectionOf, type HostArg } from "./sysctl";

interface LinkArg {
  name: string;
  host: HostArg;
  interface: string;
  persist?: boolean;
}

export interface OffloadsArg extends LinkArg {
  features: Record<string, boolean>;
  rollbackAfter?: number;
}

export interface RssArg extends LinkArg {
  combined?: number | "max";
  rx?: number | "max";
  tx?: number | "max";
  indirection?: { equal: number } | { weights: number[] };
}

export interface RingsArg extends LinkArg {
  rx?: number | "max";
  tx?: number | "max";
}

export interface LinkProgramArgs {
  offloads?: OffloadsArg[];
  rss?: RssArg[];
  rings?: RingsArg[];
}

export default function program(args: LinkProgramArgs): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of args.offloads ?? []) {
    const r = new nettune.NicOffloads(a.name, {
      connection: connectionOf(a.host),
      interface: a.interface,
      features: a.features,
      persist: a.persist,
      rollbackAfter: a.rollbackAfter,
    });
    out[`${a.name}_features`] = r.features;
    out[`${a.name}_originals`] = r.originals;
    out[`${a.name}_driver`] = r.driver;
    out[`${a.name}_unitPath`] = r.unitPath;
  }
  for (const a of args.rss ?? []) {
    const r = new nettune.RssQueues(a.name, {
      connection: connectionOf(a.host),
      interface: a.interface,
      combined: a.combined,
      rx: a.rx,
      tx: a.tx,
      indirection: a.indirection,
      persist: a.persist,
    });
    out[`${a.name}_applied`] = r.applied;
    out[`${a.name}_originals`] = r.originals;
    out[`${a.name}_maximums`] = r.maximums;
    out[`${a.name}_unitPath`] = r.unitPath;
  }
  for (const a of args.rings ?? []) {
    const r = new nettune.NicRings(a.name, {
      connection: connectionOf(a.host),
      interface: a.interface,
      rx: a.rx,
      tx: a.tx,
      persist: a.persist,
    });
    out[`${a.name}_applied`] = r.applied;
    out[`${a.name}_originals`] = r.originals;
  }
  return out;
}
