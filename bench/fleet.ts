/**
 * Benchmark "fleet": one Pulumi stack tuning many hosts at once (a SysctlSet, a
 * CongestionControl and a NicOffloads per host), measured against the floor nettune cannot go
 * below on the same hosts in the same run, and against pipelined Ansible making the same
 * changes.
 *
 * The floor is what any Pulumi stack and any SSH tool pay: `pulumi up` of an empty stack
 * through the same driver, plus one SSH round (`ssh HOST true` to every host at once) over the
 * same delayed path. Every host is behind 50 ms each way.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { featureState } from "../src/specs/nicOffloads";
import { parseEthtoolFeatures, resolveFeatureName } from "../src/host/ethtool";
import type { SandboxHost } from "../src/sandbox/sandbox";
import { ANSIBLE_SYSCTL_FILE, ansibleVersion, runPlaybook, writeAnsibleFiles } from "./ansible";
import type { FleetProgramArgs } from "./fleet/program";
import {
  ROOT,
  acceptedLogins,
  differences,
  direct,
  liveValues,
  machine,
  sandboxDown,
  sandboxUp,
  sshArgv,
  writeKnownHosts,
} from "./hosts";
import { budget, run, runOk } from "./proc";
import { providerStats, type HostCost } from "./providerStats";
import type { DriverRequest, DriverResult } from "./pulumiDriver";
import { perHost } from "./report";
import { drive, expectChanges } from "./stack";
import { VALUES, opensshVersion, packageVersion } from "./sysctl";

/**
 * `nettune sandbox up` takes at most 16 hosts (MAX_HOSTS in src/sandbox/sandbox.ts: a
 * sandbox's addresses are a block of 16 /24 subnets), so a larger fleet spans several.
 */
export const FLEET_SANDBOXES = ["fleet", "fleet2", "fleet3", "fleet4"];
const PER_SANDBOX = 16;
export const FLEET_MAX_HOSTS = PER_SANDBOX * FLEET_SANDBOXES.length;
export const FLEET_SIZES = [8, 32];
export const FLEET_DELAY_MS = 50;

export const FLEET_START = "<!-- bench:fleet:start -->";
export const FLEET_END = "<!-- bench:fleet:end -->";

const ALGORITHM = "bbr";
/** The algorithm hosts start from when they booted with ALGORITHM: the other one a netns allows. */
const START_ALGORITHM = "reno";
const CC_KEY = "net.ipv4.tcp_congestion_control";
/**
 * nettune's setting that leaves new resources to create's own host check, so the engine's
 * serial Check phase reads no host: the first `up` is timed with and without it.
 */
const CHECKS_AT_CREATE = "NETTUNE_PREVIEW_HOST_CHECKS=changed";
/** The one value the preview changes on every host. */
const CHANGED = { key: "net.core.somaxconn", value: 32768 };
/** The features NicOffloads flips on each host's own interface. */
const OFFLOADS = ["gro", "tso", "gso"] as const;
type Offloads = Record<(typeof OFFLOADS)[number], boolean>;
/** Samples of each part of the floor; the median counts. */
const FLOOR_SAMPLES = 3;

const KEYS = Object.keys(VALUES);
const AS_TEXT: Record<string, string> = Object.fromEntries(
  Object.entries(VALUES).map(([k, v]) => [k, Array.isArray(v) ? v.join(" ") : String(v)]),
);
/** What the hosts hold after either tool: the sysctls plus the algorithm CongestionControl sets. */
const APPLIED: Record<string, string> = { ...AS_TEXT, [CC_KEY]: ALGORITHM };
const READ_KEYS = Object.keys(APPLIED);

const CAP_PULUMI_MS = 300_000;
const CAP_ANSIBLE_MS = 300_000;
const CAP_SSH_ROUND_MS = 60_000;
/** Hosts boot one after another; each needs a few seconds, shutting down up to 20 s. */
const capUpMs = (hosts: number) => 60_000 + 10_000 * hosts;
const capDownMs = (hosts: number) => 60_000 + 25_000 * hosts;

export interface FleetBenchOptions {
  runs: number;
  sizes: number[];
  /** The benchmark's own arguments, for the report's reproduce line. */
  argv: string[];
  /** Time limit of each run of each size (sandbox up to down), ms. */
  runTimeoutMs: number;
  log: (m: string) => void;
}

