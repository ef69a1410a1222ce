/**
 * Benchmark "effect": what the tuning does to traffic, measured before and after on two sandbox
 * hosts in one run. nettune applies every change (one Pulumi stack); the benchmark only wires the
 * paths between the hosts and measures.
 *
 * - offloads: iperf3 over a veth link between the hosts, TSO/GSO/GRO off, then on (NicOffloads);
 * - listen backlog: a burst of connection attempts against a listener that accepts slowly, with
 *   the namespace's defaults, then the guide's somaxconn / tcp_max_syn_backlog (SysctlSet);
 * - WAN: iperf3 over an emulated path (tools/wanem: 25 ms each way, 1% loss each way, a 100 Mbit/s
 *   bottleneck) with cubic and default buffers, then bbr (CongestionControl) and the guide's
 *   buffers (SysctlSet). The kernel has no netem; wanem carries the packets between a TUN device
 *   in each host, so TCP still runs end to end between the hosts' own stacks.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { SandboxHost } from "../src/sandbox/sandbox";
import { featureState } from "../src/specs/nicOffloads";
import { parseEthtoolFeatures, resolveFeatureName } from "../src/host/ethtool";
import {
  ROOT,
  differences,
  direct,
  liveValues,
  machine,
  sandboxDown,
  sandboxUp,
  writeKnownHosts,
} from "./hosts";
import { budget, runOk, startBackground, type Background } from "./proc";
import type { DriverResult } from "./pulumiDriver";
import { drive, expectChanges } from "./stack";
import type { EffectProgramArgs } from "./effect/program";

export const EFFECT_SANDBOX = "effect";

const LAN_IF = "lan0";
const LAN = ["198.19.0.1", "198.19.0.2"] as const;
const WAN_IF = "wan0";
const WAN = ["198.19.1.1", "198.19.1.2"] as const;

/** The emulated WAN path, each direction. */
export const WAN_PATH = { delayMs: 25, loss: 0.01, rateMbit: 100, queueMs: 50 };
const LAN_SECONDS = 10;
const WAN_SECONDS = 20;
/** The burst's two sides (listener and client), copied to the hosts. */
const BURST_PY = path.join(ROOT, "bench/effect/burst.py");
/** The burst: connections at once, the listener's accept rate, and the client's deadline. */
export const BURST = { count: 8000, acceptPerSecond: 10_000, deadlineSec: 1, listenSec: 4 };

/** The guide's values (99-network-optimizations.conf) that a network namespace may set. */
export const GUIDE: Record<string, number | number[]> = {
  "net.core.somaxconn": 65535,
  "net.ipv4.tcp_max_syn_backlog": 16384,
  "net.ipv4.tcp_rmem": [4096, 87380, 33554432],
  "net.ipv4.tcp_wmem": [4096, 65536, 33554432],
};
const GUIDE_TEXT = Object.fromEntries(
  Object.entries(GUIDE).map(([k, v]) => [k, Array.isArray(v) ? v.join(" ") : String(v)]),
);
const OFFLOADS = ["tso", "gso", "gro"] as const;

const CAP_UP_MS = 120_000;
const CAP_DOWN_MS = 120_000;
const CAP_PULUMI_MS = 300_000;

export interface Iperf {
  mbits: number;
  retransmits: number;
  /** Segments the receiver reported as received twice (DSACK): retransmits that were not needed. */
  dsackSegs?: number;
  senderCpu: number;
  receiverCpu: number;
  algorithm: string;
}

export interface Burst {
  attempted: number;
  established: number;
  failed: number;
  p99: number | null;
  listenOverflows: number;
  listenDrops: number;
  synRetransmits: number;
}

export interface EffectRun {
  run: number;
  rttMs: { min: number; avg: number; max: number; lossPct: number };
  defaults: Record<string, string>;
  offloadDefaults: Record<string, boolean>;
  lanOff: Iperf;
  lanOn: Iperf;
  burstBefore: Burst;
  burstAfter: Burst;
  wanCubic: Iperf;
  wanBbrDefaultBuffers: Iperf;
  wanTuned: Iperf;
  observedAlgorithm: string;
  wanem: { aToB: WanemCounters; bToA: WanemCounters };
}

