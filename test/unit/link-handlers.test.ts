/**
 * NicOffloads, RssQueues and NicRings against a fake host whose scripts really run in dash and
 * whose ethtool, ip and systemctl answer with the real captured outputs of test/fixtures (veth,
 * virtio_net, tun, bridge, lo) and then with the same layout after a change
 * (test/helpers/fakeLinkHost.ts). What the fixtures cannot show (an RSS table, a driver that
 * rounds ring sizes or silently keeps a feature) is set up per test and marked synthetic.
 */
import { afterEach, describe, expect, it } from "vitest";

import { handle, setTransportFactory } from "../../src/engine/provider";
import { checkFailures } from "../helpers/checkErrors";
import type { HandlerContext } from "../../src/engine/lifecycle";
import { countSchema, interfaceSchema } from "../../src/schemas/link";
import { parseBatch, renderBatch, runBatch } from "../../src/engine/batch";
import {
  featureState,
  nicOffloadsHandler as offloads,
  type NicOffloadsOutputs,
} from "../../src/specs/nicOffloads";
import { nicOffloadsSchema } from "../../src/schemas/nicOffloads";
import { nicRingsHandler as rings, type NicRingsOutputs } from "../../src/specs/nicRings";
import { nicRingsSchema } from "../../src/schemas/nicRings";
import {
  bucketCounts,
  rssQueuesHandler as rss,
  tableMatches,
  type RssQueuesOutputs,
} from "../../src/specs/rssQueues";
import { rssQueuesSchema } from "../../src/schemas/rssQueues";
import { mtuHandler as mtu } from "../../src/specs/mtu";
import { mtuSchema } from "../../src/schemas/mtu";
import { parseEthtoolFeatures } from "../../src/host/ethtool";
import { LocalTransport } from "../../src/transport/local";
import { FakeLinkHost, fixtureText, type DeviceOptions } from "../helpers/fakeLinkHost";

const CONNECTION = {
  host: "198.18.9.9",
  privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
};
const TARGET = "root@198.18.9.9:22";
const VETH: DeviceOptions = { fixture: "veth-b", ifname: "eth0" };
const VIRTIO: DeviceOptions = { fixture: "virtio_net-eth0", ifname: "eth0" };

let host: FakeLinkHost | undefined;
let warnings: string[] = [];

async function fake(
  ...devices: DeviceOptions[]
): Promise<{ h: FakeLinkHost; ctx: HandlerContext }> {
  host = await FakeLinkHost.create({ devices });
  warnings = [];
  return { h: host, ctx: { transport: host, warn: (m) => warnings.push(m) } };
}

afterEach(async () => {
  setTransportFactory(undefined);
  await host?.close();
  host = undefined;
});

const offloadInputs = (extra: Record<string, unknown>) =>
  nicOffloadsSchema.parse({
    connection: CONNECTION,
    interface: "eth0",
    unitName: "nettune-nicoffloads-eth0-offloads.service",
    ...extra,
  });
const rssInputs = (extra: Record<string, unknown>) =>
  rssQueuesSchema.parse({
    connection: CONNECTION,
    interface: "eth0",
    unitName: "nettune-rssqueues-eth0-rss.service",
    ...extra,
  });
const ringInputs = (extra: Record<string, unknown>) =>
  nicRingsSchema.parse({
    connection: CONNECTION,
    interface: "eth0",
    unitName: "nettune-nicrings-eth0-rings.service",
    ...extra,
  });

/** The first failure of a schema, as `property: reason`. */
function schemaFailures(
  schema: typeof nicOffloadsSchema | typeof rssQueuesSchema | typeof nicRingsSchema,
  input: unknown,
) {
  const r = schema.safeParse(input);
  if (r.success) return [];
  return r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
}

const on = (h: FakeLinkHost, ifname: string, long: string) =>
  featureState(parseEthtoolFeatures(h.device(ifname).featuresText()), long)?.on;

// ---------------------------------------------------------------------------------------------

