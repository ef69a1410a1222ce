/**
 * nettune's benchmarks.
 *
 *   npm run bench                                 every benchmark, one run each
 *   npm run bench -- sysctl --runs 2              "sysctl" (apply cost vs Ansible), two runs
 *   npm run bench -- effect                       "effect" (what the tuning does to traffic)
 *   npm run bench -- fleet --hosts 8              "fleet" (one stack, many hosts, vs the floor)
 *   npm run bench -- xdp                          "xdp" (a SYN flood with and without synFlood)
 *   npm run bench -- xdp --kinds nspawn           "xdp" on nspawn hosts only (or vm only)
 *   node dist/bench/index.js [sysctl] [effect] [fleet] [xdp] [--runs N] [--timeout SECONDS]
 *     [--hosts N,N…] [--kinds nspawn,vm] [--no-write]
 *
 * Each run brings up its own sandbox hosts and takes them down at the end, also on failure,
 * on Ctrl-C and when the run's time limit (default 600 s; fleet: per fleet size; xdp: per kind
 * of host, twice that for the VMs) is reached.
 * The tables go to stdout and, unless --no-write, into docs/benchmarks.md between each
 * benchmark's markers.
 */
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { abortAll } from "./proc";
import { ROOT } from "./hosts";
import { SYSCTL_END, SYSCTL_START, renderTable, updateDoc } from "./report";
import { SANDBOX, sysctlBench } from "./sysctl";
import { EFFECT_END, EFFECT_SANDBOX, EFFECT_START, effectBench } from "./effect";
import { XDP_END, XDP_KINDS, XDP_SANDBOXES, XDP_START, xdpBench, type XdpKind } from "./xdp";
import {
  FLEET_END,
  FLEET_MAX_HOSTS,
  FLEET_SANDBOXES,
  FLEET_SIZES,
  FLEET_START,
  fleetBench,
  fleetPreflight,
} from "./fleet";

const USAGE =
  "usage: node dist/bench/index.js [sysctl] [effect] [fleet] [xdp] [--runs N] [--timeout SECONDS] " +
  `[--hosts N,N… (fleet sizes, 1-${FLEET_MAX_HOSTS}; default ${FLEET_SIZES.join(",")})] ` +
  `[--kinds ${XDP_KINDS.join(",")} (xdp's hosts; default both)] [--no-write]`;
const BENCHMARKS = ["sysctl", "effect", "fleet", "xdp"];

interface Options {
  benchmarks: string[];
  runs: number;
  timeoutSec: number;
  /** The fleet benchmark's sizes, in hosts. */
  sizes: number[];
  /** The xdp benchmark's kinds of host. */
  kinds: XdpKind[];
  write: boolean;
}

