/**
 * Benchmark "sysctl": 20 keys on 4 hosts behind 50 ms of added delay each way, applied by
 * nettune (one Pulumi stack, one SysctlSet per host) and by Ansible (ansible.posix.sysctl),
 * measured the same way on the hosts: wall time, SSH handshakes (sshd's journal) and remote
 * commands per host.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { SandboxHost } from "../src/sandbox/sandbox";
import { ANSIBLE_SYSCTL_FILE, ansibleVersion, runPlaybook, writeAnsibleFiles } from "./ansible";
import {
  ROOT,
  acceptedLogins,
  differences,
  direct,
  liveValues,
  machine,
  sandboxDown,
  sandboxUp,
  writeKnownHosts,
} from "./hosts";
import { budget, run } from "./proc";
import { providerStats } from "./providerStats";
import type { DriverRequest, DriverResult } from "./pulumiDriver";
import { drive, expectChanges } from "./stack";
import { renderSection, renderTable, type Row } from "./report";

export const SANDBOX = "bench";
export const HOSTS = 4;
export const DELAY_MS = 50;

/**
 * Keys each network namespace has and may write (each sandbox host has its own), with the
 * guide's values where it gives one. Kernel-wide keys are absent in a netns
 * (net.core.netdev_max_backlog) or read-only there (net.core.rmem_max, wmem_max, rmem_default,
 * wmem_default), so the buffer ceilings come from tcp_rmem/tcp_wmem only.
 */
export const VALUES: Record<string, number | number[]> = {
  "net.core.somaxconn": 65535,
  "net.ipv4.tcp_max_syn_backlog": 16384,
  "net.ipv4.tcp_rmem": [4096, 87380, 33554432],
  "net.ipv4.tcp_wmem": [4096, 65536, 33554432],
  "net.ipv4.tcp_tw_reuse": 1,
  "net.ipv4.tcp_fin_timeout": 30,
  "net.ipv4.ip_local_port_range": [1024, 65535],
  "net.ipv4.tcp_slow_start_after_idle": 0,
  "net.ipv4.tcp_fastopen": 3,
  "net.ipv4.tcp_keepalive_time": 600,
  "net.ipv4.tcp_keepalive_intvl": 30,
  "net.ipv4.tcp_keepalive_probes": 5,
  "net.ipv4.tcp_max_tw_buckets": 2000000,
  "net.ipv4.tcp_mtu_probing": 1,
  "net.ipv4.tcp_syn_retries": 3,
  "net.ipv4.tcp_synack_retries": 3,
  "net.ipv4.tcp_notsent_lowat": 131072,
  "net.ipv4.tcp_no_metrics_save": 1,
  "net.ipv4.tcp_rfc1337": 1,
  "net.ipv4.tcp_retries2": 8,
};
const KEYS = Object.keys(VALUES);
const AS_TEXT: Record<string, string> = Object.fromEntries(
  Object.entries(VALUES).map(([k, v]) => [k, Array.isArray(v) ? v.join(" ") : String(v)]),
);

export interface SysctlBenchOptions {
  runs: number;
  /** The benchmark's own arguments, for the report's reproduce line. */
  argv: string[];
  /** Time limit of each run (sandbox up to down), ms. */
  runTimeoutMs: number;
  log: (m: string) => void;
}

export interface SysctlBenchResult {
  rows: Row[];
  notes: string[];
  section: string;
}

/** One measured operation: what ran and the window in which its logins are counted. */
interface Measured {
  row: Row;
  startedAt: number;
  endedAt: number;
  /** nettune only: handshakes per host as its provider counted them, for the cross-check. */
  clientHandshakes?: number[];
}

const CAP_UP_MS = 120_000;
const CAP_DOWN_MS = 120_000;
const CAP_PULUMI_MS = 300_000;
const CAP_ANSIBLE_MS = 300_000;

