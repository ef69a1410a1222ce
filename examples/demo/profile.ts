/**
 * `npm run demo -- profile`: the guide's API-gateway profile (`nettune.profiles.apiGateway`) on
 * a sandbox host, and what it does to a SYN flood and to a burst of connections.
 *
 *   1. bring up two sandbox hosts and link them with a veth, lan0, as `npm run bench -- xdp`
 *      does: host1 is the clients and the flood's source, host2 the gateway
 *   2. measure host2 as it booted: a SYN flood at its port 80 (the profile's XDP filter guards
 *      80 and 443) with legitimate connects beside it, then a burst of connections at once
 *   3. pulumi preview of a NetworkTuning with the profile on host2's lan0, with the overrides
 *      that what host2 has calls for (read from the host, printed with the reason)
 *   4. pulumi up, check on host2, measure again; a before/after table
 *   5. pulumi preview again: nothing to change
 *   6. pulumi destroy: host2's values are back, no XDP program on lan0, no nettune files
 *   7. take the sandbox down (also on failure and Ctrl-C)
 *
 * Traffic runs only on lan0, between the two hosts' namespaces (198.19.12.0/24); SSH runs over
 * each host's eth0, which nothing here changes. The flood and the burst stop by themselves.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import * as pulumi from "@pulumi/pulumi";
import * as auto from "@pulumi/pulumi/automation";
import * as nettune from "nettune";
import { parseNetstat } from "../../bench/effect";
import { ROOT, direct, writeKnownHosts } from "../../bench/hosts";
import { abortAll, budget } from "../../bench/proc";
import {
  linkHosts,
  measure,
  requireSynflood,
  type FilterCounters,
  type KindPlan,
  type XdpCase,
} from "../../bench/xdp";
import { parseCongestionProbe, renderCongestionProbe } from "../../src/host/congestion";
import { resolveFeatureName } from "../../src/host/ethtool";
import { sysctlPath } from "../../src/host/sysctl";
import { availableCongestionControl, availableQdiscs } from "../../src/host/tc";
import { parseIpXdp, readXdpCounters } from "../../src/host/xdpProgram";
import * as sandbox from "../../src/sandbox/sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import { connectionSchema } from "../../src/schemas/connection";
import { featureState } from "../../src/specs/nicOffloads";
import { SshTransport } from "../../src/transport/ssh";
import { bold, say, step, table } from "./narrate";
import type { DemoHost } from "./program";

export const PROFILE_SANDBOX = "demoprof";
const IFACE = "lan0";
const PROFILE = nettune.profiles.apiGateway;

/**
 * The flood: from host1's first lan0 address at host2's port 80, which the profile's filter
 * guards; host2's counters over 5 s inside it; 100 legitimate connects from host1's second
 * address meanwhile, each counted when the listener's greeting arrives within 1 s.
 */
const PLAN: KindPlan = {
  kind: "nspawn",
  sandbox: PROFILE_SANDBOX,
  label: "nspawn, veth",
  iface: IFACE,
  flood: "198.19.12.1",
  legit: "198.19.12.3",
  target: "198.19.12.2",
  port: 80,
  rate: 50_000,
  floodSec: 10,
  windowSec: 5,
  warmupSec: 1,
  connects: { count: 100, gapMs: 50 },
};

/**
 * The burst: `count` connections at once from host1 to a listener on host2 that asks for a
 * backlog of 65535, which the kernel caps at net.core.somaxconn. The application stalls for
 * `stallSec` from the first connection (a GC pause, a blocked event loop), then accepts as fast
 * as it can. While it stalls the kernel queues finished handshakes up to the cap and drops the
 * SYNs beyond it (ListenOverflows); those clients hear nothing until they send the SYN again,
 * a second later. A client gives up on the greeting after `deadlineSec`.
 */
const BURST = { count: 8000, stallSec: 2, deadlineSec: 3, listenSec: 5 };
/** Ports the filter does not guard, so the burst measures the accept queue alone. */
const BURST_PORT = { before: 8080, after: 8081 };
const CLIENT_HOST = "/run/nettune-demo-burst-connect.py";
const LISTEN_HOST = "/run/nettune-demo-burst-listen.py";

/** host2's listener: stalls once the first connection is queued, then accepts, greets, closes. */
const LISTEN_PY = `import json, select, socket, sys, time
host, port, stall, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(65535)
print(json.dumps({"listening": True}), flush=True)
end = time.monotonic() + seconds
if select.select([s], [], [], seconds)[0]:
    time.sleep(stall)
s.setblocking(False)
accepted = 0
while time.monotonic() < end:
    try:
        c, _ = s.accept()
    except BlockingIOError:
        select.select([s], [], [], max(0.0, min(0.05, end - time.monotonic())))
        continue
    try:
        c.send(b"x")
    except OSError:
        pass
    c.close()
    accepted += 1
print(json.dumps({"accepted": accepted}), flush=True)
`;

