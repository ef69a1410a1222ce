/**
 * The provider's own count of its SSH cost: with NETTUNE_STATS_DIR set, every provider process
 * of an operation writes `provider-<pid>.json` (handshakes and exec requests per host) there.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { SandboxHost } from "../src/sandbox/sandbox";

export interface HostCost {
  handshakes: number;
  execs: number;
}

/** Handshakes and commands per host, in host order, summed over every provider process. */
export function providerStats(dir: string, hosts: SandboxHost[]): HostCost[] {
  const sums = new Map<string, HostCost>();
  const files = fs.existsSync(dir)
    ? fs.readdirSync(dir).filter((f) => /^provider-\d+\.json$/.test(f))
    : [];
  if (files.length === 0)
    throw new Error(`no provider statistics in ${dir}: is NETTUNE_STATS_DIR honoured?`);
  for (const f of files) {
    const entries = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as Array<{
      target: string;
      handshakes: number;
      execs: number;
    }>;
    for (const e of entries) {
      const s = sums.get(e.target) ?? { handshakes: 0, execs: 0 };
      s.handshakes += e.handshakes;
      s.execs += e.execs;
      sums.set(e.target, s);
    }
  }
  return hosts.map(
    (h) => sums.get(`${h.user}@${h.address}:${h.port}`) ?? { handshakes: 0, execs: 0 },
  );
}
