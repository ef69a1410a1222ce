/**
 * NetworkTuning under Pulumi's mocks: which children it registers, in what order, with which
 * dependencies and inputs; how overrides merge into a profile; and that bad args fail naming
 * the field before anything is registered.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeEach, describe, expect, test, vi } from "vitest";
import {
  NetworkTuning,
  TUNING_ORDER,
  mergeTuning,
  type NetworkTuningArgs,
  type TuningModel,
} from "../../src/resources/networkTuning";
import { profileWithLazy } from "../../src/profiles/model";
import { stackTag } from "../../src/schemas/names";
import { registrations, settle, useTuningMocks, valueOf } from "../helpers/tuningMocks";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-tuning-"));
const OBJECT = path.join(tmp, "pass.o");
fs.writeFileSync(OBJECT, "\x7fELF pretend object");
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let hostN = 0;
/** A host of its own for each component: the one-owner claims are per host. */
const connection = () => ({ host: `198.18.7.${++hostN}`, user: "root", password: "pw" });

/** A model with every part. */
const FULL: TuningModel = {
  queues: { combined: "max" },
  rss: { equal: 2 },
  irq: { policy: "spread", irqbalance: "ban" },
  steering: { rps: "0-3", xps: { rxqs: { 0: "0" } } },
  rings: { rx: "max", tx: 1024 },
  offloads: { features: { gro: true, lro: false } },
  mtu: { mtu: 9000, verifyPeers: ["198.18.0.9"] },
  congestion: { algorithm: "bbr", qdisc: "fq" },
  sysctls: { "net.core.somaxconn": 16384 },
  sysctlOptions: { behindNat: true },
  xdp: { program: { objectPath: OBJECT }, programName: "xdp_pass", mode: "generic" },
};

const DYNAMIC = "pulumi-nodejs:dynamic/nettune:";

function children(componentName: string) {
  const parent = registrations.find((r) => r.name === componentName);
  if (!parent) throw new Error(`${componentName} was not registered`);
  return registrations.filter((r) => r.parent === parent.urn);
}

beforeEach(async () => {
  await useTuningMocks();
});

