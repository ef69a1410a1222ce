/**
 * Each resource passes its provider its own URN (`__nettuneUrn`), so the provider's warnings
 * show under the resource: the URN it computes is the one the engine gives it, at the top of a
 * stack and under a component, and a component parent is not made a dependency (that would
 * wait for the component's children, this resource among them).
 */
import * as pulumi from "@pulumi/pulumi";
import { beforeEach, expect, test } from "vitest";
import * as nettune from "../../src";
import { registrations, useTuningMocks, valueOf } from "../helpers/tuningMocks";

const connection = { host: "198.18.9.9", user: "root", password: "pw" };

beforeEach(async () => {
  await useTuningMocks();
});

test("the URN passed to the provider is the resource's own, with or without a parent", async () => {
  const top = new nettune.SysctlSet("top", { connection, values: { "net.core.somaxconn": 4096 } });
  const group = new pulumi.ComponentResource("test:index:Group", "group");
  const child = new nettune.Mtu(
    "child",
    { connection, interface: "eth0", mtu: 1400 },
    {
      parent: group,
    },
  );
  const urns = await Promise.all([valueOf(top.urn), valueOf(child.urn), valueOf(group.urn)]);
  const reg = (name: string) => registrations.find((r) => r.name === name)!;
  expect(reg("top").inputs.__nettuneUrn).toBe(urns[0]);
  expect(reg("child").inputs.__nettuneUrn).toBe(urns[1]);
  expect(urns[1]).toMatch(/::test:index:Group\$pulumi-nodejs:dynamic\/nettune:Mtu::child$/);
  expect(reg("child").dependencies).not.toContain(urns[2]);
});
