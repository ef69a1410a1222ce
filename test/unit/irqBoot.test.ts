/**
 * The boot-time planner (src/host/irqBoot.ts) run with `sh` on copies of real hosts' files: each
 * test builds a sysfs/proc tree in a temp folder from captured output (test/fixtures/irq,
 * test/fixtures/interrupts, test/fixtures/topology; see SOURCES.md) and checks that the script's
 * table is the one `planPins` makes from the same facts, for every policy, and that what
 * `planPins` refuses the script refuses too (exit 3).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, describe, expect, test } from "vitest";
import { irqAffinitySchema, type IrqAffinityInputs } from "../../src/schemas/irqAffinity";
import { parseIrqProbe, renderIrqBootFiles, type IrqProbe } from "../../src/host/irqs";
import { parseProcInterrupts } from "../../src/host/interrupts";
import { renderCpuList } from "../../src/host/cpus";
import { irqAffinitySpec, planPins } from "../../src/specs/irqAffinity";
import type { LinkFacts } from "../../src/specs/link";
import { parseIpLink } from "../../src/host/ip";
import { renderBootPlanner } from "../../src/host/irqBoot";

const FIX = path.join(__dirname, "../fixtures");
const fixture = (name: string) => fs.readFileSync(path.join(FIX, name), "utf8");

const CONNECTION = {
  host: "198.18.9.9",
  privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
};

/** One host: what the probe would report, its /proc/interrupts, and the NIC's virtio device. */
interface Host {
  readonly probe: IrqProbe;
  readonly interrupts: string;
  readonly ifname: string;
  /** `virtioN` below the PCI device, for virtio_net. */
  readonly virtio?: string;
  /** debugfs IRQ files to write (IRQ → text), for the managed-IRQ check. */
  readonly debug?: Readonly<Record<number, string>>;
}

type Facts = LinkFacts<{ probe: IrqProbe; interrupts: ReturnType<typeof parseProcInterrupts> }>;

function facts(h: Host): Facts {
  const link = parseIpLink(
    JSON.stringify([
      {
        ifindex: 2,
        ifname: h.ifname,
        flags: ["UP"],
        mtu: 1500,
        operstate: "UP",
        link_type: "ether",
      },
    ]),
  )[0]!;
  return {
    info: { ifname: h.ifname, driver: h.probe.devices[0]?.driver ?? "", link },
    own: { probe: h.probe, interrupts: parseProcInterrupts(h.interrupts) },
  };
}

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

/**
 * The files the probe reads, as the kernel lays them out, holding what `h.probe` says: the
 * interface's `device` link (for virtio_net to `virtioN` below the PCI device, which holds
 * `msi_irqs` and `numa_node`), the driver link, the CPU and node files, /proc/interrupts.
 */
function tree(h: Host, driver?: string): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-irqboot-"));
  roots.push(root);
  const write = (rel: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  };
  const sys = "sys/devices/system";
  write(`${sys}/cpu/online`, `${renderCpuList(h.probe.online)}\n`);
  write(`${sys}/cpu/possible`, `${renderCpuList(h.probe.possible)}\n`);
  for (const [n, cpus] of h.probe.nodes)
    write(`${sys}/node/node${n}/cpulist`, `${renderCpuList(cpus)}\n`);
  for (const [c, sib] of h.probe.siblings)
    write(`${sys}/cpu/cpu${c}/topology/thread_siblings_list`, `${renderCpuList(sib)}\n`);
  write("proc/interrupts", h.interrupts);
  for (const [irq, text] of Object.entries(h.debug ?? {}))
    write(`sys/kernel/debug/irq/irqs/${irq}`, text);
  const net = path.join(root, "sys/class/net", h.ifname);
  fs.mkdirSync(net, { recursive: true });
  const dev = h.probe.devices[0];
  if (!dev) return root;
  const pci = `sys/devices/pci0000:00/${dev.busInfo}`;
  if (dev.numaNode !== null) write(`${pci}/numa_node`, `${dev.numaNode}\n`);
  for (const irq of dev.msiIrqs ?? []) write(`${pci}/msi_irqs/${irq}`, "msix\n");
  const device = h.virtio ? `${pci}/${h.virtio}` : pci;
  fs.mkdirSync(path.join(root, device), { recursive: true });
  const bus = dev.driver === "virtio_net" ? "virtio" : "pci";
  const drv = driver ?? dev.driver;
  fs.mkdirSync(path.join(root, `sys/bus/${bus}/drivers/${drv}`), { recursive: true });
  fs.symlinkSync(
    path.relative(path.join(root, device), path.join(root, `sys/bus/${bus}/drivers/${drv}`)),
    path.join(root, device, "driver"),
  );
  fs.symlinkSync(path.relative(net, path.join(root, device)), path.join(net, "device"));
  return root;
}