interface WanemCounters {
  packets: number;
  lossDrops: number;
  queueDrops: number;
  delivered: number;
}

export interface EffectBenchOptions {
  runs: number;
  argv: string[];
  runTimeoutMs: number;
  log: (m: string) => void;
}

export interface EffectBenchResult {
  runs: EffectRun[];
  table: string;
  section: string;
}

export async function effectBench(options: EffectBenchOptions): Promise<EffectBenchResult> {
  const runs: EffectRun[] = [];
  const env = await machine();
  for (let i = 1; i <= options.runs; i++) {
    options.log(`bench effect: run ${i} of ${options.runs}`);
    const r = await oneRun(i, Date.now() + options.runTimeoutMs, options.log);
    options.log(`${renderEffectTables([r])}\n`);
    runs.push(r);
  }
  const table = renderEffectTables(runs);
  return {
    runs,
    table,
    section: renderEffectSection(runs, {
      ...env,
      date: new Date().toISOString().slice(0, 10),
      argv: options.argv,
    }),
  };
}

async function oneRun(runNo: number, deadline: number, log: (m: string) => void) {
  const wanem = path.join(ROOT, ".tools/bin/wanem");
  if (!fs.existsSync(wanem)) throw new Error(`${wanem} is missing: run \`npm run setup\``);
  await sandboxDown(EFFECT_SANDBOX, CAP_DOWN_MS);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-effect-"));
  let wan: Background | undefined;
  let ok = false;
  try {
    log(`bench effect: sandbox up --name ${EFFECT_SANDBOX} --hosts 2`);
    const hosts = await sandboxUp(EFFECT_SANDBOX, 2, 0, budget(deadline, CAP_UP_MS));
    const [a, b] = hosts as [SandboxHost, SandboxHost];
    const kh = path.join(work, "known_hosts");
    writeKnownHosts(kh, hosts);

    log(`bench effect: wiring ${LAN_IF} (veth) and ${WAN_IF} (wanem) between the hosts`);
    await wireLan(a, b, deadline);
    wan = startBackground([
      wanem,
      "--ns-a",
      `/run/netns/${a.namespace}`,
      "--dev-a",
      WAN_IF,
      "--ns-b",
      `/run/netns/${b.namespace}`,
      "--dev-b",
      WAN_IF,
      "--delay",
      `${WAN_PATH.delayMs}ms`,
      "--loss",
      String(WAN_PATH.loss),
      "--rate-mbit",
      String(WAN_PATH.rateMbit),
      "--queue",
      `${WAN_PATH.queueMs}ms`,
      "--duration",
      `${Math.max(60, Math.ceil((deadline - Date.now()) / 1000))}s`,
    ]);
    await wan.waitFor(/^ready$/, 10_000);
    await wireWan(a, b, deadline);
    const rttMs = await pingRtt(a, kh, WAN[1]);
    log(
      `bench effect: emulated RTT ${rttMs.min}/${rttMs.avg}/${rttMs.max} ms (min/avg/max), ${rttMs.lossPct}% of pings lost`,
    );
    const want = 2 * WAN_PATH.delayMs;
    if (rttMs.min < want || rttMs.avg > want + 25) {
      throw new Error(
        `the emulated path's RTT is ${rttMs.min}/${rttMs.avg} ms (min/avg), not about ${want} ms`,
      );
    }

    const defaults = await liveValues(b, kh, Object.keys(GUIDE));
    const offloadDefaults = await readOffloads(a, kh);
    const stack = pulumiStack(hosts, work, deadline);

    log("bench effect: pulumi up: NicOffloads tso/gso/gro off on both hosts");
    const off = Object.fromEntries(OFFLOADS.map((f) => [f, false]));
    expectChanges(await stack.up({ offloads: off }), { create: 3 }, "offloads off");
    await expectOffloads(hosts, kh, false);
    const lanOff = await iperf(a, b, kh, LAN[1], 5201, LAN_SECONDS);

    log("bench effect: pulumi up: NicOffloads tso/gso/gro on");
    const on = Object.fromEntries(OFFLOADS.map((f) => [f, true]));
    expectChanges(await stack.up({ offloads: on }), { update: 2, same: 1 }, "offloads on");
    await expectOffloads(hosts, kh, true);
    const lanOn = await iperf(a, b, kh, LAN[1], 5202, LAN_SECONDS);

    log("bench effect: the namespace's defaults: listen burst, WAN with cubic, WAN with bbr");
    const burstPy = fs.readFileSync(BURST_PY, "utf8");
    for (const h of hosts) await direct(h, kh, "cat > /run/nettune-burst.py", 30_000, burstPy);
    const burstBefore = await burst(a, b, kh, 9001);
    const wanCubic = await iperf(a, b, kh, WAN[1], 5203, WAN_SECONDS, "cubic");
    const wanBbrDefaultBuffers = await iperf(a, b, kh, WAN[1], 5204, WAN_SECONDS, "bbr");

    log("bench effect: pulumi up: + SysctlSet (guide) and CongestionControl bbr on both hosts");
    const tuned = await stack.up({ offloads: on, sysctls: GUIDE, algorithm: "bbr" });
    expectChanges(tuned, { create: 4, same: 3 }, "guide and bbr");
    for (const h of hosts) {
      const wrong = differences(await liveValues(h, kh, Object.keys(GUIDE)), GUIDE_TEXT);
      if (wrong.length > 0)
        throw new Error(`${h.name}: not the guide's values: ${wrong.join("; ")}`);
    }
    const observedAlgorithm = String(tuned.outputs.host1_observedAlgorithm);
    if (observedAlgorithm !== "bbr") {
      throw new Error(`CongestionControl saw ${observedAlgorithm} on a new connection, not bbr`);
    }
    const burstAfter = await burst(a, b, kh, 9002);
    const wanTuned = await iperf(a, b, kh, WAN[1], 5205, WAN_SECONDS);
    if (wanTuned.algorithm !== "bbr") {
      throw new Error(`iperf3 ran with ${wanTuned.algorithm}, not the configured bbr`);
    }

    log("bench effect: pulumi destroy: the hosts' own values come back");
    expectChanges(await stack.destroy(), { delete: 7 }, "destroy");
    for (const h of hosts) {
      const wrong = differences(await liveValues(h, kh, Object.keys(GUIDE)), defaults);
      if (wrong.length > 0) throw new Error(`${h.name}: not restored: ${wrong.join("; ")}`);
      const offloads = await readOffloads(h, kh);
      if (JSON.stringify(offloads) !== JSON.stringify(offloadDefaults)) {
        throw new Error(`${h.name}: offloads not restored: ${JSON.stringify(offloads)}`);
      }
    }

    const counters = JSON.parse(
      (await wan.stop()).stdout.trim().split("\n").pop() ?? "{}",
    ) as EffectRun["wanem"];
    wan = undefined;
    ok = true;
    return {
      run: runNo,
      rttMs,
      defaults,
      offloadDefaults,
      lanOff,
      lanOn,
      burstBefore,
      burstAfter,
      wanCubic,
      wanBbrDefaultBuffers,
      wanTuned,
      observedAlgorithm,
      wanem: counters,
    };
  } finally {
    if (wan) await wan.stop();
    log(`bench effect: sandbox down --name ${EFFECT_SANDBOX}`);
    await sandboxDown(EFFECT_SANDBOX, CAP_DOWN_MS);
    if (ok) fs.rmSync(work, { recursive: true, force: true });
    else log(`bench effect: files of the failed run kept in ${work}`);
  }
}