/**
 * host1's clients: `count` non-blocking connects at once; for each, how long its handshake took
 * (a SYN the server dropped is sent again after 1 s) and whether the greeting came within
 * `deadline` seconds of the burst's start. Closes with a reset, so no port stays in TIME-WAIT.
 */
const CONNECT_PY = `import errno, json, resource, select, socket, struct, sys, time
host, port, count, deadline = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 64)), hard))
def close_now(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
ep = select.epoll()
socks, started, connected, handshakes = {}, {}, set(), []
greeted = refused = reset = 0
t0 = time.monotonic()
for _ in range(count):
    s = socket.socket()
    s.setblocking(False)
    err = s.connect_ex((host, port))
    if err not in (0, errno.EINPROGRESS):
        refused += err == errno.ECONNREFUSED
        reset += err != errno.ECONNREFUSED
        s.close()
        continue
    socks[s.fileno()] = s
    started[s.fileno()] = time.monotonic()
    ep.register(s.fileno(), select.EPOLLOUT)
opened = time.monotonic() - t0
end = t0 + deadline
while socks:
    left = end - time.monotonic()
    if left <= 0:
        break
    for fd, _ in ep.poll(left):
        s = socks[fd]
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == 0 and fd not in connected:
            connected.add(fd)
            handshakes.append(time.monotonic() - started[fd])
            ep.modify(fd, select.EPOLLIN)
            continue
        data = b""
        if err == 0:
            try:
                data = s.recv(1)
            except OSError as e:
                err = e.errno or -1
        if data == b"x":
            greeted += 1
        elif err == errno.ECONNREFUSED:
            refused += 1
        else:
            reset += 1
        ep.unregister(fd)
        del socks[fd]
        close_now(s)
waiting = len(socks)
no_handshake = sum(1 for f in socks if f not in connected)
for s in socks.values():
    close_now(s)
handshakes.sort()
q = lambda p: round(handshakes[min(len(handshakes) - 1, int(p * len(handshakes)))], 3) if handshakes else None
print(json.dumps({"attempted": count, "openedSeconds": round(opened, 3),
                  "handshakeUnder1s": sum(1 for h in handshakes if h < 1.0),
                  "handshakeResent": sum(1 for h in handshakes if h >= 1.0),
                  "noHandshake": no_handshake,
                  "handshakeP99": q(0.99), "greeted": greeted, "timedOut": waiting,
                  "refused": refused, "reset": reset}))
`;

/** The whole part's time limit; it takes about a minute on a 2-core machine. */
const LIMIT_MS = 8 * 60_000;

// --- the Pulumi program ------------------------------------------------------------------------

/** The program: host2's lan0 tuned from the profile, with the overrides the host calls for. */
export function profileProgram(
  target: DemoHost,
  overrides: nettune.TuningOverrides,
): Record<string, pulumi.Output<unknown>> {
  const tuning = new nettune.NetworkTuning("gw", {
    connection: {
      host: target.host,
      port: target.port,
      user: target.user,
      privateKey: fs.readFileSync(target.privateKeyPath, "utf8"),
      hostKey: target.hostKey,
    },
    interface: IFACE,
    profile: PROFILE,
    ...overrides,
  });
  return {
    chosen: tuning.chosen,
    pinDir: tuning.xdp ? tuning.xdp.pinDir : pulumi.output(""),
  };
}

// --- what host2 has, and the overrides it calls for ---------------------------------------------

interface Override {
  field: keyof nettune.TuningOverrides;
  value: unknown;
  why: string;
}

/**
 * Reads host2's lan0 and kernel as the resources will, and returns the overrides for the parts
 * of the profile that cannot apply there: channels of a kind the NIC lacks, interrupts it does
 * not have, a qdisc the kernel lacks or a default qdisc its namespace has no key for, offloads
 * fixed the other way, sysctls its namespace may not write.
 */