type Extra = { policy: unknown; exclude?: string };

function inputsOf(h: Host, extra: Extra) {
  return irqAffinitySchema.parse({
    connection: CONNECTION,
    interface: h.ifname,
    unitName: "nettune-irqaffinity-t.service",
    ...extra,
  });
}

function runPlanner(h: Host, extra: Extra, driver?: string) {
  const i = inputsOf(h, extra);
  const script = renderBootPlanner(
    { interface: i.interface, policy: i.policy, exclude: i.exclude },
    { root: tree(h, driver) },
  );
  return spawnSync("sh", ["-c", script], { encoding: "utf8" });
}

/** The table planPins makes, or null where it reports failures. */
function planned(h: Host, extra: Extra): string | null {
  const plan = planPins(inputsOf(h, extra), facts(h));
  if (plan.failures.length > 0) return null;
  return plan.pins.map((p) => `${p.action}\t${p.cpus}\n`).join("");
}

function expectSame(h: Host, extra: Extra): string {
  const want = planned(h, extra);
  const r = runPlanner(h, extra);
  expect(r.stderr).toBe("");
  expect(want).not.toBeNull();
  expect(want).not.toBe("");
  expect({ status: r.status, table: r.stdout }).toEqual({ status: 0, table: want });
  return r.stdout;
}

function expectRefused(h: Host, extra: Extra, reason: RegExp): void {
  expect(planned(h, extra)).toBeNull();
  const r = runPlanner(h, extra);
  expect(r.stdout).toBe("");
  expect(r.stderr).toMatch(reason);
  expect(r.status).toBe(3);
}

// ---------------------------------------------------------------------------------------------
// The hosts

/**
 * The MSI IRQs of the PCI device `bdf` from a /proc/interrupts capture of an x86 guest: the
 * `PCI-MSI` hwirq is `pci_dev_id << 11 | index` (the kernel's pci_msi_domain_calc_hwirq, domain
 * 0), so the device is `hwirq >> 11` = bus << 8 | devfn. Checked below on the VM capture, whose
 * `msi_irqs` was captured too.
 */