/** One measured operation and the window in which its logins are counted. */
interface Measured {
  operation: string;
  seconds: number;
  startedAt: number;
  endedAt: number;
  /** Per host: logins sshd accepted in the window (filled in at the end of the run). */
  handshakes: number[];
  /** Per host: remote commands (nettune: the provider's exec requests; Ansible: ssh/sftp/scp). */
  commands?: number[];
  /** nettune only: the provider's own handshake count per host, for the cross-check. */
  provider?: HostCost[];
  /** Seconds between the first login on the first host reached and on the last one. */
  spread?: number;
}

export interface FleetRun {
  run: number;
  hosts: number;
  sandboxes: string[];
  floor: {
    emptyUp: number[];
    sshRound: number[];
    /** Medians, s. */
    emptyUpMedian: number;
    sshRoundMedian: number;
    seconds: number;
  };
  /** The floor's two parts (their median samples), nettune's operations and Ansible's apply. */
  measured: Record<OpKey, Measured>;
  /** The first host's own state before the tools (every host boots the same). */
  originals: { values: Record<string, string>; offloads: Offloads; interface: string };
  notes: string[];
}

type OpKey =
  "emptyUp" | "sshRound" | "up" | "upAtCreate" | "upAgain" | "preview" | "destroy" | "ansible";

export interface FleetBenchResult {
  runs: FleetRun[];
  table: string;
  section: string;
}

export async function fleetBench(options: FleetBenchOptions): Promise<FleetBenchResult> {
  const { log } = options;
  fleetPreflight(options.sizes);
  const env = await environment();
  const runs: FleetRun[] = [];
  for (let i = 1; i <= options.runs; i++) {
    for (const size of options.sizes) {
      log(`bench fleet: run ${i} of ${options.runs}, ${size} hosts`);
      const r = await oneRun(i, size, Date.now() + options.runTimeoutMs, log);
      // Each size's figures are shown as soon as it ends, so a later failure does not lose them.
      log(`${renderFleetTables([r], true)}\n\n${renderFleetNotes([r], true).join("\n")}\n`);
      runs.push(r);
    }
  }
  const many = options.runs > 1;
  const table = `${renderFleetTables(runs, many)}\n\n${renderFleetNotes(runs, many).join("\n")}`;
  return { runs, table, section: renderFleetSection(runs, env, options) };
}

async function environment() {
  const m = await machine();
  const pulumi = (await run(["pulumi", "version"], { timeoutMs: 30_000 })).stdout.trim();
  return {
    ...m,
    date: new Date().toISOString().slice(0, 10),
    versions: `nettune ${packageVersion()}, Pulumi ${pulumi}, Node ${process.version}, ${await ansibleVersion()}, OpenSSH ${await opensshVersion()}`,
  };
}

/** How a fleet of `hosts` is split over sandboxes of at most PER_SANDBOX hosts. */
function sandboxPlan(hosts: number): Array<{ name: string; hosts: number }> {
  if (hosts < 1 || hosts > FLEET_MAX_HOSTS) {
    throw new Error(`fleet: ${hosts} hosts; from 1 to ${FLEET_MAX_HOSTS}`);
  }
  const plan: Array<{ name: string; hosts: number }> = [];
  for (let left = hosts, i = 0; left > 0; left -= PER_SANDBOX, i++) {
    plan.push({ name: FLEET_SANDBOXES[i]!, hosts: Math.min(PER_SANDBOX, left) });
  }
  return plan;
}

/**
 * inotify instances a booted sandbox host holds as root: systemd 5, systemd-logind 1. Every
 * host of every sandbox counts against root's fs.inotify.max_user_instances (the containers
 * share the machine's uid 0), and a host whose systemd finds none left never starts
 * ("Failed to allocate manager object: Too many open files").
 */
const INOTIFY_PER_HOST = 6;

/** inotify instances held now by processes running as root. */
function rootInotifyInstances(): number {
  let n = 0;
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
      if (/^Uid:\s+\d+\s+(\d+)/m.exec(status)?.[1] !== "0") continue;
      for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === "anon_inode:inotify") n++;
      }
    } catch {
      /* the process ended meanwhile */
    }
  }
  return n;
}

/** Fails at once, saying what to change, when this machine cannot boot `hosts` more hosts. */
function checkInotify(hosts: number): void {
  const limit = Number(fs.readFileSync("/proc/sys/fs/inotify/max_user_instances", "utf8"));
  const used = rootInotifyInstances();
  const need = hosts * INOTIFY_PER_HOST;
  if (used + need <= limit) return;
  throw new Error(
    `fleet: ${hosts} hosts need about ${need} inotify instances of root (${INOTIFY_PER_HOST} per booted host: ` +
      `systemd and systemd-logind), but fs.inotify.max_user_instances is ${limit} and ${used} are in use ` +
      "(other sandboxes included); the hosts beyond that would not boot. Raise the limit " +
      `(sysctl -w fs.inotify.max_user_instances=${2 ** (Math.ceil(Math.log2(used + need)) + 1)}; not while ` +
      "`npm test` runs: its guard compares this machine's sysctls) or choose fewer hosts with --hosts.",
  );
}

