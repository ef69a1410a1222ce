/**
 * The profiles: each one, applied through NetworkTuning under Pulumi's mocks, gives every child
 * inputs that child's own schema accepts; each keeps the guide's warnings; guideDefaults is the
 * guide's example file; profiles are frozen and spread cleanly.
 */
import * as path from "node:path";
import type { z } from "zod";
import { beforeEach, describe, expect, test } from "vitest";
import { userInputs } from "../../src/engine/lifecycle";
import { PROFILE_ROLES, profiles, type ProfileName } from "../../src/profiles";
import * as nettune from "../../src/index";
import { NetworkTuning, TUNING_ORDER, type TuningModel } from "../../src/resources/networkTuning";
import { synFlood } from "../../src/resources/xdpLibrary";
import { congestionControlSchema } from "../../src/schemas/congestionControl";
import { irqAffinitySchema } from "../../src/schemas/irqAffinity";
import { mtuSchema } from "../../src/schemas/mtu";
import { nicOffloadsSchema } from "../../src/schemas/nicOffloads";
import { nicRingsSchema } from "../../src/schemas/nicRings";
import { packetSteeringSchema } from "../../src/schemas/packetSteering";
import { rssQueuesSchema } from "../../src/schemas/rssQueues";
import { sysctlSetSchema, sysctlWarnings } from "../../src/schemas/sysctlSet";
import { xdpProgramSchema } from "../../src/schemas/xdpProgram";
import { registrations, settle, useTuningMocks } from "../helpers/tuningMocks";

/** The schema each resource's provider checks its inputs with, by resource type. */
const SCHEMAS: Record<string, z.ZodType> = {
  "pulumi-nodejs:dynamic/nettune:RssQueues": rssQueuesSchema,
  "pulumi-nodejs:dynamic/nettune:IrqAffinity": irqAffinitySchema,
  "pulumi-nodejs:dynamic/nettune:PacketSteering": packetSteeringSchema,
  "pulumi-nodejs:dynamic/nettune:NicRings": nicRingsSchema,
  "pulumi-nodejs:dynamic/nettune:NicOffloads": nicOffloadsSchema,
  "pulumi-nodejs:dynamic/nettune:Mtu": mtuSchema,
  "pulumi-nodejs:dynamic/nettune:CongestionControl": congestionControlSchema,
  "pulumi-nodejs:dynamic/nettune:SysctlSet": sysctlSetSchema,
  "pulumi-nodejs:dynamic/nettune:XdpProgram": xdpProgramSchema,
};

/** A connection the connection schema accepts. */
const DUMMY_CONNECTION = { host: "198.18.9.1", user: "root", password: "pw" };

const NAMES = Object.keys(profiles) as ProfileName[];
let hostN = 0;
const connection = () => ({ host: `198.18.8.${++hostN}`, user: "root", password: "pw" });

function childrenOf(componentName: string) {
  const parent = registrations.find((r) => r.name === componentName);
  if (!parent) throw new Error(`${componentName} was not registered`);
  return registrations.filter((r) => r.parent === parent.urn);
}

const sysctlsOf = (m: TuningModel): Record<string, unknown> => m.sysctls ?? {};

beforeEach(async () => {
  await useTuningMocks();
});

test("nettune.profiles holds the six profiles", () => {
  expect(NAMES).toEqual([
    "apiGateway",
    "streamingIngest",
    "cdnEdge",
    "lowLatency",
    "guideDefaults",
    "apiGatewayEna",
  ]);
  expect(nettune.profiles).toBe(profiles);
  expect(Object.keys(PROFILE_ROLES).sort()).toEqual([...NAMES].sort());
});