async function overridesFor(sh: (script: string) => Promise<string>): Promise<Override[]> {
  const out: Override[] = [];
  const driver = nettune.parsers.ethtoolDriverInfo(await sh(`ethtool -i ${IFACE}`)).driver;
  const nic = `${IFACE} (driver ${driver})`;

  if (PROFILE.queues) {
    const text = await sh(`ethtool -l ${IFACE} 2>&1 || true`);
    let ch: ReturnType<typeof nettune.parsers.ethtoolChannels> | undefined;
    try {
      ch = nettune.parsers.ethtoolChannels(text);
    } catch {
      ch = undefined;
    }
    if (!ch) {
      out.push({ field: "queues", value: null, why: `${nic} has no channel settings` });
    } else if (!ch.max.combined && ch.max.rx && ch.max.tx) {
      out.push({
        field: "queues",
        value: { rx: "max", tx: "max" },
        why: `${nic} has separate rx and tx channels (at most ${ch.max.rx} and ${ch.max.tx}), no combined ones`,
      });
    }
  }

  if (PROFILE.irq) {
    const irqs = nettune.parsers.queueIrqs(
      nettune.parsers.procInterrupts(await sh("cat /proc/interrupts")),
      IFACE,
      driver,
    );
    if (irqs.irqs.length === 0) {
      out.push({
        field: "irq",
        value: null,
        why: `${nic} has no queue interrupts in /proc/interrupts: its queues are served in software`,
      });
    }
  }

  if (PROFILE.congestion) {
    const p = parseCongestionProbe(await sh(renderCongestionProbe([])), []);
    const cc = availableCongestionControl(p.available, p.config, p.builtin, p.loadable, p.loaded);
    const allowed = p.allowed.split(/\s+/);
    const settable = p.allowedWritable ? cc.names : cc.names.filter((n) => allowed.includes(n));
    const q = availableQdiscs(p.config, p.builtin, p.loadable, p.kinds);
    // A profile is plain data: its inputs are values, not outputs.
    const { algorithm, qdisc } = PROFILE.congestion as { algorithm: string; qdisc?: string };
    if (!settable.includes(algorithm)) {
      out.push({
        field: "congestion",
        value: null,
        why: `${algorithm} is not among the algorithms host2 may set (${settable.join(" ")})`,
      });
    } else if (qdisc !== undefined && q.complete && !q.names.includes(qdisc)) {
      out.push({
        field: "congestion",
        value: { algorithm },
        why: `this kernel has no ${qdisc} (its qdiscs: ${q.names.join(" ")}); ${algorithm} then paces by itself`,
      });
    } else if (qdisc !== undefined && p.defaultQdisc === undefined) {
      out.push({
        field: "congestion",
        value: { algorithm, qdisc, interfaces: [IFACE] },
        why: `net.core.default_qdisc is kernel-wide, absent in host2's namespace: ${qdisc} goes on ${IFACE} itself`,
      });
    }
  }

  if (PROFILE.offloads?.features) {
    const features = nettune.parsers.ethtoolFeatures(await sh(`ethtool -k ${IFACE}`));
    const wanted = Object.entries(PROFILE.offloads.features);
    const stuck = wanted.filter(([name, want]) => {
      const s = featureState(features, resolveFeatureName(name));
      return !s || (s.fixed && s.on !== want);
    });
    if (stuck.length > 0) {
      const keep = Object.fromEntries(wanted.filter((w) => !stuck.includes(w)));
      out.push({
        field: "offloads",
        value: { ...PROFILE.offloads, features: keep },
        why: `${nic} cannot change ${stuck.map(([n]) => n).join(", ")}`,
      });
    }
  }

  const keys = Object.keys(PROFILE.sysctls ?? {});
  if (keys.length > 0) {
    const ro = (
      await sh(
        keys
          .map((k) => `[ -w /proc/sys/${sysctlPath(k)} ] || echo ${k}`)
          .concat("true")
          .join("\n"),
      )
    )
      .split("\n")
      .filter(Boolean);
    if (ro.length > 0) {
      out.push({
        field: "sysctls",
        value: Object.fromEntries(ro.map((k) => [k, null])),
        why: `host2's namespace may not write ${ro.join(", ")} (kernel-wide)`,
      });
    }
  }
  return out;
}

/** An override as a user would write it: `{ rx: "max", tx: "max" }`. */
function code(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `[${v.map(code).join(", ")}]`;
  if (typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>).map(([k, x]) => {
      const key = /^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k);
      return `${key}: ${code(x)}`;
    });
    return entries.length === 0 ? "{}" : `{ ${entries.join(", ")} }`;
  }
  return JSON.stringify(v);
}

// --- reading host2 -----------------------------------------------------------------------------