/** Throws when this machine cannot boot the largest fleet: better now than after the others. */
export function fleetPreflight(sizes: number[]): void {
  checkInotify(Math.max(...sizes));
}

async function oneRun(
  runNo: number,
  size: number,
  deadline: number,
  log: (m: string) => void,
): Promise<FleetRun> {
  const plan = sandboxPlan(size);
  // Whatever a crashed earlier run left must not be reused.
  for (const s of plan) await sandboxDown(s.name, capDownMs(PER_SANDBOX));
  checkInotify(size);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-fleet-"));
  let result: FleetRun | undefined;
  let downFailed: Error | undefined;
  try {
    const hosts: SandboxHost[] = [];
    // One after another: a sandbox picks its address block from those not yet taken.
    for (const s of plan) {
      log(`bench fleet: sandbox up --name ${s.name} --hosts ${s.hosts} --delay ${FLEET_DELAY_MS}`);
      const up = await sandboxUp(
        s.name,
        s.hosts,
        FLEET_DELAY_MS,
        budget(deadline, capUpMs(s.hosts)),
      );
      // Host names repeat across sandboxes; resources, inventory and notes need unique ones.
      hosts.push(...up.map((h) => ({ ...h, name: `${s.name}-${h.name}` })));
    }
    const kh = path.join(work, "known_hosts");
    writeKnownHosts(kh, hosts);
    const runStartSec = Date.now() / 1000;

    const notes: string[] = [];
    // A new namespace takes this machine's default algorithm, which may already be the one
    // declared; the hosts then start from the other one allowed, so CongestionControl has a
    // change to make (set here, before anything is measured, and kept as the original).
    const booted = await forHosts(hosts, (h) => liveValues(h, kh, [CC_KEY]));
    if (booted.some((v) => v[CC_KEY] === ALGORITHM)) {
      await forHosts(hosts, (h) => direct(h, kh, `sysctl -q -w ${CC_KEY}=${START_ALGORITHM}`));
      notes.push(
        `the hosts booted with ${CC_KEY} = ${ALGORITHM} (this machine's default); the run set ${START_ALGORITHM} on each before measuring, so that CongestionControl and Ansible change it.`,
      );
    }
    const originalValues = await forHosts(hosts, (h) => liveValues(h, kh, READ_KEYS));
    const originalOffloads = await forHosts(hosts, (h) => readOffloads(h, kh));
    for (const [i, h] of hosts.entries()) {
      const same = KEYS.filter((k) => originalValues[i]![k] === AS_TEXT[k]);
      if (same.length === KEYS.length) {
        throw new Error(
          `${h.name}: every key already has the benchmark's value:\n${same.join("\n")}`,
        );
      }
    }
    const flipped = originalOffloads.map(
      (o) => Object.fromEntries(OFFLOADS.map((f) => [f, !o[f]])) as Offloads,
    );

    const floor = await measureFloor(hosts, kh, work, deadline, log);
    const nt = await nettune(
      hosts,
      kh,
      work,
      originalValues,
      originalOffloads,
      flipped,
      deadline,
      log,
    );
    const ansible = await ansibleApply(
      hosts,
      kh,
      work,
      originalValues,
      originalOffloads,
      flipped,
      deadline,
      log,
    );
    const measured: Record<OpKey, Measured> = {
      emptyUp: floor.emptyUp,
      sshRound: floor.sshRound,
      ...nt,
      ansible,
    };

    // sshd's own count of logins in each operation's window, from every host's journal.
    const logins = await forHosts(hosts, (h) => acceptedLogins(h, kh, runStartSec));
    for (const m of Object.values(measured)) {
      const inWindow = (t: number) => t >= m.startedAt / 1000 && t <= m.endedAt / 1000;
      m.handshakes = logins.map((times) => times.filter(inWindow).length);
      const firsts = logins
        .map((times) => times.find(inWindow))
        .filter((t): t is number => t !== undefined);
      if (firsts.length > 1) m.spread = Math.max(...firsts) - Math.min(...firsts);
    }
    const agree: string[] = [];
    for (const [key, m] of Object.entries(measured)) {
      if (!m.provider) continue;
      const pool = m.provider.map((p) => p.handshakes);
      if (pool.join() === m.handshakes.join()) {
        agree.push(m.operation);
        continue;
      }
      // Creating NicOffloads on the SSH interface confirms over a connection outside the pool.
      const confirm =
        (key === "up" || key === "upAtCreate") && m.handshakes.every((n, i) => n === pool[i]! + 1)
          ? ": the one more per host is NicOffloads' commit-confirmed check, which dials its own connection"
          : "";
      notes.push(
        `${m.operation}: sshd logged ${perHost(m.handshakes)} logins per host, the provider's pool made ${perHost(pool)}${confirm}.`,
      );
    }
    if (agree.length > 0) {
      notes.push(
        `sshd's logins and the provider's own handshake count agree for ${agree.join(", ")}.`,
      );
    }
    result = {
      run: runNo,
      hosts: size,
      sandboxes: plan.map((s) => s.name),
      floor: floor.summary,
      measured,
      originals: {
        values: originalValues[0]!,
        offloads: originalOffloads[0]!,
        interface: hosts[0]!.hostInterface,
      },
      notes,
    };
  } finally {
    for (const s of plan) {
      log(`bench fleet: sandbox down --name ${s.name}`);
      try {
        await sandboxDown(s.name, capDownMs(s.hosts));
      } catch (err) {
        // The next sandbox must still come down; this error is raised after them.
        downFailed ??= err instanceof Error ? err : new Error(String(err));
        log(`bench fleet: ${downFailed.message}`);
      }
    }
    if (result) fs.rmSync(work, { recursive: true, force: true });
    else log(`bench fleet: files of the failed run kept in ${work}`);
  }
  // Reached only when the measurement itself succeeded: then a host left up fails the run.
  if (downFailed) throw downFailed;
  return result!;
}

