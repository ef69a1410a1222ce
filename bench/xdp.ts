/**
 * Benchmark "xdp": a SYN flood from one sandbox host at another, without and with the synFlood
 * XDP filter (`nettune.xdp.synFlood`, attached by an XdpProgram through the real engine), on
 * nspawn hosts (native XDP on a veth) and on VM hosts (native XDP on virtio_net).
 *
 * host1 floods (tools/synflood, copied to it as /usr/local/bin/nettune-synflood) from one of
 * its addresses and connects from another, the legitimate client; host2 listens. For each case
 * (no flood, the flood, the flood with the filter) the run reads on host2, over one window
 * inside the flood: the TCP segments its stack received (/proc/net/snmp), SYN cookies and
 * listen-queue drops (/proc/net/netstat), its CPUs' softirq and busy time (/proc/stat) and
 * backlog drops (/proc/net/softnet_stat); on host1, the share of legitimate connections that
 * got the listener's greeting within 1 s; and the filter's own counters (`syn_stats`).
 *
 * Every address is in 198.19.8.0/24 (nspawn) or 198.19.9.0/24 (VMs), inside the hosts (the
 * VMs' link is a veth between their namespaces' bridges): nothing reaches this machine's own
 * namespace. The generator refuses any address outside 198.18.0.0/15 and stops by itself.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as nettune from "nettune";
import { readXdpCounters, parseIpXdp } from "../src/host/xdpProgram";
import type { SandboxHost } from "../src/sandbox/sandbox";
import { VM_BRIDGE, VM_UPLINK } from "../src/sandbox/vm";
import { connectionSchema } from "../src/schemas/connection";
import { SshTransport } from "../src/transport/ssh";
import { connectionOf, type HostArg } from "../test/programs/sysctl";
import { parseNetstat } from "./effect";
import { ROOT, direct, machine, sandboxDown, sandboxUp, writeKnownHosts } from "./hosts";
import { budget, runOk } from "./proc";
import { drive, expectChanges } from "./stack";

export const XDP_SANDBOX = "xdpbench";
/** Sandbox names are at most 8 characters. */
export const XDP_VM_SANDBOX = "xdpvm";
export const XDP_SANDBOXES = [XDP_SANDBOX, XDP_VM_SANDBOX];
export const XDP_KINDS = ["nspawn", "vm"] as const;
export type XdpKind = (typeof XDP_KINDS)[number];

/** The listener's port: the only port the filter guards. */
const PORT = 8080;
/** The filter's configuration, as a user would write it. */
export const FILTER = { perSourceRate: 100, burst: 200, ports: [PORT] };
/** Where the SYN-ACKs for the flood's address go on host2: a MAC no one has (below). */
const NOWHERE_MAC = "02:00:00:00:00:01";
export const SYNFLOOD_BIN = path.join(ROOT, ".tools/bin/synflood");
export const SYNFLOOD_HOST = "/usr/local/bin/nettune-synflood";
const CLI = path.join(ROOT, "dist/src/bin/nettune.js");

export interface KindPlan {
  kind: XdpKind;
  sandbox: string;
  label: string;
  /** The interface of the link on both hosts: the filter is attached to host2's. */
  iface: string;
  /** host1's flooding and legitimate addresses, host2's listening one (all /24). */
  flood: string;
  legit: string;
  target: string;
  /** The listener's port on host2, which the flood and the legitimate connects aim at. */
  port: number;
  /** SYNs a second (0: as fast as the generator can) and for how long. */
  rate: number;
  floodSec: number;
  /** The measured window, inside the flood; it starts `warmupSec` after the flood. */
  windowSec: number;
  warmupSec: number;
  /** Legitimate connects: at most `count`, one every `gapMs`, within the window. */
  connects: { count: number; gapMs: number };
}

/**
 * nspawn hosts share this machine's kernel and 2 CPUs; the VMs are TCG-emulated (each guest
 * instruction interpreted), so their flood is small and their margins are wide.
 */