function msiFromHwirq(text: string, bdf: string): number[] {
  const [, bus, slot, fn] = /^0000:([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(bdf)!;
  const id = (parseInt(bus!, 16) << 8) | (parseInt(slot!, 16) << 3) | Number(fn);
  return parseProcInterrupts(text)
    .lines.filter((l) => l.chip === "PCI-MSI" && l.hwirq !== null && Number(l.hwirq) >> 11 === id)
    .map((l) => l.irq!);
}

/** A probe's text for what is known of a capture (the probe's own line format). */
function probeText(o: {
  online: string;
  nodes?: Record<number, number[]>;
  siblings?: Map<number, number[]>;
  dev: string[];
  msi: number[];
}): string {
  return [
    `cpu\tonline\t${o.online}`,
    `cpu\tpossible\t${o.online}`,
    ...Object.entries(o.nodes ?? {}).map(([n, c]) => `node\t${n}\t${renderCpuList(c)}`),
    ...[...(o.siblings ?? [])].map(([c, s]) => `siblings\t${c}\t${renderCpuList(s)}`),
    `dev\t${o.dev.join("\t")}`,
    `msi\t${o.dev[0]}\t${o.msi.join(" ")}`,
  ].join("\n");
}

/** The VM sandbox host of test/fixtures/irq: 4 CPUs, nodes 0-1 and 2-3, eth0 (virtio3) on node 1. */
const VM_PROBE = fixture("irq/vm-virtio-6.1.0-57.probe.txt");
const vm = (interrupts: string): Host => ({
  probe: parseIrqProbe(VM_PROBE),
  interrupts: fixture(interrupts),
  ifname: "eth0",
  virtio: "virtio3",
});

/** The EC2 node of interrupts/ena-4cpu-ec2.txt: 4 CPUs, no NUMA or sibling files known. */
const ENA = fixture("interrupts/ena-4cpu-ec2.txt");
const ENA_BDF: Record<string, string> = {
  eth0: "0000:00:05.0",
  eth1: "0000:00:06.0",
  eth2: "0000:00:07.0",
};
const ena = (ifname: string): Host => ({
  probe: parseIrqProbe(
    probeText({
      online: "0-3",
      dev: [ifname, "ena", ENA_BDF[ifname]!, "-1"],
      msi: msiFromHwirq(ENA, ENA_BDF[ifname]!),
    }),
  ),
  interrupts: ENA,
  ifname,
});

/** This machine's capture (interrupts/machine-virtio-*): 2 CPUs online 0-1, eth0 is virtio2. */
const firecracker = (): Host => ({
  probe: parseIrqProbe(
    probeText({
      online: "0-1",
      dev: ["eth0", "virtio_net", "0000:00:03.0", ""],
      msi: fixture("interrupts/machine-virtio-6.18.44-fc-v669.msi_irqs.txt")
        .trim()
        .split("\n")
        .map(Number),
    }),
  ),
  interrupts: fixture("interrupts/machine-virtio-6.18.44-fc-v669.txt"),
  ifname: "eth0",
  virtio: "virtio2",
});

/** `lscpu -p`: nodes and thread siblings (one core per socket and core id). */
function lscpuP(text: string) {
  const nodes: Record<number, number[]> = {};
  const cores = new Map<string, number[]>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const [cpu, core, socket, node] = line.split(",").map(Number) as [
      number,
      number,
      number,
      number,
    ];
    (nodes[node] ??= []).push(cpu);
    const key = `${socket}/${core}`;
    cores.set(key, [...(cores.get(key) ?? []), cpu]);
  }
  const siblings = new Map<number, number[]>();
  for (const group of cores.values()) for (const c of group) siblings.set(c, group);
  const all = Object.values(nodes).flat();
  return { nodes, siblings, online: renderCpuList(all) };
}

/** `lscpu` (its node lines) and `/proc/cpuinfo` (physical id, core id) of one machine. */
function lscpuCpuinfo(lscpu: string, cpuinfo: string) {
  const nodes: Record<number, number[]> = {};
  for (const m of lscpu.matchAll(/^NUMA node(\d+) CPU\(s\):\s*(\S+)$/gm)) {
    nodes[Number(m[1])] = m[2]!.split(",").flatMap((r) => {
      const [a, b] = r.split("-").map(Number) as [number, number?];
      return Array.from({ length: (b ?? a) - a + 1 }, (_, i) => a + i);
    });
  }
  const cores = new Map<string, number[]>();
  for (const block of cpuinfo.split(/\n\s*\n/)) {
    const f = (k: string) => new RegExp(`^${k}\\s*:\\s*(\\d+)`, "m").exec(block)?.[1];
    const cpu = f("processor");
    if (cpu === undefined) continue;
    const key = `${f("physical id")}/${f("core id")}`;
    cores.set(key, [...(cores.get(key) ?? []), Number(cpu)]);
  }
  const siblings = new Map<number, number[]>();
  for (const group of cores.values()) for (const c of group) siblings.set(c, group);
  return { nodes, siblings, online: renderCpuList(Object.values(nodes).flat()) };
}

/** The VM's virtio NIC (4 queue pairs, its IRQs and names) on a real machine's topology. */
function onTopology(
  topo: { nodes: Record<number, number[]>; siblings: Map<number, number[]>; online: string },
  nicNode: number | null,
): Host {
  const vmProbe = parseIrqProbe(VM_PROBE);
  return {
    probe: parseIrqProbe(
      probeText({
        ...topo,
        dev: ["eth0", "virtio_net", "0000:41:00.0", nicNode === null ? "-1" : String(nicNode)],
        msi: [...vmProbe.devices[0]!.msiIrqs!],
      }),
    ),
    interrupts: fixture("irq/vm-virtio-6.1.0-57.interrupts.txt"),
    ifname: "eth0",
    virtio: "virtio3",
  };
}

const E5_2687 = lscpuP(fixture("topology/2xE5-2687Wv4-48cpu.lscpu-p.txt"));
const E5_2640 = lscpuCpuinfo(
  fixture("topology/2xE5-2640-32cpu.lscpu.txt"),
  fixture("topology/2xE5-2640-32cpu.cpuinfo.txt"),
);
const X5650 = lscpuP(fixture("topology/2xX5650-12cpu.lscpu-p.txt"));

// ---------------------------------------------------------------------------------------------

describe("the trees are what the captures say", () => {
  test("the MSI IRQs read from the hwirqs are the VM's captured msi_irqs; ENA's per NIC", () => {
    const captured = fixture("interrupts/vm-virtio-6.1.0-57.msi_irqs.txt")
      .trim()
      .split("\n")
      .map(Number);
    expect(msiFromHwirq(fixture("interrupts/vm-virtio-6.1.0-57.txt"), "0000:41:00.0")).toEqual(
      captured,
    );
    expect(parseIrqProbe(VM_PROBE).devices[0]!.msiIrqs).toEqual(captured);
    expect(msiFromHwirq(ENA, ENA_BDF["eth0"]!)).toEqual([27, 28, 29, 30, 31]);
    expect(msiFromHwirq(ENA, ENA_BDF["eth2"]!)).toEqual([52, 53, 54, 55, 56]);
  });

  test("the topologies: 2 nodes, thread siblings as lscpu gives them", () => {
    expect(renderCpuList(E5_2687.nodes[1]!)).toBe("12-23,36-47");
    expect(E5_2687.siblings.get(12)).toEqual([12, 36]);
    expect(renderCpuList(E5_2640.nodes[0]!)).toBe("0-7,16-23");
    expect(E5_2640.siblings.get(8)).toEqual([8, 24]);
    expect(renderCpuList(X5650.nodes[0]!)).toBe("0,2,4,6,8,10");
    expect(X5650.siblings.get(3)).toEqual([3]);
  });
});

const POLICIES: [string, Extra][] = [
  ["spread", { policy: "spread" }],
  ["spread, exclude", { policy: "spread", exclude: "2" }],
  ["spread, exclude wraps", { policy: "spread", exclude: "0,3" }],
  ["numa-local", { policy: "numa-local" }],
  ["numa-local, exclude", { policy: "numa-local", exclude: "3" }],
  ["cpus", { policy: { cpus: "0-1,3" } }],
  ["map", { policy: { map: { 3: "0", 1: "1-2" } } }],
];

describe.each([
  ["irq/vm-virtio-6.1.0-57.interrupts.txt"],
  ["interrupts/vm-virtio-6.1.0-57.txt"],
  ["interrupts/vm-virtio-6.1.0-57-after-L2.txt"],
])("the VM host (virtio_net, NIC on node 1), /proc/interrupts of %s", (file) => {
  test.each(POLICIES)("%s: as planPins", (_name, extra) => {
    expectSame(vm(file), extra);
  });
});

test('the VM host, "spread": the table the unit test of planPins checks', () => {
  expect(expectSame(vm("irq/vm-virtio-6.1.0-57.interrupts.txt"), { policy: "spread" })).toBe(
    [
      "virtio3-input.0\t2",
      "virtio3-output.0\t2",
      "virtio3-input.1\t3",
      "virtio3-output.1\t3",
      "virtio3-input.2\t0",
      "virtio3-output.2\t0",
      "virtio3-input.3\t1",
      "virtio3-output.3\t1",
      "",
    ].join("\n"),
  );
});

describe("a host pinned at boot, then previewed", () => {
  test("a new IrqAffinity finds it already as declared only when every IRQ is on its planned CPUs and irqbalance is stopped", () => {
    const h = vm("irq/vm-virtio-6.1.0-57.interrupts.txt");
    const inputs = irqAffinitySchema.parse({
      connection: CONNECTION,
      interface: "eth0",
      unitName: "nettune-irqaffinity-t.service",
      policy: "spread",
      irqbalance: "stop",
    });
    const f = facts(h);
    const plan = planPins(inputs, f);
    expect(plan.pins.length).toBe(8);
    const withProbe = (probe: IrqProbe) => ({ ...f, own: { ...f.own, probe } });
    const pinnedTo = (cpus: (p: (typeof plan.pins)[number]) => string) => {
      const affinity = new Map(h.probe.affinity);
      for (const p of plan.pins) affinity.set(p.irq, { smp: cpus(p), effective: null });
      return { ...h.probe, affinity };
    };
    // As captured: every IRQ on 0-3.
    expect(irqAffinitySpec.asDeclared!(inputs, f)).toBe(false);
    const pinned = pinnedTo((p) => p.cpus);
    expect(irqAffinitySpec.asDeclared!(inputs, withProbe(pinned))).toBe(true);
    // One IRQ elsewhere, or irqbalance running: not as declared.
    const first = plan.pins[0]!;
    expect(
      irqAffinitySpec.asDeclared!(
        inputs,
        withProbe(pinnedTo((p) => (p === first ? "0-3" : p.cpus))),
      ),
    ).toBe(false);
    expect(
      irqAffinitySpec.asDeclared!(
        inputs,
        withProbe({ ...pinned, irqbalance: { ...pinned.irqbalance, active: true } }),
      ),
    ).toBe(false);
  });
});

describe("ENA (EC2, 4 CPUs, three NICs, no NUMA node)", () => {
  test.each(["eth0", "eth1", "eth2"])("%s: every policy as planPins", (ifname) => {
    for (const [, extra] of POLICIES) expectSame(ena(ifname), extra);
  });

  test("eth1's table names eth1's queues only", () => {
    expect(expectSame(ena("eth1"), { policy: "spread", exclude: "1" })).toBe(
      "eth1-Tx-Rx-0\t0\neth1-Tx-Rx-1\t2\neth1-Tx-Rx-2\t3\neth1-Tx-Rx-3\t0\n",
    );
  });
});

describe("a Firecracker guest (virtio2, one queue pair, 2 CPUs, other virtio devices)", () => {
  test.each([
    ["spread", { policy: "spread" }],
    ["spread, exclude", { policy: "spread", exclude: "0" }],
    ["numa-local", { policy: "numa-local" }],
    ["cpus", { policy: { cpus: "1" } }],
    ["map", { policy: { map: { 0: "0-1" } } }],
  ] as [string, Extra][])("%s: as planPins", (_name, extra) => {
    expectSame(firecracker(), extra);
  });
});

describe("two NUMA nodes with hyperthread siblings (real topologies, the VM's NIC)", () => {
  const cases: [string, Host][] = [
    ["2x E5-2687W v4 (48 CPUs), NIC on node 1", onTopology(E5_2687, 1)],
    ["2x E5-2687W v4 (48 CPUs), NIC on node 0", onTopology(E5_2687, 0)],
    ["2x E5-2687W v4 (48 CPUs), no NIC node", onTopology(E5_2687, null)],
    ["2x E5-2640 v2 (32 CPUs), NIC on node 1", onTopology(E5_2640, 1)],
    ["2x X5650 (12 CPUs, no SMT, nodes interleaved), NIC on node 1", onTopology(X5650, 1)],
  ];
  const extras: Extra[] = [
    { policy: "spread" },
    // One core of each node and a sibling: the siblings come after every core, wrapping.
    { policy: "spread", exclude: "1-11,13-23,25-47" },
    { policy: "spread", exclude: "0-11,13-35,37-47" },
    { policy: "spread", exclude: "0-7,9-23,25-31" },
    { policy: "spread", exclude: "12-23" },
    { policy: "numa-local" },
    { policy: "numa-local", exclude: "12-14,36" },
    { policy: { cpus: "0-3,8" } },
    { policy: { map: { 0: "12,36", 2: "0-1,3" } } },
  ];
  test.each(cases)("%s: every policy as planPins", (_name, h) => {
    for (const extra of extras) {
      if (planned(h, extra) === null) continue;
      expectSame(h, extra);
    }
  });

  test("48 CPUs, NIC on node 1: 12, then 0, then 12's sibling 36, wrapping", () => {
    expect(
      expectSame(onTopology(E5_2687, 1), { policy: "spread", exclude: "1-11,13-23,25-35,37-47" }),
    ).toBe(
      "virtio3-input.0\t12\nvirtio3-output.0\t12\nvirtio3-input.1\t0\nvirtio3-output.1\t0\n" +
        "virtio3-input.2\t36\nvirtio3-output.2\t36\nvirtio3-input.3\t24\nvirtio3-output.3\t24\n",
    );
    expect(expectSame(onTopology(E5_2687, 1), { policy: "numa-local" })).toMatch(
      /^virtio3-input\.0\t12-23,36-47\n/,
    );
  });
});

describe("what planPins refuses, the script refuses (exit 3, a reason)", () => {
  const h = vm("irq/vm-virtio-6.1.0-57.interrupts.txt");
  test("exclude leaves no CPU", () => {
    expectRefused(h, { policy: "spread", exclude: "0-3" }, /exclude leaves no online CPU/);
    expectRefused(h, { policy: "numa-local", exclude: "2-3" }, /no CPU of NUMA node 1/);
  });
  test("an offline CPU", () => {
    expectRefused(h, { policy: { cpus: "2-5" } }, /CPU [45] is offline/);
    expectRefused(h, { policy: { map: { 0: "7" } } }, /CPU 7 is offline/);
  });
  test("a queue the NIC does not have", () => {
    expectRefused(h, { policy: { map: { 0: "1", 9: "2" } } }, /no queue 9/);
  });
  test("an IRQ whose affinity the kernel manages (debugfs shows AFFINITY_MANAGED)", () => {
    // Not a capture: the probe and the script look for this word only; both see it here.
    const managed: Host = {
      ...h,
      probe: parseIrqProbe(`${VM_PROBE.trimEnd()}\nmanaged\t37\n`),
      debug: { 37: "IRQD_AFFINITY_MANAGED\n" },
    };
    expectRefused(managed, { policy: "spread" }, /IRQ 37 \(virtio3-input\.1\) is managed/);
  });
  test("no msi_irqs among the IRQs named as queues", () => {
    const none: Host = {
      ...h,
      probe: parseIrqProbe(VM_PROBE.replace(/^msi\t.*$/m, "msi\teth0\t24 25")),
    };
    expectRefused(none, { policy: "spread" }, /no queue interrupts/);
  });
});

describe("only virtio_net and ena", () => {
  test("another driver: exit 3 and why", () => {
    const r = runPlanner(ena("eth0"), { policy: "spread" }, "ixgbe");
    expect(r.status).toBe(3);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("nettune: eth0: driver ixgbe is not virtio_net or ena\n");
  });

  test("a VLAN (no device of its own): exit 3", () => {
    const vlan: Host = {
      probe: parseIrqProbe(fixture("irq/vm-virtio-6.1.0-57-vlan.probe.txt")),
      interrupts: fixture("irq/vm-virtio-6.1.0-57.interrupts.txt"),
      ifname: "eth0.5",
    };
    const root = tree({ ...vlan, probe: { ...vlan.probe, devices: [] } });
    const r = spawnSync(
      "sh",
      ["-c", renderBootPlanner({ interface: "eth0.5", policy: "spread" }, { root })],
      { encoding: "utf8" },
    );
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/^nettune: eth0\.5: driver none is not/);
  });
});

