/**
 * The sandbox hosts the host and engine tests run against, brought up once per run by
 * globalSetup through the `nettune` CLI (as a user would) and shared through vitest's inject.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { inject } from "vitest";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import type { HostArg } from "../programs/sysctl";

export const ROOT = path.resolve(__dirname, "../..");
/** The sandbox a test run uses; NETTUNE_TEST_SANDBOX lets two runs on one machine keep apart. */
export const SANDBOX = process.env.NETTUNE_TEST_SANDBOX ?? "test";

/** Runs the nettune CLI from the build; throws with its output on failure. */
export function cli(args: string[], timeoutMs = 300_000): string {
  const res = spawnSync(process.execPath, [path.join(ROOT, "dist/src/bin/nettune.js"), ...args], {
    encoding: "utf8",
    timeout: timeoutMs,
  });
  if (res.status !== 0) {
    throw new Error(
      `nettune ${args.join(" ")} failed (${res.status ?? res.signal}):\n${res.stdout}${res.stderr}`,
    );
  }
  return res.stdout;
}

/** {@link cli} without blocking: for a command that runs while other test work goes on. */
export function cliAsync(args: string[], timeoutMs = 300_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "dist/src/bin/nettune.js"), ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`nettune ${args.join(" ")} failed (${code ?? signal}):\n${out}`));
    });
  });
}

export function sandboxHosts(): SandboxHost[] {
  return inject("sandboxHosts");
}

/** A host reached directly (no added delay), as the test programs take it. */
export function direct(h: SandboxHost): HostArg {
  return {
    address: h.hostAddress,
    port: h.directPort,
    user: h.user,
    privateKeyPath: h.privateKeyPath,
    hostKey: h.hostKey,
  };
}

/** The connection object for the transport and handlers. */
export function connection(h: SandboxHost, overrides: Record<string, unknown> = {}) {
  return {
    host: h.hostAddress,
    port: h.directPort,
    user: h.user,
    privateKey: fs.readFileSync(h.privateKeyPath, "utf8"),
    hostKey: h.hostKey,
    ...overrides,
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    sandboxHosts: SandboxHost[];
  }
}

/** How long a VM sandbox may take to come up: TCG guests boot slowly on a busy machine. */
export const VM_UP_TIMEOUT_MS = 600_000;

/**
 * A VM sandbox of a test file's own, beside the run's nspawn sandbox: any leftover of that name
 * is taken down first, and a failed `up` takes down what it started. `extra` are more `sandbox
 * up` flags (`--cpus 2`, `--user-data FILE` for a cloud-init NoCloud seed). Take it down in
 * afterAll with `cli(["sandbox", "down", "--name", name])`.
 */
export function vmSandboxUp(name: string, hosts: number, extra: string[] = []): SandboxHost[] {
  cli(["sandbox", "down", "--name", name]);
  try {
    return JSON.parse(
      cli(
        ["sandbox", "up", "--vm", "--hosts", String(hosts), ...extra, "--name", name, "--json"],
        VM_UP_TIMEOUT_MS,
      ),
    ) as SandboxHost[];
  } catch (err) {
    cli(["sandbox", "down", "--name", name]);
    throw err;
  }
}

/** The run's shared VM sandbox: globalSetup takes it down before and after the run. */
export const SHARED_VMS = `${SANDBOX}m`;

/**
 * The run's two shared VM hosts (the default shape: 4 vCPUs, 2 NUMA nodes, 4 queue pairs):
 * the first test file that asks boots them, later files get the same running hosts (`sandbox
 * up` reuses a sandbox of the same shape). Booting a TCG guest and taking it down cost about a
 * minute, once per run instead of once per file. A file leaves the hosts as it found them
 * (its tests' destroy checks that); one that needs a clean kernel state reboots a host
 * (`cli(["sandbox", "reboot", host.name, "--name", SHARED_VMS])`).
 */
export function sharedVmHosts(): [SandboxHost, SandboxHost] {
  return JSON.parse(
    cli(
      ["sandbox", "up", "--vm", "--hosts", "2", "--name", SHARED_VMS, "--json"],
      VM_UP_TIMEOUT_MS,
    ),
  ) as [SandboxHost, SandboxHost];
}