/** What the profile touches on host2, as text: its sysctls, lan0's XDP, qdisc, GRO, channels. */
async function hostState(sh: (script: string) => Promise<string>): Promise<Record<string, string>> {
  const keys = [...Object.keys(PROFILE.sysctls ?? {}), "net.ipv4.tcp_congestion_control"];
  const text = await sh(
    [
      ...keys.map((k) => `printf '%s\\t%s\\n' ${k} "$(echo $(cat /proc/sys/${sysctlPath(k)}))"`),
      `printf 'qdisc\\t%s\\n' "$(tc qdisc show dev ${IFACE} root | awk '{print $2; exit}')"`,
      `printf 'gro\\t%s\\n' "$(ethtool -k ${IFACE} | awk '/^generic-receive-offload:/ {print $2}')"`,
      `printf 'channels\\t%s\\n' "$(ethtool -l ${IFACE} | awk '/^Current/ {c=1} c && /^(RX|TX):/ {printf "%s %s ", $1, $2}')"`,
    ].join("\n"),
  );
  const values = Object.fromEntries(
    text
      .trim()
      .split("\n")
      .map((l) => l.split("\t") as [string, string]),
  );
  const xdp = parseIpXdp(await sh(`ip -d -j link show dev ${IFACE}`), IFACE).programs;
  return {
    ...Object.fromEntries(keys.map((k) => [k, values[k] ?? "?"])),
    [`${IFACE} root qdisc`]: values.qdisc || "?",
    [`${IFACE} gro`]: values.gro || "?",
    [`${IFACE} channels`]: (values.channels ?? "").trim() || "?",
    [`${IFACE} XDP`]: xdp.length ? xdp.map((p) => `${p.name} (${p.mode})`).join(", ") : "none",
  };
}

/** nettune's paths on host2 (sysctl.d, units, modules-load.d, journal, loader, bpffs pins). */
async function nettunePaths(
  sh: (script: string) => Promise<string>,
): Promise<{ files: string[]; dirs: string[] }> {
  const out = await sh(
    "find /etc/sysctl.d /etc/systemd/system /etc/modules-load.d /var/lib/nettune /usr/local/lib/nettune /sys/fs/bpf " +
      "-maxdepth 2 \\( -name '*nettune*' -o -path '/var/lib/nettune/*' -o -path '/usr/local/lib/nettune/*' \\) " +
      "-printf '%y %p\\n' 2>/dev/null | sort -k2",
  );
  const entries = out
    .split("\n")
    .filter(Boolean)
    .map((l) => [l.slice(0, 1), l.slice(2)] as const);
  return {
    files: entries.filter(([t]) => t !== "d").map(([, p]) => p),
    dirs: entries.filter(([t]) => t === "d").map(([, p]) => p),
  };
}

// --- the burst ---------------------------------------------------------------------------------

interface BurstResult {
  /** The listener's accept queue as the kernel sized it (`ss` Send-Q of a listening socket). */
  acceptQueue: number;
  attempted: number;
  /** Seconds host1 took to open every socket. */
  openedSeconds: number;
  /** Handshakes done within 1 s of their connect, and those that waited for a resent SYN. */
  handshakeUnder1s: number;
  handshakeResent: number;
  /** Seconds within which 99% of the handshakes were done. */
  handshakeP99: number | null;
  /** Greeted by the listener within BURST.deadlineSec of the burst's start. */
  greeted: number;
  /** Still waiting at the deadline; of them, still without a handshake. */
  timedOut: number;
  noHandshake: number;
  refused: number;
  reset: number;
  /** SYNs host1 sent again (TcpExt.TCPSynRetrans). */
  synRetransmits: number;
  /** host2's TcpExt.ListenOverflows and ListenDrops. */
  listenOverflows: number;
  listenDrops: number;
}