// --- the paths between the hosts ------------------------------------------------------------

const ip = (args: string[], deadline: number) =>
  runOk(["ip", ...args], { timeoutMs: budget(deadline, 10_000) });

/** A veth pair with one end in each host's namespace: traffic never touches this machine's. */
async function wireLan(a: SandboxHost, b: SandboxHost, deadline: number): Promise<void> {
  await ip(
    [
      "link",
      "add",
      LAN_IF,
      "netns",
      a.namespace,
      "type",
      "veth",
      "peer",
      LAN_IF,
      "netns",
      b.namespace,
    ],
    deadline,
  );
  for (const [h, addr] of [
    [a, LAN[0]],
    [b, LAN[1]],
  ] as const) {
    await ip(["-n", h.namespace, "addr", "add", `${addr}/30`, "dev", LAN_IF], deadline);
    await ip(["-n", h.namespace, "link", "set", LAN_IF, "up"], deadline);
  }
}

async function wireWan(a: SandboxHost, b: SandboxHost, deadline: number): Promise<void> {
  for (const [h, addr] of [
    [a, WAN[0]],
    [b, WAN[1]],
  ] as const) {
    await ip(["-n", h.namespace, "addr", "add", `${addr}/30`, "dev", WAN_IF], deadline);
    await ip(["-n", h.namespace, "link", "set", WAN_IF, "up"], deadline);
  }
}