export async function sysctlBench(options: SysctlBenchOptions): Promise<SysctlBenchResult> {
  const { log } = options;
  const env = await environment();
  const rows: Row[] = [];
  const notes: string[] = [];
  for (let i = 1; i <= options.runs; i++) {
    log(`bench sysctl: run ${i} of ${options.runs}`);
    const deadline = Date.now() + options.runTimeoutMs;
    const result = await oneRun(i, deadline, log);
    // Each run's figures are shown as soon as it ends, so a later failure does not lose them.
    log(`${renderTable(result.rows)}\n`);
    rows.push(...result.rows);
    notes.push(...result.notes.map((n) => `run ${i}: ${n}`));
  }
  return {
    rows,
    notes,
    section: renderSection({ rows, notes, env, values: AS_TEXT, argv: options.argv }),
  };
}

async function environment() {
  const m = await machine();
  const pulumi = (await run(["pulumi", "version"], { timeoutMs: 30_000 })).stdout.trim();
  return {
    date: new Date().toISOString().slice(0, 10),
    ...m,
    delayMs: DELAY_MS,
    hosts: HOSTS,
    keys: KEYS.length,
    versions: `nettune ${packageVersion()}, Pulumi ${pulumi}, Node ${process.version}, ${await ansibleVersion()}, OpenSSH ${await opensshVersion()}`,
  };
}

export function packageVersion(): string {
  return (
    JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string }
  ).version;
}

export async function opensshVersion(): Promise<string> {
  const res = await run(["/usr/bin/ssh", "-V"], { timeoutMs: 10_000 });
  return /OpenSSH_([^\s,]+)/.exec(res.stderr)?.[1] ?? "unknown";
}

async function oneRun(
  runNo: number,
  deadline: number,
  log: (m: string) => void,
): Promise<{ rows: Row[]; notes: string[] }> {
  // Whatever a crashed earlier run left must not be reused.
  await sandboxDown(SANDBOX, CAP_DOWN_MS);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-bench-"));
  let ok = false;
  try {
    log(`bench sysctl: sandbox up --name ${SANDBOX} --hosts ${HOSTS} --delay ${DELAY_MS}`);
    const hosts = await sandboxUp(SANDBOX, HOSTS, DELAY_MS, budget(deadline, CAP_UP_MS));
    const knownHosts = path.join(work, "known_hosts");
    writeKnownHosts(knownHosts, hosts);
    const runStartSec = Date.now() / 1000;
    const originals = await forHosts(hosts, (h) => liveValues(h, knownHosts, KEYS));
    for (const [i, h] of hosts.entries()) {
      if (differences(originals[i]!, AS_TEXT).length < KEYS.length) {
        throw new Error(
          `${h.name}: some keys already have the benchmark's values; they would not change:\n` +
            KEYS.filter((k) => originals[i]![k] === AS_TEXT[k]).join("\n"),
        );
      }
    }

    const measured: Measured[] = [];
    const notes: string[] = [];
    measured.push(...(await nettune(runNo, hosts, knownHosts, originals, work, deadline, log)));
    for (const pipelining of [false, true]) {
      measured.push(
        ...(await ansible(runNo, hosts, knownHosts, originals, work, pipelining, deadline, log)),
      );
    }

    // sshd's own count of logins in each operation's window, from every host's journal.
    const logins = await forHosts(hosts, (h) => acceptedLogins(h, knownHosts, runStartSec));
    for (const m of measured) {
      m.row.handshakes = logins.map(
        (times) => times.filter((t) => t >= m.startedAt / 1000 && t <= m.endedAt / 1000).length,
      );
      if (m.clientHandshakes && m.clientHandshakes.join() !== m.row.handshakes.join()) {
        notes.push(
          `nettune ${m.row.operation}: sshd logged ${m.row.handshakes.join("/")} logins, the provider counted ` +
            `${m.clientHandshakes.join("/")} handshakes`,
        );
      }
    }
    if (!notes.some((n) => n.startsWith("nettune"))) {
      notes.push(
        "nettune's handshakes as counted by sshd match its provider's own count in every operation",
      );
    }
    // How far apart the hosts were first reached: ~0 when a tool works on all hosts at once.
    for (const m of measured) {
      const firsts = logins
        .map((times) => times.find((t) => t >= m.startedAt / 1000 && t <= m.endedAt / 1000))
        .filter((t): t is number => t !== undefined);
      if (firsts.length > 1) m.row.spread = Math.max(...firsts) - Math.min(...firsts);
    }
    ok = true;
    return { rows: measured.map((m) => m.row), notes };
  } finally {
    log(`bench sysctl: sandbox down --name ${SANDBOX}`);
    await sandboxDown(SANDBOX, CAP_DOWN_MS);
    if (ok) fs.rmSync(work, { recursive: true, force: true });
    else log(`bench sysctl: files of the failed run kept in ${work}`);
  }
}