describe("children and their order", () => {
  test("every part of the model is a child, created in TUNING_ORDER, each depending on all before it", async () => {
    const t = new NetworkTuning("edge", { connection: connection(), interface: "eth0", ...FULL });
    await settle(t, t.resources);

    const component = registrations.find((r) => r.name === "edge")!;
    expect(component.type).toBe("nettune:index:NetworkTuning");
    expect(component.parent).toBe(""); // a stack-level component

    const kids = children("edge");
    expect(kids.map((k) => [k.name, k.type])).toEqual(
      TUNING_ORDER.map((s) => [`edge-${s.child}`, `${DYNAMIC}${s.kind}`]),
    );
    expect(kids.map((k) => k.type.slice(DYNAMIC.length))).toEqual([
      "RssQueues",
      "IrqAffinity",
      "PacketSteering",
      "NicRings",
      "NicOffloads",
      "Mtu",
      "CongestionControl",
      "SysctlSet",
      "XdpProgram",
    ]);
    // The dependencies the engine receives: every earlier child, and nothing else.
    kids.forEach((k, i) => {
      expect(new Set(k.dependencies), k.name).toEqual(new Set(kids.slice(0, i).map((e) => e.urn)));
    });
    // The class exposes the same children, in the same order.
    expect(t.resources).toEqual([
      t.queues,
      t.irqs,
      t.steering,
      t.rings,
      t.offloads,
      t.mtu,
      t.congestion,
      t.sysctls,
      t.xdp,
    ]);
  });

  test("each child gets the host, the interface where it has one, and its part of the model", async () => {
    const conn = connection();
    const t = new NetworkTuning("parts", { connection: conn, interface: "ens5", ...FULL });
    await settle(t, t.resources);
    const byKind = Object.fromEntries(
      children("parts").map((k) => [k.type.slice(DYNAMIC.length), k.inputs]),
    );
    for (const inputs of Object.values(byKind)) expect(inputs.connection).toEqual(conn);
    expect(byKind.RssQueues).toMatchObject({
      interface: "ens5",
      combined: "max",
      indirection: { equal: 2 },
    });
    expect(byKind.IrqAffinity).toMatchObject({ policy: "spread", irqbalance: "ban" });
    expect(byKind.PacketSteering).toMatchObject({ rps: "0-3", xps: { rxqs: { 0: "0" } } });
    expect(byKind.NicRings).toMatchObject({ interface: "ens5", rx: "max", tx: 1024 });
    expect(byKind.Mtu).toMatchObject({ mtu: 9000, verifyPeers: ["198.18.0.9"] });
    // Host-wide parts have no interface.
    expect(byKind.CongestionControl).toMatchObject({ algorithm: "bbr", qdisc: "fq" });
    expect(byKind.CongestionControl).not.toHaveProperty("interface");
    expect(byKind.SysctlSet).toMatchObject({
      values: { "net.core.somaxconn": 16384 },
      behindNat: true,
      // The stack's tag: project "project", stack "stack" (../helpers/tuningMocks.ts).
      fileName: `90-nettune-parts-sysctls-${stackTag("project", "stack")}.conf`,
    });
    expect(byKind.XdpProgram).toMatchObject({
      interface: "ens5",
      programName: "xdp_pass",
      mode: "generic",
    });
  });

  test("only the parts the model sets create children, still in order", async () => {
    const t = new NetworkTuning("few", {
      connection: connection(),
      interface: "eth0",
      sysctls: { "net.ipv4.tcp_fin_timeout": 30 },
      mtu: 1400,
      offloads: { features: { tso: true } },
    });
    await settle(t, t.resources);
    const kids = children("few");
    expect(kids.map((k) => k.name)).toEqual(["few-offloads", "few-mtu", "few-sysctls"]);
    expect(kids.map((k) => k.dependencies.length)).toEqual([0, 1, 2]);
    expect(kids[1]!.inputs).toMatchObject({ mtu: 1400 });
    expect([t.queues, t.irqs, t.steering, t.rings, t.congestion, t.xdp]).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  });

  test("a model with nothing in it creates no child", async () => {
    const t = new NetworkTuning("none", { connection: connection(), interface: "eth0" });
    await settle(t, []);
    expect(children("none")).toEqual([]);
    expect(t.resources).toEqual([]);
  });

  test("two NetworkTunings in one stack have children of their own names", async () => {
    const a = new NetworkTuning("host-a", {
      connection: connection(),
      interface: "eth0",
      queues: { combined: 2 },
      sysctls: { "net.core.somaxconn": 1024 },
    });
    const b = new NetworkTuning("host-b", {
      connection: connection(),
      interface: "eth0",
      queues: { combined: 2 },
      sysctls: { "net.core.somaxconn": 1024 },
    });
    await settle(a, a.resources);
    await settle(b, b.resources);
    expect(children("host-a").map((k) => k.name)).toEqual(["host-a-queues", "host-a-sysctls"]);
    expect(children("host-b").map((k) => k.name)).toEqual(["host-b-queues", "host-b-sysctls"]);
    const units = [...children("host-a"), ...children("host-b")].map(
      (k) => k.inputs.unitName ?? k.inputs.fileName,
    );
    expect(new Set(units).size).toBe(4);
  });

  test("chosen reports what the host resolved", async () => {
    const t = new NetworkTuning("chosen", {
      connection: connection(),
      interface: "eth0",
      queues: { combined: "max" },
      irq: { policy: "spread" },
      rings: { rx: "max" },
      congestion: { algorithm: "bbr", qdisc: "fq" },
    });
    await settle(t, t.resources);
    const chosen = await valueOf(t.chosen);
    // The mocks answer as a host would (test/helpers/tuningMocks.ts).
    expect(chosen.queues).toEqual({ combined: 4 });
    expect(chosen.irqs?.[0]).toMatchObject({ queue: 0, cpus: "2" });
    expect(chosen.rings).toEqual({ rx: 4096 });
    expect(chosen.congestion).toEqual({
      observedAlgorithm: "bbr",
      modules: ["tcp_bbr", "sch_fq"],
    });
    expect(chosen.xdp).toBeUndefined();
  });

  test("jumbo frames without verifyPeers draw a warning; with them, none", () => {
    const warn = vi.spyOn(pulumi.log, "warn");
    try {
      new NetworkTuning("jumbo", { connection: connection(), interface: "eth0", mtu: 9000 });
      new NetworkTuning("jumbo-checked", {
        connection: connection(),
        interface: "eth0",
        mtu: { mtu: 9000, verifyPeers: ["198.18.0.9"] },
      });
      const messages = warn.mock.calls.map((c) => String(c[0]));
      expect(messages.filter((m) => m.includes("without verifyPeers"))).toHaveLength(1);
    } finally {
      warn.mockRestore();
    }
  });
});