async function burst(
  a: SandboxHost,
  b: SandboxHost,
  kh: string,
  deadline: number,
  port: number,
): Promise<BurstResult> {
  const out = `/run/nettune-demo-burst-${port}.json`;
  const netstat = async (h: SandboxHost) =>
    parseNetstat(await direct(h, kh, "cat /proc/net/netstat", budget(deadline, 30_000)));
  const [a0, b0] = [await netstat(a), await netstat(b)];
  const listening = await direct(
    b,
    kh,
    `rm -f ${out}; nohup timeout ${BURST.listenSec + 10} python3 ${LISTEN_HOST} ${PLAN.target} ${port} ` +
      `${BURST.stallSec} ${BURST.listenSec} > ${out} 2>&1 < /dev/null & ` +
      `for i in $(seq 50); do grep -q listening ${out} && break; sleep 0.1; done; ` +
      `grep -q listening ${out} || { cat ${out} >&2; exit 1; }; ss -Hltn "sport = :${port}"`,
    budget(deadline, 30_000),
  );
  const acceptQueue = Number(listening.trim().split(/\s+/)[2]);
  const c = JSON.parse(
    await direct(
      a,
      kh,
      `timeout ${BURST.deadlineSec + 30} python3 ${CLIENT_HOST} ${PLAN.target} ${port} ${BURST.count} ${BURST.deadlineSec}`,
      budget(deadline, (BURST.deadlineSec + 40) * 1000),
    ),
  ) as Omit<BurstResult, "acceptQueue" | "synRetransmits" | "listenOverflows" | "listenDrops">;
  const listened = await direct(
    b,
    kh,
    `for i in $(seq ${(BURST.listenSec + 10) * 10}); do grep -q accepted ${out} && break; sleep 0.1; done; cat ${out}`,
    budget(deadline, (BURST.listenSec + 20) * 1000),
  );
  if (!listened.includes('"accepted"')) {
    throw new Error(`the burst's listener did not finish:\n${listened}`);
  }
  const [a1, b1] = [await netstat(a), await netstat(b)];
  const d = (x: Record<string, number>, y: Record<string, number>, k: string) =>
    (y[k] ?? 0) - (x[k] ?? 0);
  return {
    ...c,
    acceptQueue,
    synRetransmits: d(a0, a1, "TcpExt.TCPSynRetrans"),
    listenOverflows: d(b0, b1, "TcpExt.ListenOverflows"),
    listenDrops: d(b0, b1, "TcpExt.ListenDrops"),
  };
}

// --- printing ----------------------------------------------------------------------------------

/** A sysctl value as /proc/sys shows it: numbers of a tuple separated by spaces. */
const asText = (v: unknown): string =>
  Array.isArray(v)
    ? v.join(" ")
    : typeof v === "number" || typeof v === "string"
      ? String(v)
      : JSON.stringify(v);
const n0 = (x: number) => Math.round(x).toLocaleString("en-US");
const ms = (s: number | null) => (s === null ? "" : ` (p50 ${(s * 1000).toFixed(1)} ms)`);

function floodLine(c: XdpCase): string {
  const w = c.window;
  return (
    `  flood sent ${n0(c.flood?.pps ?? 0)} SYN/s; host2's stack took in ${n0(w.inSegsPerSec)} TCP segments/s, ` +
    `sent ${n0(w.synCookiesPerSec)} SYN cookies/s, listen overflows/drops ${w.listenOverflows}/${w.listenDrops}; ` +
    `legitimate connects ok: ${c.connects.ok} of ${c.connects.attempted}${ms(c.connects.p50)}`
  );
}

function burstLine(r: BurstResult): string {
  const p99 = r.handshakeP99 === null ? "" : ` (99% within ${r.handshakeP99.toFixed(2)} s)`;
  return (
    `  accept queue ${n0(r.acceptQueue)}; ${n0(r.attempted)} sockets opened in ${r.openedSeconds.toFixed(2)} s; ` +
    `handshakes: ${n0(r.handshakeUnder1s)} within 1 s, ${n0(r.handshakeResent)} after a resent SYN${p99}; ` +
    `${n0(r.greeted)} greeted within ${BURST.deadlineSec} s, ${n0(r.timedOut)} timed out ` +
    `(${n0(r.noHandshake)} of them without a handshake), ${n0(r.refused)} refused, ${n0(r.reset)} reset; ` +
    `host1 resent ${n0(r.synRetransmits)} SYNs; host2's ListenOverflows +${n0(r.listenOverflows)}, ListenDrops +${n0(r.listenDrops)}`
  );
}

export interface ProfileResult {
  before: { flood: XdpCase; burst: BurstResult };
  after: { flood: XdpCase; burst: BurstResult; filter: FilterCounters };
}

