/**
 * Child processes for the benchmarks: every one runs in its own process group with a time
 * limit, so a hung tool (and whatever it started) is killed, never left behind.
 */
import { spawn, type SpawnOptions } from "node:child_process";

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, in ms. */
  ms: number;
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
  /** Still runs after abortAll (taking the sandbox down). */
  cleanup?: boolean;
}

/** Process groups still running, so a signal or the overall deadline can end them all. */
const live = new Set<number>();

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

let aborted: string | undefined;

/**
 * Stops the benchmark: kills every child group still running and refuses to start new ones,
 * except cleanup, so the code waiting on them unwinds to its `finally` and takes the hosts down.
 */
export function abortAll(reason: string): void {
  aborted ??= reason;
  for (const pid of live) killGroup(pid, "SIGKILL");
}

/** The time left before `deadline` (epoch ms), capped at `capMs`; throws when it has passed. */
export function budget(deadline: number, capMs: number): number {
  if (aborted) throw new Error(`benchmark stopped: ${aborted}`);
  const left = deadline - Date.now();
  if (left <= 0) throw new Error("benchmark: the time limit of the run was reached");
  return Math.min(left, capMs);
}

export function run(argv: string[], options: RunOptions): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error("run: empty command");
  if (aborted && !options.cleanup)
    return Promise.reject(new Error(`benchmark stopped: ${aborted}`));
  const spawnOptions: SpawnOptions = {
    cwd: options.cwd,
    env: options.env ?? process.env,
    // Its own group: a timeout kills the tool and everything it started.
    detached: true,
    stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  };
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, args, spawnOptions);
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`${cmd}: ${err.message}`));
    });
    if (child.pid !== undefined) live.add(child.pid);
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid === undefined) return;
      killGroup(child.pid, "SIGTERM");
      setTimeout(() => child.pid !== undefined && killGroup(child.pid, "SIGKILL"), 5_000).unref();
    }, options.timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (child.pid !== undefined) live.delete(child.pid);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started, timedOut });
    });
    if (child.stdin) {
      // A tool that exits without reading its input must not crash the benchmark.
      child.stdin.on("error", () => {});
      child.stdin.end(options.input);
    }
  });
}

export interface Background {
  pid: number;
  /** What it printed so far. */
  output(): { stdout: string; stderr: string };
  /** Resolves once its stdout has a line matching `re`; rejects when it exits or time is up. */
  waitFor(re: RegExp, timeoutMs: number): Promise<void>;
  /** SIGTERM, then SIGKILL after 5 s; resolves with its output once it has exited. */
  stop(): Promise<{ stdout: string; stderr: string }>;
}

/**
 * Starts a long-running helper in its own process group. abortAll kills it like any other
 * child; the caller stops it in a `finally`.
 */
export function startBackground(argv: string[]): Background {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error("startBackground: empty command");
  if (aborted) throw new Error(`benchmark stopped: ${aborted}`);
  const child = spawn(cmd, args, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let exited = false;
  const waiters = new Set<() => void>();
  const poke = () => waiters.forEach((w) => w());
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString("utf8");
    poke();
  });
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
  const closed = new Promise<void>((resolve) => {
    child.on("close", () => {
      exited = true;
      if (child.pid !== undefined) live.delete(child.pid);
      poke();
      resolve();
    });
    child.on("error", (err) => {
      stderr += `${cmd}: ${err.message}\n`;
      exited = true;
      poke();
      resolve();
    });
  });
  if (child.pid !== undefined) live.add(child.pid);
  return {
    pid: child.pid ?? -1,
    output: () => ({ stdout, stderr }),
    waitFor: (re, timeoutMs) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (stdout.split("\n").some((l) => re.test(l))) done(resolve);
          else if (exited) done(() => reject(new Error(`${cmd} exited early:\n${stderr.trim()}`)));
        };
        const timer = setTimeout(
          () => done(() => reject(new Error(`${cmd}: no ${String(re)} within ${timeoutMs} ms`))),
          timeoutMs,
        );
        const done = (f: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          f();
        };
        waiters.add(check);
        check();
      }),
    stop: async () => {
      if (!exited && child.pid !== undefined) {
        killGroup(child.pid, "SIGTERM");
        const hard = setTimeout(() => killGroup(child.pid!, "SIGKILL"), 5_000);
        await closed;
        clearTimeout(hard);
      }
      await closed;
      return { stdout, stderr };
    },
  };
}

/** Like run, but throws with the tool's output unless it exited 0 in time. */
export async function runOk(argv: string[], options: RunOptions): Promise<RunResult> {
  const res = await run(argv, options);
  if (res.timedOut) {
    throw new Error(
      `${argv.join(" ")}: no answer within ${Math.round(options.timeoutMs / 1000)} s\n${tail(res)}`,
    );
  }
  if (res.code !== 0) {
    throw new Error(`${argv.join(" ")} failed (${res.code ?? res.signal}):\n${tail(res)}`);
  }
  return res;
}

/** The last lines of a result's output, enough to see why it failed. */
export function tail(res: RunResult, lines = 40): string {
  return `${res.stdout}\n${res.stderr}`.trim().split("\n").slice(-lines).join("\n");
}
