import * as fs from "node:fs";
import { execFileSync, spawnSync } from "node:child_process";

/** A machine-local command for the sandbox: argv, no shell, output captured. */
export function run(
  argv: readonly string[],
  options: { input?: string; allowFailure?: boolean } = {},
): string {
  const [file, ...args] = argv;
  if (!file) throw new Error("empty command");
  const res = spawnSync(file, args, {
    input: options.input,
    encoding: "utf8",
    stdio: ["pipe", "pipe", "pipe"],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (res.error) {
    if (options.allowFailure) return "";
    throw new Error(`sandbox: could not run ${argv.join(" ")}: ${res.error.message}`);
  }
  if (res.status !== 0 && !options.allowFailure) {
    const out = `${res.stdout ?? ""}${res.stderr ?? ""}`.trim();
    throw new Error(
      `sandbox: command failed with exit code ${res.status ?? res.signal}: ${argv.join(" ")}` +
        (out ? `\n${out}` : ""),
    );
  }
  return res.stdout ?? "";
}

/** True when the command exits 0. */
export function succeeds(argv: readonly string[]): boolean {
  const [file, ...args] = argv;
  if (!file) return false;
  const res = spawnSync(file, args, { stdio: "ignore" });
  return res.status === 0;
}

export function which(name: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Alive and not a zombie (a killed child not yet reaped is gone for our purposes). */
export function processAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) [ZX] /s.test(stat);
  } catch {
    return false;
  }
}

/** SIGKILLs the processes and waits (bounded) until they are gone. */
export async function killAndWait(pids: readonly number[], timeoutMs = 10_000): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  const deadline = Date.now() + timeoutMs;
  while (pids.some(processAlive) && Date.now() < deadline) await sleep(50);
}

/** Mount points at or below `dir`, deepest first. */
export function mountsBelow(dir: string): string[] {
  const mounts = fs.readFileSync("/proc/self/mounts", "utf8").split("\n");
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  return mounts
    .map((l) => l.split(" ")[1]?.replace(/\\040/g, " "))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(prefix)))
    .sort((a, b) => b.length - a.length);
}

export function unmountBelow(dir: string): void {
  for (const m of mountsBelow(dir)) {
    if (!succeeds(["umount", m])) run(["umount", "-l", m], { allowFailure: true });
  }
}

/**
 * Removes a directory tree that may have had /proc, /sys or /dev mounted inside (a chroot):
 * unmounts first and refuses to delete while anything is still mounted below it.
 */
export function removeTree(dir: string): void {
  unmountBelow(dir);
  const left = mountsBelow(dir);
  if (left.length > 0) {
    throw new Error(`sandbox: not removing ${dir}: still mounted below it: ${left.join(", ")}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
