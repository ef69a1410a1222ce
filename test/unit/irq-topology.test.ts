/**
 * `spreadOrder` on the CPU topology of real two-socket machines. Every file in
 * test/fixtures/topology is output captured on a real machine and posted publicly (see the
 * `## topology/` section of test/fixtures/SOURCES.md). The readers below turn that text into the
 * node → CPUs and CPU → thread siblings maps nettune's probe builds from sysfs; the expected
 * orders were worked out by hand from the captures.
 *
 * What spreadOrder does (and what is checked here): the allowed CPUs in two tiers, first one
 * thread of every core (its lowest allowed thread), then the remaining threads; within each tier
 * the NIC's node comes first, then the other nodes by number, and CPUs ascend within a node.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";

import { spreadOrder } from "../../src/specs/irqAffinity";

const DIR = path.join(__dirname, "..", "fixtures", "topology");

function fixture(name: string): string {
  return fs.readFileSync(path.join(DIR, name), "utf8");
}

interface Topology {
  /** NUMA node → its CPUs, ascending. */
  readonly nodes: Map<number, number[]>;
  /** CPU → the CPUs of its core (itself included), ascending. */
  readonly siblings: Map<number, number[]>;
}

/** `0-11,24-35` → [0, …, 11, 24, …, 35]. */
function cpuList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.trim().split(",")) {
    const [a, b] = part.split("-").map(Number);
    if (a === undefined || Number.isNaN(a)) throw new Error(`bad CPU list ${text}`);
    for (let c = a; c <= (b ?? a); c++) out.push(c);
  }
  return out;
}

function push<K>(map: Map<K, number[]>, key: K, cpu: number): void {
  const list = map.get(key) ?? [];
  list.push(cpu);
  map.set(key, list);
}

/** Threads that share a core: one group per (socket, core). */
function siblingsOf(coreOf: Map<number, string>): Map<number, number[]> {
  const cores = new Map<string, number[]>();
  for (const [cpu, core] of coreOf) push(cores, core, cpu);
  const siblings = new Map<number, number[]>();
  for (const group of cores.values()) {
    const sorted = [...group].sort((a, b) => a - b);
    for (const cpu of sorted) siblings.set(cpu, sorted);
  }
  return siblings;
}

function sortedNodes(nodes: Map<number, number[]>): Map<number, number[]> {
  return new Map([...nodes].map(([n, cpus]) => [n, [...cpus].sort((a, b) => a - b)]));
}

/** `lscpu -p`: `# CPU,Core,Socket,Node,,L1d,…` then one `cpu,core,socket,node,,…` line per CPU. */
function fromLscpuP(text: string): Topology {
  const header = text.split("\n").find((l) => l.startsWith("# CPU,"));
  expect(header?.startsWith("# CPU,Core,Socket,Node,")).toBe(true);
  const nodes = new Map<number, number[]>();
  const coreOf = new Map<number, string>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const [cpu, core, socket, node] = line.split(",").map(Number);
    if (cpu === undefined || core === undefined || socket === undefined || node === undefined) {
      throw new Error(`bad lscpu -p line ${line}`);
    }
    push(nodes, node, cpu);
    coreOf.set(cpu, `${socket}/${core}`);
  }
  return { nodes: sortedNodes(nodes), siblings: siblingsOf(coreOf) };
}

/**
 * `/proc/cpuinfo` (`processor`, `physical id`, `core id` of each CPU) and `lscpu`'s
 * `NUMA nodeN CPU(s):` lines of the same machine.
 */
function fromCpuinfo(cpuinfo: string, lscpu: string): Topology {
  const coreOf = new Map<number, string>();
  for (const block of cpuinfo.split(/\n\s*\n/)) {
    const field = (name: string) => new RegExp(`^${name}\\s*: (\\d+)$`, "m").exec(block)?.[1];
    const cpu = field("processor");
    if (cpu === undefined) continue;
    coreOf.set(Number(cpu), `${field("physical id")}/${field("core id")}`);
  }
  const nodes = new Map<number, number[]>();
  for (const m of lscpu.matchAll(/^NUMA node(\d+) CPU\(s\):\s+(\S+)$/gm)) {
    nodes.set(Number(m[1]), cpuList(m[2] ?? ""));
  }
  return { nodes: sortedNodes(nodes), siblings: siblingsOf(coreOf) };
}

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

interface Machine {
  /** The fixture file(s) it is read from. */
  readonly files: readonly string[];
  readonly topology: () => Topology;
  readonly cpus: number;
  /** CPUs per node, by node. */
  readonly perNode: Record<number, number>;
  readonly threadsPerCore: number;
  /** CPU 0's thread siblings, itself included. */
  readonly siblingsOf0: readonly number[];
}