export const PLANS: Record<XdpKind, KindPlan> = {
  nspawn: {
    kind: "nspawn",
    sandbox: XDP_SANDBOX,
    label: "nspawn, veth (native)",
    iface: "lan0",
    flood: "198.19.8.1",
    legit: "198.19.8.3",
    target: "198.19.8.2",
    port: PORT,
    rate: 150_000,
    floodSec: 16,
    windowSec: 10,
    warmupSec: 1,
    connects: { count: 200, gapMs: 50 },
  },
  vm: {
    kind: "vm",
    sandbox: XDP_VM_SANDBOX,
    label: "VM (TCG), virtio_net (native)",
    iface: "eth0",
    flood: "198.19.9.1",
    legit: "198.19.9.3",
    target: "198.19.9.2",
    port: PORT,
    rate: 5_000,
    floodSec: 30,
    windowSec: 10,
    warmupSec: 2,
    connects: { count: 50, gapMs: 200 },
  },
};

const VM_SHAPE = ["--cpus", "2", "--numa", "1", "--queues", "2"];
const CAP_UP_MS = 120_000;
const CAP_VM_UP_MS = 600_000;
const CAP_DOWN_MS = 120_000;
const CAP_PULUMI_MS = 300_000;

// --- results -----------------------------------------------------------------------------------

export interface Flood {
  sent: number;
  errors: number;
  seconds: number;
  pps: number;
  stopped: string;
}

export interface Connects {
  attempted: number;
  ok: number;
  failed: number;
  p50: number | null;
  max: number | null;
}

/** What host2's kernel counted over the window. */
export interface Window {
  seconds: number;
  cpus: number;
  inSegsPerSec: number;
  synCookiesPerSec: number;
  listenOverflows: number;
  listenDrops: number;
  reqQFullDrops: number;
  softirqPct: number;
  busyPct: number;
  backlogDrops: number;
}

/** syn_stats over the whole flood: SYNs seen, passed, dropped per source, dropped in total. */
export type FilterCounters = [number, number, number, number];

export interface XdpCase {
  name: "idle" | "flood" | "filtered";
  flood?: Flood;
  window: Window;
  connects: Connects;
  filter?: FilterCounters;
}

export interface XdpKindResult {
  kind: XdpKind;
  label: string;
  kernel: string;
  cpus: number;
  attached: { name: string; mode: string; via: string };
  cases: XdpCase[];
}

export interface XdpRun {
  run: number;
  kinds: XdpKindResult[];
}

export interface XdpBenchOptions {
  runs: number;
  kinds: XdpKind[];
  argv: string[];
  runTimeoutMs: number;
  log: (m: string) => void;
}

export interface XdpBenchResult {
  runs: XdpRun[];
  table: string;
  section: string;
}

export async function xdpBench(options: XdpBenchOptions): Promise<XdpBenchResult> {
  const runs: XdpRun[] = [];
  const env = await machine();
  for (let i = 1; i <= options.runs; i++) {
    const kinds: XdpKindResult[] = [];
    for (const kind of options.kinds) {
      options.log(`bench xdp: run ${i} of ${options.runs}, ${kind} hosts`);
      // The VM part boots two TCG guests first: it gets twice the limit.
      const limit = options.runTimeoutMs * (kind === "vm" ? 2 : 1);
      kinds.push(await oneKind(PLANS[kind], Date.now() + limit, options.log));
      options.log(`${renderXdpTable([{ run: i, kinds: kinds.slice(-1) }])}\n`);
    }
    runs.push({ run: i, kinds });
  }
  return {
    runs,
    table: renderXdpTable(runs),
    section: renderXdpSection(runs, {
      ...env,
      date: new Date().toISOString().slice(0, 10),
      argv: options.argv,
    }),
  };
}

