/**
 * NicOffloads, RssQueues and NicRings through the real Pulumi engine against sandbox host 2,
 * whose eth0 is a veth with 4 rx and 4 tx queues that carries the SSH connection itself:
 * real offload toggles and channel counts, no ring sizes and no RSS table (veth has neither),
 * persistence proven by real reboots.
 */
import { spawn, spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EngineStack, resourceOps } from "../helpers/engine";
import { namesField } from "../helpers/checkErrors";
import { onHost } from "../helpers/hostShell";
import { cli, direct, sandboxHosts, SANDBOX } from "../helpers/sandbox";
import { featureState } from "../../src/specs/nicOffloads";
import { parseEthtoolChannels, parseEthtoolFeatures } from "../../src/host/ethtool";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import type { LinkProgramArgs, OffloadsArg, RssArg } from "../programs/link";

const OFFLOADS = "pulumi-nodejs:dynamic/nettune:NicOffloads";
const RSS = "pulumi-nodejs:dynamic/nettune:RssQueues";
const RINGS = "pulumi-nodejs:dynamic/nettune:NicRings";
const UNIT_DIR = "/etc/systemd/system";

let host: SandboxHost;
/** `ethtool -k eth0` and `ethtool -l eth0` as the host boots with them. */
let defaults: { features: string; channels: string };

beforeAll(async () => {
  host = sandboxHosts()[1]!;
  defaults = { features: await features(), channels: await channelsText() };
});

const features = () => onHost(host, "ethtool -k eth0");
const channelsText = () => onHost(host, "ethtool -l eth0");
const channels = async () => parseEthtoolChannels(await channelsText()).current;
const feature = async (long: string) =>
  featureState(parseEthtoolFeatures(await features()), long)?.on;
const units = async () =>
  (await onHost(host, `ls ${UNIT_DIR}`)).split(/\s+/).filter((u) => u.startsWith("nettune-"));

function offloads(features: Record<string, boolean>, extra: Partial<OffloadsArg> = {}) {
  return { name: "eth0-offloads", host: direct(host), interface: "eth0", features, ...extra };
}
function rss(extra: Partial<RssArg>): RssArg {
  return { name: "eth0-rss", host: direct(host), interface: "eth0", ...extra };
}

/** The lines of a preview that mark a changed property (resource lines and totals left out). */
function changedLines(stdout: string): string[] {
  return stdout
    .split("--outputs:--")[0]!
    .split("\n")
    .filter(
      (l) =>
        /^\s*[-+~] /.test(l) &&
        !l.includes("pulumi-nodejs:dynamic") &&
        !/^\s*[-+~] \d+ to /.test(l),
    );
}