function forHosts<T>(hosts: SandboxHost[], f: (h: SandboxHost) => Promise<T>): Promise<T[]> {
  return Promise.all(hosts.map(f));
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

// --- reading the hosts -----------------------------------------------------------------------

/** gro, tso and gso of the host's own interface, as the project's ethtool reader sees them. */
async function readOffloads(h: SandboxHost, kh: string): Promise<Offloads> {
  const features = parseEthtoolFeatures(await direct(h, kh, `ethtool -k ${h.hostInterface}`));
  return Object.fromEntries(
    OFFLOADS.map((f) => {
      const state = featureState(features, resolveFeatureName(f));
      if (!state) throw new Error(`${h.name}: ethtool -k ${h.hostInterface} shows no ${f}`);
      return [f, state.on];
    }),
  ) as Offloads;
}

/** Throws unless every host has `values[i]` and `offloads[i]`. */
async function verify(
  hosts: SandboxHost[],
  kh: string,
  values: Record<string, string>[],
  offloads: Offloads[],
  what: string,
): Promise<void> {
  const live = await forHosts(hosts, (h) => liveValues(h, kh, READ_KEYS));
  const liveOffloads = await forHosts(hosts, (h) => readOffloads(h, kh));
  for (const [i, h] of hosts.entries()) {
    const diff = differences(live[i]!, values[i]!);
    for (const f of OFFLOADS) {
      if (liveOffloads[i]![f] !== offloads[i]![f]) {
        diff.push(
          `${f} on ${h.hostInterface}: ${onOff(liveOffloads[i]![f])} != ${onOff(offloads[i]![f])}`,
        );
      }
    }
    if (diff.length > 0)
      throw new Error(`${what}: ${h.name} does not have the expected state:\n${diff.join("\n")}`);
  }
}

const onOff = (on: boolean) => (on ? "on" : "off");
const ethtoolArgs = (o: Offloads) => OFFLOADS.map((f) => `${f} ${onOff(o[f])}`).join(" ");

// --- the floor -------------------------------------------------------------------------------

/** `ssh HOST true` over the host's SSH path (the delayed one), a fresh connection. */
async function sshTrue(h: SandboxHost, kh: string, timeoutMs: number): Promise<void> {
  await runOk(sshArgv(h, kh, { address: h.address, port: h.port }, "true"), { timeoutMs });
}

async function measureFloor(
  hosts: SandboxHost[],
  kh: string,
  work: string,
  deadline: number,
  log: (m: string) => void,
) {
  const stateDir = path.join(work, "pulumi-empty");
  fs.mkdirSync(stateDir, { recursive: true });
  log(`bench fleet: floor: ${FLOOR_SAMPLES} × pulumi up of an empty stack`);
  const ups = await drive(
    {
      program: path.join(ROOT, "dist/bench/fleet/program.js"),
      args: { hosts: [], values: {}, algorithm: ALGORITHM } satisfies FleetProgramArgs,
      stateDir,
      project: "nettune-bench-fleet-empty",
      stack: "empty",
      ops: Array.from({ length: FLOOR_SAMPLES }, (_, i) => ({
        op: "up" as const,
        statsDir: path.join(work, "stats", `empty-${i}`),
      })),
      resultFile: path.join(stateDir, "result.json"),
    },
    deadline,
    CAP_PULUMI_MS,
  );
  // Only the stack itself: created by the first up, the same after.
  ups.forEach((r, i) => expectChanges(r, i === 0 ? { create: 1 } : { same: 1 }, "empty stack"));

  log(`bench fleet: floor: ${FLOOR_SAMPLES} × ssh HOST true to all ${hosts.length} hosts at once`);
  const rounds: Array<{ ms: number; startedAt: number; endedAt: number }> = [];
  for (let i = 0; i < FLOOR_SAMPLES; i++) {
    const startedAt = Date.now();
    const t0 = performance.now();
    await forHosts(hosts, (h) => sshTrue(h, kh, budget(deadline, CAP_SSH_ROUND_MS)));
    rounds.push({ ms: performance.now() - t0, startedAt, endedAt: Date.now() });
  }

  const emptyUp = ups.map((r) => r.ms / 1000);
  const sshRound = rounds.map((r) => r.ms / 1000);
  const emptyUpMedian = median(emptyUp);
  const sshRoundMedian = median(sshRound);
  // The median sample's window: its logins are the ones the table shows.
  const window = (xs: Array<{ ms: number; startedAt: number; endedAt: number }>) => {
    const x = [...xs].sort((a, b) => a.ms - b.ms)[Math.floor(xs.length / 2)]!;
    return { startedAt: x.startedAt, endedAt: x.endedAt };
  };
  return {
    summary: {
      emptyUp,
      sshRound,
      emptyUpMedian,
      sshRoundMedian,
      seconds: emptyUpMedian + sshRoundMedian,
    },
    emptyUp: {
      operation: "`pulumi up` of an empty stack",
      seconds: emptyUpMedian,
      ...window(ups),
      handshakes: [],
    } satisfies Measured,
    sshRound: {
      operation: "one SSH round: `ssh HOST true` to every host at once",
      seconds: sshRoundMedian,
      ...window(rounds),
      handshakes: [],
      commands: hosts.map(() => 1),
    } satisfies Measured,
  };
}

// --- nettune ---------------------------------------------------------------------------------

/**
 * Pulumi's default `--parallel` is 4 per CPU (8 here), which would queue a large fleet's
 * resources behind each other although their work is waiting on the network, not the CPU.
 */
const parallelFor = (hosts: number) => 3 * hosts + 1;

async function nettune(
  hosts: SandboxHost[],
  kh: string,
  work: string,
  originalValues: Record<string, string>[],
  originalOffloads: Offloads[],
  flipped: Offloads[],
  deadline: number,
  log: (m: string) => void,
): Promise<Record<"up" | "upAtCreate" | "upAgain" | "preview" | "destroy", Measured>> {
  const n = hosts.length;
  const stateDir = path.join(work, "pulumi");
  fs.mkdirSync(stateDir, { recursive: true });
  const args = (values: Record<string, number | number[]>): FleetProgramArgs => ({
    hosts: hosts.map((h, i) => ({
      label: h.name,
      // The delayed path: every round trip costs 2 × FLEET_DELAY_MS.
      host: {
        address: h.address,
        port: h.port,
        user: h.user,
        privateKeyPath: h.privateKeyPath,
        hostKey: h.hostKey,
      },
      interface: h.hostInterface,
      offloads: flipped[i]!,
    })),
    values,
    algorithm: ALGORITHM,
  });
  let req = 0;
  const pulumi = (ops: DriverRequest["ops"], values = VALUES): Promise<DriverResult[]> =>
    drive(
      {
        program: path.join(ROOT, "dist/bench/fleet/program.js"),
        args: args(values),
        stateDir,
        project: "nettune-bench-fleet",
        stack: "fleet",
        ops,
        resultFile: path.join(stateDir, `result-${++req}.json`),
        parallel: parallelFor(n),
      },
      deadline,
      CAP_PULUMI_MS,
    );
  const stats = (op: string) => path.join(work, "stats", op);
  const resources = 3 * n + 1; // the stack itself counts as one more

  log(`bench fleet: nettune: pulumi up (${resources} resources), then again`);
  const [up, upAgain] = (await pulumi([
    { op: "up", statsDir: stats("up") },
    { op: "up", statsDir: stats("up-again") },
  ])) as [DriverResult, DriverResult];
  expectChanges(up, { create: resources }, "first up");
  expectChanges(upAgain, { same: resources }, "second up");
  await verify(
    hosts,
    kh,
    hosts.map(() => APPLIED),
    flipped,
    "after pulumi up",
  );
  const observed = hosts.map((h) => String(up.outputs[`${h.name}_observedAlgorithm`]));
  if (observed.some((a) => a !== ALGORITHM)) {
    throw new Error(
      `after pulumi up: a new connection's algorithm per host: ${observed.join(", ")}`,
    );
  }

  log(`bench fleet: nettune: pulumi preview with ${CHANGED.key} = ${CHANGED.value} on every host`);
  const [preview] = (await pulumi([{ op: "preview", statsDir: stats("preview") }], {
    ...VALUES,
    [CHANGED.key]: CHANGED.value,
  })) as [DriverResult];
  expectChanges(preview, { same: 2 * n + 1, update: n }, "preview");
  await verify(
    hosts,
    kh,
    hosts.map(() => APPLIED),
    flipped,
    "after pulumi preview (it must not change the hosts)",
  );

  log("bench fleet: nettune: pulumi destroy");
  const [destroy] = (await pulumi([{ op: "destroy", statsDir: stats("destroy") }])) as [
    DriverResult,
  ];
  expectChanges(destroy, { delete: resources }, "destroy");
  await verify(
    hosts,
    kh,
    originalValues,
    originalOffloads,
    "after pulumi destroy (originals back)",
  );

  log(`bench fleet: nettune: pulumi up with ${CHECKS_AT_CREATE}, then pulumi destroy (not timed)`);
  const [upAtCreate] = (await pulumi([
    {
      op: "up",
      statsDir: stats("up-checks-at-create"),
      env: { NETTUNE_PREVIEW_HOST_CHECKS: "changed" },
    },
  ])) as [DriverResult];
  expectChanges(upAtCreate, { create: resources }, `up with ${CHECKS_AT_CREATE}`);
  await verify(
    hosts,
    kh,
    hosts.map(() => APPLIED),
    flipped,
    `after pulumi up with ${CHECKS_AT_CREATE}`,
  );
  const [again] = (await pulumi([{ op: "destroy", statsDir: stats("destroy-again") }])) as [
    DriverResult,
  ];
  expectChanges(again, { delete: resources }, "second destroy");
  await verify(hosts, kh, originalValues, originalOffloads, "after the second pulumi destroy");

  const measured = (r: DriverResult, operation: string, dir: string): Measured => {
    const s = providerStats(dir, hosts);
    return {
      operation,
      seconds: r.ms / 1000,
      startedAt: r.startedAt,
      endedAt: r.endedAt,
      handshakes: [],
      commands: s.map((x) => x.execs),
      provider: s,
    };
  };
  return {
    up: measured(up, "`pulumi up` (create)", stats("up")),
    upAtCreate: measured(
      upAtCreate,
      `\`pulumi up\` (create), \`${CHECKS_AT_CREATE}\``,
      stats("up-checks-at-create"),
    ),
    upAgain: measured(upAgain, "`pulumi up` again (no change)", stats("up-again")),
    preview: measured(
      preview,
      `\`pulumi preview\` (${CHANGED.key} changed on every host)`,
      stats("preview"),
    ),
    destroy: measured(destroy, "`pulumi destroy` (restore)", stats("destroy")),
  };
}

// --- Ansible ---------------------------------------------------------------------------------

async function ansibleApply(
  hosts: SandboxHost[],
  kh: string,
  work: string,
  originalValues: Record<string, string>[],
  originalOffloads: Offloads[],
  flipped: Offloads[],
  deadline: number,
  log: (m: string) => void,
): Promise<Measured> {
  const dir = path.join(work, "ansible");
  const iface = hosts[0]!.hostInterface;
  if (hosts.some((h) => h.hostInterface !== iface)) {
    throw new Error("fleet: the hosts' interfaces have different names; the playbook takes one");
  }
  const setup = writeAnsibleFiles(dir, hosts, kh, APPLIED, {
    interface: iface,
    perHost: Object.fromEntries(hosts.map((h, i) => [h.name, ethtoolArgs(flipped[i]!)])),
  });
  const config = path.join(dir, "ansible.cfg");
  fs.writeFileSync(
    config,
    `[defaults]\nforks = ${hosts.length}\n\n[ssh_connection]\npipelining = True\n`,
  );
  const runDir = path.join(dir, "apply");
  fs.mkdirSync(runDir, { recursive: true });
  log(`bench fleet: Ansible (pipelining, forks ${hosts.length}): ansible-playbook`);
  const r = await runPlaybook(setup, config, runDir, budget(deadline, CAP_ANSIBLE_MS));
  for (const h of hosts) {
    const changed = r.recap[h.name]?.changed ?? -1;
    if (changed < 1) throw new Error(`Ansible: ${h.name} reports changed=${changed}`);
  }
  await verify(
    hosts,
    kh,
    hosts.map(() => APPLIED),
    flipped,
    "after ansible-playbook",
  );

  // Ansible has no undo: the originals go back by hand (not measured).
  await forHosts(hosts, (h) => {
    const i = hosts.indexOf(h);
    const sets = READ_KEYS.map((k) => `'${k}=${originalValues[i]![k]}'`).join(" ");
    return direct(
      h,
      kh,
      `rm -f ${ANSIBLE_SYSCTL_FILE} && sysctl -q -w ${sets} && ethtool -K ${iface} ${ethtoolArgs(originalOffloads[i]!)}`,
    );
  });
  await verify(hosts, kh, originalValues, originalOffloads, "after restoring Ansible's changes");
  return {
    operation: `Ansible: \`ansible-playbook\` (apply; pipelining, forks ${hosts.length})`,
    seconds: r.ms / 1000,
    startedAt: r.startedAt,
    endedAt: r.endedAt,
    handshakes: [],
    commands: hosts.map((h) => {
      const c = r.calls[h.name];
      return c ? c.ssh + c.sftp + c.scp : 0;
    }),
  };
}

// --- report ----------------------------------------------------------------------------------

const f1 = (s: number) => s.toFixed(1);
const f2 = (s: number) => s.toFixed(2);
const ratio = (a: number, b: number) => `${f2(a / b)}×`;

/** The summary across sizes, then one table per size (and run). */
export function renderFleetTables(runs: FleetRun[], showRun: boolean): string {
  const runHead = showRun ? "| Run " : "";
  const runSep = showRun ? "| --: " : "";
  const runCell = (r: FleetRun) => (showRun ? `| ${r.run} ` : "");
  const lines = [
    `${runHead}| Hosts | Floor (s) | \`up\` ÷ floor | \`up\` ÷ floor, checks at create | no-op \`up\` ÷ floor | \`preview\` ÷ floor | \`destroy\` ÷ floor | Ansible apply (s) | Ansible ÷ nettune \`up\` (default / checks at create) |`,
    `${runSep}| --: | --: | --: | --: | --: | --: | --: | --: | --: |`,
  ];
  for (const r of runs) {
    const m = r.measured;
    const fl = r.floor.seconds;
    lines.push(
      `${runCell(r)}| ${r.hosts} | ${f1(fl)} | **${ratio(m.up.seconds, fl)}** | **${ratio(m.upAtCreate.seconds, fl)}** | **${ratio(m.upAgain.seconds, fl)}** | **${ratio(m.preview.seconds, fl)}** | ${ratio(m.destroy.seconds, fl)} | ${f1(m.ansible.seconds)} | **${ratio(m.ansible.seconds, m.up.seconds)}** / **${ratio(m.ansible.seconds, m.upAtCreate.seconds)}** |`,
    );
  }
  for (const r of runs) {
    const m = r.measured;
    const fl = r.floor.seconds;
    const row = (x: Measured, ofFloor: string) =>
      `| ${x.operation} | ${f1(x.seconds)} | ${ofFloor} | ${perHost(x.handshakes)} | ${x.commands ? perHost(x.commands) : "–"} | ${x.spread === undefined ? "–" : f1(x.spread)} |`;
    lines.push(
      "",
      `**${r.hosts} hosts**${showRun ? ` (run ${r.run})` : ""}`,
      "",
      "| Operation | Wall time (s) | ÷ floor | SSH handshakes per host | Exec round trips per host | Hosts reached within (s) |",
      "| --- | --: | --: | --: | --: | --: |",
      row(m.emptyUp, "–"),
      row(m.sshRound, "–"),
      `| **floor** (the two above) | **${f1(fl)}** | 1.00× | | | |`,
      row(m.up, ratio(m.up.seconds, fl)),
      row(m.upAtCreate, ratio(m.upAtCreate.seconds, fl)),
      row(m.upAgain, ratio(m.upAgain.seconds, fl)),
      row(m.preview, ratio(m.preview.seconds, fl)),
      row(m.destroy, ratio(m.destroy.seconds, fl)),
      row(m.ansible, ratio(m.ansible.seconds, fl)),
    );
  }
  return lines.join("\n");
}

function renderFleetNotes(runs: FleetRun[], showRun: boolean): string[] {
  const r0 = runs[0]!;
  const original = (k: string) => r0.originals.values[k] ?? "?";
  const label = (r: FleetRun) => `${r.hosts} hosts${showRun ? `, run ${r.run}` : ""}`;
  return [
    ...runs.map(
      (r) =>
        `${label(r)}: empty \`pulumi up\` ${r.floor.emptyUp.map(f1).join(" / ")} s, SSH round ${r.floor.sshRound.map(f2).join(" / ")} s (${FLOOR_SAMPLES} each; the medians make the floor).`,
    ),
    ...runs
      .filter((r) => r.sandboxes.length > 1)
      .map(
        (r) =>
          `${label(r)}: sandboxes ${r.sandboxes.join(", ")} (at most ${PER_SANDBOX} hosts each).`,
      ),
    `The hosts' own state, put back after each tool (checked): ${CC_KEY} ${original(CC_KEY)}, ${CHANGED.key} ${original(CHANGED.key)}; on ${r0.originals.interface}: ${OFFLOADS.map((f) => `${f} ${onOff(r0.originals.offloads[f])}`).join(", ")}.`,
    ...runs.flatMap((r) => r.notes.map((n) => `${label(r)}: ${n}`)),
  ].map((n) => `- ${n}`);
}

function renderFleetSection(
  runs: FleetRun[],
  env: Awaited<ReturnType<typeof environment>>,
  options: FleetBenchOptions,
): string {
  const args = options.argv.length > 0 ? ` -- ${options.argv.join(" ")}` : "";
  const sizes = [...new Set(runs.map((r) => r.hosts))];
  const r0 = runs[0]!;
  return [
    `Measured ${env.date} on this machine: kernel ${env.kernel}, ${env.nproc} CPUs (${env.cpu}), ${env.memGiB} GiB memory. ` +
      `Fleets of ${sizes.join(" and ")} sandbox hosts, **${FLEET_DELAY_MS} ms added each way** on the SSH path (${2 * FLEET_DELAY_MS} ms per round trip). ` +
      `Per host: a SysctlSet of ${KEYS.length} keys, CongestionControl ${ALGORITHM}, NicOffloads ${OFFLOADS.join("/")} flipped on the host's own interface; one Pulumi stack (bench/fleet/program.ts), \`--parallel\` = its resource count.`,
    "",
    `Versions: ${env.versions}.`,
    "",
    renderFleetTables(runs, options.runs > 1),
    "",
    ...renderFleetNotes(runs, options.runs > 1),
    "",
    "Reproduce (as root, on a machine like this one):",
    "",
    "```sh",
    "npm run setup   # once: Debian packages (ansible included), Node, the Pulumi CLI, the hosts' root fs",
    `npm run bench${args || " -- fleet"}`,
    "```",
    "",
    "which runs, for each fleet size N:",
    "",
    "```sh",
    `node dist/src/bin/nettune.js sandbox up --name fleet --hosts N --delay ${FLEET_DELAY_MS} --json   # N > 16: fleet2, … for the rest`,
    "# the floor: 3 × pulumi up of an empty stack; 3 × `ssh HOST true` to every host at once",
    "# nettune: one stack of bench/fleet/program.ts, through the Automation API with",
    "# NETTUNE_STATS_DIR set and --parallel 3N+1: pulumi up; pulumi up;",
    `# pulumi preview (${CHANGED.key} = ${CHANGED.value}); pulumi destroy;`,
    `# ${CHECKS_AT_CREATE} pulumi up; pulumi destroy (not timed)`,
    "# Ansible, ansible.cfg: [defaults] forks = N, [ssh_connection] pipelining = True:",
    "ANSIBLE_CONFIG=ansible.cfg ansible-playbook -i inventory.ini sysctl.yml   # apply",
    "node dist/src/bin/nettune.js sandbox down --name fleet",
    "```",
    "",
    "<details><summary>The values (both tools set exactly these)</summary>",
    "",
    "| Key | Value |",
    "| --- | --- |",
    ...Object.entries(APPLIED).map(([k, v]) => `| \`${k}\` | \`${v}\` |`),
    `| offloads of ${r0.originals.interface} | \`${ethtoolArgs(Object.fromEntries(OFFLOADS.map((f) => [f, !r0.originals.offloads[f]])) as Offloads)}\` |`,
    "",
    "</details>",
  ].join("\n");
}
