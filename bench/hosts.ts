/**
 * The benchmark's hosts: a sandbox brought up and taken down through the `nettune` CLI, and a
 * side door to each host (the direct path, no added delay, OpenSSH with the pinned host key)
 * for reading values and sshd's journal outside the measured windows.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { sysctlPath } from "../src/host/sysctl";
import type { SandboxHost } from "../src/sandbox/sandbox";
import { shellQuote } from "../src/transport/quote";
import { runOk, run } from "./proc";

export const ROOT = path.resolve(__dirname, "../..");
const CLI = path.join(ROOT, "dist/src/bin/nettune.js");

export async function sandboxUp(
  name: string,
  hosts: number,
  delayMs: number,
  timeoutMs: number,
): Promise<SandboxHost[]> {
  const res = await runOk(
    [
      process.execPath,
      CLI,
      "sandbox",
      "up",
      "--name",
      name,
      "--hosts",
      String(hosts),
      "--delay",
      String(delayMs),
      "--json",
    ],
    { timeoutMs },
  );
  return JSON.parse(res.stdout) as SandboxHost[];
}

export async function sandboxDown(name: string, timeoutMs: number): Promise<void> {
  await runOk([process.execPath, CLI, "sandbox", "down", "--name", name], {
    timeoutMs,
    cleanup: true,
  });
}

/** A known_hosts file that pins each host's key on both its delayed and its direct address. */
export function writeKnownHosts(file: string, hosts: SandboxHost[]): void {
  const line = (addr: string, port: number, key: string) =>
    `${port === 22 ? addr : `[${addr}]:${port}`} ${key}`;
  const lines = hosts.flatMap((h) => [
    line(h.address, h.port, h.hostKey),
    line(h.hostAddress, h.directPort, h.hostKey),
  ]);
  fs.writeFileSync(file, lines.join("\n") + "\n");
}

/**
 * `ssh` to a host at `via` (its direct address, or the delayed relay) with a fresh connection:
 * no multiplexing, pinned host keys, key-only login, then `command`.
 */
export function sshArgv(
  h: SandboxHost,
  knownHosts: string,
  via: { address: string; port: number },
  command: string,
): string[] {
  return [
    "/usr/bin/ssh",
    "-i",
    h.privateKeyPath,
    "-p",
    String(via.port),
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${knownHosts}`,
    "-o",
    "ControlMaster=no",
    "-o",
    "ControlPath=none",
    "-o",
    "LogLevel=ERROR",
    `${h.user}@${via.address}`,
    command,
  ];
}

/**
 * Runs a shell script on a host over the direct path; one fresh connection, no multiplexing.
 * `input`, when given, is the script's standard input.
 */
export async function direct(
  h: SandboxHost,
  knownHosts: string,
  script: string,
  timeoutMs = 30_000,
  input?: string,
): Promise<string> {
  const argv = sshArgv(h, knownHosts, { address: h.hostAddress, port: h.directPort }, script);
  const res = await runOk(argv, { timeoutMs, input });
  return res.stdout;
}

const procPath = (key: string) => shellQuote(`/proc/sys/${sysctlPath(key)}`);
const norm = (s: string) => s.trim().split(/\s+/).join(" ");

/** Live values of keys, whitespace-normalized. */
export async function liveValues(
  h: SandboxHost,
  knownHosts: string,
  keys: string[],
): Promise<Record<string, string>> {
  const script = keys
    .map((k) => `printf '%s\\t%s\\n' ${shellQuote(k)} "$(cat ${procPath(k)})"`)
    .join("\n");
  const out = await direct(h, knownHosts, script);
  const values: Record<string, string> = {};
  for (const line of out.split("\n")) {
    const i = line.indexOf("\t");
    if (i > 0) values[line.slice(0, i)] = norm(line.slice(i + 1));
  }
  return values;
}

/** Keys whose live value differs from `want`, as `key: live != want` lines. */
export function differences(live: Record<string, string>, want: Record<string, string>): string[] {
  return Object.keys(want)
    .filter((k) => live[k] !== norm(want[k]!))
    .map((k) => `${k}: ${live[k] ?? "(missing)"} != ${want[k]}`);
}

/** Times (epoch seconds) at which sshd accepted a login since `sinceSec`, from the host's journal. */
export async function acceptedLogins(
  h: SandboxHost,
  knownHosts: string,
  sinceSec: number,
): Promise<number[]> {
  // Journal lines reach the journal asynchronously; a short wait makes sure the last are in.
  const out = await direct(
    h,
    knownHosts,
    `sleep 0.5; journalctl -u ssh -o short-unix --no-pager --since @${Math.floor(sinceSec) - 1}`,
  );
  const times: number[] = [];
  for (const line of out.split("\n")) {
    const m = /^(\d+\.\d+) \S+ sshd\[\d+\]: (.*)$/.exec(line);
    if (m && m[2]!.startsWith("Accepted publickey")) times.push(Number(m[1]));
  }
  return times;
}

/** Kernel, CPUs and memory of this machine, for the report. */
export async function machine(): Promise<{
  kernel: string;
  nproc: number;
  memGiB: number;
  cpu: string;
}> {
  const kernel = (await run(["uname", "-r"], { timeoutMs: 5_000 })).stdout.trim();
  const nproc = Number((await run(["nproc"], { timeoutMs: 5_000 })).stdout.trim());
  const meminfo = fs.readFileSync("/proc/meminfo", "utf8");
  const kb = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
  const cpu =
    /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ??
    "unknown";
  return { kernel, nproc, memGiB: Math.round((kb / 1024 / 1024) * 10) / 10, cpu };
}