describe("NicOffloads lifecycle", () => {
  const stack = new EngineStack("link", "offloads");
  const args = (f: Record<string, boolean>): LinkProgramArgs => ({ offloads: [offloads(f)] });
  afterAll(() => {
    stack.destroy(args({ gro: true }));
    stack.dispose();
  });

  test("up applies the features, records the originals and installs the unit", async () => {
    expect(await feature("generic-receive-offload")).toBe(false);
    expect(await feature("tcp-segmentation-offload")).toBe(true);
    const r = stack.up(args({ gro: true, tso: false, lro: false }));
    expect(r.error).toBeUndefined();
    expect(r.changes.create).toBe(2);
    expect(await feature("generic-receive-offload")).toBe(true);
    expect(await feature("tcp-segmentation-offload")).toBe(false);
    expect(r.outputs["eth0-offloads_originals"]).toEqual({
      "generic-receive-offload": false,
      "tcp-segmentation-offload": true,
      "large-receive-offload": false,
    });
    expect(r.outputs["eth0-offloads_driver"]).toBe("veth");
    expect(r.outputs["eth0-offloads_unitPath"]).toBe(
      `${UNIT_DIR}/nettune-nicoffloads-${stack.named("eth0-offloads")}.service`,
    );
    expect(
      (
        await onHost(
          host,
          `systemctl is-enabled nettune-nicoffloads-${stack.named("eth0-offloads")}.service`,
        )
      ).trim(),
    ).toBe("enabled");
  });

  test("a second preview and up change nothing", () => {
    const p = stack.preview(args({ gro: true, tso: false, lro: false }));
    expect(p.error).toBeUndefined();
    expect(p.changes).toEqual({ same: 2 });
    expect(stack.up(args({ gro: true, tso: false, lro: false })).changes).toEqual({ same: 2 });
  });

  test("editing one feature previews exactly that feature as old => new", async () => {
    const p = stack.preview(args({ gro: false, tso: false, lro: false }));
    expect(p.changes).toEqual({ same: 1, update: 1 });
    expect(changedLines(p.stdout)).toEqual([
      expect.stringMatching(/~ features\s*: \{/),
      expect.stringMatching(/~ gro\s*: true => false/),
    ]);
    // Preview never changes the host.
    expect(await feature("generic-receive-offload")).toBe(true);
    const u = stack.up(args({ gro: false, tso: false, lro: false }));
    expect(u.changes).toEqual({ same: 1, update: 1 });
    expect(await feature("generic-receive-offload")).toBe(false);
  });

  test("a change behind Pulumi's back shows as drift on refresh and is repaired by up", async () => {
    await onHost(host, "ethtool -K eth0 tso on");
    const a = args({ gro: false, tso: false, lro: false });
    const r = stack.refresh(a);
    expect(r.error).toBeUndefined();
    expect(r.changes.update).toBe(1);
    const refreshed = r.events.find((e) => e.type === "outputs" && e.resourceType === OFFLOADS);
    expect((refreshed?.newOutputs?.features as Record<string, boolean>).tso).toBe(true);
    expect(changedLines(stack.preview(a).stdout)).toEqual([
      expect.stringMatching(/~ features\s*: \{/),
      expect.stringMatching(/~ tso\s*: true => false/),
    ]);
    expect(stack.up(a).error).toBeUndefined();
    expect(await feature("tcp-segmentation-offload")).toBe(false);
  });

  test("destroy restores every original and removes the unit", async () => {
    const r = stack.destroy(args({ gro: true }));
    expect(r.error).toBeUndefined();
    expect(r.changes.delete).toBe(2);
    expect(await features()).toBe(defaults.features);
    expect(await units()).toEqual([]);
  });
});

describe("NicOffloads that cuts the management path", () => {
  test("the host puts the old features back within rollbackAfter, is reachable again, and the resource fails saying why", async () => {
    const stack = new EngineStack("link", "offloads-cut");
    expect(await feature("generic-receive-offload")).toBe(false);
    // Stand-in for a driver that stops passing traffic after a toggle: while the host's eth0
    // has GRO on, this machine's end of its link is down. Bounded: gives up (and restores the
    // link) after 90 s.
    const watcher = spawn(
      "sh",
      [
        "-c",
        `state=up; i=0; while [ $i -lt 900 ]; do
           g=$(ip netns exec ${host.namespace} ethtool -k eth0 2>/dev/null | sed -n 's/^generic-receive-offload: \\([a-z]*\\).*/\\1/p')
           if [ "$g" = on ] && [ $state = up ]; then ip link set dev ${host.rootInterface} down; state=down; fi
           if [ "$g" = off ] && [ $state = down ]; then ip link set dev ${host.rootInterface} up; exit 0; fi
           sleep 0.1; i=$((i+1))
         done; ip link set dev ${host.rootInterface} up; exit 1`,
      ],
      { stdio: "ignore" },
    );
    const watcherDone = new Promise<number | null>((resolve) => watcher.on("exit", resolve));
    try {
      const r = stack.up({
        offloads: [offloads({ gro: true }, { persist: false, rollbackAfter: 8 })],
      });
      expect(r.ok).toBe(false);
      expect(r.error).toMatch(/Offload changes on eth0 cut the SSH connection/);
      expect(r.error).toMatch(/undid the change by itself after 8 s .* reachable again/);
      // The watcher saw GRO go back off by itself and restored the link.
      expect(await watcherDone).toBe(0);
      expect(await feature("generic-receive-offload")).toBe(false);
      expect(await features()).toBe(defaults.features);
    } finally {
      watcher.kill();
      spawnSync("ip", ["link", "set", "dev", host.rootInterface, "up"]);
      stack.destroy({ offloads: [offloads({ gro: false }, { persist: false })] });
      stack.dispose();
    }
  });
});

describe("RssQueues lifecycle on veth's separate rx/tx channels", () => {
  const stack = new EngineStack("link", "rss");
  const args = (r: Partial<RssArg>): LinkProgramArgs => ({ rss: [rss(r)] });
  afterAll(() => {
    stack.destroy(args({ rx: 1 }));
    stack.dispose();
  });

  test("up sets rx 2 tx 2, verified on the host", async () => {
    expect(await channels()).toMatchObject({ rx: 4, tx: 4 });
    const r = stack.up(args({ rx: 2, tx: 2 }));
    expect(r.error).toBeUndefined();
    expect(await channels()).toMatchObject({ rx: 2, tx: 2 });
    expect(r.outputs["eth0-rss_originals"]).toEqual({ rx: 4, tx: 4, combined: null });
    expect(r.outputs["eth0-rss_maximums"]).toEqual({ rx: 4, tx: 4, combined: null });
  });

  test("a second preview changes nothing; an edit previews exactly that count", () => {
    expect(stack.preview(args({ rx: 2, tx: 2 })).changes).toEqual({ same: 2 });
    const p = stack.preview(args({ rx: 2, tx: "max" }));
    expect(p.changes).toEqual({ same: 1, update: 1 });
    expect(changedLines(p.stdout)).toEqual([expect.stringMatching(/~ tx\s*: 2 => "max"/)]);
  });

  test("drift on refresh after ethtool -L behind Pulumi's back; up repairs it", async () => {
    await onHost(host, "ethtool -L eth0 rx 3");
    const r = stack.refresh(args({ rx: 2, tx: 2 }));
    expect(r.changes.update).toBe(1);
    expect(changedLines(stack.preview(args({ rx: 2, tx: 2 })).stdout)).toEqual([
      expect.stringMatching(/~ rx\s*: 3 => 2/),
    ]);
    expect(stack.up(args({ rx: 2, tx: 2 })).error).toBeUndefined();
    expect(await channels()).toMatchObject({ rx: 2, tx: 2 });
  });

  test("destroy restores 4/4 and removes the unit", async () => {
    const r = stack.destroy(args({ rx: 2, tx: 2 }));
    expect(r.error).toBeUndefined();
    expect(await channelsText()).toBe(defaults.channels);
    expect(await units()).toEqual([]);
  });
});

describe("bad input fails at preview naming the field, the host untouched", () => {
  // Built inside the test: the host is known once beforeAll ran.
  const badCases = (): Array<[string, LinkProgramArgs, string, RegExp]> => [
    [
      "a fixed feature",
      { offloads: [offloads({ lro: true })] },
      "features.lro",
      /large-receive-offload is fixed off on eth0 \(driver veth\)/,
    ],
    [
      "an unknown interface",
      { offloads: [offloads({ gro: true }, { interface: "eth9" })] },
      "interface",
      /no interface eth9 on /,
    ],
    ["an unknown feature", { offloads: [offloads({ groo: true })] }, "features.groo", /unknown/],
    [
      "LRO with GRO",
      { offloads: [offloads({ gro: true, lro: true })] },
      "features.lro",
      /LRO conflicts with GRO/,
    ],
    [
      "combined on veth",
      { rss: [rss({ combined: 2 })] },
      "combined",
      /has separate rx\/tx channels/,
    ],
    [
      "more rx channels than the maximum",
      { rss: [rss({ rx: 8 })] },
      "rx",
      /8 is more than the maximum of 4 rx channels/,
    ],
    [
      "RSS indirection on veth",
      { rss: [rss({ rx: 2, indirection: { equal: 2 } })] },
      "indirection",
      /RSS indirection is not supported by driver veth on eth0/,
    ],
    ["zero channels", { rss: [rss({ rx: 0, tx: 1 })] }, "rx", /at least 1/],
    [
      "ring sizes on veth",
      { rings: [{ name: "eth0-rings", host: direct(host), interface: "eth0", rx: 512 }] },
      "rx",
      /ring sizes are not supported by driver veth on eth0/,
    ],
    [
      "an interface name with shell characters",
      { offloads: [offloads({ gro: true }, { interface: "eth0;reboot" })] },
      "interface",
      /must be an interface name/,
    ],
  ];

  test("10 bad inputs each fail preview naming the field", async () => {
    const cases = badCases();
    const before = { features: await features(), channels: await channelsText() };
    const stack = new EngineStack("link", "bad");
    try {
      const results = stack.previewEach(cases.map(([, a]) => a));
      for (const [i, [label, , field, reason]] of cases.entries()) {
        const r = results[i]!;
        expect(r.ok, `${label} should fail`).toBe(false);
        const errors = r.events
          .filter((e) => e.type === "diagnostic" && e.severity === "error")
          .map((e) => e.message ?? "")
          .join("\n");
        expect(namesField(errors, field), `${label} should name ${field}: ${errors}`).toBe(true);
        expect(errors, label).toMatch(reason);
        for (const type of [OFFLOADS, RSS, RINGS])
          expect(resourceOps(r, type)).not.toContain("create");
      }
    } finally {
      stack.dispose();
    }
    expect(await features()).toBe(before.features);
    expect(await channelsText()).toBe(before.channels);
    expect(await units()).toEqual([]);
  });
});

describe("persistence across a real reboot", () => {
  test("the unit re-applies offloads and channels at boot; destroy plus reboot gives the defaults", async () => {
    const stack = new EngineStack("link", "persist");
    const args: LinkProgramArgs = {
      offloads: [offloads({ gro: true, tso: false })],
      rss: [rss({ rx: 2, tx: 2 })],
    };
    const reboot = () => cli(["sandbox", "reboot", "host2", "--name", SANDBOX]);
    try {
      expect(stack.up(args).error).toBeUndefined();
      reboot();
      expect(await feature("generic-receive-offload")).toBe(true);
      expect(await feature("tcp-segmentation-offload")).toBe(false);
      expect(await channels()).toMatchObject({ rx: 2, tx: 2 });
      // After the reboot the state still matches the host: nothing to change.
      expect(stack.preview(args).changes).toEqual({ same: 3 });
      const d = stack.destroy(args);
      expect(d.error).toBeUndefined();
      expect(await units()).toEqual([]);
      reboot();
      expect(await features()).toBe(defaults.features);
      expect(await channelsText()).toBe(defaults.channels);
    } finally {
      // Whatever failed above, leave host 2 as the next test expects it.
      stack.destroy(args);
      stack.dispose();
    }
  });

  test("persist false: the live state only, gone after a reboot", async () => {
    const stack = new EngineStack("link", "runtime");
    const args: LinkProgramArgs = {
      offloads: [offloads({ gro: true }, { persist: false })],
    };
    try {
      const r = stack.up(args);
      expect(r.error).toBeUndefined();
      expect(r.outputs["eth0-offloads_unitPath"]).toBeNull();
      expect(await units()).toEqual([]);
      expect(await feature("generic-receive-offload")).toBe(true);
      cli(["sandbox", "reboot", "host2", "--name", SANDBOX]);
      expect(await features()).toBe(defaults.features);
      // Refresh finds the drift the reboot made; destroy has nothing left to restore.
      expect(stack.refresh(args).changes.update).toBe(1);
      expect(stack.destroy(args).error).toBeUndefined();
      expect(await features()).toBe(defaults.features);
    } finally {
      stack.dispose();
    }
  });
});
