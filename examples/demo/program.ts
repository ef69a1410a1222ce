/**
 * The demo's Pulumi program: the guide's "99-network-optimizations.conf" as one SysctlSet.
 *
 * `npm run demo` runs it through the Automation API against a sandbox host. With a Pulumi
 * installation that has the Node.js language host, `pulumi up` in the repository root runs
 * the same program (Pulumi.yaml), reading the host from stack config:
 *   pulumi config set host 198.18.1.2 && pulumi config set privateKeyPath ~/.ssh/id_ed25519
 *   pulumi config set hostKey "ssh-ed25519 AAAA..."
 */
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import * as nettune from "nettune";

/**
 * The values of the guide's section "Kernel Parameter Configuration" that a network namespace
 * owns. The others are kernel-wide: net.core.netdev_max_backlog does not exist inside a
 * namespace, and net.core.rmem_max, wmem_max, rmem_default and wmem_default are read-only
 * there. On a whole machine, add them (see MACHINE_WIDE_VALUES); inside a container or a
 * sandbox host, nettune refuses them at preview and says why.
 */
export const GUIDE_VALUES: nettune.SysctlValues = {
  "net.core.somaxconn": 65535,
  "net.ipv4.tcp_max_syn_backlog": 16384,
  "net.ipv4.tcp_rmem": [4096, 87380, 33554432],
  "net.ipv4.tcp_wmem": [4096, 65536, 33554432],
  "net.ipv4.tcp_tw_reuse": 1,
  "net.ipv4.tcp_fin_timeout": 30,
  "net.ipv4.tcp_congestion_control": "bbr",
  "net.ipv4.ip_local_port_range": [1024, 65535],
  "net.ipv4.tcp_slow_start_after_idle": 0,
};

/** The guide's kernel-wide values, for a program that tunes a whole machine. */
export const MACHINE_WIDE_VALUES: nettune.SysctlValues = {
  "net.core.rmem_max": 33554432,
  "net.core.wmem_max": 33554432,
  "net.core.rmem_default": 16777216,
  "net.core.wmem_default": 16777216,
  "net.core.netdev_max_backlog": 16384,
};

export interface DemoHost {
  host: string;
  port: number;
  user: string;
  privateKeyPath: string;
  hostKey: string;
}

export function demoProgram(target: DemoHost): Record<string, pulumi.Output<unknown>> {
  const tuning = new nettune.SysctlSet("network-optimizations", {
    connection: {
      host: target.host,
      port: target.port,
      user: target.user,
      privateKey: fs.readFileSync(target.privateKeyPath, "utf8"),
      hostKey: target.hostKey,
    },
    values: GUIDE_VALUES,
    fileName: "99-network-optimizations.conf",
  });
  return { applied: tuning.applied, originals: tuning.originals, file: tuning.filePath };
}

/** Entry point for `pulumi up` (Pulumi.yaml): the host comes from stack config. */
export function fromConfig(): Record<string, pulumi.Output<unknown>> {
  const config = new pulumi.Config();
  return demoProgram({
    host: config.require("host"),
    port: config.getNumber("port") ?? 22,
    user: config.get("user") ?? "root",
    privateKeyPath: config.require("privateKeyPath"),
    hostKey: config.require("hostKey"),
  });
}