const MACHINES: Record<string, Machine> = {
  "2x Xeon E5-2687W v4, 48 CPUs, siblings 24 apart (lscpu -p)": {
    files: ["2xE5-2687Wv4-48cpu.lscpu-p.txt"],
    topology: () => fromLscpuP(fixture("2xE5-2687Wv4-48cpu.lscpu-p.txt")),
    cpus: 48,
    perNode: { 0: 24, 1: 24 },
    threadsPerCore: 2,
    siblingsOf0: [0, 24],
  },
  "2x Xeon E5-2640 v2, 32 CPUs, siblings 16 apart (/proc/cpuinfo + lscpu)": {
    files: ["2xE5-2640-32cpu.cpuinfo.txt", "2xE5-2640-32cpu.lscpu.txt"],
    topology: () =>
      fromCpuinfo(fixture("2xE5-2640-32cpu.cpuinfo.txt"), fixture("2xE5-2640-32cpu.lscpu.txt")),
    cpus: 32,
    perNode: { 0: 16, 1: 16 },
    threadsPerCore: 2,
    siblingsOf0: [0, 16],
  },
  "2x Xeon X5650, 12 CPUs, no SMT, nodes interleaved (lscpu -p)": {
    files: ["2xX5650-12cpu.lscpu-p.txt"],
    topology: () => fromLscpuP(fixture("2xX5650-12cpu.lscpu-p.txt")),
    cpus: 12,
    perNode: { 0: 6, 1: 6 },
    threadsPerCore: 1,
    siblingsOf0: [0],
  },
};

/**
 * Checks the order's properties against the topology, independently of how spreadOrder computes
 * it: every allowed CPU exactly once; the earliest-listed thread of each core is its lowest
 * allowed thread and all of those come before any other thread; within each of the two tiers the
 * NIC's node comes first, then the other nodes by number, CPUs ascending within a node.
 */
function checkOrder(order: number[], allowed: number[], nicNode: number | null, t: Topology) {
  expect([...order].sort((a, b) => a - b)).toEqual([...allowed].sort((a, b) => a - b));
  const allowedSet = new Set(allowed);
  const nodeOf = new Map<number, number>();
  for (const [n, cpus] of t.nodes) for (const c of cpus) nodeOf.set(c, n);

  const firstOfCore = new Set<number>();
  const seenCores = new Set<string>();
  for (const c of order) {
    const core = (t.siblings.get(c) ?? [c]).filter((s) => allowedSet.has(s));
    const key = core.join(",");
    if (seenCores.has(key)) continue;
    seenCores.add(key);
    firstOfCore.add(c);
    expect(c).toBe(Math.min(...core));
  }
  const tier1 = order.filter((c) => firstOfCore.has(c));
  const tier2 = order.filter((c) => !firstOfCore.has(c));
  expect(order).toEqual([...tier1, ...tier2]);

  const rank = (c: number) => {
    const n = nodeOf.get(c) ?? Number.MAX_SAFE_INTEGER;
    return n === nicNode ? -1 : n;
  };
  for (const tier of [tier1, tier2]) {
    const expected = [...tier].sort((a, b) => rank(a) - rank(b) || a - b);
    expect(tier).toEqual(expected);
  }
  const local = nicNode === null ? [] : (t.nodes.get(nicNode) ?? []);
  if (local.some((c) => allowedSet.has(c))) expect(nodeOf.get(order[0] ?? -1)).toBe(nicNode);
}

describe("the captures", () => {
  it("every file in test/fixtures/topology is read by a machine below", () => {
    const used = Object.values(MACHINES).flatMap((m) => m.files);
    expect(fs.readdirSync(DIR).sort()).toEqual([...used].sort());
  });

  it.each(Object.entries(MACHINES))("%s: nodes and thread siblings", (_name, m) => {
    const t = m.topology();
    expect([...t.nodes.keys()].sort()).toEqual([0, 1]);
    for (const [n, count] of Object.entries(m.perNode)) {
      expect(t.nodes.get(Number(n))).toHaveLength(count);
    }
    const all = [...t.nodes.values()].flat().sort((a, b) => a - b);
    expect(all).toEqual(range(0, m.cpus - 1));
    expect([...t.siblings.keys()].sort((a, b) => a - b)).toEqual(all);
    for (const [cpu, sibs] of t.siblings) {
      expect(sibs).toHaveLength(m.threadsPerCore);
      expect(sibs).toContain(cpu);
      // Thread siblings share a node.
      const node = [...t.nodes].find(([, cpus]) => cpus.includes(cpu))?.[0];
      for (const s of sibs) expect(t.nodes.get(node ?? -1)).toContain(s);
    }
    expect(t.siblings.get(0)).toEqual(m.siblingsOf0);
  });
});