/** 20 pings, 0.2 s apart, from host `from` to `addr`: min/avg/max RTT and loss. */
async function pingRtt(from: SandboxHost, kh: string, addr: string) {
  const out = await direct(from, kh, `ping -n -q -c 20 -i 0.2 -W 2 ${addr} || true`, 30_000);
  return parsePing(out);
}

export function parsePing(out: string): EffectRun["rttMs"] {
  const loss = /([\d.]+)% packet loss/.exec(out);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\//.exec(out);
  if (!loss || !rtt) throw new Error(`ping printed no summary:\n${out}`);
  return {
    min: Number(rtt[1]),
    avg: Number(rtt[2]),
    max: Number(rtt[3]),
    lossPct: Number(loss[1]),
  };
}

// --- reading the hosts -----------------------------------------------------------------------

/** tso, gso and gro of the host's lan0, as the project's own ethtool reader sees them. */
async function readOffloads(h: SandboxHost, kh: string): Promise<Record<string, boolean>> {
  const features = parseEthtoolFeatures(await direct(h, kh, `ethtool -k ${LAN_IF}`));
  return Object.fromEntries(
    OFFLOADS.map((f) => {
      const state = featureState(features, resolveFeatureName(f));
      if (!state) throw new Error(`${h.name}: ethtool -k ${LAN_IF} shows no ${f}`);
      return [f, state.on];
    }),
  );
}

async function expectOffloads(hosts: SandboxHost[], kh: string, want: boolean) {
  for (const h of hosts) {
    const live = await readOffloads(h, kh);
    if (Object.values(live).some((v) => v !== want)) {
      throw new Error(`${h.name}: ${LAN_IF} offloads are ${JSON.stringify(live)}`);
    }
  }
}

/** TcpExt counters of /proc/net/netstat (the host's own: it is per network namespace). */
export function parseNetstat(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  const lines = text.trim().split("\n");
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = lines[i]!.trim().split(/\s+/);
    const values = lines[i + 1]!.trim().split(/\s+/);
    const prefix = names[0]!.replace(/:$/, "");
    names.slice(1).forEach((n, j) => (out[`${prefix}.${n}`] = Number(values[j + 1])));
  }
  return out;
}

async function netstat(h: SandboxHost, kh: string) {
  return parseNetstat(await direct(h, kh, "cat /proc/net/netstat"));
}

// --- measurements ----------------------------------------------------------------------------