function parse(argv: string[]): Options {
  const o: Options = {
    benchmarks: [],
    runs: 1,
    timeoutSec: 600,
    sizes: [...FLEET_SIZES],
    kinds: [...XDP_KINDS],
    write: true,
  };
  const int = (flag: string, v: string | undefined, max: number): number => {
    if (v === undefined || !/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) {
      throw new Error(`${flag} takes a whole number from 1 to ${max}\n${USAGE}`);
    }
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--runs") o.runs = int(a, argv[++i], 10);
    else if (a === "--timeout") o.timeoutSec = int(a, argv[++i], 3600);
    else if (a === "--hosts") {
      const list = argv[++i];
      const sizes = (list ?? "").split(",").map((v) => int(a, v, FLEET_MAX_HOSTS));
      o.sizes = [...new Set(sizes)];
    } else if (a === "--kinds") {
      const kinds = (argv[++i] ?? "").split(",");
      const wrong = kinds.find((k) => !(XDP_KINDS as readonly string[]).includes(k));
      if (wrong !== undefined) {
        throw new Error(`--kinds takes ${XDP_KINDS.join(" and/or ")}, got "${wrong}"\n${USAGE}`);
      }
      o.kinds = XDP_KINDS.filter((k) => kinds.includes(k));
    } else if (a === "--no-write") o.write = false;
    else if (a === "--help" || a === "-h") {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (BENCHMARKS.includes(a)) {
      if (!o.benchmarks.includes(a)) o.benchmarks.push(a);
    } else throw new Error(`unknown benchmark or option ${a}\n${USAGE}`);
  }
  if (o.benchmarks.length === 0) o.benchmarks.push(...BENCHMARKS);
  return o;
}

const log = (m: string) => process.stderr.write(`${m}\n`);

const SANDBOXES: Record<string, string[]> = {
  sysctl: [SANDBOX],
  effect: [EFFECT_SANDBOX],
  fleet: FLEET_SANDBOXES,
  xdp: XDP_SANDBOXES,
};
/** The sandboxes of the benchmarks this invocation runs: only those are ever taken down. */
let ownSandboxes: string[] = Object.values(SANDBOXES).flat();

/** Last resort when the orderly path does not finish: take the hosts down and leave. */
function hardStop(reason: string): never {
  log(`bench: ${reason}; stopping`);
  abortAll(reason);
  for (const name of ownSandboxes) {
    spawnSync(
      process.execPath,
      [path.join(ROOT, "dist/src/bin/nettune.js"), "sandbox", "down", "--name", name],
      { stdio: "inherit", timeout: 120_000 },
    );
  }
  process.exit(1);
}

async function main(): Promise<number> {
  const o = parse(process.argv.slice(2));
  ownSandboxes = o.benchmarks.flatMap((b) => SANDBOXES[b] ?? []);
  if (o.benchmarks.includes("fleet")) fleetPreflight(o.sizes);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) hardStop(`${signal} again`);
    stopping = true;
    log(`bench: ${signal}: stopping, taking the sandbox down`);
    // Children die, the waiting code unwinds through its finally blocks, which take the hosts down.
    abortAll(signal);
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  // Each run stops itself at its limit; this catches anything that would not.
  const limits = o.benchmarks.map((b) =>
    b === "fleet"
      ? o.sizes.length
      : b === "xdp"
        ? o.kinds.reduce((n, k) => n + (k === "vm" ? 2 : 1), 0)
        : 1,
  );
  const watchdog = setTimeout(
    () => hardStop("the overall time limit was exceeded"),
    (limits.reduce((x, y) => x + y, 0) * o.runs * o.timeoutSec + 180) * 1000,
  );
  watchdog.unref();

  const argv = process.argv.slice(2).filter((a) => a !== "--no-write");
  const doc = path.join(ROOT, "docs/benchmarks.md");
  for (const name of o.benchmarks) {
    if (name === "fleet") {
      const result = await fleetBench({
        runs: o.runs,
        sizes: o.sizes,
        argv,
        runTimeoutMs: o.timeoutSec * 1000,
        log,
      });
      process.stdout.write(`\n${result.table}\n`);
      if (o.write) {
        updateDoc(doc, FLEET_START, FLEET_END, result.section);
        log(`bench: wrote the fleet tables into ${path.relative(ROOT, doc)}`);
      }
      continue;
    }
    if (name === "xdp") {
      const result = await xdpBench({
        runs: o.runs,
        kinds: o.kinds,
        argv,
        runTimeoutMs: o.timeoutSec * 1000,
        log,
      });
      process.stdout.write(`\n${result.table}\n`);
      if (o.write) {
        updateDoc(doc, XDP_START, XDP_END, result.section);
        log(`bench: wrote the xdp table into ${path.relative(ROOT, doc)}`);
      }
      continue;
    }
    if (name === "effect") {
      const result = await effectBench({
        runs: o.runs,
        argv,
        runTimeoutMs: o.timeoutSec * 1000,
        log,
      });
      process.stdout.write(`\n${result.table}\n`);
      if (o.write) {
        updateDoc(doc, EFFECT_START, EFFECT_END, result.section);
        log(`bench: wrote the effect tables into ${path.relative(ROOT, doc)}`);
      }
      continue;
    }
    const result = await sysctlBench({
      runs: o.runs,
      argv,
      runTimeoutMs: o.timeoutSec * 1000,
      log,
    });
    process.stdout.write(
      `\n${renderTable(result.rows)}\n\n${result.notes.map((n) => `- ${n}`).join("\n")}\n`,
    );
    if (o.write) {
      updateDoc(doc, SYSCTL_START, SYSCTL_END, result.section);
      log(`bench: wrote the table into ${path.relative(ROOT, doc)}`);
    }
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    log(`bench: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
