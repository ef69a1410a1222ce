/**
 * Pulumi operations for the benchmarks: a request to bench/pulumiDriver.ts in a process of its
 * own (time-limited like every child), and the check that an operation changed what it should.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ROOT } from "./hosts";
import { budget, runOk } from "./proc";
import type { DriverRequest, DriverResult } from "./pulumiDriver";

/** Runs the request's operations in order; throws with Pulumi's output when one fails. */
export async function drive(
  req: DriverRequest,
  deadline: number,
  capMs: number,
): Promise<DriverResult[]> {
  const reqFile = `${req.resultFile}.request`;
  fs.writeFileSync(reqFile, JSON.stringify(req));
  await runOk([process.execPath, path.join(ROOT, "dist/bench/pulumiDriver.js"), reqFile], {
    timeoutMs: budget(deadline, capMs),
    cwd: ROOT,
  });
  const results = JSON.parse(fs.readFileSync(req.resultFile, "utf8")) as DriverResult[];
  const failed = results.find((r) => !r.ok);
  if (failed) throw new Error(`pulumi ${failed.op} failed: ${failed.error}`);
  if (results.length !== req.ops.length) {
    throw new Error(`pulumi driver: ${results.length} results for ${req.ops.length} operations`);
  }
  return results;
}

/** Throws unless the operation's resource changes are exactly `want` (zero counts ignored). */
export function expectChanges(r: DriverResult, want: Record<string, number>, what: string): void {
  const sorted = (o: Record<string, number>) =>
    JSON.stringify(
      Object.entries(o)
        .filter(([, v]) => v > 0)
        .sort(([x], [y]) => x.localeCompare(y)),
    );
  if (sorted(r.changes) !== sorted(want)) {
    throw new Error(
      `${what}: expected resource changes ${JSON.stringify(want)}, got ${JSON.stringify(r.changes)}`,
    );
  }
}