describe.each(NAMES)("%s", (name) => {
  const model = profiles[name];

  test("every child it creates gets inputs that child's own schema accepts", async () => {
    const t = new NetworkTuning(`p-${name}`, {
      connection: connection(),
      interface: "eth0",
      profile: model,
    });
    await settle(t, t.resources);
    const kids = childrenOf(`p-${name}`);
    // One child per step the profile has a field of, in order.
    const steps = TUNING_ORDER.filter((s) => s.fields.some((f) => model[f] !== undefined));
    expect(kids.map((k) => k.name)).toEqual(steps.map((s) => `p-${name}-${s.child}`));
    expect(kids.length).toBeGreaterThan(0);
    for (const k of kids) {
      const schema = SCHEMAS[k.type];
      expect(schema, k.type).toBeDefined();
      // The provider's own view: Pulumi's bookkeeping and the name for messages dropped.
      const res = schema!.safeParse({ ...userInputs(k.inputs), connection: DUMMY_CONNECTION });
      expect(res.success, `${k.name}: ${JSON.stringify(res.error?.issues)}`).toBe(true);
    }
  });

  test("keeps the guide's warnings", () => {
    const s = sysctlsOf(model);
    // SYN cookies and timestamps are never turned off.
    expect(s["net.ipv4.tcp_syncookies"]).not.toBe(0);
    expect(s["net.ipv4.tcp_timestamps"]).not.toBe(0);
    // Nothing the project's own preview warnings object to (SACK off, buffers over 64 MiB, …).
    expect(sysctlWarnings(s, false)).toEqual([]);
    // TIME-WAIT reuse only where the host opens the connections: proxies and clients.
    if (PROFILE_ROLES[name] === "proxy") expect(s["net.ipv4.tcp_tw_reuse"]).toBe(1);
    else expect(s).not.toHaveProperty("net.ipv4.tcp_tw_reuse");
    // LRO never on with GRO: wherever a profile sets offloads, GRO is on and LRO explicitly off.
    const features = model.offloads?.features as Record<string, unknown> | undefined;
    if (features) {
      expect(features.gro).toBe(true);
      expect(features.lro).toBe(false);
    }
    // One owner per setting: the keys CongestionControl and PacketSteering own are not sysctls.
    if (model.congestion) {
      expect(s).not.toHaveProperty("net.ipv4.tcp_congestion_control");
      expect(s).not.toHaveProperty("net.core.default_qdisc");
    }
    if (model.steering?.rfs) expect(s).not.toHaveProperty("net.core.rps_sock_flow_entries");
    // Jumbo frames only with peers to verify them.
    const mtu = model.mtu;
    if (mtu !== undefined) {
      const m = typeof mtu === "number" ? { mtu } : mtu;
      if ((m.mtu as number) > 1500) expect(m.verifyPeers).toBeDefined();
    }
  });

  test("leaves to the host what differs per host", () => {
    // Queue and ring counts as "max" (the driver's maximum), IRQs by a NUMA-aware policy.
    if (model.queues) expect(model.queues.combined).toBe("max");
    // apiGatewayEna's rx ring is the size AWS's ENA guidance gives (ENA's maximum is larger).
    if (name === "apiGatewayEna") expect(model.rings).toEqual({ rx: 4096 });
    else if (model.rings) expect(Object.values(model.rings).every((v) => v === "max")).toBe(true);
    if (model.irq) expect(["spread", "numa-local"]).toContain(model.irq.policy);
    // bbr with fq where the host has fq, alone where it has not (guideDefaults is the guide's
    // file, which sets no qdisc: see its test).
    if (model.congestion && name !== "guideDefaults") {
      expect(model.congestion).toEqual({ algorithm: "bbr", qdisc: "fq", qdiscFallback: "none" });
    }
  });

  test("is frozen, and spreads into a new model to override", async () => {
    expect(Object.isFrozen(model)).toBe(true);
    if (model.sysctls) {
      expect(Object.isFrozen(model.sysctls)).toBe(true);
      expect(() => {
        (model.sysctls as Record<string, unknown>)["net.core.somaxconn"] = 1;
      }).toThrow(TypeError);
    }
    const jumbo: TuningModel = { ...model, mtu: { mtu: 9000, verifyPeers: ["198.18.0.2"] } };
    const t = new NetworkTuning(`j-${name}`, {
      connection: connection(),
      interface: "eth0",
      ...jumbo,
    });
    await settle(t, t.resources);
    expect(childrenOf(`j-${name}`).find((k) => k.name === `j-${name}-mtu`)?.inputs.mtu).toBe(9000);
  });
});

