/**
 * Runs last: after every other test (and the sandbox taken down), this machine's own
 * interfaces (MTU, qdisc, offloads, channels, RPS/XPS masks) and global sysctls are exactly
 * what they were before the run.
 */
import * as fs from "node:fs";
import { expect, test } from "vitest";
import {
  machineSnapshot,
  snapshotDiff,
  SNAPSHOT_FILE,
  type MachineSnapshot,
} from "../helpers/machine";
import { cli, SANDBOX, SHARED_VMS } from "../helpers/sandbox";

test("this machine's interfaces and global sysctls are unchanged by the whole run", () => {
  cli(["sandbox", "down", "--name", SANDBOX]);
  cli(["sandbox", "down", "--name", SHARED_VMS], 180_000);
  const before = JSON.parse(fs.readFileSync(SNAPSHOT_FILE, "utf8")) as MachineSnapshot;
  const after = machineSnapshot();
  // The snapshot really covers something: interfaces with offload listings and many sysctls.
  expect(Object.keys(before.links).length).toBeGreaterThan(1);
  expect(Object.values(before.features).some((f) => f.includes("generic-receive-offload"))).toBe(
    true,
  );
  expect(Object.keys(before.sysctls).length).toBeGreaterThan(500);
  expect(Object.keys(before.sysctls)).toContain("vm.swappiness");
  expect(snapshotDiff(before, after)).toEqual([]);
});