/** One iperf3 stream from `client` to `server` at `addr`; `algorithm` is set per socket (-C). */
async function iperf(
  client: SandboxHost,
  server: SandboxHost,
  kh: string,
  addr: string,
  port: number,
  seconds: number,
  algorithm?: string,
): Promise<Iperf> {
  await direct(
    server,
    kh,
    `iperf3 -s -1 -D -B ${addr} -p ${port} && for i in $(seq 50); do ` +
      `ss -Hltn "sport = :${port}" | grep -q . && exit 0; sleep 0.1; done; ` +
      `echo "iperf3 -s is not listening on ${addr}:${port}" >&2; exit 1`,
  );
  // The sender's counters (its namespace's own) tell retransmits of lost data from needless ones.
  const before = await netstat(client, kh);
  const out = await direct(
    client,
    kh,
    `timeout ${seconds + 30} iperf3 -c ${addr} -p ${port} -t ${seconds} -J${algorithm ? ` -C ${algorithm}` : ""}`,
    (seconds + 40) * 1000,
  );
  const after = await netstat(client, kh);
  const key = "TcpExt.TCPDSACKRecvSegs";
  return { ...parseIperf(out), dsackSegs: (after[key] ?? 0) - (before[key] ?? 0) };
}

export function parseIperf(json: string): Iperf {
  const r = JSON.parse(json) as {
    error?: string;
    end?: {
      sum_sent?: { retransmits?: number };
      sum_received?: { bits_per_second?: number };
      cpu_utilization_percent?: { host_total?: number; remote_total?: number };
      sender_tcp_congestion?: string;
    };
  };
  const e = r.end;
  if (r.error || !e?.sum_received?.bits_per_second || !e.cpu_utilization_percent) {
    throw new Error(`iperf3: ${r.error ?? "no end-of-test summary"}`);
  }
  return {
    mbits: e.sum_received.bits_per_second / 1e6,
    retransmits: e.sum_sent?.retransmits ?? 0,
    senderCpu: e.cpu_utilization_percent.host_total ?? 0,
    receiverCpu: e.cpu_utilization_percent.remote_total ?? 0,
    algorithm: e.sender_tcp_congestion ?? "unknown",
  };
}

/** The listener on `server` (LAN), the burst from `client`, and the counters of both. */
async function burst(
  client: SandboxHost,
  server: SandboxHost,
  kh: string,
  port: number,
): Promise<Burst> {
  const result = `/run/nettune-burst-${port}.json`;
  const s0 = await netstat(server, kh);
  const c0 = await netstat(client, kh);
  await direct(
    server,
    kh,
    `rm -f ${result}; nohup python3 /run/nettune-burst.py listen --host ${LAN[1]} --port ${port} ` +
      `--rate ${BURST.acceptPerSecond} --seconds ${BURST.listenSec} > ${result} 2>&1 < /dev/null & ` +
      `for i in $(seq 50); do grep -q listening ${result} && exit 0; sleep 0.1; done; cat ${result} >&2; exit 1`,
  );
  const out = await direct(
    client,
    kh,
    `python3 /run/nettune-burst.py connect --host ${LAN[1]} --port ${port} ` +
      `--count ${BURST.count} --deadline ${BURST.deadlineSec}`,
    60_000,
  );
  const c = JSON.parse(out) as {
    attempted: number;
    established: number;
    failed: number;
    p99: number | null;
  };
  const listened = await direct(
    server,
    kh,
    `for i in $(seq 100); do grep -q accepted ${result} && break; sleep 0.1; done; cat ${result}`,
  );
  const accepted = (JSON.parse(listened.trim().split("\n").pop() ?? "{}") as { accepted?: number })
    .accepted;
  if (accepted === undefined) throw new Error(`the burst's listener did not finish:\n${listened}`);
  const s1 = await netstat(server, kh);
  const c1 = await netstat(client, kh);
  const d = (x: Record<string, number>, y: Record<string, number>, k: string) =>
    (y[k] ?? 0) - (x[k] ?? 0);
  return {
    attempted: c.attempted,
    established: c.established,
    failed: c.failed,
    p99: c.p99,
    listenOverflows: d(s0, s1, "TcpExt.ListenOverflows"),
    listenDrops: d(s0, s1, "TcpExt.ListenDrops"),
    synRetransmits: d(c0, c1, "TcpExt.TCPSynRetrans"),
  };
}

