/**
 * The one-owner rule's memory: claims belong to one program run. The Automation API runs many
 * runs in one process (stack A's up and destroy, then stack B's preview): a key stack A's
 * resource claimed must not make stack B's resource "also set by" it. Each run has its own
 * resource monitor; `pulumi.runtime.setMocks` gives each test run one.
 */
import * as pulumi from "@pulumi/pulumi";
import { expect, test } from "vitest";
import { claimSettings } from "../../src/resources/owners";

const mocks: pulumi.runtime.Mocks = {
  newResource: (a) => ({ id: `${a.name}-id`, state: a.inputs as Record<string, unknown> }),
  call: (a) => a.inputs as Record<string, unknown>,
};
const KEY = [{ id: "sysctl:net.core.somaxconn", input: 'values["net.core.somaxconn"]' }];

test("a claim lasts for its run: a later run (another stack) may claim the same setting", async () => {
  await pulumi.runtime.setMocks(mocks, "project", "a");
  claimSettings("SysctlSet p1", "198.18.1.2:22", KEY);
  // In the same run a second owner is refused, naming both.
  expect(() => claimSettings("SysctlSet p2", "198.18.1.2:22", KEY)).toThrow(
    /SysctlSet p2: values\["net\.core\.somaxconn"\] is also set by SysctlSet p1/,
  );
  // The next run: stack b, the same process.
  await pulumi.runtime.setMocks(mocks, "project", "b");
  expect(() => claimSettings("SysctlSet q1", "198.18.1.2:22", KEY)).not.toThrow();
  expect(() => claimSettings("SysctlSet q2", "198.18.1.2:22", KEY)).toThrow(
    /also set by SysctlSet q1/,
  );
});