describe("overrides", () => {
  const profile: TuningModel = {
    queues: { combined: "max" },
    offloads: { features: { gro: true, lro: false, tso: true } },
    congestion: { algorithm: "bbr", qdisc: "fq" },
    sysctls: {
      "net.core.somaxconn": 16384,
      "net.ipv4.tcp_tw_reuse": 1,
      "net.ipv4.tcp_fin_timeout": 30,
    },
  };

  test("a field given replaces the profile's field whole", () => {
    const m = mergeTuning(profile, { offloads: { features: { gso: true } } });
    expect(m.offloads).toEqual({ features: { gso: true } });
    expect(m.queues).toBe(profile.queues);
  });

  test("null drops a field; undefined or left out keeps the profile's", () => {
    const m = mergeTuning(profile, { congestion: null, queues: undefined });
    expect(m).not.toHaveProperty("congestion");
    expect(m.queues).toEqual({ combined: "max" });
  });

  test("sysctls merge key by key: a value replaces, null drops the key, the rest stay", () => {
    const m = mergeTuning(profile, {
      sysctls: {
        "net.core.somaxconn": 65535,
        "net.ipv4.tcp_tw_reuse": null,
        "net.ipv4.tcp_fastopen": 3,
        "net.ipv4.tcp_fin_timeout": undefined,
      },
    });
    expect(m.sysctls).toEqual({
      "net.core.somaxconn": 65535,
      "net.ipv4.tcp_fin_timeout": 30,
      "net.ipv4.tcp_fastopen": 3,
    });
  });

  test("sysctls: null drops every key, and a sysctls emptied key by key is no part", () => {
    expect(mergeTuning(profile, { sysctls: null })).not.toHaveProperty("sysctls");
    const emptied = mergeTuning(
      { sysctls: { "net.core.somaxconn": 1 } },
      { sysctls: { "net.core.somaxconn": null } },
    );
    expect(emptied).toEqual({});
  });

  test("mtu: 9000 is mtu: { mtu: 9000 }", () => {
    expect(mergeTuning(undefined, { mtu: 9000 }).mtu).toEqual({ mtu: 9000 });
  });

  test("the profile and the overrides are left as they were", () => {
    const before = JSON.stringify(profile);
    const over = { sysctls: { "net.core.somaxconn": null } };
    mergeTuning(profile, over);
    expect(JSON.stringify(profile)).toBe(before);
    expect(over).toEqual({ sysctls: { "net.core.somaxconn": null } });
  });

  test("the component applies the same merge: the SysctlSet gets the merged keys", async () => {
    const t = new NetworkTuning("merged", {
      connection: connection(),
      interface: "eth0",
      profile,
      congestion: null,
      sysctls: { "net.ipv4.tcp_tw_reuse": null, "net.core.somaxconn": 4096 },
    });
    await settle(t, t.resources);
    const kids = children("merged");
    expect(kids.map((k) => k.name)).toEqual(["merged-queues", "merged-offloads", "merged-sysctls"]);
    expect(kids[2]!.inputs.values).toEqual({
      "net.core.somaxconn": 4096,
      "net.ipv4.tcp_fin_timeout": 30,
    });
  });
});

/** The error a NetworkTuning throws, and that nothing at all was registered. */
function refusal(name: string, args: Partial<NetworkTuningArgs> & Record<string, unknown>): string {
  const before = registrations.length;
  let message = "";
  try {
    new NetworkTuning(name, {
      connection: connection(),
      interface: "eth0",
      ...args,
    });
  } catch (e) {
    message = (e as Error).message;
  }
  expect(message, "NetworkTuning should have refused").not.toBe("");
  expect(registrations.length).toBe(before);
  return message;
}