async function oneKind(
  plan: KindPlan,
  deadline: number,
  log: (m: string) => void,
): Promise<XdpKindResult> {
  requireSynflood();
  const name = plan.sandbox;
  await sandboxDown(name, CAP_DOWN_MS);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `nettune-xdp-${plan.kind}-`));
  let ok = false;
  try {
    log(`bench xdp: sandbox up --name ${name} --hosts 2${plan.kind === "vm" ? " --vm" : ""}`);
    const hosts =
      plan.kind === "vm"
        ? await vmSandboxUp(name, budget(deadline, CAP_VM_UP_MS))
        : await sandboxUp(name, 2, 0, budget(deadline, CAP_UP_MS));
    const [a, b] = hosts as [SandboxHost, SandboxHost];
    const kh = path.join(work, "known_hosts");
    writeKnownHosts(kh, hosts);
    const sh = (h: SandboxHost, script: string, capMs = 30_000, input?: string) =>
      direct(h, kh, script, budget(deadline, capMs), input);

    await linkHosts(plan, a, b, kh, deadline, (m) => log(`bench xdp: ${m}`));
    const kernel = (await sh(b, "uname -r")).trim();

    const cases: XdpCase[] = [];
    log("bench xdp: no flood");
    cases.push(await measure(plan, a, b, kh, deadline, "idle"));
    log(`bench xdp: the flood (${plan.rate || "max"} SYN/s for ${plan.floodSec} s), no filter`);
    cases.push(await measure(plan, a, b, kh, deadline, "flood"));

    log(`bench xdp: pulumi up: XdpProgram with nettune.xdp.synFlood on host2's ${plan.iface}`);
    const stack = pulumiStack(b, plan, work, deadline);
    const up = await stack.up();
    expectChanges(up, { create: 2 }, "synFlood filter");
    const pinDir = String(up.outputs.pinDir);
    const attached = up.outputs.attached as { name: string; mode: string; via: string };
    if (attached?.mode !== "native") {
      throw new Error(`the filter is attached as ${JSON.stringify(attached)}, not native`);
    }
    const t = new SshTransport(
      connectionSchema.parse({
        host: b.hostAddress,
        port: b.directPort,
        user: b.user,
        privateKey: fs.readFileSync(b.privateKeyPath, "utf8"),
        hostKey: b.hostKey,
      }),
    );
    try {
      log(`bench xdp: the flood with the filter`);
      const before = await readXdpCounters(t, pinDir, "syn_stats");
      const filtered = await measure(plan, a, b, kh, deadline, "filtered");
      const after = await readXdpCounters(t, pinDir, "syn_stats");
      filtered.filter = [0, 1, 2, 3].map(
        (i) => (after[i] ?? 0) - (before[i] ?? 0),
      ) as FilterCounters;
      cases.push(filtered);
    } finally {
      await t.close();
    }

    log("bench xdp: pulumi destroy: the filter comes off");
    expectChanges(await stack.destroy(), { delete: 2 }, "destroy");
    const left = parseIpXdp(await sh(b, `ip -d -j link show dev ${plan.iface}`), plan.iface);
    if (left.programs.length > 0) {
      throw new Error(`host2's ${plan.iface} still has ${JSON.stringify(left.programs)}`);
    }
    ok = true;
    return {
      kind: plan.kind,
      label: plan.label,
      kernel,
      cpus: cases[0]!.window.cpus,
      attached,
      cases,
    };
  } finally {
    log(`bench xdp: sandbox down --name ${name}`);
    await sandboxDown(name, plan.kind === "vm" ? 2 * CAP_DOWN_MS : CAP_DOWN_MS);
    if (ok) fs.rmSync(work, { recursive: true, force: true });
    else log(`bench xdp: files of the failed run kept in ${work}`);
  }
}

/** Fails early, before any host is brought up, when setup has not built the SYN generator. */
export function requireSynflood(): void {
  if (!fs.existsSync(SYNFLOOD_BIN)) {
    throw new Error(`${SYNFLOOD_BIN} is missing: run \`npm run setup\``);
  }
}

/**
 * Joins host1 and host2 by the plan's link and readies them for `measure`: host1's flooding
 * and legitimate addresses, host2's listening one, host2's neighbour entry that sends the
 * flood's SYN-ACKs nowhere, a ping across, the SYN generator on host1 and the listener and
 * client scripts.
 */