describe("spreadOrder: properties on every capture", () => {
  describe.each(Object.entries(MACHINES))("%s", (_name, m) => {
    const t = m.topology();
    const all = range(0, m.cpus - 1);
    const cpu0Core = t.siblings.get(0) ?? [0];

    it.each([0, 1, null])("all CPUs, NIC on node %s", (nicNode) => {
      checkOrder(spreadOrder(all, nicNode, t.nodes, t.siblings), all, nicNode, t);
    });

    it.each([0, 1])("CPU 0 and its siblings excluded, NIC on node %s", (nicNode) => {
      const allowed = all.filter((c) => !cpu0Core.includes(c));
      const order = spreadOrder(allowed, nicNode, t.nodes, t.siblings);
      checkOrder(order, allowed, nicNode, t);
      for (const c of cpu0Core) expect(order).not.toContain(c);
    });

    it("CPU 0 alone excluded: its sibling stands for the core", () => {
      const allowed = all.filter((c) => c !== 0);
      const order = spreadOrder(allowed, 0, t.nodes, t.siblings);
      checkOrder(order, allowed, 0, t);
      expect(order).not.toContain(0);
    });

    it("a whole node excluded: only the other node, NIC node or not", () => {
      const node1 = t.nodes.get(1) ?? [];
      for (const nicNode of [0, 1]) {
        const order = spreadOrder(node1, nicNode, t.nodes, t.siblings);
        checkOrder(order, node1, nicNode, t);
      }
    });
  });
});

describe("spreadOrder: exact orders worked out from the captures", () => {
  it("E5-2687W v4 (siblings n and n+24; node 0 = 0-11,24-35, node 1 = 12-23,36-47)", () => {
    const { nodes, siblings } =
      MACHINES["2x Xeon E5-2687W v4, 48 CPUs, siblings 24 apart (lscpu -p)"]!.topology();
    const all = range(0, 47);
    // NIC on node 0: node 0's first threads, node 1's, then node 0's second threads, node 1's.
    expect(spreadOrder(all, 0, nodes, siblings)).toEqual([
      ...range(0, 11),
      ...range(12, 23),
      ...range(24, 35),
      ...range(36, 47),
    ]);
    // NIC on node 1.
    expect(spreadOrder(all, 1, nodes, siblings)).toEqual([
      ...range(12, 23),
      ...range(0, 11),
      ...range(36, 47),
      ...range(24, 35),
    ]);
    // CPU 0 and its sibling 24 excluded, NIC on node 1.
    const without0 = all.filter((c) => c !== 0 && c !== 24);
    expect(spreadOrder(without0, 1, nodes, siblings)).toEqual([
      ...range(12, 23),
      ...range(1, 11),
      ...range(36, 47),
      ...range(25, 35),
    ]);
    // CPU 12 alone excluded, NIC on node 1: 36 becomes its core's first thread.
    expect(
      spreadOrder(
        all.filter((c) => c !== 12),
        1,
        nodes,
        siblings,
      ),
    ).toEqual([...range(13, 23), 36, ...range(0, 11), ...range(37, 47), ...range(24, 35)]);
    // No NUMA node for the NIC: node 0 first.
    expect(spreadOrder(all, null, nodes, siblings)).toEqual(range(0, 47));
    // Four CPUs of node 1 given in a scrambled order, two of them siblings (13/37).
    expect(spreadOrder([37, 13, 40, 15], 0, nodes, siblings)).toEqual([13, 15, 40, 37]);
  });

  it("E5-2640 v2 (siblings n and n+16; node 0 = 0-7,16-23, node 1 = 8-15,24-31)", () => {
    const { nodes, siblings } =
      MACHINES[
        "2x Xeon E5-2640 v2, 32 CPUs, siblings 16 apart (/proc/cpuinfo + lscpu)"
      ]!.topology();
    expect(spreadOrder(range(0, 31), 1, nodes, siblings)).toEqual([
      ...range(8, 15),
      ...range(0, 7),
      ...range(24, 31),
      ...range(16, 23),
    ]);
    expect(
      spreadOrder(
        range(0, 31).filter((c) => c !== 0 && c !== 16),
        0,
        nodes,
        siblings,
      ),
    ).toEqual([...range(1, 7), ...range(8, 15), ...range(17, 23), ...range(24, 31)]);
  });

  it("X5650 (no SMT; node 0 = even CPUs, node 1 = odd CPUs)", () => {
    const { nodes, siblings } =
      MACHINES["2x Xeon X5650, 12 CPUs, no SMT, nodes interleaved (lscpu -p)"]!.topology();
    expect(spreadOrder(range(0, 11), 1, nodes, siblings)).toEqual([
      1, 3, 5, 7, 9, 11, 0, 2, 4, 6, 8, 10,
    ]);
    expect(spreadOrder(range(1, 11), 0, nodes, siblings)).toEqual([
      2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11,
    ]);
  });
});
