#!/usr/bin/env node
/**
 * The nettune command-line tool.
 *
 *   nettune sandbox prepare [--vm]                make the cached root filesystem (and VM image)
 *   nettune sandbox up --hosts N [--delay MS] [--name NAME] [--json]
 *   nettune sandbox up --vm [--cpus 4] [--numa 2] [--queues 4] [--memory MiB] [--user-data FILE] …
 *   nettune sandbox status [--name NAME] [--json]
 *   nettune sandbox reboot HOST [--name NAME]
 *   nettune sandbox down [--name NAME]
 *   nettune --version | -v                        the package's version
 *   nettune --help | -h                           this usage
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as sandbox from "../sandbox/sandbox";
import { prepareVmImage, VM_DEFAULTS } from "../sandbox/vm";

const USAGE = `usage:
  nettune sandbox prepare [--vm]
  nettune sandbox up [--hosts N] [--delay MS] [--name NAME] [--json]
  nettune sandbox up --vm [--hosts N] [--cpus 4] [--numa 2] [--queues 4] [--memory 512]
                     [--user-data FILE] [--delay MS] [--name NAME] [--json]
  nettune sandbox status [--name NAME] [--json]
  nettune sandbox reboot HOST [--name NAME]
  nettune sandbox down [--name NAME]
  nettune --version
  nettune --help`;

class UsageError extends Error {}

interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
}

function parse(argv: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "-v" || a === "-h") {
      flags.set(a === "-v" ? "version" : "help", true);
    } else if (a.startsWith("--")) {
      const [k, v] = a.slice(2).split("=", 2) as [string, string | undefined];
      if (v !== undefined) flags.set(k, v);
      else if (["json", "help", "version", "vm"].includes(k)) flags.set(k, true);
      else {
        const next = argv[i + 1];
        if (next === undefined || next.startsWith("--"))
          throw new UsageError(`--${k} needs a value`);
        flags.set(k, next);
        i++;
      }
    } else positional.push(a);
  }
  return { positional, flags };
}

function intFlag(p: Parsed, name: string, dflt: number): number {
  const v = p.flags.get(name);
  if (v === undefined) return dflt;
  if (v === true || !/^\d+$/.test(v))
    throw new UsageError(`--${name} must be a whole number, got ${String(v)}`);
  return Number(v);
}

function strFlag(p: Parsed, name: string): string | undefined {
  const v = p.flags.get(name);
  if (v === true) throw new UsageError(`--${name} needs a value`);
  return v;
}

const log = (m: string) => process.stderr.write(`${m}\n`);

/** The version in nettune's package.json, the nearest above this file (checkout or installed). */
function packageVersion(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, "package.json");
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "nettune" && pkg.version) return pkg.version;
    }
    if (path.dirname(dir) === dir) throw new Error("cannot find nettune's package.json");
  }
}

async function main(argv: string[]): Promise<number> {
  const p = parse(argv);
  if (p.flags.has("version")) {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  const [group, verb, arg] = p.positional;
  if (p.flags.has("help") || group !== "sandbox" || !verb) {
    process.stdout.write(`${USAGE}\n`);
    return p.flags.has("help") ? 0 : 2;
  }
  const name = strFlag(p, "name");
  const json = p.flags.get("json") === true;
  switch (verb) {
    case "prepare": {
      const rootfs = sandbox.prepareRootfs(log);
      if (p.flags.get("vm") === true) {
        prepareVmImage(rootfs, sandbox.cacheDir(), log, sandbox.stateRoot());
      }
      return 0;
    }
    case "up": {
      const vm = p.flags.get("vm") === true;
      if (!vm) {
        for (const f of ["cpus", "numa", "queues", "memory"]) {
          if (p.flags.has(f)) throw new UsageError(`--${f} is for VM hosts: add --vm`);
        }
        if (p.flags.has("user-data")) {
          throw new UsageError(
            "--user-data is for VM hosts (cloud-init runs in VMs; nspawn hosts have none): add --vm",
          );
        }
      }
      const state = await sandbox.up({
        name,
        hosts: intFlag(p, "hosts", 1),
        delayMs: intFlag(p, "delay", 0),
        vm: vm
          ? {
              vcpus: intFlag(p, "cpus", VM_DEFAULTS.vcpus),
              numaNodes: intFlag(p, "numa", VM_DEFAULTS.numaNodes),
              queues: intFlag(p, "queues", VM_DEFAULTS.queues),
              memoryMiB: intFlag(p, "memory", VM_DEFAULTS.memoryMiB),
            }
          : undefined,
        userData: strFlag(p, "user-data"),
        log,
      });
      if (json) process.stdout.write(JSON.stringify(state.hosts, null, 2) + "\n");
      else {
        for (const h of state.hosts) {
          process.stdout.write(
            `${h.name}  ssh -i ${h.privateKeyPath} -p ${h.port} ${h.user}@${h.address}` +
              `${h.delayMs ? `   (+${h.delayMs} ms each way; direct ${h.hostAddress}:${h.directPort})` : ""}` +
              `${h.kind === "vm" ? `   (VM: ${h.vcpus} vCPUs in ${h.numaNodes} NUMA node(s), ${h.queues} NIC queues, ${h.memoryMiB} MiB, ${h.accel})` : ""}\n`,
          );
        }
      }
      return 0;
    }
    case "status": {
      const s = await sandbox.status(name);
      if (json) process.stdout.write(JSON.stringify(s, null, 2) + "\n");
      else if (!s.state) process.stdout.write("no sandbox is up\n");
      else {
        for (const h of s.hosts) {
          process.stdout.write(
            `${h.name}  ${h.kind}  ${h.running ? "running" : "stopped"}  ssh ${h.sshReady ? "ready" : "not answering"}  ${h.address}:${h.port}\n`,
          );
        }
      }
      return 0;
    }
    case "reboot": {
      if (!arg) throw new UsageError("reboot needs a host name, e.g. nettune sandbox reboot host1");
      const h = await sandbox.reboot(name ?? "nettune", arg, log);
      if (json) process.stdout.write(JSON.stringify(h, null, 2) + "\n");
      return 0;
    }
    case "down":
      await sandbox.down({ name, log });
      return 0;
    default:
      throw new UsageError(`unknown sandbox command ${verb}`);
  }
}

let settled = false;
process.on("exit", () => {
  // A command whose work never finished must not look like a success.
  if (!settled) {
    process.stderr.write("nettune: internal error: the command ended before its work finished\n");
    process.exitCode = 1;
  }
});
main(process.argv.slice(2)).then(
  // exitCode, not exit(): output written to a pipe must be flushed first.
  (code) => {
    settled = true;
    process.exitCode = code;
  },
  (err: unknown) => {
    settled = true;
    if (err instanceof UsageError) process.stderr.write(`nettune: ${err.message}\n${USAGE}\n`);
    else process.stderr.write(`nettune: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