/** The before/after table the demo prints. */
export function renderBeforeAfter(r: ProfileResult): string {
  const { before: b, after: a } = r;
  const f = a.filter;
  const rows: string[][] = [
    ["SYN flood: sent (SYN/s)", n0(b.flood.flood?.pps ?? 0), n0(a.flood.flood?.pps ?? 0)],
    [
      "  TCP segments in at host2's stack (/s)",
      n0(b.flood.window.inSegsPerSec),
      n0(a.flood.window.inSegsPerSec),
    ],
    [
      "  SYN cookies sent (/s)",
      n0(b.flood.window.synCookiesPerSec),
      n0(a.flood.window.synCookiesPerSec),
    ],
    [
      "  listen overflows / drops",
      `${b.flood.window.listenOverflows} / ${b.flood.window.listenDrops}`,
      `${a.flood.window.listenOverflows} / ${a.flood.window.listenDrops}`,
    ],
    [
      "  legitimate connects ok (within 1 s)",
      `${b.flood.connects.ok} / ${b.flood.connects.attempted}`,
      `${a.flood.connects.ok} / ${a.flood.connects.attempted}`,
    ],
    [
      "  XDP filter: SYNs seen / passed / dropped",
      "–",
      `${n0(f[0])} / ${n0(f[1])} / ${n0(f[2] + f[3])}`,
    ],
    [
      `burst of ${n0(BURST.count)}: accept queue (= somaxconn)`,
      n0(b.burst.acceptQueue),
      n0(a.burst.acceptQueue),
    ],
    ["  handshakes within 1 s", n0(b.burst.handshakeUnder1s), n0(a.burst.handshakeUnder1s)],
    ["  handshakes after a resent SYN", n0(b.burst.handshakeResent), n0(a.burst.handshakeResent)],
    [`  greeted within ${BURST.deadlineSec} s`, n0(b.burst.greeted), n0(a.burst.greeted)],
    [
      "  timed out / refused / reset",
      `${n0(b.burst.timedOut)} / ${n0(b.burst.refused)} / ${n0(b.burst.reset)}`,
      `${n0(a.burst.timedOut)} / ${n0(a.burst.refused)} / ${n0(a.burst.reset)}`,
    ],
    ["  SYNs resent by the clients", n0(b.burst.synRetransmits), n0(a.burst.synRetransmits)],
    [
      "  ListenOverflows / ListenDrops",
      `+${n0(b.burst.listenOverflows)} / +${n0(b.burst.listenDrops)}`,
      `+${n0(a.burst.listenOverflows)} / +${n0(a.burst.listenDrops)}`,
    ],
  ];
  return table(rows, ["host2", "before", "after (apiGateway)"]);
}

// --- the demo ----------------------------------------------------------------------------------