export async function linkHosts(
  plan: KindPlan,
  a: SandboxHost,
  b: SandboxHost,
  kh: string,
  deadline: number,
  log: (m: string) => void,
): Promise<void> {
  requireSynflood();
  const sh = (h: SandboxHost, script: string, capMs = 30_000, input?: string) =>
    direct(h, kh, script, budget(deadline, capMs), input);
  log(`the link between the hosts (${plan.iface} on host2)`);
  await wire(plan, a, b, deadline);
  await sh(
    a,
    `ip addr add ${plan.flood}/24 dev ${plan.iface} && ip addr add ${plan.legit}/24 dev ${plan.iface}`,
  );
  await sh(b, `ip addr add ${plan.target}/24 dev ${plan.iface}`);
  // The flood's source never answers host2's SYN-ACKs, as a spoofed or dead source would not:
  // host2 sends them to a MAC no one has. Without this host1's kernel answers each with a
  // RST, which frees host2's half-open connection at once.
  await sh(
    b,
    `ip neigh replace ${plan.flood} lladdr ${NOWHERE_MAC} dev ${plan.iface} nud permanent`,
  );
  await sh(
    a,
    `for i in $(seq 50); do ping -n -q -c 1 -W 1 -I ${plan.legit} ${plan.target} >/dev/null && exit 0; sleep 0.2; done; ` +
      `echo "no ping reply from ${plan.target}" >&2; exit 1`,
    90_000,
  );

  log(`copying the SYN generator to host1 (${SYNFLOOD_HOST})`);
  await install(a, kh, SYNFLOOD_BIN, SYNFLOOD_HOST, deadline);
  await sh(a, "cat > /run/nettune-xdpbench-connect.py", 30_000, CONNECT_PY);
  await sh(b, "cat > /run/nettune-xdpbench-listen.py", 30_000, LISTEN_PY);
}

async function vmSandboxUp(name: string, timeoutMs: number): Promise<SandboxHost[]> {
  const res = await runOk(
    [
      process.execPath,
      CLI,
      "sandbox",
      "up",
      "--vm",
      "--name",
      name,
      "--hosts",
      "2",
      ...VM_SHAPE,
      "--json",
    ],
    { timeoutMs },
  );
  return JSON.parse(res.stdout) as SandboxHost[];
}

// --- the link between the hosts ----------------------------------------------------------------

/** The bridge port that joins the two VM hosts' namespaces. */
const VM_LINK = "xdplink";

const ip = (args: string[], deadline: number) =>
  runOk(["ip", ...args], { timeoutMs: budget(deadline, 10_000) });
const bridge = (args: string[], deadline: number) =>
  runOk(["bridge", ...args], { timeoutMs: budget(deadline, 10_000) });

/**
 * nspawn: a veth pair with one end in each host's namespace. VMs: a veth pair between the two
 * namespaces' bridges, so the guests' NICs share one Ethernet. Its ports and the uplinks to
 * this machine are isolated bridge ports (they forward to the guest's tap only, never to each
 * other), so nothing of one host's traffic reaches this machine through the other's uplink;
 * host2's SYN-ACKs to NOWHERE_MAC are sent over the link and dropped by host1's bridge.
 */
async function wire(plan: KindPlan, a: SandboxHost, b: SandboxHost, deadline: number) {
  if (plan.kind === "nspawn") {
    await ip(
      ["link", "add", plan.iface, "netns", a.namespace, "type", "veth", "peer", plan.iface].concat([
        "netns",
        b.namespace,
      ]),
      deadline,
    );
    for (const h of [a, b])
      await ip(["-n", h.namespace, "link", "set", plan.iface, "up"], deadline);
    return;
  }
  await ip(
    ["link", "add", VM_LINK, "netns", a.namespace, "type", "veth", "peer", VM_LINK].concat([
      "netns",
      b.namespace,
    ]),
    deadline,
  );
  for (const h of [a, b]) {
    await ip(["-n", h.namespace, "link", "set", VM_LINK, "master", VM_BRIDGE], deadline);
    for (const port of [VM_LINK, VM_UPLINK]) {
      await bridge(["-n", h.namespace, "link", "set", "dev", port, "isolated", "on"], deadline);
    }
    await bridge(
      ["-n", h.namespace, "fdb", "add", NOWHERE_MAC, "dev", VM_LINK, "master", "static"],
      deadline,
    );
    await ip(["-n", h.namespace, "link", "set", VM_LINK, "up"], deadline);
  }
}