function forHosts<T>(hosts: SandboxHost[], f: (h: SandboxHost) => Promise<T>): Promise<T[]> {
  return Promise.all(hosts.map(f));
}

async function verifyValues(
  hosts: SandboxHost[],
  knownHosts: string,
  want: Record<string, string>[],
  what: string,
): Promise<void> {
  const live = await forHosts(hosts, (h) => liveValues(h, knownHosts, KEYS));
  for (const [i, h] of hosts.entries()) {
    const diff = differences(live[i]!, want[i]!);
    if (diff.length > 0)
      throw new Error(`${what}: ${h.name} does not have the expected values:\n${diff.join("\n")}`);
  }
}

async function fileExists(h: SandboxHost, knownHosts: string, file: string): Promise<boolean> {
  return (await direct(h, knownHosts, `test -f '${file}' && echo yes || echo no`)).trim() === "yes";
}

// --- nettune ---------------------------------------------------------------------------------

async function nettune(
  runNo: number,
  hosts: SandboxHost[],
  knownHosts: string,
  originals: Record<string, string>[],
  work: string,
  deadline: number,
  log: (m: string) => void,
): Promise<Measured[]> {
  const stateDir = path.join(work, "pulumi");
  fs.mkdirSync(stateDir, { recursive: true });
  const args = {
    sets: hosts.map((h) => ({
      name: `bench-${h.name}`,
      // The delayed path: every round trip costs 2 × DELAY_MS.
      host: {
        address: h.address,
        port: h.port,
        user: h.user,
        privateKeyPath: h.privateKeyPath,
        hostKey: h.hostKey,
      },
      values: VALUES,
      persist: "both",
    })),
  };
  let n = 0;
  const pulumi = (ops: DriverRequest["ops"]): Promise<DriverResult[]> =>
    drive(
      {
        program: path.join(ROOT, "dist/test/programs/sysctl.js"),
        args,
        stateDir,
        project: "nettune-bench-sysctl",
        stack: "bench",
        ops,
        resultFile: path.join(stateDir, `result-${++n}.json`),
      },
      deadline,
      CAP_PULUMI_MS,
    );
  const stats = (op: string) => path.join(work, "stats", op);

  log("bench sysctl: nettune: pulumi up, then a second pulumi up");
  const [up1, up2] = (await pulumi([
    { op: "up", statsDir: stats("up") },
    { op: "up", statsDir: stats("up-again") },
  ])) as [DriverResult, DriverResult];
  // The stack itself counts as one more resource.
  expectChanges(up1, { create: HOSTS + 1 }, "first up");
  expectChanges(up2, { same: HOSTS + 1 }, "second up");
  await verifyValues(
    hosts,
    knownHosts,
    hosts.map(() => AS_TEXT),
    "after pulumi up",
  );
  for (const h of hosts) {
    const file = up1.outputs[`bench-${h.name}_filePath`];
    if (typeof file !== "string" || !(await fileExists(h, knownHosts, file))) {
      throw new Error(`after pulumi up: ${h.name} has no persistence file (${String(file)})`);
    }
  }

  log("bench sysctl: nettune: pulumi destroy");
  const [destroy] = (await pulumi([{ op: "destroy", statsDir: stats("destroy") }])) as [
    DriverResult,
  ];
  expectChanges(destroy, { delete: HOSTS + 1 }, "destroy");
  await verifyValues(hosts, knownHosts, originals, "after pulumi destroy (originals restored)");

  const row = (r: DriverResult, operation: string, dir: string): Measured => {
    const s = providerStats(dir, hosts);
    return {
      row: {
        run: runNo,
        tool: "nettune (Pulumi)",
        operation,
        seconds: r.ms / 1000,
        handshakes: [],
        commands: s.map((x) => x.execs),
      },
      startedAt: r.startedAt,
      endedAt: r.endedAt,
      clientHandshakes: s.map((x) => x.handshakes),
    };
  };
  return [
    row(up1, "`pulumi up` (apply)", stats("up")),
    row(up2, "`pulumi up` again (no change)", stats("up-again")),
    row(destroy, "`pulumi destroy` (restore)", stats("destroy")),
  ];
}

