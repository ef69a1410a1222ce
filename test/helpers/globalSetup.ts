/**
 * Once per test run: snapshot this machine's own network state (for the guard test), build,
 * and bring up the test sandbox (2 hosts, 50 ms added delay on the relayed SSH path). A run
 * of unit test files alone skips all of it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { TestProject } from "vitest/node";
import { machineSnapshot, SNAPSHOT_FILE } from "./machine";
import { cli, SANDBOX, SHARED_VMS } from "./sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";

/**
 * Whether the command line names only unit test files (`vitest run test/unit/x.test.ts`): they
 * need no sandbox, and bringing it up would take down one another run is using.
 */
function unitFilesOnly(): boolean {
  const filters = process.argv
    .slice(2)
    .filter((a) => !a.startsWith("-") && a !== "run" && !/vitest(\.mjs)?$/.test(a));
  return filters.length > 0 && filters.every((f) => /(^|\/)test\/unit\//.test(f));
}

export default function setup(project: TestProject): () => void {
  if (unitFilesOnly()) {
    project.provide("sandboxHosts", []);
    return () => undefined;
  }
  fs.mkdirSync(path.dirname(SNAPSHOT_FILE), { recursive: true });
  // Leftovers of a crashed earlier run of the tests go first.
  cli(["sandbox", "down", "--name", SANDBOX]);
  cli(["sandbox", "down", "--name", `${SANDBOX}c`]);
  cli(["sandbox", "down", "--name", SHARED_VMS]);
  fs.writeFileSync(SNAPSHOT_FILE, JSON.stringify(machineSnapshot()));
  const hosts = JSON.parse(
    cli(["sandbox", "up", "--name", SANDBOX, "--hosts", "2", "--delay", "50", "--json"]),
  ) as SandboxHost[];
  project.provide("sandboxHosts", hosts);
  return () => {
    cli(["sandbox", "down", "--name", SANDBOX]);
    // The VM hosts the VM test files share (test/helpers/sandbox.ts, sharedVmHosts).
    cli(["sandbox", "down", "--name", SHARED_VMS]);
  };
}