// --- the Pulumi stack ------------------------------------------------------------------------

function pulumiStack(hosts: SandboxHost[], work: string, deadline: number) {
  const stateDir = path.join(work, "pulumi");
  fs.mkdirSync(stateDir, { recursive: true });
  let n = 0;
  const run = async (
    op: "up" | "destroy",
    args: Omit<EffectProgramArgs, "hosts" | "lanInterface">,
  ): Promise<DriverResult> => {
    n++;
    const [result] = await drive(
      {
        program: path.join(ROOT, "dist/bench/effect/program.js"),
        args: {
          ...args,
          lanInterface: LAN_IF,
          hosts: hosts.map((h) => ({
            address: h.address,
            port: h.port,
            user: h.user,
            privateKeyPath: h.privateKeyPath,
            hostKey: h.hostKey,
          })),
        } satisfies EffectProgramArgs,
        stateDir,
        project: "nettune-bench-effect",
        stack: "effect",
        ops: [{ op, statsDir: path.join(work, "stats", String(n)) }],
        resultFile: path.join(stateDir, `result-${n}.json`),
      },
      deadline,
      CAP_PULUMI_MS,
    );
    return result!;
  };
  return {
    up: (args: Omit<EffectProgramArgs, "hosts" | "lanInterface">) => run("up", args),
    destroy: () => run("destroy", { offloads: {} }),
  };
}

// --- report ----------------------------------------------------------------------------------

const f1 = (x: number) => x.toFixed(1);
const dsack = (x: Iperf) => (x.dsackSegs === undefined ? "–" : String(x.dsackSegs));
const ratio = (after: number, before: number) =>
  before > 0 ? `${(after / before).toFixed(2)}×` : "–";