describe("guideDefaults", () => {
  // The guide's example /etc/sysctl.d/99-network-optimizations.conf, key by key.
  const FILE: Record<string, unknown> = {
    "net.core.somaxconn": 65535,
    "net.ipv4.tcp_max_syn_backlog": 16384,
    "net.core.rmem_max": 33554432,
    "net.core.wmem_max": 33554432,
    "net.core.rmem_default": 16777216,
    "net.core.wmem_default": 16777216,
    "net.ipv4.tcp_rmem": [4096, 87380, 33554432],
    "net.ipv4.tcp_wmem": [4096, 65536, 33554432],
    "net.ipv4.tcp_tw_reuse": 1,
    "net.ipv4.tcp_fin_timeout": 30,
    "net.ipv4.tcp_congestion_control": "bbr",
    "net.ipv4.ip_local_port_range": [1024, 65535],
    "net.ipv4.tcp_slow_start_after_idle": 0,
    "net.core.netdev_max_backlog": 16384,
  };

  test("is the guide's file: its values, bbr through CongestionControl, tw_reuse left to proxies", () => {
    const { "net.ipv4.tcp_congestion_control": cc, "net.ipv4.tcp_tw_reuse": _tw, ...rest } = FILE;
    expect(profiles.guideDefaults.sysctls).toEqual(rest);
    expect(profiles.guideDefaults.congestion).toEqual({ algorithm: cc });
    expect(Object.keys(profiles.guideDefaults).sort()).toEqual(["congestion", "sysctls"]);
  });
});

describe("the scenarios' figures", () => {
  test("apiGateway: the case's backlogs and TIME-WAIT settings", () => {
    expect(profiles.apiGateway.sysctls).toMatchObject({
      "net.core.somaxconn": 16384,
      "net.ipv4.tcp_max_syn_backlog": 8192,
      "net.ipv4.tcp_tw_reuse": 1,
      "net.ipv4.tcp_fin_timeout": 30,
    });
  });

  test("streamingIngest: the case's backlog and 32 MiB receive buffers", () => {
    expect(profiles.streamingIngest.sysctls).toMatchObject({
      "net.core.netdev_max_backlog": 65535,
      "net.core.rmem_max": 32 * 1024 * 1024,
      "net.ipv4.tcp_rmem": [4096, 87380, 32 * 1024 * 1024],
    });
  });

  test("cdnEdge: medium buffers, below the guide's large ones", () => {
    const s = sysctlsOf(profiles.cdnEdge);
    expect(s["net.core.rmem_max"]).toBeLessThan(
      sysctlsOf(profiles.streamingIngest)["net.core.rmem_max"] as number,
    );
  });

  test("lowLatency: buffers at the kernel's defaults, TCP Fast Open both ways, RFS", () => {
    const keys = Object.keys(sysctlsOf(profiles.lowLatency));
    expect(keys.filter((k) => /mem/.test(k))).toEqual([]);
    expect(profiles.lowLatency.sysctls?.["net.ipv4.tcp_fastopen"]).toBe(3);
    expect(profiles.lowLatency.steering).toEqual({ rfs: { flowEntries: 32768 } });
  });
});

describe("apiGateway's SYN-flood filter", () => {
  test("comes from nettune.xdp.synFlood, on the web ports only", () => {
    const xdp = profiles.apiGateway.xdp!;
    expect(xdp).toEqual(synFlood({ ports: [80, 443], perSourceRate: 1000, burst: 2000 }));
    expect(xdp.programName).toBe("xdp_syn_flood");
    expect(path.basename((xdp.program as { objectPath: string }).objectPath)).toBe("syn_flood.o");
    const ports = xdp.constants?.cfg_ports as number[];
    expect(ports).toEqual([80, 443]);
    expect(ports).not.toContain(22); // SSH is never filtered
  });

  test("is the last child, with the library's constants", async () => {
    const t = new NetworkTuning("gw", {
      connection: connection(),
      interface: "eth0",
      profile: profiles.apiGateway,
    });
    await settle(t, t.resources);
    const kids = childrenOf("gw");
    const last = kids[kids.length - 1]!;
    expect(last.type).toBe("pulumi-nodejs:dynamic/nettune:XdpProgram");
    expect(last.inputs).toMatchObject({
      programName: "xdp_syn_flood",
      constants: { cfg_rate: 1000, cfg_burst: 2000, cfg_port_count: 2, cfg_ports: [80, 443] },
    });
    expect(new Set(last.dependencies)).toEqual(new Set(kids.slice(0, -1).map((k) => k.urn)));
  });

  test("drops out with xdp: null", async () => {
    const t = new NetworkTuning("gw-no-xdp", {
      connection: connection(),
      interface: "eth0",
      profile: profiles.apiGateway,
      xdp: null,
    });
    await settle(t, t.resources);
    expect(childrenOf("gw-no-xdp").map((k) => k.type)).not.toContain(
      "pulumi-nodejs:dynamic/nettune:XdpProgram",
    );
  });
});