describe("one owner per setting", () => {
  test("tcp_congestion_control in sysctls and congestion is refused, naming both fields", () => {
    const msg = refusal("two-cc", {
      congestion: { algorithm: "bbr" },
      sysctls: { "net.ipv4.tcp_congestion_control": "bbr" },
    });
    expect(msg).toContain(`NetworkTuning two-cc:`);
    expect(msg).toContain(`sysctls["net.ipv4.tcp_congestion_control"]`);
    expect(msg).toContain("congestion.algorithm");
  });

  test("also when the key comes from the profile and congestion from the overrides", () => {
    const msg = refusal("two-cc-profile", {
      profile: { sysctls: { "net.ipv4.tcp_congestion_control": "cubic" } },
      congestion: { algorithm: "bbr" },
    });
    expect(msg).toMatch(/net\.ipv4\.tcp_congestion_control.*also set by/);
  });

  test("default_qdisc with congestion.qdisc, rps_sock_flow_entries with steering.rfs", () => {
    const q = refusal("two-qdisc", {
      congestion: { algorithm: "bbr", qdisc: "fq" },
      sysctls: { "net.core.default_qdisc": "fq" },
    });
    expect(q).toContain(`sysctls["net.core.default_qdisc"]`);
    expect(q).toContain("congestion.qdisc");
    const rfs = refusal("two-rfs", {
      steering: { rfs: { flowEntries: 32768 } },
      sysctls: { "net.core.rps_sock_flow_entries": 32768 },
    });
    expect(rfs).toContain(`sysctls["net.core.rps_sock_flow_entries"]`);
    expect(rfs).toContain("steering.rfs.flowEntries");
  });

  test("dropping one owner with null is accepted", async () => {
    const t = new NetworkTuning("one-cc", {
      connection: connection(),
      interface: "eth0",
      profile: { sysctls: { "net.ipv4.tcp_congestion_control": "cubic", "net.core.somaxconn": 1 } },
      sysctls: { "net.ipv4.tcp_congestion_control": null },
      congestion: { algorithm: "bbr" },
    });
    await settle(t, t.resources);
    expect(children("one-cc").map((k) => k.name)).toEqual(["one-cc-congestion", "one-cc-sysctls"]);
    // Without congestion, sysctls may set the algorithm itself.
    const alone = new NetworkTuning("cc-in-sysctls", {
      connection: connection(),
      interface: "eth0",
      sysctls: { "net.ipv4.tcp_congestion_control": "bbr" },
    });
    await settle(alone, alone.resources);
    expect(children("cc-in-sysctls").map((k) => k.name)).toEqual(["cc-in-sysctls-sysctls"]);
  });
});