// --- Ansible ---------------------------------------------------------------------------------

async function ansible(
  runNo: number,
  hosts: SandboxHost[],
  knownHosts: string,
  originals: Record<string, string>[],
  work: string,
  pipelining: boolean,
  deadline: number,
  log: (m: string) => void,
): Promise<Measured[]> {
  const label = pipelining ? "pipelining" : "defaults";
  const dir = path.join(work, `ansible-${label}`);
  const setup = writeAnsibleFiles(dir, hosts, knownHosts, AS_TEXT);
  const config = path.join(dir, "ansible.cfg");
  fs.writeFileSync(
    config,
    pipelining
      ? "[ssh_connection]\npipelining = True\n"
      : "# Ansible's shipped defaults (ssh_args -C -o ControlMaster=auto -o ControlPersist=60s, no pipelining)\n",
  );
  const tool = pipelining ? "Ansible, `pipelining = True`" : "Ansible (defaults)";
  const measured: Measured[] = [];
  const playbook = async (operation: string, sub: string, wantChanged: boolean): Promise<void> => {
    const runDir = path.join(dir, sub);
    fs.mkdirSync(runDir, { recursive: true });
    log(`bench sysctl: ${tool}: ansible-playbook (${sub})`);
    const r = await runPlaybook(setup, config, runDir, budget(deadline, CAP_ANSIBLE_MS));
    for (const h of hosts) {
      const changed = r.recap[h.name]?.changed ?? -1;
      if (wantChanged ? changed < 1 : changed !== 0) {
        throw new Error(`${tool} ${sub}: ${h.name} reports changed=${changed}`);
      }
    }
    measured.push({
      row: {
        run: runNo,
        tool,
        operation,
        seconds: r.ms / 1000,
        handshakes: [],
        commands: hosts.map((h) => {
          const c = r.calls[h.name];
          return c ? c.ssh + c.sftp + c.scp : 0;
        }),
        transfers: hosts.map((h) => (r.calls[h.name]?.sftp ?? 0) + (r.calls[h.name]?.scp ?? 0)),
      },
      startedAt: r.startedAt,
      endedAt: r.endedAt,
    });
  };

  await playbook("`ansible-playbook` (apply)", "apply", true);
  await verifyValues(
    hosts,
    knownHosts,
    hosts.map(() => AS_TEXT),
    `${tool}: after apply`,
  );
  for (const h of hosts) {
    if (!(await fileExists(h, knownHosts, ANSIBLE_SYSCTL_FILE))) {
      throw new Error(`${tool}: ${h.name} has no ${ANSIBLE_SYSCTL_FILE}`);
    }
  }
  await playbook("`ansible-playbook` again (no change)", "again", false);

  // Ansible has no undo: put the originals back by hand (not measured) for the next tool.
  await forHosts(hosts, (h) => {
    const i = hosts.indexOf(h);
    const sets = KEYS.map((k) => `'${k}=${originals[i]![k]}'`).join(" ");
    return direct(h, knownHosts, `rm -f ${ANSIBLE_SYSCTL_FILE} && sysctl -q -w ${sets}`);
  });
  await verifyValues(hosts, knownHosts, originals, `${tool}: after restoring the originals`);
  return measured;
}
