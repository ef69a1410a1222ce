/**
 * IrqAffinity without a host: its inputs, the probe's parser and the placement of queues on CPUs
 * against what a VM sandbox host really reported (test/fixtures/irq), the scripts' syntax in
 * dash, and the pin script's report as it really printed it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { describe, expect, test } from "vitest";
import { irqAffinitySchema } from "../../src/schemas/irqAffinity";
import {
  parseIrqProbe,
  parsePinResult,
  renderIrqProbe,
  renderPinScript,
  type IrqProbe,
} from "../../src/host/irqs";
import { parseProcInterrupts } from "../../src/host/interrupts";
import { irqAffinitySpec, planPins, spreadOrder } from "../../src/specs/irqAffinity";
import type { LinkFacts } from "../../src/specs/link";
import { parseIpLink } from "../../src/host/ip";

const FIX = path.join(__dirname, "../fixtures/irq");
const fixture = (name: string) => fs.readFileSync(path.join(FIX, name), "utf8");

const CONNECTION = {
  host: "198.18.9.9",
  privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
};
const UNIT = "nettune-irqaffinity-t.service";

function inputs(extra: Record<string, unknown>) {
  return irqAffinitySchema.parse({
    connection: CONNECTION,
    interface: "eth0",
    unitName: UNIT,
    ...extra,
  });
}

function issues(extra: Record<string, unknown>): string[] {
  const r = irqAffinitySchema.safeParse({
    connection: CONNECTION,
    interface: "eth0",
    unitName: UNIT,
    ...extra,
  });
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
}

type Facts = LinkFacts<{ probe: IrqProbe; interrupts: ReturnType<typeof parseProcInterrupts> }>;

function facts(probeText: string, ifname = "eth0", change?: (p: IrqProbe) => IrqProbe): Facts {
  const p = parseIrqProbe(probeText);
  const link = parseIpLink(
    JSON.stringify([
      { ifindex: 2, ifname, flags: ["UP"], mtu: 1500, operstate: "UP", link_type: "ether" },
    ]),
  )[0]!;
  return {
    info: { ifname, driver: "virtio_net", link },
    own: {
      probe: change ? change(p) : p,
      interrupts: parseProcInterrupts(fixture("vm-virtio-6.1.0-57.interrupts.txt")),
    },
  };
}

const VM = fixture("vm-virtio-6.1.0-57.probe.txt");

describe("inputs", () => {
  test("policies and cpulists are read and kept in the kernel's form", () => {
    expect(inputs({ policy: "spread" }).policy).toBe("spread");
    expect(inputs({ policy: { cpus: "3, 0-1,2" } }).policy).toEqual({ cpus: "0-3" });
    expect(inputs({ policy: { map: { 1: "3", 0: "2,3" } } }).policy).toEqual({
      map: { 0: "2-3", 1: "3" },
    });
    expect(inputs({ policy: "numa-local", exclude: "0" }).irqbalance).toBe("ban");
  });

  test("bad inputs name the field", () => {
    expect(issues({ policy: { cpus: "" } })).toEqual([
      "policy.cpus: is empty: name at least one CPU, e.g. 0-3",
    ]);
    expect(issues({ policy: { cpus: "3-1" } })).toEqual([
      "policy.cpus: range 3-1 goes down: write 1-3",
    ]);
    expect(issues({ policy: { cpus: "0x3" } })[0]).toMatch(
      /^policy\.cpus: "0x3" is not a CPU or range/,
    );
    expect(issues({ policy: { cpus: "9000" } })).toEqual(["policy.cpus: CPU 9000 is above 8191"]);
    expect(issues({ policy: { map: {} } })).toEqual([
      "policy.map: map must name at least one queue",
    ]);
    expect(issues({ policy: { map: { 0: "1", "00": "2" } } })).toEqual([
      'policy.map.00: queue 0 is given twice (as "0" and "00")',
    ]);
    expect(issues({ policy: { map: { x: "1" } } })).toEqual([
      'policy.map.x: "x" is not a queue index: use 0 to 4095',
    ]);
    expect(issues({ policy: "everywhere" })[0]).toMatch(/^policy: policy must be "spread"/);
    expect(issues({ policy: { map: { 0: "1" } }, exclude: "0" })[0]).toMatch(
      /^exclude: exclude applies to the "spread" and "numa-local" policies/,
    );
    expect(issues({ policy: "spread", irqbalance: "off" })).toEqual([
      'irqbalance: irqbalance must be "ban" or "stop"',
    ]);
    expect(issues({ policy: "spread", interface: "eth0;reboot" })[0]).toMatch(
      /^interface: must be an interface name/,
    );
  });
});

describe("the probe, on what a VM sandbox host printed", () => {
  test("topology, the NIC below the interface, its MSI IRQs and irqbalance", () => {
    const p = parseIrqProbe(VM);
    expect(p.online).toEqual([0, 1, 2, 3]);
    expect([...p.nodes]).toEqual([
      [0, [0, 1]],
      [1, [2, 3]],
    ]);
    expect(p.devices).toEqual([
      {
        ifname: "eth0",
        driver: "virtio_net",
        busInfo: "0000:41:00.0",
        numaNode: 1,
        msiIrqs: [34, 35, 36, 37, 38, 39, 40, 41, 42],
      },
    ]);
    expect(p.affinity.size).toBe(9);
    expect(p.irqbalance).toMatchObject({
      installed: true,
      active: false,
      enabled: "disabled",
      optionsFile: "/etc/default/irqbalance",
      args: null,
    });
  });

  test("a VLAN resolves to the NIC below it", () => {
    const p = parseIrqProbe(fixture("vm-virtio-6.1.0-57-vlan.probe.txt"));
    expect(p.devices.map((d) => d.ifname)).toEqual(["eth0"]);
  });

  test("a line it does not know is an error", () => {
    expect(() => parseIrqProbe("cpu\tonline\t0-3\nbogus\tline\n")).toThrow(
      /unexpected line "bogus/,
    );
  });
});

const placed = (plan: ReturnType<typeof planPins>) =>
  Object.fromEntries(plan.pins.map((p) => [p.action, p.cpus]));

describe("placing queues on CPUs (VM host: node 0 = CPUs 0-1, node 1 = 2-3, NIC on node 1)", () => {
  test('"spread": the NIC\'s node first, then the other; rx and tx of a queue together', () => {
    const plan = planPins(inputs({ policy: "spread" }), facts(VM));
    expect(plan.failures).toEqual([]);
    expect(placed(plan)).toEqual({
      "virtio3-input.0": "2",
      "virtio3-output.0": "2",
      "virtio3-input.1": "3",
      "virtio3-output.1": "3",
      "virtio3-input.2": "0",
      "virtio3-output.2": "0",
      "virtio3-input.3": "1",
      "virtio3-output.3": "1",
    });
    expect(plan.pins.map((p) => `${p.queue}${p.role}:${p.irq}`)).toEqual([
      "0rx:35",
      "0tx:36",
      "1rx:37",
      "1tx:38",
      "2rx:39",
      "2tx:40",
      "3rx:41",
      "3tx:42",
    ]);
  });

  test('"spread" with exclude wraps around what is left', () => {
    const plan = planPins(inputs({ policy: "spread", exclude: "2" }), facts(VM));
    expect(Object.values(placed(plan))).toEqual(["3", "3", "0", "0", "1", "1", "3", "3"]);
    expect(plan.notes).toEqual([
      "eth0 (driver virtio_net) has 4 queues and 3 CPUs to spread them over: some CPUs serve several queues",
    ]);
  });

  test('"numa-local", { cpus }, { map }', () => {
    expect(
      new Set(Object.values(placed(planPins(inputs({ policy: "numa-local" }), facts(VM))))),
    ).toEqual(new Set(["2-3"]));
    expect(
      new Set(Object.values(placed(planPins(inputs({ policy: { cpus: "0-1" } }), facts(VM))))),
    ).toEqual(new Set(["0-1"]));
    expect(placed(planPins(inputs({ policy: { map: { 3: "0", 1: "1-2" } } }), facts(VM)))).toEqual({
      "virtio3-input.1": "1-2",
      "virtio3-output.1": "1-2",
      "virtio3-input.3": "0",
      "virtio3-output.3": "0",
    });
  });

  test("what the host cannot take, by field", () => {
    const fail = (extra: Record<string, unknown>, f = facts(VM)) =>
      planPins(inputs(extra), f).failures.map((x) => `${x.property}: ${x.reason}`);
    expect(fail({ policy: { cpus: "4-5" } })).toEqual([
      "policy.cpus: CPU 4-5 are not online (online: 0-3)",
    ]);
    expect(fail({ policy: { map: { 4: "1", 0: "7" } } })).toEqual([
      'policy.map["0"]: CPU 7 is not online (online: 0-3)',
      'policy.map["4"]: eth0 (driver virtio_net) has no queue 4 with an interrupt (its queues: 0-3)',
    ]);
    expect(fail({ policy: "spread", exclude: "0-3" })).toEqual([
      "exclude: excludes every online CPU of eth0's host (online: 0-3)",
    ]);
    expect(fail({ policy: "numa-local", exclude: "2-3" })).toEqual([
      "exclude: no CPU of NUMA node 1 (eth0 (driver virtio_net)) is left to use",
    ]);
    const managed = facts(VM, "eth0", (p) => ({ ...p, managed: new Set([37]) }));
    expect(fail({ policy: "spread" }, managed)).toEqual([
      "interface: IRQ 37 (virtio3-input.1) of eth0 (driver virtio_net) is managed by the kernel: its affinity cannot be set",
    ]);
    const veth = facts(VM, "eth0", (p) => ({ ...p, devices: [] }));
    expect(fail({ policy: "spread" }, veth)[0]).toMatch(
      /^interface: eth0 \(driver virtio_net\) has no device with queue interrupts/,
    );
  });

  test("refresh: as declared when every pin holds, else the live CPUs as a map", () => {
    const olds = {
      ...inputs({ policy: "spread" }),
      applied: planPins(inputs({ policy: "spread" }), facts(VM)).pins.map((p) => ({
        ...p,
        effective: null,
      })),
      originals: {},
      devices: [],
      irqbalanceBefore: { installed: true, active: false, enabled: "disabled" },
      unitPath: null,
      warnings: [],
    };
    const pinnedAs = (cpus: (irq: number) => string) =>
      facts(VM, "eth0", (p) => ({
        ...p,
        affinity: new Map([...p.affinity].map(([irq, a]) => [irq, { ...a, smp: cpus(irq) }])),
      }));
    const spread = ["2", "2", "3", "3", "0", "0", "1", "1"];
    expect(
      irqAffinitySpec.live(
        olds,
        pinnedAs((irq) => spread[irq - 35] ?? "0-3"),
      ),
    ).toEqual({});
    expect(
      irqAffinitySpec.live(
        olds,
        pinnedAs(() => "0"),
      ),
    ).toEqual({
      policy: { map: { 0: "0", 1: "0", 2: "0", 3: "0" } },
    });
    expect(irqAffinitySpec.live(olds, undefined)).toEqual({ policy: undefined });
  });
});

describe("spreadOrder", () => {
  test("one thread of each core before its siblings, the NIC's node first", () => {
    // Synthetic: 2 nodes of 2 cores with 2 threads each, siblings numbered apart (0/4, 1/5, …).
    const nodes = new Map([
      [0, [0, 1, 4, 5]],
      [1, [2, 3, 6, 7]],
    ]);
    const siblings = new Map<number, number[]>();
    for (const [c, s] of [
      [0, 4],
      [1, 5],
      [2, 6],
      [3, 7],
    ]) {
      siblings.set(c!, [c!, s!]);
      siblings.set(s!, [c!, s!]);
    }
    expect(spreadOrder([0, 1, 2, 3, 4, 5, 6, 7], 1, nodes, siblings)).toEqual([
      2, 3, 0, 1, 6, 7, 4, 5,
    ]);
    // CPU 2 excluded: its sibling 6 is then its core's first allowed thread.
    expect(spreadOrder([0, 1, 3, 4, 5, 6, 7], 1, nodes, siblings)).toEqual([3, 6, 0, 1, 7, 4, 5]);
    expect(spreadOrder([0, 1, 2, 3], null, nodes, siblings)).toEqual([0, 1, 2, 3]);
  });
});

describe("scripts", () => {
  const dash = (script: string) => spawnSync("sh", ["-n"], { input: script, encoding: "utf8" });

  test("the probe and every pin script are valid shell", () => {
    const scripts = [
      renderIrqProbe("eth0"),
      ...(
        [
          { mode: "ban", optionsFile: "/etc/default/irqbalance" },
          { mode: "unban", optionsFile: "/etc/sysconfig/irqbalance" },
          { mode: "stop" },
          { mode: "unstop" },
          { mode: "none" },
        ] as const
      ).map((irqbalance) =>
        renderPinScript([{ action: "virtio3-input.0", cpus: "2" }], {
          owner: "nettune-irqaffinity-t",
          irqbalance,
          waitSeconds: 30,
          missing: "skip",
        }),
      ),
      // At boot (cloud-init): the table from a plan made on the host, the options file found there.
      renderPinScript([], {
        owner: "nettune-irqaffinity-t",
        irqbalance: { mode: "ban", optionsFile: "*" },
        waitSeconds: 0,
        missing: "skip",
        tableFrom: "printf '%s\\n' \"$NT_PLAN\"",
      }),
    ];
    for (const s of scripts) expect(dash(s).stderr).toBe("");
  });

  test("names the pin script cannot find again, and bad cpulists, are refused", () => {
    const o = {
      owner: "x",
      irqbalance: { mode: "none" } as const,
      waitSeconds: 0,
      missing: "fail" as const,
    };
    expect(() => renderPinScript([{ action: "a/b", cpus: "1" }], o)).toThrow(
      /cannot be pinned by name/,
    );
    expect(() => renderPinScript([{ action: "q", cpus: "1;reboot" }], o)).toThrow(
      /invalid cpulist/,
    );
    expect(() => renderPinScript([], { ...o, owner: "../x" })).toThrow(/invalid owner/);
  });

  test("the pin script's report, as a VM host printed it", () => {
    const ok = parsePinResult(fixture("pin-ban-ok.txt"));
    expect(ok.ib).toEqual({ what: "banned", detail: ["35 36 37 38", "35 36 37 38"] });
    expect(ok.pinned.map((p) => [p.irq, p.action, p.smp, p.original])).toEqual([
      [38, "virtio3-output.1", "3", "1"],
      [37, "virtio3-input.1", "3", "1"],
      [36, "virtio3-output.0", "2", "0"],
      [35, "virtio3-input.0", "2", "0"],
    ]);
    const eio = parsePinResult(fixture("pin-managed-eio.txt"));
    expect(eio.failed).toEqual({
      irq: 25,
      action: "virtio0-req.0",
      reason: "sh: 64: printf: printf: I/O error",
    });
    expect(eio.pinned).toEqual([]);
  });
});