/** Copies a file to a host through the SSH session (base64), checked by its sha256. */
async function install(
  h: SandboxHost,
  kh: string,
  file: string,
  dest: string,
  deadline: number,
): Promise<void> {
  const data = fs.readFileSync(file);
  const sum = crypto.createHash("sha256").update(data).digest("hex");
  await direct(
    h,
    kh,
    `base64 -d > ${dest}.tmp && echo '${sum}  ${dest}.tmp' | sha256sum -c --quiet && ` +
      `chmod 0755 ${dest}.tmp && mv ${dest}.tmp ${dest}`,
    budget(deadline, 180_000),
    data.toString("base64"),
  );
}

// --- one case ----------------------------------------------------------------------------------

const LISTEN_PID = "/run/nettune-xdpbench-listen.pid";
const LISTEN_OUT = "/run/nettune-xdpbench-listen.out";
const FLOOD_OUT = "/run/nettune-xdpbench-flood.json";

/**
 * One case: the listener on host2; the flood on host1 (unless "idle"); after the warm-up, the
 * window on host2 and the legitimate connects from host1 at once; then the flood's own count.
 */
export async function measure(
  plan: KindPlan,
  a: SandboxHost,
  b: SandboxHost,
  kh: string,
  deadline: number,
  name: XdpCase["name"],
): Promise<XdpCase> {
  const floods = name !== "idle";
  const life = plan.floodSec + 60;
  await direct(
    b,
    kh,
    `rm -f ${LISTEN_OUT}; nohup timeout ${life} python3 /run/nettune-xdpbench-listen.py ` +
      `${plan.target} ${plan.port} ${life} > ${LISTEN_OUT} 2>&1 < /dev/null & echo $! > ${LISTEN_PID}; ` +
      `for i in $(seq 100); do grep -q listening ${LISTEN_OUT} && exit 0; sleep 0.1; done; ` +
      `cat ${LISTEN_OUT} >&2; exit 1`,
    budget(deadline, 60_000),
  );
  try {
    // The flood starts after `issuedAt` and so lasts at least until issuedAt + floodSec.
    let issuedAt = 0;
    if (floods) {
      issuedAt = Date.now();
      await direct(
        a,
        kh,
        `rm -f ${FLOOD_OUT}; nohup ${SYNFLOOD_HOST} --src ${plan.flood} --dst ${plan.target} ` +
          `--port ${plan.port} --rate ${plan.rate} --duration ${plan.floodSec} > ${FLOOD_OUT} 2>&1 < /dev/null &`,
        budget(deadline, 60_000),
      );
    }
    await sleep(plan.warmupSec * 1000);
    const capMs = (plan.windowSec + 60) * 1000;
    const [windowText, connectText] = await Promise.all([
      direct(
        b,
        kh,
        `${SNAPSHOT}; echo '@@'; sleep ${plan.windowSec}; ${SNAPSHOT}`,
        budget(deadline, capMs),
      ),
      direct(
        a,
        kh,
        `python3 /run/nettune-xdpbench-connect.py ${plan.legit} ${plan.target} ${plan.port} ` +
          `${plan.connects.count} ${plan.connects.gapMs / 1000} ${plan.windowSec}`,
        budget(deadline, capMs),
      ),
    ]);
    if (floods && Date.now() > issuedAt + plan.floodSec * 1000) {
      throw new Error(
        `the window ended after the flood (${plan.floodSec} s): its figures would mix flood and quiet`,
      );
    }
    const result: XdpCase = {
      name,
      window: parseWindow(windowText),
      connects: JSON.parse(connectText) as Connects,
    };
    if (floods) {
      const out = await direct(
        a,
        kh,
        `for i in $(seq ${(plan.floodSec + 30) * 10}); do grep -q '"sent"' ${FLOOD_OUT} && break; sleep 0.1; done; cat ${FLOOD_OUT}`,
        budget(deadline, (plan.floodSec + 60) * 1000),
      );
      const line = out.trim().split("\n").pop() ?? "";
      if (!line.includes('"sent"')) throw new Error(`the SYN generator did not finish:\n${out}`);
      result.flood = JSON.parse(line) as Flood;
    }
    return result;
  } finally {
    await direct(b, kh, `kill $(cat ${LISTEN_PID}) 2>/dev/null; rm -f ${LISTEN_PID}; true`).catch(
      () => undefined,
    );
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** host2's counters at one moment: uptime, TCP and TcpExt, the CPU line, softnet drops. */
const SNAPSHOT =
  "echo @uptime $(cut -d' ' -f1 /proc/uptime); cat /proc/net/snmp /proc/net/netstat; " +
  "grep '^cpu' /proc/stat; awk '{print \"@softnet\", $2}' /proc/net/softnet_stat";

interface Snapshot {
  uptime: number;
  counters: Record<string, number>;
  cpu: number[];
  cpus: number;
  softnetDrops: number;
}

export function parseSnapshot(text: string): Snapshot {
  const lines = text.split("\n");
  const uptime = Number(/^@uptime (\S+)/m.exec(text)?.[1]);
  const cpuLine = lines.find((l) => /^cpu\s/.test(l));
  if (!Number.isFinite(uptime) || !cpuLine) throw new Error(`not a snapshot:\n${text}`);
  return {
    uptime,
    counters: parseNetstat(lines.filter((l) => /^\w+: /.test(l)).join("\n")),
    cpu: cpuLine.trim().split(/\s+/).slice(1).map(Number),
    cpus: lines.filter((l) => /^cpu\d+\s/.test(l)).length,
    softnetDrops: lines
      .filter((l) => l.startsWith("@softnet "))
      .reduce((s, l) => s + parseInt(l.split(" ")[1]!, 16), 0),
  };
}

/** The window's rates and shares from the two snapshots around it. */
export function parseWindow(text: string): Window {
  const [x, y] = text.split("@@\n").map(parseSnapshot) as [Snapshot, Snapshot];
  const d = (k: string) => (y.counters[k] ?? 0) - (x.counters[k] ?? 0);
  const seconds = y.uptime - x.uptime;
  // user nice system idle iowait irq softirq steal (guest time is inside user already).
  const cpu = y.cpu.slice(0, 8).map((v, i) => v - (x.cpu[i] ?? 0));
  const total = cpu.reduce((s, v) => s + v, 0) || 1;
  return {
    seconds,
    cpus: y.cpus,
    inSegsPerSec: d("Tcp.InSegs") / seconds,
    synCookiesPerSec: d("TcpExt.SyncookiesSent") / seconds,
    listenOverflows: d("TcpExt.ListenOverflows"),
    listenDrops: d("TcpExt.ListenDrops"),
    reqQFullDrops: d("TcpExt.TCPReqQFullDrop"),
    softirqPct: (100 * (cpu[6] ?? 0)) / total,
    busyPct: (100 * (total - (cpu[3] ?? 0) - (cpu[4] ?? 0))) / total,
    backlogDrops: y.softnetDrops - x.softnetDrops,
  };
}

/** host2's listener: accepts, sends one byte, closes; stops after the given seconds. */
const LISTEN_PY = `import socket, sys, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(4096)
s.settimeout(0.5)
print("listening", flush=True)
end = time.monotonic() + secs
n = 0
while time.monotonic() < end:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    try:
        c.send(b"x")
    except OSError:
        pass
    c.close()
    n += 1
print('{"accepted": %d}' % n, flush=True)
`;

/**
 * host1's legitimate client: from its own address, at most `count` connects, one every `gap`
 * seconds, within `window` seconds. One succeeds when the listener's byte arrives within 1 s.
 */
const CONNECT_PY = `import json, socket, sys, time
src, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
count, gap, window = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
ok = failed = 0
lat = []
start = time.monotonic()
for i in range(count):
    t0 = time.monotonic()
    if t0 - start > window:
        break
    s = socket.socket()
    s.settimeout(1.0)
    try:
        s.bind((src, 0))
        s.connect((host, port))
        if s.recv(1) == b"x" and time.monotonic() - t0 <= 1.0:
            ok += 1
            lat.append(time.monotonic() - t0)
        else:
            failed += 1
    except OSError:
        failed += 1
    finally:
        s.close()
    rest = gap - (time.monotonic() - t0)
    if rest > 0:
        time.sleep(rest)
lat.sort()
print(json.dumps({"attempted": ok + failed, "ok": ok, "failed": failed,
                  "p50": round(lat[len(lat) // 2], 4) if lat else None,
                  "max": round(lat[-1], 4) if lat else None}))
`;

// --- the Pulumi stack --------------------------------------------------------------------------

export interface XdpProgramArgs {
  host: HostArg;
  interface: string;
  port: number;
}

/** The benchmark's Pulumi program (run inline by bench/pulumiDriver.ts): the filter on host2. */
export default function program(args: XdpProgramArgs): Record<string, unknown> {
  const filter = new nettune.XdpProgram("synflood", {
    connection: connectionOf(args.host),
    interface: args.interface,
    ...nettune.xdp.synFlood({ ...FILTER, ports: [args.port] }),
  });
  return { pinDir: filter.pinDir, attached: filter.attached, maps: filter.maps };
}

function pulumiStack(target: SandboxHost, plan: KindPlan, work: string, deadline: number) {
  const stateDir = path.join(work, "pulumi");
  fs.mkdirSync(stateDir, { recursive: true });
  const args: XdpProgramArgs = {
    host: {
      address: target.hostAddress,
      port: target.directPort,
      user: target.user,
      privateKeyPath: target.privateKeyPath,
      hostKey: target.hostKey,
    },
    interface: plan.iface,
    port: PORT,
  };
  let n = 0;
  const run = async (op: "up" | "destroy") => {
    n++;
    const [result] = await drive(
      {
        program: path.join(ROOT, "dist/bench/xdp.js"),
        args,
        stateDir,
        project: "nettune-bench-xdp",
        stack: plan.kind,
        ops: [{ op, statsDir: path.join(work, "stats", String(n)) }],
        resultFile: path.join(stateDir, `result-${n}.json`),
      },
      deadline,
      CAP_PULUMI_MS,
    );
    return result!;
  };
  return { up: () => run("up"), destroy: () => run("destroy") };
}

// --- report ------------------------------------------------------------------------------------

const f0 = (x: number) => Math.round(x).toLocaleString("en-US");
const f1 = (x: number) => x.toFixed(1);
const CASE_LABEL: Record<XdpCase["name"], string> = {
  idle: "no flood",
  flood: "flood, no filter",
  filtered: "flood, **synFlood filter**",
};

export function renderXdpTable(runs: XdpRun[]): string {
  const many = runs.length > 1;
  const lines = [
    `${many ? "| Run " : ""}| Hosts, NIC (XDP) | Case | Flood sent (SYN/s) | host2's TCP segments in (/s) | SYN cookies sent (/s) | Listen overflows / drops | softirq % of CPU time | busy % of CPU time | Backlog drops | Legit connects ok (p50 ms) | Filter: SYNs seen / passed / dropped |`,
    `${many ? "| --: " : ""}| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |`,
  ];
  for (const r of runs) {
    for (const k of r.kinds) {
      const scope = k.kind === "nspawn" ? "machine" : "guest";
      for (const c of k.cases) {
        const w = c.window;
        const conn = `${c.connects.ok} / ${c.connects.attempted}${c.connects.p50 === null ? "" : ` (${f1(c.connects.p50 * 1000)})`}`;
        const filter = c.filter
          ? `${f0(c.filter[0])} / ${f0(c.filter[1])} / ${f0(c.filter[2] + c.filter[3])}`
          : "–";
        lines.push(
          `${many ? `| ${r.run} ` : ""}| ${k.label} | ${CASE_LABEL[c.name]} | ${c.flood ? f0(c.flood.pps) : "–"} | **${f0(w.inSegsPerSec)}** | ${f0(w.synCookiesPerSec)} | ${w.listenOverflows} / ${w.listenDrops} | ${f1(w.softirqPct)} (${scope}, ${w.cpus} CPUs) | ${f1(w.busyPct)} | ${w.backlogDrops} | **${conn}** | ${filter} |`,
        );
      }
    }
  }
  return lines.join("\n");
}

export const XDP_START = "<!-- bench:xdp:start -->";
export const XDP_END = "<!-- bench:xdp:end -->";

function renderXdpSection(
  runs: XdpRun[],
  env: { date: string; kernel: string; nproc: number; memGiB: number; cpu: string; argv: string[] },
): string {
  const args = env.argv.length > 0 ? ` -- ${env.argv.join(" ")}` : " -- xdp";
  const kinds = runs[0]?.kinds ?? [];
  const notes = runs.flatMap((r) =>
    r.kinds.flatMap((k) => {
      const p = PLANS[k.kind];
      const f = k.cases.find((c) => c.name === "filtered");
      const fl = f?.flood;
      const c = f?.filter;
      return [
        `${runs.length > 1 ? `run ${r.run}, ` : ""}${k.label}: host2's kernel ${k.kernel}, ${k.cpus} CPUs; the filter attached as \`${k.attached.name}\`, ${k.attached.mode} mode, via ${k.attached.via}. ` +
          (fl && c
            ? `With it the generator sent ${f0(fl.sent)} SYNs in ${f1(fl.seconds)} s; the filter saw ${f0(c[0])} SYNs to port ${PORT} (the legitimate client's included), passed ${f0(c[1])} ` +
              `(the per-source allowance over the flood, ${FILTER.perSourceRate}/s × ${f1(fl.seconds)} s + a burst of ${FILTER.burst}, is ${f0(FILTER.perSourceRate * fl.seconds + FILTER.burst)}; the legitimate client made ${f.connects.attempted} connects), ` +
              `dropped ${f0(c[2])} over the per-source limit and ${f0(c[3])} over the total one. ` +
              `Flood ${p.rate > 0 ? `${f0(p.rate)} SYN/s` : "as fast as the generator can"} for ${p.floodSec} s; window ${p.windowSec} s from ${p.warmupSec} s after its start; at most ${p.connects.count} legitimate connects, one every ${p.connects.gapMs} ms.`
            : ""),
      ];
    }),
  );
  return [
    `Measured ${env.date} on this machine: kernel ${env.kernel}, ${env.nproc} CPUs (${env.cpu}), ${env.memGiB} GiB memory. ` +
      `host1 floods port ${PORT} of host2 from one address and connects from another; the filter is \`nettune.xdp.synFlood(${JSON.stringify(FILTER)})\`, attached and removed by a Pulumi stack (bench/xdp.ts).`,
    "",
    renderXdpTable(runs),
    "",
    ...notes.map((n) => `- ${n}`),
    "",
    "Reproduce (as root, on a machine like this one):",
    "",
    "```sh",
    "npm run setup   # once: also builds tools/synflood",
    `npm run bench${args}`,
    "```",
    "",
    "which runs, for each kind of host:",
    "",
    "```sh",
    ...kinds.flatMap((k) => {
      const p = PLANS[k.kind];
      return [
        `node dist/src/bin/nettune.js sandbox up --name ${p.sandbox} --hosts 2${k.kind === "vm" ? ` --vm ${VM_SHAPE.join(" ")}` : ""} --json`,
        k.kind === "vm"
          ? `ip link add ${VM_LINK} netns <host1 ns> type veth peer ${VM_LINK} netns <host2 ns>   # on each end: master br0, isolated, like the uplink`
          : `ip link add ${p.iface} netns <host1 ns> type veth peer ${p.iface} netns <host2 ns>`,
        `ip addr add ${p.flood}/24 dev ${p.iface}; ip addr add ${p.legit}/24 dev ${p.iface}   # host1`,
        `ip addr add ${p.target}/24 dev ${p.iface}; ip neigh replace ${p.flood} lladdr ${NOWHERE_MAC} dev ${p.iface} nud permanent   # host2`,
        `python3 listen.py ${p.target} ${PORT} <seconds>   # host2, each case (LISTEN_PY in bench/xdp.ts)`,
        `${SYNFLOOD_HOST} --src ${p.flood} --dst ${p.target} --port ${PORT} --rate ${p.rate} --duration ${p.floodSec}   # host1`,
        `python3 connect.py ${p.legit} ${p.target} ${PORT} ${p.connects.count} ${p.connects.gapMs / 1000} ${p.windowSec}   # host1, in the window (CONNECT_PY)`,
        `# host2, around the window: /proc/uptime, /proc/net/snmp, /proc/net/netstat, /proc/stat, /proc/net/softnet_stat`,
        `# pulumi up: new nettune.XdpProgram("synflood", { interface: "${p.iface}", ...nettune.xdp.synFlood(...) }); the flood again; pulumi destroy`,
        `node dist/src/bin/nettune.js sandbox down --name ${p.sandbox}`,
      ];
    }),
    "```",
  ].join("\n");
}