export function renderEffectTables(runs: EffectRun[]): string {
  const many = runs.length > 1;
  const run = (r: EffectRun) => (many ? `| ${r.run} ` : "");
  const runHead = many ? "| Run " : "";
  const runSep = many ? "| --: " : "";
  const lines: string[] = [];

  lines.push(
    `**Offloads** — one iperf3 stream for ${LAN_SECONDS} s over a veth link between the two hosts.`,
    "",
    `${runHead}| TSO, GSO, GRO (both ends) | Set by | Mbit/s | Receiver CPU % | Sender CPU % | Receiver CPU % per Gbit/s | Retransmits | of them needless (DSACK) |`,
    `${runSep}| --- | --- | --: | --: | --: | --: | --: | --: |`,
  );
  for (const r of runs) {
    for (const [label, x] of [
      ["off", r.lanOff],
      ["on", r.lanOn],
    ] as const) {
      lines.push(
        `${run(r)}| ${label} | NicOffloads | ${x.mbits.toFixed(0)} | ${f1(x.receiverCpu)} | ${f1(x.senderCpu)} | ${f1(x.receiverCpu / (x.mbits / 1000))} | ${x.retransmits} | ${dsack(x)} |`,
      );
    }
    lines.push(
      `${run(r)}| **on ÷ off** | | **${ratio(r.lanOn.mbits, r.lanOff.mbits)}** | ${ratio(r.lanOn.receiverCpu, r.lanOff.receiverCpu)} | ${ratio(r.lanOn.senderCpu, r.lanOff.senderCpu)} | **${ratio(r.lanOn.receiverCpu / r.lanOn.mbits, r.lanOff.receiverCpu / r.lanOff.mbits)}** | | |`,
    );
  }

  lines.push(
    "",
    `**Listen backlog** — ${BURST.count} connection attempts at once against a listener (backlog 65535, capped by somaxconn) that accepts ${BURST.acceptPerSecond} a second; an attempt fails when the server has not accepted it within ${BURST.deadlineSec} s.`,
    "",
    `${runHead}| Listener's settings | Set by | somaxconn / tcp_max_syn_backlog | Accepted in time | Failed | p99 (s) | ListenOverflows | ListenDrops | Client SYN retransmits |`,
    `${runSep}| --- | --- | --- | --: | --: | --: | --: | --: | --: |`,
  );
  for (const r of runs) {
    const row = (label: string, by: string, keys: string, b: Burst) =>
      `${run(r)}| ${label} | ${by} | ${keys} | ${b.established} | **${b.failed}** | ${b.p99 ?? "–"} | ${b.listenOverflows} | ${b.listenDrops} | ${b.synRetransmits} |`;
    const keys = (v: Record<string, string>) =>
      `${v["net.core.somaxconn"]} / ${v["net.ipv4.tcp_max_syn_backlog"]}`;
    lines.push(row("namespace defaults", "–", keys(r.defaults), r.burstBefore));
    lines.push(row("guide", "SysctlSet", keys(GUIDE_TEXT), r.burstAfter));
  }

  lines.push(
    "",
    `**WAN** — one iperf3 stream for ${WAN_SECONDS} s over the emulated path: ${WAN_PATH.delayMs} ms each way, ${WAN_PATH.loss * 100}% loss each way, ${WAN_PATH.rateMbit} Mbit/s bottleneck with a ${WAN_PATH.queueMs} ms queue.`,
    "",
    `${runHead}| Algorithm, buffers | Set by | Ping RTT min / avg (ms) | Mbit/s | Retransmits | of them needless (DSACK) | Receiver CPU % | ÷ cubic, default buffers |`,
    `${runSep}| --- | --- | --- | --: | --: | --: | --: | --: |`,
  );
  for (const r of runs) {
    const rtt = `${r.rttMs.min} / ${r.rttMs.avg}`;
    const row = (label: string, by: string, x: Iperf) =>
      `${run(r)}| ${label} | ${by} | ${rtt} | ${f1(x.mbits)} | ${x.retransmits} | ${dsack(x)} | ${f1(x.receiverCpu)} | ${x === r.wanCubic ? "1.00×" : `**${ratio(x.mbits, r.wanCubic.mbits)}**`} |`;
    lines.push(row("cubic, default buffers", "iperf3 `-C cubic` (per socket)", r.wanCubic));
    lines.push(row("bbr, default buffers", "iperf3 `-C bbr` (per socket)", r.wanBbrDefaultBuffers));
    lines.push(row("bbr, guide's buffers", "CongestionControl + SysctlSet", r.wanTuned));
  }
  return lines.join("\n");
}

export const EFFECT_START = "<!-- bench:effect:start -->";
export const EFFECT_END = "<!-- bench:effect:end -->";