/** Runs the part; resolves to the exit code. */
export async function profileDemo(): Promise<number> {
  const started = Date.now();
  const deadline = started + LIMIT_MS;
  const controller = new AbortController();
  /** Why the part is stopping (a signal, the time limit), once it is. */
  let stopping: string | undefined;
  const stop = (signal: string) => {
    if (stopping) {
      // A second Ctrl-C: take the hosts down now and leave.
      process.stderr.write(`\n${signal} again: taking the sandbox down\n`);
      spawnSync(
        process.execPath,
        [path.join(ROOT, "dist/src/bin/nettune.js"), "sandbox", "down", "--name", PROFILE_SANDBOX],
        { stdio: "inherit", timeout: 120_000 },
      );
      process.exit(130);
    }
    stopping = signal;
    process.stderr.write(`\n${signal}: stopping, then taking the sandbox down\n`);
    controller.abort();
    // SSH commands and the tools they run end; the code unwinds to its finally.
    abortAll(signal);
  };
  const onInt = () => stop("SIGINT");
  const onTerm = () => stop("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  const timer = setTimeout(() => stop(`the time limit of ${LIMIT_MS / 60_000} min`), LIMIT_MS);
  timer.unref();

  const work = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-demo-profile-"));
  const log = (m: string) => say(m);
  let failed = false;
  try {
    requireSynflood();

    step(1, "bring up two sandbox hosts and link them");
    await sandbox.down({ name: PROFILE_SANDBOX });
    const state = await sandbox.up({ name: PROFILE_SANDBOX, hosts: 2, log });
    const [a, b] = state.hosts as [SandboxHost, SandboxHost];
    const kh = path.join(work, "known_hosts");
    writeKnownHosts(kh, state.hosts);
    const on =
      (h: SandboxHost) =>
      (script: string, capMs = 30_000, input?: string) =>
        direct(h, kh, script, budget(deadline, capMs), input);
    const sa = on(a);
    const sb = on(b);
    await linkHosts(PLAN, a, b, kh, deadline, log);
    // The burst's connections leave from host1's second address (host2 answers the first,
    // the flood's, to nowhere); the flood and the connects name their source themselves.
    await sa(`ip route replace ${PLAN.target}/32 dev ${IFACE} src ${PLAN.legit}`);
    await sa(`cat > ${CLIENT_HOST}`, 30_000, CONNECT_PY);
    await sb(`cat > ${LISTEN_HOST}`, 30_000, LISTEN_PY);
    say(
      `${a.name} (${a.hostAddress}): the clients and the flood's source, ${PLAN.flood} and ${PLAN.legit} on ${IFACE}\n` +
        `${b.name} (${b.hostAddress}): the gateway to tune, ${PLAN.target} on ${IFACE}; SSH reaches both over eth0, which nothing here changes\n` +
        `${IFACE}: a veth from ${a.name}'s namespace to ${b.name}'s; traffic on it never reaches this machine's own\n` +
        `${b.name} runs a listener for each measurement: port ${PLAN.port} for the flood (the profile's filter guards 80 and 443), ` +
        `port ${BURST_PORT.before}/${BURST_PORT.after} for the burst (not guarded)`,
    );
    const kernel = (await sb("uname -r")).trim();
    const original = await hostState(sb);
    const originalPaths = await nettunePaths(sb);

    step(2, `measure before: ${b.name} as it booted`);
    say(
      `SYN flood: ${n0(PLAN.rate)} SYN/s from ${PLAN.flood} to port ${PLAN.port} for ${PLAN.floodSec} s ` +
        `(${b.name} sends its SYN-ACKs to a MAC no one has, as to a spoofed source); ${b.name}'s counters over ` +
        `${PLAN.windowSec} s inside it; ${PLAN.connects.count} connects from ${PLAN.legit} meanwhile, one every ${PLAN.connects.gapMs} ms`,
    );
    const floodBefore = await measure(PLAN, a, b, kh, deadline, "flood");
    say(floodLine(floodBefore));
    say(
      `Connection burst: ${n0(BURST.count)} connections at once from ${PLAN.legit} to port ${BURST_PORT.before}, ` +
        `whose listener asks for a backlog of 65535 (the kernel caps it at net.core.somaxconn, ` +
        `${original["net.core.somaxconn"]}) and stalls for ${BURST.stallSec} s from the first connection ` +
        `(a GC pause, a blocked event loop), then accepts as fast as it can; a client waits ${BURST.deadlineSec} s for its greeting`,
    );
    const burstBefore = await burst(a, b, kh, deadline, BURST_PORT.before);
    say(burstLine(burstBefore));

    step(3, `pulumi preview: the apiGateway profile on ${b.name}'s ${IFACE}`);
    say(`What ${b.name} has (read over SSH), and the parts of the profile it calls to override:`);
    const overrides = await overridesFor(sb);
    for (const o of overrides) say(`  ${o.field}: ${code(o.value)}\n      ${o.why}`);
    if (overrides.length === 0) say("  nothing: every part of the profile applies as it is");
    say(
      `\nThe program:\n  new nettune.NetworkTuning("gw", {\n    connection,\n    interface: "${IFACE}",\n` +
        `    profile: nettune.profiles.apiGateway,\n` +
        overrides.map((o) => `    ${o.field}: ${code(o.value)},\n`).join("") +
        "  });\n",
    );
    const target: DemoHost = {
      host: b.hostAddress,
      port: b.directPort,
      user: b.user,
      privateKeyPath: b.privateKeyPath,
      hostKey: b.hostKey,
    };
    const model = Object.fromEntries(
      overrides.map((o) => [o.field, o.value]),
    ) as nettune.TuningOverrides;
    const stateDir = path.join(work, "pulumi");
    fs.mkdirSync(stateDir);
    const stack = await auto.LocalWorkspace.createOrSelectStack(
      {
        stackName: "profile",
        projectName: "nettune-demo-profile",
        program: () => Promise.resolve(profileProgram(target, model)),
      },
      {
        workDir: stateDir,
        envVars: {
          PULUMI_BACKEND_URL: `file://${stateDir}`,
          PULUMI_PARALLEL_DIFF: "true",
          PULUMI_CONFIG_PASSPHRASE: process.env.PULUMI_CONFIG_PASSPHRASE ?? "nettune-demo",
        },
      },
    );
    const print = (s: string) => process.stdout.write(s);
    const signal = controller.signal;
    await stack.preview({ diff: true, onOutput: print, color: "never", signal });
    const afterPreview = await hostState(sb);
    if (JSON.stringify(afterPreview) !== JSON.stringify(original)) {
      throw new Error("preview changed the host");
    }

    step(4, "pulumi up, check on the host, measure again");
    const up = await stack.up({ onOutput: print, color: "never", signal });
    const tuned = await hostState(sb);
    say(
      `\nOn ${b.name} now (read over SSH):\n` +
        table(
          Object.keys(original).map((k) => [k, original[k]!, tuned[k]!]),
          ["", "before", "now"],
        ),
    );
    const wrong = Object.entries(PROFILE.sysctls ?? {})
      .filter(([k]) => !(model.sysctls && k in model.sysctls))
      .filter(([k, v]) => tuned[k] !== asText(v));
    if (wrong.length > 0) throw new Error(`not applied: ${wrong.map(([k]) => k).join(", ")}`);
    if (tuned[`${IFACE} XDP`] === "none") throw new Error(`no XDP program on ${IFACE}`);
    const written = await nettunePaths(sb);
    say(`nettune's files on ${b.name}:\n${written.files.map((f) => `  ${f}\n`).join("")}`);

    const pinDir = String(up.outputs.pinDir?.value ?? "");
    const t = new SshTransport(
      connectionSchema.parse({
        host: b.hostAddress,
        port: b.directPort,
        user: b.user,
        privateKey: fs.readFileSync(b.privateKeyPath, "utf8"),
        hostKey: b.hostKey,
      }),
    );
    let floodAfter: XdpCase;
    let filter: FilterCounters;
    try {
      say(`\nThe same SYN flood, now through the profile's XDP filter on ${IFACE}:`);
      const c0 = await readXdpCounters(t, pinDir, "syn_stats");
      floodAfter = await measure(PLAN, a, b, kh, deadline, "filtered");
      const c1 = await readXdpCounters(t, pinDir, "syn_stats");
      filter = [0, 1, 2, 3].map((i) => (c1[i] ?? 0) - (c0[i] ?? 0)) as FilterCounters;
    } finally {
      await t.close();
    }
    say(floodLine(floodAfter));
    say(
      `  the filter (syn_stats): ${n0(filter[0])} SYNs to ports 80/443 seen, ${n0(filter[1])} passed, ` +
        `${n0(filter[2])} dropped over the per-source limit, ${n0(filter[3])} over the total one`,
    );
    say(`The same burst, to port ${BURST_PORT.after}:`);
    const burstAfter = await burst(a, b, kh, deadline, BURST_PORT.after);
    say(burstLine(burstAfter));
    say(
      `\n${bold("Before and after")} (${b.name}: kernel ${kernel}, an nspawn host sharing this machine's 2 CPUs):\n` +
        renderBeforeAfter({
          before: { flood: floodBefore, burst: burstBefore },
          after: { flood: floodAfter, burst: burstAfter, filter },
        }),
    );

    step(5, "pulumi preview again: nothing to do");
    const again = await stack.preview({ color: "never", signal });
    say(`changes: ${JSON.stringify(again.changeSummary)}`);
    const changed = Object.entries(again.changeSummary).filter(([op, n]) => op !== "same" && n);
    if (changed.length > 0)
      throw new Error(`a second preview wants changes: ${JSON.stringify(changed)}`);

    step(6, "pulumi destroy: the host's own values come back");
    await stack.destroy({ onOutput: print, color: "never", signal });
    const restored = await hostState(sb);
    say(
      "\n" +
        table(
          Object.keys(original).map((k) => [k, original[k]!, restored[k]!]),
          ["", "original", "after destroy"],
        ),
    );
    const left = await nettunePaths(sb);
    const newFiles = left.files.filter((f) => !originalPaths.files.includes(f));
    const newDirs = left.dirs.filter((d) => !originalPaths.dirs.includes(d));
    say(
      `nettune's files on ${b.name}: ${newFiles.length ? newFiles.join(", ") : "none"}` +
        (newDirs.length ? ` (empty folders left: ${newDirs.join(", ")})` : ""),
    );
    if (JSON.stringify(restored) !== JSON.stringify(original) || newFiles.length > 0) {
      throw new Error("destroy did not restore the host");
    }
    say(
      `\n${bold(`${b.name}'s values are back; no XDP program on ${IFACE}, no file of nettune.`)}`,
    );
  } catch (err) {
    failed = true;
    if (stopping) process.stderr.write(`\ndemo stopped (${stopping})\n`);
    else {
      process.stderr.write(
        `\ndemo failed: ${err instanceof Error ? err.message : String(err)}\n` +
          `(files of the run kept in ${work})\n`,
      );
    }
  } finally {
    step(7, "take the sandbox down");
    await sandbox.down({ name: PROFILE_SANDBOX, log });
    if (!failed || stopping) fs.rmSync(work, { recursive: true, force: true });
    clearTimeout(timer);
    process.off("SIGINT", onInt);
    process.off("SIGTERM", onTerm);
    const s = Math.round((Date.now() - started) / 1000);
    say(`\nDuration: ${Math.floor(s / 60)} min ${s % 60} s`);
  }
  return stopping?.startsWith("SIG") ? 130 : failed ? 1 : 0;
}
