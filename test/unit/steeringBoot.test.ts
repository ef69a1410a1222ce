/**
 * PacketSteering at boot (src/host/steeringBoot.ts), run with dash on a sysfs/proc tree in a temp
 * folder laid out as the kernel lays it out (masks as the kernel prints them for the host's
 * nr_cpu_ids): the files it writes are the values PacketSteering's plan sets on the same host,
 * its journal holds the originals as the resource's create journals them, and what it cannot
 * set stops it (exit 3) with everything it wrote put back.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, describe, expect, test } from "vitest";
import { packetSteeringSchema } from "../../src/schemas/packetSteering";
import {
  liveValues,
  packetSteeringSpec,
  plan,
  type SteeringRead,
} from "../../src/specs/packetSteering";
import { renderSteeringBoot } from "../../src/host/steeringBoot";
import { renderCpuMask } from "../../src/host/cpus";
import { parseIpLink } from "../../src/host/ip";
import { renderLinkUnit } from "../../src/host/systemd";

const CONNECTION = { host: "198.18.9.9", password: "unused" };
const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

interface Shape {
  readonly cpus: number;
  readonly rx: number;
  readonly tx: number;
  /** Files that hold something other than the empty mask / 0 before boot. */
  readonly initial?: Readonly<Record<string, string>>;
}

const QUEUES = "sys/class/net/eth0/queues";
const SOCK = "proc/sys/net/core/rps_sock_flow_entries";

/** The tree: every queue's steering files and the sysctl, as the kernel prints them. */
function tree(s: Shape): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-steerboot-"));
  roots.push(root);
  const none = renderCpuMask([], s.cpus);
  const put = (rel: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), `${s.initial?.[rel] ?? text}\n`);
  };
  for (let q = 0; q < s.rx; q++) {
    put(`${QUEUES}/rx-${q}/rps_cpus`, none);
    put(`${QUEUES}/rx-${q}/rps_flow_cnt`, "0");
  }
  for (let q = 0; q < s.tx; q++) {
    put(`${QUEUES}/tx-${q}/xps_cpus`, none);
    put(`${QUEUES}/tx-${q}/xps_rxqs`, renderCpuMask([], Math.max(s.rx, 1)));
  }
  put(SOCK, "0");
  return root;
}

/** What PacketSteering's probe would read from the tree. */
function readTree(root: string, s: Shape): SteeringRead {
  const files: Record<string, string> = {};
  const q = path.join(root, QUEUES);
  for (const d of fs.readdirSync(q))
    for (const f of fs.readdirSync(path.join(q, d)))
      files[`${d}/${f}`] = fs.readFileSync(path.join(q, d, f), "utf8").trim();
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  return {
    possible: `0-${s.cpus - 1}`,
    online: `0-${s.cpus - 1}`,
    rxQueues: range(s.rx),
    txQueues: range(s.tx),
    files,
    unreadable: {},
    sockFlowEntries: fs.readFileSync(path.join(root, SOCK), "utf8").trim(),
  };
}

function factsOf(read: SteeringRead) {
  const link = parseIpLink(
    JSON.stringify([
      {
        ifindex: 2,
        ifname: "eth0",
        flags: ["UP"],
        mtu: 1500,
        operstate: "UP",
        link_type: "ether",
        num_rx_queues: read.rxQueues.length,
      },
    ]),
  )[0]!;
  return { info: { ifname: "eth0", driver: "virtio_net", link }, own: read };
}

const inputsOf = (steering: Record<string, unknown>) =>
  packetSteeringSchema.parse({
    connection: CONNECTION,
    interface: "eth0",
    unitName: "nettune-packetsteering-gw-steering.service",
    ...steering,
  });

function run(root: string, steering: Record<string, unknown>) {
  const journal = path.join(root, "var/lib/nettune/originals/steering-eth0-x");
  const script = renderSteeringBoot(inputsOf(steering), journal, { root });
  const res = spawnSync("dash", ["-c", script], { encoding: "utf8" });
  const journaled = fs.existsSync(journal)
    ? Object.fromEntries(
        fs
          .readFileSync(journal, "utf8")
          .trim()
          .split("\n")
          .map((l) => {
            const [k, v] = l.split("\t");
            return [k!, JSON.parse(v!) as string];
          }),
      )
    : undefined;
  return { status: res.status, stderr: res.stderr, journaled };
}