describe("the fake host answers with the captured outputs", () => {
  const devices: Array<[string, string]> = [
    ["veth-b", "b"],
    ["virtio_net-eth0", "eth0"],
    ["tun-tun0", "tun0"],
    ["bridge-br0", "br0"],
    ["loopback-lo", "lo"],
  ];
  it.each(devices)("%s: -k, -l, -g, -x and -i are the fixture files", async (fixture, ifname) => {
    const { h } = await fake({ fixture, ifname });
    for (const option of ["k", "l", "g", "x", "i"]) {
      const r = h.run("ethtool", [`-${option}`, ifname]);
      const err = `${fixture}.${option}.stderr.txt`;
      expect(r.stdout, `${fixture} -${option}`).toBe(
        fixtureText("ethtool", `${fixture}.${option}.txt`),
      );
      let stderr = "";
      try {
        stderr = fixtureText("ethtool", err);
      } catch {
        /* no stderr was captured */
      }
      expect(r.stderr).toBe(stderr);
      expect(r.code === 0).toBe(stderr === "");
    }
    expect(h.run("ip", ["-d", "-j", "link", "show", "dev", ifname]).stdout).toBe(
      fixtureText("ip", `${fixture}.json`).trim() + "\n",
    );
  });

  it("after `ethtool -L b rx 2 tx 2` it prints what veth printed", async () => {
    const { h } = await fake({ fixture: "veth-b", ifname: "b" });
    expect(h.run("ethtool", ["-L", "b", "rx", "2", "tx", "2"]).code).toBe(0);
    expect(h.run("ethtool", ["-l", "b"]).stdout).toBe(
      fixtureText("ethtool", "veth-b-after-L.l.txt"),
    );
  });

  it("after `ethtool -K b gro on`, then `gro off tso off`, it prints what veth printed", async () => {
    const { h } = await fake({ fixture: "veth-b", ifname: "b" });
    h.run("ethtool", ["-K", "b", "gro", "on"]);
    expect(h.run("ethtool", ["-k", "b"]).stdout).toBe(
      fixtureText("ethtool", "veth-b-gro-on.k.txt"),
    );
    h.run("ethtool", ["-K", "b", "gro", "off", "tso", "off"]);
    expect(h.run("ethtool", ["-k", "b"]).stdout).toBe(
      fixtureText("ethtool", "veth-b-after-K.k.txt"),
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe("command batches", () => {
  it("runs every command in one round trip and keeps each one's output and exit code", async () => {
    const t = new LocalTransport();
    const commands = [
      ["printf", "a\\nb\\n"],
      ["printf", "no newline"],
      { script: "echo out; echo 'err line' >&2; exit 3" },
      ["sh", "-c", "exit 0"],
      ["nettune-no-such-tool", "-k"],
    ];
    const r = await runBatch(t, commands);
    expect(t.stats.execs).toBe(1);
    expect(r.map((s) => [s.stdout, s.stderr, s.exitCode])).toEqual([
      ["a\nb\n", "", 0],
      ["no newline", "", 0],
      ["out\n", "err line\n", 3],
      ["", "", 0],
      ["", expect.stringContaining("not found") as unknown, 127],
    ]);
    expect(r[0]!.command).toBe("printf 'a\\nb\\n'");
  });

  it("refuses output with a command's part missing", () => {
    const script = renderBatch([["true"], ["true"]]);
    expect(script).toContain("mktemp -d");
    expect(() =>
      parseBatch("\n@@nettune-batch 0 out 0\n\n@@nettune-batch 0 err\n\n@@nettune-batch end\n", [
        ["true"],
        ["true"],
      ]),
    ).toThrow(/incomplete output of a command batch \(command 1\)/);
  });
});

describe("interface and count schemas", () => {
  it.each(["eth0", "enp3s0f1", "bond0.100", "br-1a2b3c4d5e6f", "wg_0", "veth+1"])(
    "accepts %s",
    (name) => expect(interfaceSchema.safeParse(name).success).toBe(true),
  );
  it.each([
    "",
    "a-very-long-name0",
    "eth0; reboot",
    "$(id)",
    "a/b",
    "eth0:1",
    "-K",
    "..",
    "eth 0",
    "eth0'",
  ])("refuses %j", (name) => expect(interfaceSchema.safeParse(name).success).toBe(false));

  it("counts are positive integers up to the limit, or max", () => {
    const s = countSchema(64);
    expect(s.safeParse("max").success).toBe(true);
    expect(s.safeParse(64).success).toBe(true);
    const msg = (v: unknown) => {
      const r = s.safeParse(v);
      return r.success ? "" : r.error.issues[0]!.message;
    };
    expect(msg(0)).toMatch(/at least 1/);
    expect(msg(65)).toMatch(/at most 64/);
    expect(msg(1.5)).toMatch(/integer/);
    expect(msg("all")).toMatch(/positive integer or "max"/);
  });
});

// ---------------------------------------------------------------------------------------------

describe("NicOffloads: check (no host)", () => {
  const base = {
    connection: CONNECTION,
    interface: "eth0",
    unitName: "nettune-nicoffloads-x.service",
  };
  it.each([
    [
      "unknown name",
      { groo: true },
      /^features\.groo: unknown feature "groo": expected a short name/,
    ],
    ["LRO with GRO", { gro: true, lro: true }, /^features\.lro: LRO conflicts with GRO/],
    [
      "LRO with GRO, long names",
      { "generic-receive-offload": true, "large-receive-offload": true },
      /^features\.large-receive-offload: LRO conflicts with GRO/,
    ],
    ["alias and long name", { gro: true, "generic-receive-offload": true }, /same feature/],
    ["not a boolean", { gro: "on" }, /^features\.gro: expected true or false/],
    ["no feature", {}, /^features: features must name at least one/],
  ])("%s", (_label, features, re) => {
    expect(schemaFailures(nicOffloadsSchema, { ...base, features })[0]).toMatch(re);
  });

  it.each([
    [4, /^rollbackAfter: rollbackAfter must be at least 5 seconds/],
    [3601, /^rollbackAfter: rollbackAfter must be at most 3600 seconds/],
    [7.5, /^rollbackAfter: rollbackAfter must be whole seconds/],
    ["60", /^rollbackAfter: rollbackAfter must be a number of seconds/],
  ])("rollbackAfter %j is refused naming it", (rollbackAfter, re) => {
    expect(
      schemaFailures(nicOffloadsSchema, { ...base, features: { gro: true }, rollbackAfter })[0],
    ).toMatch(re);
  });

  it("rollbackAfter defaults to 60 seconds", () => {
    expect(nicOffloadsSchema.parse({ ...base, features: { gro: true } }).rollbackAfter).toBe(60);
    expect(
      nicOffloadsSchema.parse({ ...base, features: { gro: true }, rollbackAfter: 8 }).rollbackAfter,
    ).toBe(8);
  });

  it("takes short and long names, and LRO off with GRO on", () => {
    expect(
      schemaFailures(nicOffloadsSchema, {
        ...base,
        features: { gro: true, lro: false, "tx-tcp6-segmentation": true, rxhash: false },
      }),
    ).toEqual([]);
  });
});

describe("NicOffloads on veth", () => {
  it("preview: one read-only round trip; a fixed feature fails naming it", async () => {
    const { h, ctx } = await fake(VETH);
    const failures = await offloads.hostCheck!(
      offloadInputs({ features: { gro: true, lro: false, ntuple: true, tso: false } }),
      ctx,
    );
    expect(failures).toEqual([
      {
        property: "features.ntuple",
        reason: "ntuple-filters is fixed off on eth0 (driver veth)",
      },
    ]);
    expect(h.stats.execs).toBe(1);
    expect(h.setCalls()).toEqual([]);
    expect(h.calls.map((c) => c.join(" "))).toEqual([
      "ethtool -i eth0",
      "ip -d -j link show dev eth0",
      "ethtool -k eth0",
    ]);
  });

  it("preview through the provider names features.lro and the driver", async () => {
    const { h } = await fake(VETH);
    setTransportFactory(() => h);
    const res = {
      failures: await checkFailures(
        "NicOffloads",
        handle(
          "NicOffloads",
          "check",
          {},
          {
            connection: CONNECTION,
            interface: "eth0",
            features: { lro: true },
            unitName: "nettune-nicoffloads-x.service",
          },
        ),
      ),
    };
    expect(res.failures).toEqual([
      {
        property: "features.lro",
        reason: "large-receive-offload is fixed off on eth0 (driver veth)",
      },
    ]);
  });

  it("preview: an unknown interface fails naming interface and the host", async () => {
    const { ctx } = await fake(VETH);
    expect(
      await offloads.hostCheck!(offloadInputs({ interface: "eth9", features: { gro: true } }), ctx),
    ).toEqual([{ property: "interface", reason: `no interface eth9 on ${TARGET}` }]);
  });

  it("preview: a feature this kernel does not print fails naming it", async () => {
    const { ctx } = await fake(VETH);
    const f = await offloads.hostCheck!(offloadInputs({ features: { "tx-lockless": false } }), ctx);
    expect(f).toEqual([
      {
        property: 'features["tx-lockless"]',
        reason: `eth0 (driver veth) has no feature tx-lockless on ${TARGET} (its kernel does not know it)`,
      },
    ]);
  });

  it("create: reads, then sets every change with one ethtool -K, reads back and writes the unit in 2 round trips", async () => {
    const { h, ctx } = await fake(VETH);
    const inputs = offloadInputs({ features: { gro: true, tso: false, gso: true, lro: false } });
    const { id, outs } = await offloads.create(inputs, ctx);
    expect(h.stats.execs).toBe(2);
    expect(h.setCalls()).toEqual(["ethtool -K eth0 gro on tso off"]);
    expect(id).toBe(`${TARGET}/offloads/eth0/nettune-nicoffloads-eth0-offloads.service`);
    expect(outs.originals).toEqual({
      "generic-receive-offload": false,
      "tcp-segmentation-offload": true,
      "generic-segmentation-offload": true,
      "large-receive-offload": false,
    });
    expect(outs.applied).toEqual({
      "generic-receive-offload": true,
      "tcp-segmentation-offload": false,
      "generic-segmentation-offload": true,
      "large-receive-offload": false,
    });
    expect(outs.driver).toBe("veth");
    expect(outs.unitPath).toBe("/etc/systemd/system/nettune-nicoffloads-eth0-offloads.service");
    expect(on(h, "eth0", "generic-receive-offload")).toBe(true);
    expect(on(h, "eth0", "tcp-segmentation-offload")).toBe(false);
    expect(h.enabled).toEqual(new Set(["nettune-nicoffloads-eth0-offloads.service"]));
    expect(h.units()["nettune-nicoffloads-eth0-offloads.service"]).toMatchSnapshot();
    expect(warnings).toEqual([]);
  });

  it("create with persist false writes no unit", async () => {
    const { h, ctx } = await fake(VETH);
    const { outs } = await offloads.create(
      offloadInputs({ features: { gro: true }, persist: false }),
      ctx,
    );
    expect(outs.unitPath).toBeNull();
    expect(h.units()).toEqual({});
    expect(h.stats.execs).toBe(2);
  });

  it.each([1, 0])(
    "a feature the driver silently keeps fails by read-back (Could not change…, exit %i) and the others are put back",
    async (exit) => {
      const { h, ctx } = await fake(VETH);
      const d = h.device("eth0");
      d.stuck.add("generic-receive-offload"); // synthetic: no captured driver does this to GRO
      d.couldNotChangeExit = exit;
      // Only GRO: nothing changes at all, "Could not change any device features".
      await expect(
        offloads.create(offloadInputs({ features: { gro: true } }), ctx),
      ).rejects.toThrow(
        /features\.gro: requested on, driver reports off on eth0 \(driver veth\) \(generic-receive-offload is off \[requested on\]\)/,
      );
      expect(h.units()).toEqual({});
      h.resetLog();
      const err = await offloads
        .create(offloadInputs({ features: { gro: true, tso: false } }), ctx)
        .then(
          () => undefined,
          (e: Error) => e.message,
        );
      expect(err).toMatch(
        /^features\.gro: requested on, driver reports off on eth0 \(driver veth\)/,
      );
      expect(err).toMatch(/on root@198\.18\.9\.9:22; tso was put back$/);
      expect(h.setCalls()).toEqual(["ethtool -K eth0 gro on tso off", "ethtool -K eth0 tso on"]);
      expect(on(h, "eth0", "tcp-segmentation-offload")).toBe(true);
      // The unit written in the same round trip is gone again.
      expect(h.units()).toEqual({});
      expect(h.enabled.size).toBe(0);
    },
  );

  it("read: live state, so a change behind nettune's back shows as drift", async () => {
    const { h, ctx } = await fake(VETH);
    const { id, outs } = await offloads.create(
      offloadInputs({ features: { gro: true, tso: false } }),
      ctx,
    );
    h.run("ethtool", ["-K", "eth0", "tso", "on"]);
    h.resetLog();
    const r = await offloads.read(id, outs, ctx);
    expect(h.stats.execs).toBe(1);
    expect(r.props.features).toEqual({ gro: true, tso: true });
    expect(r.inputs).toEqual({ ...offloadInputs({ features: { gro: true, tso: true } }) });
    expect(Object.keys(r.inputs)).not.toContain("originals");
    const d = offloads.diff(id, r.props, offloadInputs({ features: { gro: true, tso: false } }));
    expect(d.detailedDiff).toEqual({ "features.tso": { kind: "update", inputDiff: true } });
  });

  it("diff: one edited feature, added and removed ones, interface and host replace", () => {
    const olds = {
      ...offloadInputs({ features: { gro: true, tso: false } }),
    } as NicOffloadsOutputs;
    expect(
      offloads.diff("id", olds, offloadInputs({ features: { gro: false, tso: false } })),
    ).toEqual({
      changes: true,
      replaces: [],
      deleteBeforeReplace: true,
      detailedDiff: { "features.gro": { kind: "update", inputDiff: true } },
    });
    expect(
      offloads.diff("id", olds, offloadInputs({ features: { gro: true, "rx-gro-list": true } }))
        .detailedDiff,
    ).toEqual({
      'features["rx-gro-list"]': { kind: "add", inputDiff: true },
      "features.tso": { kind: "delete", inputDiff: true },
    });
    const same = offloads.diff("id", olds, offloadInputs({ features: { gro: true, tso: false } }));
    expect(same.changes).toBe(false);
    // The same feature under its long name changes no host.
    const renamed = offloads.diff(
      "id",
      olds,
      offloadInputs({ features: { "generic-receive-offload": true, tso: false } }),
    );
    expect(renamed.detailedDiff).toEqual({});
    expect(
      offloads.diff(
        "id",
        olds,
        offloadInputs({ interface: "eth1", features: { gro: true, tso: false } }),
      ).replaces,
    ).toEqual(["interface"]);
    expect(
      offloads.diff("id", olds, {
        ...offloadInputs({ features: { gro: true, tso: false } }),
        connection: { ...olds.connection, host: "198.18.9.10" },
      }).replaces,
    ).toEqual(["connection"]);
    expect(
      offloads.diff(
        "id",
        olds,
        offloadInputs({ features: { gro: true, tso: false }, persist: false }),
      ).detailedDiff,
    ).toEqual({
      persist: { kind: "update", inputDiff: true },
    });
    expect(
      offloads.diff(
        "id",
        olds,
        offloadInputs({ features: { gro: true, tso: false }, rollbackAfter: 20 }),
      ).detailedDiff,
    ).toEqual({ rollbackAfter: { kind: "update", inputDiff: true } });
    // State from before rollbackAfter existed had the default: no change on upgrade.
    const { rollbackAfter: _r, ...older } = olds;
    expect(
      offloads.diff(
        "id",
        older as NicOffloadsOutputs,
        offloadInputs({ features: { gro: true, tso: false } }),
      ).changes,
    ).toBe(false);
  });

  it("update: applies only what changed, restores a removed feature, rewrites the unit", async () => {
    const { h, ctx } = await fake(VETH);
    const { id, outs } = await offloads.create(
      offloadInputs({ features: { gro: true, tso: false } }),
      ctx,
    );
    h.resetLog();
    const news = offloadInputs({ features: { gro: true, sg: true, "rx-gro-list": true } });
    const next = await offloads.update(id, outs, news, ctx);
    expect(h.stats.execs).toBe(2);
    expect(h.setCalls()).toEqual(["ethtool -K eth0 rx-gro-list on tcp-segmentation-offload on"]);
    expect(next.originals).toEqual({
      "generic-receive-offload": false,
      "scatter-gather": true,
      "rx-gro-list": false,
    });
    expect(on(h, "eth0", "tcp-segmentation-offload")).toBe(true);
    expect(h.units()["nettune-nicoffloads-eth0-offloads.service"]).toContain(
      "ethtool -K eth0 gro on sg on rx-gro-list on",
    );
  });

  it("update: persist false removes the unit and changes nothing live", async () => {
    const { h, ctx } = await fake(VETH);
    const { id, outs } = await offloads.create(offloadInputs({ features: { gro: true } }), ctx);
    h.resetLog();
    const next = await offloads.update(
      id,
      outs,
      offloadInputs({ features: { gro: true }, persist: false }),
      ctx,
    );
    expect(next.unitPath).toBeNull();
    expect(h.units()).toEqual({});
    expect(h.setCalls()).toEqual([]);
  });

  it("delete: restores every original in one ethtool -K and removes the unit", async () => {
    const { h, ctx } = await fake(VETH);
    const { id, outs } = await offloads.create(
      offloadInputs({ features: { gro: true, tso: false, "rx-gro-list": true } }),
      ctx,
    );
    h.resetLog();
    await offloads.delete(id, outs, ctx);
    expect(h.stats.execs).toBe(2);
    expect(h.setCalls()).toEqual(["ethtool -K eth0 gro off tso on rx-gro-list off"]);
    expect(warnings).toEqual([]);
    expect(h.units()).toEqual({});
    expect(h.enabled.size).toBe(0);
    expect(h.run("ethtool", ["-k", "eth0"]).stdout).toBe(
      fixtureText("ethtool", "veth-b.k.txt").replace("Features for b:", "Features for eth0:"),
    );
  });

  it("delete: a feature changed outside nettune is left as it is, with a warning", async () => {
    const { h, ctx } = await fake(VETH);
    // GRO was already off: nettune changed nothing, someone turned it on since.
    const { id, outs } = await offloads.create(
      offloadInputs({ features: { gro: false, tso: false } }),
      ctx,
    );
    h.run("ethtool", ["-K", "eth0", "gro", "on"]);
    h.resetLog();
    await offloads.delete(id, outs, ctx);
    expect(h.setCalls()).toEqual(["ethtool -K eth0 tso on"]);
    expect(warnings).toEqual([
      "features.gro: left at on on eth0 (driver veth): it was changed outside nettune after it was set to off",
    ]);
  });

  it("delete: an interface that is gone is a warning; the unit is still removed", async () => {
    const { h, ctx } = await fake(VETH);
    const { id, outs } = await offloads.create(offloadInputs({ features: { gro: true } }), ctx);
    await offloads.delete(id, { ...outs, interface: "eth7" }, ctx);
    expect(warnings).toEqual([`no interface eth7 on ${TARGET}; nothing to restore`]);
    expect(h.units()).toEqual({});
  });
});

describe("NicOffloads read-back on real feature dependencies", () => {
  it("GSO asked on while scatter-gather is off reads as off (ethtool: off [requested on])", () => {
    const f = parseEthtoolFeatures(fixtureText("ethtool", "veth-b-sg-off.k.txt"));
    expect(featureState(f, "generic-segmentation-offload")).toEqual({
      on: false,
      fixed: false,
      pending: "generic-segmentation-offload is off [requested on]",
    });
  });

  it("a group with a member off [requested on] reads as that member (tun0's tx-checksumming)", () => {
    const f = parseEthtoolFeatures(fixtureText("ethtool", "tun-tun0.k.txt"));
    const s = featureState(f, "tx-checksumming");
    expect(s?.on).toBe(false);
    expect(s?.pending).toBe("tx-checksum-ip-generic is off [requested on]");
  });

  it("a group whose members are all fixed is fixed (veth's fixed single features)", () => {
    const f = parseEthtoolFeatures(fixtureText("ethtool", "veth-b.k.txt"));
    expect(featureState(f, "large-receive-offload")).toEqual({ on: false, fixed: true });
    expect(featureState(f, "tx-checksumming")).toEqual({ on: true, fixed: false });
  });
});

// ---------------------------------------------------------------------------------------------

describe("RssQueues: check (no host)", () => {
  const base = {
    connection: CONNECTION,
    interface: "eth0",
    unitName: "nettune-rssqueues-x.service",
  };
  it.each([
    ["combined with rx", { combined: 4, rx: 2 }, /^combined: combined excludes rx and tx/],
    ["zero", { rx: 0 }, /^rx: must be at least 1 \(got 0\)/],
    ["fraction", { tx: 1.5 }, /^tx: expected an integer/],
    ["word", { combined: "all" }, /^combined: expected a positive integer or "max"/],
    ["nothing", {}, /^: declare combined, rx and\/or tx, or indirection/],
    [
      "equal and weights",
      { indirection: { equal: 2, weights: [1, 1] } },
      /^indirection: indirection takes exactly one/,
    ],
    [
      "zero weights",
      { indirection: { weights: [0, 0] } },
      /^indirection\.weights: at least one weight/,
    ],
    [
      "negative weight",
      { indirection: { weights: [1, -1] } },
      /^indirection\.weights\.1: weights must not be negative/,
    ],
    ["unknown field", { indirection: { even: 2 } }, /^indirection: /],
  ])("%s", (_label, extra, re) => {
    expect(schemaFailures(rssQueuesSchema, { ...base, ...extra })[0]).toMatch(re);
  });
});

describe("RssQueues", () => {
  it("preview on veth: combined, a count above the maximum and indirection each fail naming the field", async () => {
    const { h, ctx } = await fake(VETH);
    expect(await rss.hostCheck!(rssInputs({ combined: 2 }), ctx)).toEqual([
      {
        property: "combined",
        reason:
          "eth0 (driver veth) has separate rx/tx channels, not combined ones: set rx and tx instead",
      },
    ]);
    expect(await rss.hostCheck!(rssInputs({ rx: 8, tx: 2 }), ctx)).toEqual([
      {
        property: "rx",
        reason: "8 is more than the maximum of 4 rx channels on eth0 (driver veth)",
      },
    ]);
    h.resetLog();
    expect(await rss.hostCheck!(rssInputs({ rx: 2, indirection: { equal: 2 } }), ctx)).toEqual([
      {
        property: "indirection",
        reason: "RSS indirection is not supported by driver veth on eth0",
      },
    ]);
    expect(h.stats.execs).toBe(1);
    expect(h.calls.map((c) => c.join(" "))).toEqual([
      "ethtool -i eth0",
      "ip -d -j link show dev eth0",
      "ethtool -l eth0",
      "ethtool -x eth0",
    ]);
  });

  it("preview on virtio_net, bridge and tun: combined-only, unsupported, and its RSS", async () => {
    const { ctx } = await fake(
      VIRTIO,
      { fixture: "bridge-br0", ifname: "br0" },
      { fixture: "tun-tun0", ifname: "tun0" },
    );
    expect(await rss.hostCheck!(rssInputs({ rx: 1 }), ctx)).toEqual([
      {
        property: "rx",
        reason:
          "eth0 (driver virtio_net) has combined channels only, no separate rx ones: set combined instead",
      },
    ]);
    expect(await rss.hostCheck!(rssInputs({ combined: 2 }), ctx)).toEqual([
      {
        property: "combined",
        reason: "2 is more than the maximum of 1 combined channels on eth0 (driver virtio_net)",
      },
    ]);
    expect(
      await rss.hostCheck!(rssInputs({ combined: "max", indirection: { equal: 1 } }), ctx),
    ).toEqual([
      {
        property: "indirection",
        reason: "RSS indirection is not supported by driver virtio_net on eth0",
      },
    ]);
    expect(await rss.hostCheck!(rssInputs({ interface: "br0", rx: 1 }), ctx)).toEqual([
      { property: "rx", reason: "channel counts are not supported by driver bridge on br0" },
    ]);
    expect(await rss.hostCheck!(rssInputs({ interface: "tun0", combined: "max" }), ctx)).toEqual(
      [],
    );
  });

  it("create on veth: rx 2 tx 2 with one ethtool -L, verified, unit written; destroy puts back 4/4", async () => {
    const { h, ctx } = await fake(VETH);
    const { id, outs } = await rss.create(rssInputs({ rx: 2, tx: 2 }), ctx);
    expect(h.stats.execs).toBe(2);
    expect(h.setCalls()).toEqual(["ethtool -L eth0 rx 2 tx 2"]);
    expect(outs.originals).toEqual({ rx: 4, tx: 4, combined: null });
    expect(outs.maximums).toEqual({ rx: 4, tx: 4, combined: null });
    expect(outs.applied).toEqual({ rx: 2, tx: 2 });
    expect(h.run("ethtool", ["-l", "eth0"]).stdout).toBe(
      fixtureText("ethtool", "veth-b-after-L.l.txt").replace("for b:", "for eth0:"),
    );
    expect(h.units()["nettune-rssqueues-eth0-rss.service"]).toMatchSnapshot();
    h.resetLog();
    await rss.delete(id, outs, ctx);
    expect(h.stats.execs).toBe(2);
    expect(h.setCalls()).toEqual(["ethtool -L eth0 rx 4 tx 4"]);
    expect(h.units()).toEqual({});
    expect(warnings).toEqual([]);
  });

  it('"max" already in place changes nothing live and still persists', async () => {
    const { h, ctx } = await fake(VETH);
    const { outs } = await rss.create(rssInputs({ rx: "max", tx: "max" }), ctx);
    expect(h.setCalls()).toEqual([]);
    expect(outs.applied).toEqual({ rx: 4, tx: 4 });
    expect(h.units()["nettune-rssqueues-eth0-rss.service"]).toContain("ethtool -L eth0 rx 4 tx 4");
  });

  it("counts the driver does not take fail by read-back and are put back", async () => {
    const { h, ctx } = await fake(VETH);
    h.device("eth0").channelsStuck = true; // synthetic: accepts -L and keeps its counts
    await expect(rss.create(rssInputs({ rx: 2 }), ctx)).rejects.toThrow(
      /^rx: requested 2, driver reports 4 on eth0 \(driver veth\)\non root@198\.18\.9\.9:22; nothing was changed$/,
    );
    expect(h.units()).toEqual({});
  });

  it("read shows drift, and a declared max stays max", async () => {
    const { h, ctx } = await fake(VETH);
    const { id, outs } = await rss.create(rssInputs({ rx: 2, tx: "max" }), ctx);
    h.run("ethtool", ["-L", "eth0", "rx", "3"]);
    const r = await rss.read(id, outs, ctx);
    expect(r.inputs).toEqual(rssInputs({ rx: 3, tx: "max" }));
    expect(rss.diff(id, r.props, rssInputs({ rx: 2, tx: "max" })).detailedDiff).toEqual({
      rx: { kind: "update", inputDiff: true },
    });
  });

  it("update: a count no longer declared gets its original back", async () => {
    const { h, ctx } = await fake(VETH);
    const { id, outs } = await rss.create(rssInputs({ rx: 2, tx: 2 }), ctx);
    h.resetLog();
    const next = await rss.update(id, outs, rssInputs({ rx: 1 }), ctx);
    expect(h.setCalls()).toEqual(["ethtool -L eth0 rx 1 tx 4"]);
    expect(next.applied).toEqual({ rx: 1 });
    expect(next.originals).toEqual({ rx: 4, tx: 4, combined: null });
    expect(h.units()["nettune-rssqueues-eth0-rss.service"]).toContain("ethtool -L eth0 rx 1'");
  });

  describe("synthetic: a combined-channel NIC with an RSS table (no such device was captured)", () => {
    const NIC: DeviceOptions = {
      ...VIRTIO,
      rssTableSize: 128,
      channels: { max: { combined: 8 }, current: { combined: 8 } },
    };

    it("shrinking moves the table first, then the channels; verified; delete puts the default back", async () => {
      const { h, ctx } = await fake(NIC);
      const { id, outs } = await rss.create(
        rssInputs({ combined: 4, indirection: { equal: 2 } }),
        ctx,
      );
      expect(h.setCalls()).toEqual(["ethtool -X eth0 equal 2", "ethtool -L eth0 combined 4"]);
      expect(outs.indirectionSet).toBe(true);
      const table = (h.device("eth0").rss as { table: number[] }).table;
      expect(bucketCounts(table)).toEqual([64, 64]);
      expect(h.units()["nettune-rssqueues-eth0-rss.service"]).toMatchSnapshot();
      h.resetLog();
      await rss.delete(id, outs, ctx);
      // The default again after the count: virtio_net, for one, does not spread a default
      // table over queues added later (seen on a VM sandbox host, test/engine/vm.test.ts).
      expect(h.setCalls()).toEqual([
        "ethtool -X eth0 default",
        "ethtool -L eth0 combined 8",
        "ethtool -X eth0 default",
      ]);
      expect(bucketCounts((h.device("eth0").rss as { table: number[] }).table)).toEqual(
        Array(8).fill(16),
      );
    });

    it("growing sets the channels first; weights read back as declared; drift on refresh", async () => {
      const { h, ctx } = await fake({
        ...NIC,
        channels: { max: { combined: 8 }, current: { combined: 2 } },
      });
      const { id, outs } = await rss.create(
        rssInputs({ combined: 4, indirection: { weights: [3, 1, 0, 0] } }),
        ctx,
      );
      expect(h.setCalls()).toEqual([
        "ethtool -L eth0 combined 4",
        "ethtool -X eth0 weight 3 1 0 0",
      ]);
      expect(bucketCounts((h.device("eth0").rss as { table: number[] }).table)).toEqual([96, 32]);
      const same = await rss.read(id, outs, ctx);
      expect(same.inputs.indirection).toEqual({ weights: [3, 1, 0, 0] });
      h.run("ethtool", ["-X", "eth0", "equal", "3"]);
      const drift = await rss.read(id, outs, ctx);
      expect(drift.inputs.indirection).toEqual({ equal: 3 });
    });

    it("update: a table already in place is not written again; removing it puts the default back", async () => {
      const { h, ctx } = await fake(NIC);
      const { id, outs } = await rss.create(
        rssInputs({ combined: 4, indirection: { equal: 2 } }),
        ctx,
      );
      h.resetLog();
      const next = await rss.update(
        id,
        outs,
        rssInputs({ combined: 6, indirection: { equal: 2 } }),
        ctx,
      );
      expect(h.setCalls()).toEqual(["ethtool -L eth0 combined 6"]);
      expect(bucketCounts((h.device("eth0").rss as { table: number[] }).table)).toEqual([64, 64]);
      h.resetLog();
      await rss.update(id, next, rssInputs({ combined: 6 }), ctx);
      expect(h.setCalls()).toEqual(["ethtool -X eth0 default"]);
      expect(bucketCounts((h.device("eth0").rss as { table: number[] }).table)).toHaveLength(6);
    });

    it("equal above the queues it will have fails at preview naming indirection.equal", async () => {
      const { ctx } = await fake(NIC);
      expect(
        await rss.hostCheck!(rssInputs({ combined: 2, indirection: { equal: 4 } }), ctx),
      ).toEqual([
        {
          property: "indirection.equal",
          reason: "equal 4 but eth0 (driver virtio_net) will have 2 rx queues",
        },
      ]);
    });
  });

  it("tableMatches follows ethtool's rounding", () => {
    expect(tableMatches([0, 1, 2, 0, 1, 2, 0, 1], { equal: 3 })).toBe(true);
    expect(tableMatches([0, 0, 0, 1], { weights: [3, 1] })).toBe(true);
    expect(tableMatches([0, 1, 0, 1], { weights: [3, 1] })).toBe(false);
    expect(tableMatches([0, 1, 2, 3], { equal: 2 })).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------

describe("NicRings", () => {
  it("preview on veth: ring sizes are not supported, naming the declared field", async () => {
    const { ctx } = await fake(VETH);
    expect(await rings.hostCheck!(ringInputs({ rx: 1024 }), ctx)).toEqual([
      { property: "rx", reason: "ring sizes are not supported by driver veth on eth0" },
    ]);
    expect(await rings.hostCheck!(ringInputs({ tx: "max" }), ctx)).toEqual([
      { property: "tx", reason: "ring sizes are not supported by driver veth on eth0" },
    ]);
  });

  it("check (no host): nothing declared, zero, above the absolute limit", () => {
    const base = {
      connection: CONNECTION,
      interface: "eth0",
      unitName: "nettune-nicrings-x.service",
    };
    expect(schemaFailures(nicRingsSchema, base)[0]).toMatch(/declare rx, tx or both/);
    expect(schemaFailures(nicRingsSchema, { ...base, rx: 0 })[0]).toMatch(
      /^rx: must be at least 1/,
    );
    expect(schemaFailures(nicRingsSchema, { ...base, tx: 1e6 })[0]).toMatch(
      /^tx: must be at most 65536/,
    );
  });

  it("preview on virtio_net: above the maximum fails naming rx and the maximum", async () => {
    const { ctx } = await fake(VIRTIO);
    expect(await rings.hostCheck!(ringInputs({ rx: 512 }), ctx)).toEqual([
      {
        property: "rx",
        reason: "512 is more than the maximum rx ring size of 256 on eth0 (driver virtio_net)",
      },
    ]);
  });

  it("create on virtio_net: only the size that differs is set, verified, persisted; delete restores", async () => {
    const { h, ctx } = await fake(VIRTIO);
    const { id, outs } = await rings.create(ringInputs({ rx: 128, tx: "max" }), ctx);
    expect(h.stats.execs).toBe(2);
    expect(h.setCalls()).toEqual(["ethtool -G eth0 rx 128"]);
    expect(outs.originals).toEqual({ rx: 256, tx: 256 });
    expect(outs.applied).toEqual({ rx: 128, tx: 256 });
    expect(h.units()["nettune-nicrings-eth0-rings.service"]).toMatchSnapshot();
    const r = await rings.read(id, outs, ctx);
    expect(r.inputs).toEqual(ringInputs({ rx: 128, tx: "max" }));
    h.resetLog();
    await rings.delete(id, outs, ctx);
    expect(h.setCalls()).toEqual(["ethtool -G eth0 rx 256"]);
    expect(h.units()).toEqual({});
  });

  it("synthetic: a driver that rounds the size fails by read-back and the old size is put back", async () => {
    const { h, ctx } = await fake(VIRTIO);
    h.device("eth0").roundRing = (n) => 2 ** Math.ceil(Math.log2(n));
    await expect(rings.create(ringInputs({ rx: 100 }), ctx)).rejects.toThrow(
      /^rx: requested 100, driver reports 128 on eth0 \(driver virtio_net\)\non root@198\.18\.9\.9:22; rx 256 put back$/,
    );
    expect(h.setCalls()).toEqual(["ethtool -G eth0 rx 100", "ethtool -G eth0 rx 256"]);
    expect(h.units()).toEqual({});
  });

  it("diff names rx and tx; interface change replaces", () => {
    const olds = { ...ringInputs({ rx: 512 }) } as NicRingsOutputs;
    expect(rings.diff("id", olds, ringInputs({ rx: 1024, tx: 512 })).detailedDiff).toEqual({
      rx: { kind: "update", inputDiff: true },
      tx: { kind: "add", inputDiff: true },
    });
    expect(rings.diff("id", olds, ringInputs({ interface: "eth1", rx: 512 })).replaces).toEqual([
      "interface",
    ]);
  });
});

describe("RssQueues diff", () => {
  it("names each count and the table", () => {
    const olds = { ...rssInputs({ rx: 2, tx: 2 }) } as RssQueuesOutputs;
    expect(
      rss.diff("id", olds, rssInputs({ rx: 2, tx: "max", indirection: { equal: 2 } })).detailedDiff,
    ).toEqual({
      tx: { kind: "update", inputDiff: true },
      indirection: { kind: "add", inputDiff: true },
    });
    expect(rss.diff("id", olds, rssInputs({ rx: 2, tx: 2 })).changes).toBe(false);
  });
});

const mtuInputs = (extra: Record<string, unknown>) =>
  mtuSchema.parse({ connection: CONNECTION, interface: "eth0", resourceName: "m", ...extra });

describe("preview of a new resource on a host already as declared", () => {
  it("NicOffloads, RssQueues, NicRings and Mtu say so, and only when every declared value is live", async () => {
    // The captured virtio_net NIC: MTU 1400, txqueuelen 1000.
    const { h, ctx } = await fake(VIRTIO);
    const notes: string[] = [];
    const c: HandlerContext = { ...ctx, note: (m) => notes.push(m) };
    const gro = on(h, "eth0", "generic-receive-offload")!;
    const tso = on(h, "eth0", "tcp-segmentation-offload")!;
    const check = async (run: () => Promise<unknown>) => {
      notes.length = 0;
      expect(await run()).toEqual([]);
      return notes.length > 0 ? notes : [];
    };
    // The captured virtio_net NIC: 1 combined channel (its maximum), rings 256/256.
    const asIs = [
      () => offloads.hostCheck!(offloadInputs({ features: { gro, tso } }), c),
      () => rss.hostCheck!(rssInputs({ combined: 1 }), c),
      () => rss.hostCheck!(rssInputs({ combined: "max" }), c),
      () => rings.hostCheck!(ringInputs({ rx: 256, tx: "max" }), c),
      () => mtu.hostCheck!(mtuInputs({ mtu: 1400, txQueueLength: 1000 }), c),
    ];
    for (const run of asIs)
      expect(await check(run)).toEqual([
        `already as declared on ${TARGET}: creating it changes no setting there ` +
          "(it records the values it finds as the originals and writes its own files and units)",
      ]);
    const changing = [
      () => offloads.hostCheck!(offloadInputs({ features: { gro, tso: !tso } }), c),
      () => rings.hostCheck!(ringInputs({ rx: 128, tx: 256 }), c),
      () => mtu.hostCheck!(mtuInputs({ mtu: 1500 }), c),
      () => mtu.hostCheck!(mtuInputs({ mtu: 1400, txQueueLength: 500 }), c),
    ];
    for (const run of changing) expect(await check(run)).toEqual([]);
    // Nothing was set: preview reads only.
    expect(h.setCalls()).toEqual([]);
  });
});