function renderEffectSection(
  runs: EffectRun[],
  env: { date: string; kernel: string; nproc: number; memGiB: number; cpu: string; argv: string[] },
): string {
  const r0 = runs[0]!;
  const args = env.argv.length > 0 ? ` -- ${env.argv.join(" ")}` : "";
  const pct = (c: WanemCounters) =>
    c.packets > 0 ? `${((100 * c.lossDrops) / c.packets).toFixed(2)}% of ${c.packets}` : "none";
  const notes = runs.flatMap((r) => [
    `${many(runs) ? `run ${r.run}: ` : ""}wanem dropped ${pct(r.wanem.aToB)} packets host1→host2 and ${pct(r.wanem.bToA)} host2→host1 as loss; ${r.wanem.aToB.queueDrops + r.wanem.bToA.queueDrops} at the full bottleneck queue.`,
  ]);
  return [
    `Measured ${env.date} on this machine: kernel ${env.kernel}, ${env.nproc} CPUs (${env.cpu}), ${env.memGiB} GiB memory. ` +
      "Two sandbox hosts; host1 sends, host2 receives and listens. Every change is made by one Pulumi stack " +
      "(bench/effect/program.ts) and undone by its `pulumi destroy`, which the run checks.",
    "",
    renderEffectTables(runs),
    "",
    `- The namespace's defaults: somaxconn ${r0.defaults["net.core.somaxconn"]}, tcp_max_syn_backlog ${r0.defaults["net.ipv4.tcp_max_syn_backlog"]}, tcp_rmem \`${r0.defaults["net.ipv4.tcp_rmem"]}\`, tcp_wmem \`${r0.defaults["net.ipv4.tcp_wmem"]}\` (a new namespace copies tcp_rmem/tcp_wmem from this machine's). The veth's own offloads: ${Object.entries(
      r0.offloadDefaults,
    )
      .map(([k, v]) => `${k} ${v ? "on" : "off"}`)
      .join(", ")}.`,
    "- cubic is not in this kernel's `tcp_allowed_congestion_control` (reno bbr), so a network namespace cannot make it its default; the baseline sets it per socket (iperf3 `-C`, allowed with CAP_NET_ADMIN). bbr is set by CongestionControl, which saw it on a new connection (`observedAlgorithm`), and iperf3 reports it as the sender's algorithm.",
    "- The guide's net.core.rmem_max / wmem_max are read-only in a network namespace; TCP's autotuning follows tcp_rmem / tcp_wmem, which are set.",
    ...notes.map((n) => `- ${n}`),
    "",
    "Reproduce (as root, on a machine like this one):",
    "",
    "```sh",
    "npm run setup   # once: also builds tools/wanem",
    `npm run bench${args || " -- effect"}`,
    "```",
    "",
    "which runs:",
    "",
    "```sh",
    `node dist/src/bin/nettune.js sandbox up --name ${EFFECT_SANDBOX} --hosts 2 --json`,
    `ip link add ${LAN_IF} netns <host1 ns> type veth peer ${LAN_IF} netns <host2 ns>   # ${LAN[0]}/30, ${LAN[1]}/30`,
    `.tools/bin/wanem --ns-a /run/netns/<host1 ns> --dev-a ${WAN_IF} --ns-b /run/netns/<host2 ns> --dev-b ${WAN_IF} \\`,
    `  --delay ${WAN_PATH.delayMs}ms --loss ${WAN_PATH.loss} --rate-mbit ${WAN_PATH.rateMbit} --queue ${WAN_PATH.queueMs}ms   # ${WAN[0]}/30, ${WAN[1]}/30`,
    `ping -n -q -c 20 -i 0.2 ${WAN[1]}                                  # on host1: the RTT must be about ${2 * WAN_PATH.delayMs} ms`,
    "# pulumi up (bench/effect/program.ts): NicOffloads tso/gso/gro off on both hosts, then on",
    `iperf3 -s -1 -D -B ${LAN[1]}                                       # on host2`,
    `iperf3 -c ${LAN[1]} -t ${LAN_SECONDS} -J                          # on host1, once per offload state`,
    `python3 bench/effect/burst.py listen --host ${LAN[1]} --port 9001 --rate ${BURST.acceptPerSecond} --seconds ${BURST.listenSec}   # host2`,
    `python3 bench/effect/burst.py connect --host ${LAN[1]} --port 9001 --count ${BURST.count} --deadline ${BURST.deadlineSec}   # host1`,
    `iperf3 -c ${WAN[1]} -t ${WAN_SECONDS} -J -C cubic; iperf3 -c ${WAN[1]} -t ${WAN_SECONDS} -J -C bbr`,
    "# pulumi up: + SysctlSet (the guide's values below) and CongestionControl bbr on both hosts",
    `# the burst again (port 9002); iperf3 -c ${WAN[1]} -t ${WAN_SECONDS} -J`,
    "# pulumi destroy; the hosts' values and offloads are checked to be back",
    `node dist/src/bin/nettune.js sandbox down --name ${EFFECT_SANDBOX}`,
    "```",
    "",
    "The guide's values the SysctlSet sets: " +
      Object.entries(GUIDE_TEXT)
        .map(([k, v]) => `\`${k} = ${v}\``)
        .join(", ") +
      ".",
  ].join("\n");
}

function many(runs: EffectRun[]): boolean {
  return runs.length > 1;
}