const CASES: Array<[string, Shape, Record<string, unknown>]> = [
  [
    "lowLatency's RFS on the VM host (4 CPUs, 4 queue pairs)",
    { cpus: 4, rx: 4, tx: 4 },
    {
      rfs: { flowEntries: 32768 },
    },
  ],
  [
    "RPS on every queue, RFS over 3 rx queues, XPS per queue, on 40 CPUs with originals",
    {
      cpus: 40,
      rx: 3,
      tx: 3,
      initial: {
        [`${QUEUES}/tx-0/xps_cpus`]: "00,00000101",
        [`${QUEUES}/tx-1/xps_cpus`]: "ff,ffffffff",
        [`${QUEUES}/rx-1/rps_flow_cnt`]: "64",
        [SOCK]: "4096",
      },
    },
    { rps: "8-15,32", rfs: { flowEntries: 4096 }, xps: { cpus: { 0: "0-3", 1: "36-39" } } },
  ],
  [
    "RPS per queue and XPS by rx queue, on 64 CPUs",
    { cpus: 64, rx: 8, tx: 8, initial: { [`${QUEUES}/tx-2/xps_rxqs`]: "04" } },
    { rps: { 0: "0", 7: "63" }, xps: { rxqs: { 0: "0", 2: "1-2,7" } } },
  ],
];

describe("PacketSteering at boot", () => {
  for (const [title, shape, steering] of CASES) {
    test(`${title}: the plan's values, and the originals journalled`, () => {
      const root = tree(shape);
      const before = readTree(root, shape);
      const want = plan(inputsOf(steering), factsOf(before), "host");
      expect(want.failures).toEqual([]);
      expect(packetSteeringSpec.asDeclared!(inputsOf(steering), factsOf(before))).toBe(false);
      const res = run(root, steering);
      expect(res.stderr).toBe("");
      expect(res.status).toBe(0);
      const after = liveValues(readTree(root, shape));
      for (const [k, v] of Object.entries(want.values)) expect(after[k], k).toBe(v);
      // A PacketSteering's preview on the booted host: already as declared.
      expect(
        packetSteeringSpec.asDeclared!(inputsOf(steering), factsOf(readTree(root, shape))),
      ).toBe(true);
      // Only the planned files changed.
      const beforeLive = liveValues(before);
      for (const k of Object.keys(beforeLive))
        if (!(k in want.values)) expect(after[k], k).toBe(beforeLive[k]);
      // The journal: each planned key's original, as the create would record it.
      expect(res.journaled).toEqual(
        Object.fromEntries(Object.keys(want.values).map((k) => [k, beforeLive[k]])),
      );
      // A second boot: the same values; the journal keeps the originals.
      const again = run(root, steering);
      expect(again.status).toBe(0);
      expect(again.journaled).toEqual(res.journaled);
      expect(liveValues(readTree(root, shape))).toEqual(after);
    });
  }

  test("a queue the NIC lacks stops it before anything is written", () => {
    const shape = { cpus: 4, rx: 2, tx: 2 };
    const root = tree(shape);
    const before = liveValues(readTree(root, shape));
    const res = run(root, { rps: { 0: "1", 5: "2" } });
    expect(res.status).toBe(3);
    expect(res.stderr).toContain("no rx-5/rps_cpus");
    expect(res.journaled).toBeUndefined();
    expect(liveValues(readTree(root, shape))).toEqual(before);
  });

  test("a write that fails puts back what was written, and says which", () => {
    const shape = { cpus: 4, rx: 4, tx: 4 };
    const root = tree(shape);
    const before = liveValues(readTree(root, shape));
    // rx-2's file cannot be written (a folder in its place).
    const f = path.join(root, QUEUES, "rx-2/rps_flow_cnt");
    fs.rmSync(f);
    fs.mkdirSync(f);
    const res = run(root, { rfs: { flowEntries: 1024 } });
    expect(res.status).toBe(3);
    expect(res.stderr).toMatch(/steering on eth0: rx-2\/rps_flow_cnt: writing 256 failed/);
    fs.rmdirSync(f);
    fs.writeFileSync(f, "0\n");
    expect(liveValues(readTree(root, shape))).toEqual(before);
  });

  test("fits a unit's ExecStart: one line, no single quote", () => {
    const script = renderSteeringBoot(
      inputsOf({ rps: "0-3", rfs: { flowEntries: 32768 }, xps: { rxqs: { 0: "0" } } }),
      "/var/lib/nettune/originals/steering-eth0-x",
    );
    expect(script).not.toContain("\n");
    expect(script).not.toContain("'");
    const unit = renderLinkUnit({
      name: "x.service",
      description: "d",
      interface: "eth0",
      commands: [["sh", "-c", script]],
    });
    expect(unit.split("\n").filter((l) => l.startsWith("ExecStart="))).toHaveLength(1);
  });
});