describe("the script", () => {
  test("stays small for cloud-init's user data", () => {
    const sizes = [
      renderBootPlanner({ interface: "eth0", policy: "spread" }),
      renderBootPlanner({
        interface: "enp129s0f1np1.9",
        policy: "numa-local",
        exclude: "0-1,24-25",
      }),
      renderBootPlanner({ interface: "eth0", policy: { cpus: "0-3,8" } }),
      renderBootPlanner({
        interface: "eth0",
        policy: { map: { 0: "2", 1: "3", 2: "4-5", 3: "6,7" } },
      }),
    ].map((s) => Buffer.byteLength(s));
    for (const s of sizes) expect(s).toBeLessThan(2500);
  });

  test("runs as the body of a subshell function, as a boot script embeds it", () => {
    const root = tree(vm("irq/vm-virtio-6.1.0-57.interrupts.txt"));
    const wrap = (policy: IrqAffinityInputs["policy"]) =>
      spawnSync(
        "sh",
        [
          "-c",
          `nt_plan() (\n${renderBootPlanner({ interface: "eth0", policy }, { root })}\n)\n` +
            'P=$(nt_plan) || exit $?; printf "%s\\n" "$P"',
        ],
        { encoding: "utf8" },
      );
    const ok = wrap("spread");
    expect(ok.status).toBe(0);
    expect(ok.stdout).toBe(
      planned(vm("irq/vm-virtio-6.1.0-57.interrupts.txt"), { policy: "spread" }),
    );
    const bad = wrap({ map: { 9: "1" } });
    expect(bad.status).toBe(3);
    expect(bad.stderr).toBe("nettune: eth0: no queue 9\n");
  });

  test("parses in dash (sh -n)", () => {
    const r = spawnSync("sh", ["-n"], {
      input: renderBootPlanner({ interface: "eth0", policy: "spread" }),
      encoding: "utf8",
    });
    expect(r.status).toBe(0);
  });

  test("refuses what the schema refuses", () => {
    expect(() => renderBootPlanner({ interface: "eth0;reboot", policy: "spread" })).toThrow(
      /invalid interface name/,
    );
    expect(() => renderBootPlanner({ interface: "-eth0", policy: "spread" })).toThrow(RangeError);
    expect(() => renderBootPlanner({ interface: "eth0", policy: { cpus: "3-1" } })).toThrow(
      /range 3-1 goes down/,
    );
    expect(() => renderBootPlanner({ interface: "eth0", policy: "spread", exclude: "x" })).toThrow(
      RangeError,
    );
    expect(() => renderBootPlanner({ interface: "eth0", policy: { map: { x: "1" } } })).toThrow(
      /not a queue index/,
    );
  });

  test("quotes the root", () => {
    const root = tree(vm("irq/vm-virtio-6.1.0-57.interrupts.txt"));
    const odd = path.join(root, "it's a dir");
    fs.mkdirSync(odd);
    for (const e of fs.readdirSync(root))
      if (e !== "it's a dir") fs.renameSync(path.join(root, e), path.join(odd, e));
    const r = spawnSync(
      "sh",
      ["-c", renderBootPlanner({ interface: "eth0", policy: { cpus: "1" } }, { root: odd })],
      { encoding: "utf8" },
    );
    expect(r.stderr).toBe("");
    expect(r.stdout.split("\n")[0]).toBe("virtio3-input.0\t1");
  });
});