describe("bad input fails naming the field, before anything is registered", () => {
  test.each([
    ["an unknown field of the args", { mtuu: 9000 }, /(?:^|bad: )mtuu: unknown field/m],
    [
      "an unknown field of the profile",
      { profile: { queuez: {} } },
      /(?:^|bad: )profile\.queuez: unknown field/m,
    ],
    [
      "an unknown field inside a part",
      { queues: { combinedd: 4 } },
      /(?:^|bad: )queues\.combinedd: unknown field/m,
    ],
    ["a part of the wrong type", { mtu: "9000" }, /(?:^|bad: )mtu: must be a number or an object/m],
    [
      "a part of the wrong type in the profile",
      { profile: { irq: "spread" } },
      /(?:^|bad: )profile\.irq: must be/m,
    ],
    ["an MTU out of range", { mtu: 20 }, /(?:^|bad: )mtu\.mtu: mtu must be at least 68/m],
    [
      "a count of 0",
      { queues: { combined: 0 } },
      /(?:^|bad: )queues\.combined: must be at least 1/m,
    ],
    [
      "combined with rx",
      { queues: { combined: 2, rx: 2 } },
      /(?:^|bad: )queues\.combined: combined excludes rx and tx/m,
    ],
    ["a bad RSS table", { rss: { equal: 0 } }, /(?:^|bad: )rss\.equal: equal must be at least 1/m],
    [
      "a sysctl value",
      { sysctls: { "net.ipv4.tcp_rmem": [4096, 1, 2] } },
      /(?:^|bad: )sysctls\["net\.ipv4\.tcp_rmem"\]: .*min <= default <= max/m,
    ],
    [
      "a sysctl option",
      { sysctls: { "net.core.somaxconn": 1 }, sysctlOptions: { persist: "always" } },
      /(?:^|bad: )sysctlOptions\.persist: /m,
    ],
    [
      "options without sysctls",
      { sysctlOptions: { behindNat: true } },
      /(?:^|bad: )sysctlOptions: set without sysctls/m,
    ],
    [
      "LRO with GRO",
      { offloads: { features: { gro: true, lro: true } } },
      /(?:^|bad: )offloads\.features\.lro: LRO conflicts with GRO/m,
    ],
    ["an IRQ policy", { irq: { policy: "everywhere" } }, /(?:^|bad: )irq\.policy: policy must be/m],
    ["a CPU list", { steering: { rps: "0-x" } }, /(?:^|bad: )steering\.rps: /m],
    ["a ring size", { rings: { rx: -1 } }, /(?:^|bad: )rings\.rx: must be at least 1/m],
    [
      "a qdisc",
      { congestion: { algorithm: "bbr", qdisc: "tbf" } },
      /(?:^|bad: )congestion\.qdisc: /m,
    ],
    [
      "an interface name",
      { interface: "eth0; reboot", mtu: 1500 },
      /(?:^|bad: )interface: must be an interface name/m,
    ],
    [
      "an XDP object that is not there",
      { xdp: { program: { objectPath: "/nonexistent/x.o" }, programName: "xdp_pass" } },
      /(?:^|bad: )xdp\.program\.objectPath: no file/m,
    ],
    [
      "an XDP function name",
      { xdp: { program: { objectPath: OBJECT }, programName: "not a name" } },
      /(?:^|bad: )xdp\.programName: programName must be a C identifier/m,
    ],
  ])("%s", (_what, args, expected) => {
    const msg = refusal("bad", args as Record<string, unknown>);
    expect(msg).toMatch(/^NetworkTuning bad: /);
    expect(msg).toMatch(expected);
  });

  test("every problem is listed at once, one per line", () => {
    const msg = refusal("many", { mtu: 20, queues: { combined: 0 }, foo: 1 });
    expect(msg.split("\n")).toHaveLength(1); // an unknown field stops before the parts are read
    const parts = refusal("parts", { mtu: 20, queues: { combined: 0 } });
    expect(parts.split("\n")).toHaveLength(3);
    expect(parts).toMatch(/^NetworkTuning parts: 2 problems/);
  });

  test("a profile part that cannot be made fails naming it, unless the overrides drop it", async () => {
    const missing = profileWithLazy({ mtu: { mtu: 1500 } }, "xdp", () => {
      throw new Error("nettune.xdp: the program object /x/syn_flood.o is missing");
    });
    const msg = refusal("lazy", { profile: missing });
    expect(msg).toBe(
      "NetworkTuning lazy: profile.xdp: nettune.xdp: the program object /x/syn_flood.o is missing",
    );
    const t = new NetworkTuning("lazy-dropped", {
      connection: connection(),
      interface: "eth0",
      profile: missing,
      xdp: null,
    });
    await settle(t, t.resources);
    expect(children("lazy-dropped").map((k) => k.name)).toEqual(["lazy-dropped-mtu"]);
  });

  test("a part holding an Output is left to its resource's own check at preview", async () => {
    const t = new NetworkTuning("deferred", {
      connection: connection(),
      interface: "eth0",
      irq: { policy: pulumi.output("spread" as const) },
    });
    await settle(t, t.resources);
    expect(children("deferred")[0]!.inputs.policy).toBe("spread");
  });
});

test("TUNING_ORDER is data: every model field belongs to exactly one step", () => {
  const fields = TUNING_ORDER.flatMap((s) => s.fields);
  expect(new Set(fields).size).toBe(fields.length);
  expect(new Set(fields)).toEqual(new Set(Object.keys(FULL)));
  expect(JSON.parse(JSON.stringify(TUNING_ORDER))).toEqual(TUNING_ORDER);
  expect(Object.isFrozen(TUNING_ORDER)).toBe(true);
});
