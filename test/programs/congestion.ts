/** Test program: CongestionControl resources on sandbox hosts, shaped by the test's arguments. */
import * as nettune from "nettune";
import { connectionOf, type HostArg } from "./sysctl";

export interface CongestionArg {
  name: string;
  host: HostArg;
  algorithm: string;
  qdisc?: string;
  qdiscFallback?: string;
  interfaces?: string[];
  persist?: boolean;
}

export default function program(args: { ccs: CongestionArg[] }): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const c of args.ccs) {
    const r = new nettune.CongestionControl(c.name, {
      connection: connectionOf(c.host),
      algorithm: c.algorithm,
      qdisc: c.qdisc,
      qdiscFallback: c.qdiscFallback,
      interfaces: c.interfaces,
      persist: c.persist,
    });
    out[`${c.name}_algorithm`] = r.algorithm;
    out[`${c.name}_observedAlgorithm`] = r.observedAlgorithm;
    out[`${c.name}_originals`] = r.originals;
    out[`${c.name}_applied`] = r.applied;
    out[`${c.name}_rootQdiscs`] = r.rootQdiscs;
    out[`${c.name}_filePath`] = r.filePath;
    out[`${c.name}_modulesFilePath`] = r.modulesFilePath;
    out[`${c.name}_unitPaths`] = r.unitPaths;
    out[`${c.name}_warnings`] = r.warnings;
  }
  return out;
}