describe("the boot script cloud-init installs (renderIrqBootFiles)", () => {
  test("first boot: the journal of originals, then the pins as planned; a second run keeps the journal", () => {
    const h = vm("interrupts/vm-virtio-6.1.0-57.txt");
    const root = tree(h);
    // /proc/irq/N/<action>/ and smp_affinity_list for every IRQ the capture shows, at its
    // captured CPUs.
    const rows = parseProcInterrupts(h.interrupts).lines;
    for (const l of rows) {
      if (typeof l.irq !== "number") continue;
      const dir = path.join(root, "proc/irq", String(l.irq));
      for (const a of l.actions) fs.mkdirSync(path.join(dir, a), { recursive: true });
      fs.writeFileSync(
        path.join(dir, "smp_affinity_list"),
        `${h.probe.affinity.get(l.irq)?.smp ?? "0-3"}\n`,
      );
    }
    const unitName = "nettune-irqaffinity-gw-irqs-abc123.service";
    const journal = "/var/lib/nettune/originals/irq-eth0-nettune-irqaffinity-gw-irqs-abc123";
    const files = renderIrqBootFiles(
      { unitName, interface: "eth0" },
      renderBootPlanner({ interface: "eth0", policy: "spread" }, { root }),
      journal,
      { mode: "ban", optionsFile: "*" },
    );
    expect(files.map((f) => [f.path, f.permissions])).toEqual([
      ["/usr/local/lib/nettune/nettune-irqaffinity-gw-irqs-abc123.sh", "0755"],
      [`/etc/systemd/system/${unitName}`, "0644"],
      ["/etc/udev/rules.d/90-nettune-irqaffinity-gw-irqs-abc123.rules", "0644"],
    ]);
    expect(files[1]!.content).toContain(
      "ExecStart=/bin/sh /usr/local/lib/nettune/nettune-irqaffinity-gw-irqs-abc123.sh",
    );
    // The host's paths moved into the tree; no irqbalance and no systemctl here, so no ban.
    const script = files[0]!.content
      .replaceAll("/proc/irq", `${root}/proc/irq`)
      .replaceAll("/var/lib/nettune", `${root}/var/lib/nettune`);
    const bin = path.join(root, "bin");
    fs.mkdirSync(bin);
    for (const tool of [
      "sh",
      "cat",
      "awk",
      "grep",
      "sed",
      "sort",
      "tr",
      "cut",
      "mkdir",
      "mv",
      "readlink",
      "sleep",
      "rmdir",
      "rm",
      "ls",
      "cmp",
      "cp",
    ]) {
      const found = spawnSync("sh", ["-c", `command -v ${tool}`], {
        encoding: "utf8",
      }).stdout.trim();
      if (found) fs.symlinkSync(found, path.join(bin, tool));
    }
    const run = () => spawnSync("sh", ["-c", script], { encoding: "utf8", env: { PATH: bin } });
    const before = (irq: number) => h.probe.affinity.get(irq)?.smp;
    const plan = planPins(inputsOf(h, { policy: "spread" }), facts(h)).pins;
    expect(plan.length).toBe(8);

    const first = run();
    expect(first.stderr).toBe("");
    expect(first.status).toBe(0);
    const smp = (irq: number) =>
      fs.readFileSync(path.join(root, "proc/irq", String(irq), "smp_affinity_list"), "utf8").trim();
    for (const p of plan) expect(smp(p.irq), p.action).toBe(p.cpus);
    // What IrqAffinity's create reads from the journal: each planned IRQ's CPUs before the pins,
    // and irqbalance as its probe would see it.
    const text = fs.readFileSync(path.join(root, journal), "utf8");
    expect(text).toBe(
      plan.map((p) => `${p.action}\t${before(p.irq)}\n`).join("") +
        '@irqbalance\t{"installed":false,"active":false,"enabled":""}\n',
    );
    expect(first.stdout).toMatch(/^pinned\t/m);

    // Another boot: the journal keeps the first originals, the pins hold.
    expect(run().status).toBe(0);
    expect(fs.readFileSync(path.join(root, journal), "utf8")).toBe(text);
    for (const p of plan) expect(smp(p.irq)).toBe(p.cpus);
  });
});
