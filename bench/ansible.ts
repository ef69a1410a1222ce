/**
 * Ansible doing what a SysctlSet does: the same keys on the same hosts over the same delayed
 * SSH path, persisted in a sysctl.d file and applied; optionally also what a NicOffloads does
 * (`ethtool -K`). Its ssh and sftp are wrapped per host, so every command Ansible runs on a
 * host is counted on this side.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { SandboxHost } from "../src/sandbox/sandbox";
import { run, tail } from "./proc";

export const ANSIBLE_SYSCTL_FILE = "/etc/sysctl.d/90-ansible-bench.conf";

export interface AnsibleSetup {
  dir: string;
  inventory: string;
  playbook: string;
  callLog: string;
}

const yamlString = (s: string) => JSON.stringify(s);

/** Offload changes for the playbook: one `ethtool -K` per host on `interface`. */
export interface AnsibleOffloads {
  interface: string;
  /** Per host (inventory name): ethtool's arguments after the interface, e.g. `gro on tso off`. */
  perHost: Record<string, string>;
}

/**
 * Writes the inventory, the playbook and the per-host ssh/sftp wrappers into `dir`.
 * Connection settings are Ansible's own defaults except what the hosts need: address, port,
 * user, key, and host keys pinned in a known_hosts file.
 */
export function writeAnsibleFiles(
  dir: string,
  hosts: SandboxHost[],
  knownHosts: string,
  values: Record<string, string>,
  offloads?: AnsibleOffloads,
): AnsibleSetup {
  fs.mkdirSync(dir, { recursive: true });
  const callLog = path.join(dir, "calls.log");
  const wrapper = (host: string, tool: "ssh" | "sftp" | "scp") => {
    const file = path.join(dir, `${tool}-${host}`);
    fs.writeFileSync(
      file,
      [
        "#!/bin/sh",
        "# Counts one remote command (or file transfer) per invocation, then is the real tool.",
        `printf '%s ${host} ${tool}\\n' "$(date +%s.%N)" >> ${callLog}`,
        `exec /usr/bin/${tool} "$@"`,
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    return file;
  };
  const inventoryLines = ["[bench]"];
  for (const h of hosts) {
    const features = offloads?.perHost[h.name];
    inventoryLines.push(
      [
        h.name,
        `ansible_host=${h.address}`,
        `ansible_port=${h.port}`,
        // Per host: hosts from several sandboxes have different keys.
        `ansible_ssh_private_key_file=${h.privateKeyPath}`,
        `ansible_ssh_executable=${wrapper(h.name, "ssh")}`,
        `ansible_sftp_executable=${wrapper(h.name, "sftp")}`,
        `ansible_scp_executable=${wrapper(h.name, "scp")}`,
        ...(features === undefined ? [] : [`offload_features=${yamlString(features)}`]),
      ].join(" "),
    );
  }
  const user = hosts[0]?.user ?? "root";
  inventoryLines.push(
    "",
    "[bench:vars]",
    `ansible_user=${user}`,
    `ansible_ssh_common_args='-o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes'`,
    "",
  );
  const inventory = path.join(dir, "inventory.ini");
  fs.writeFileSync(inventory, inventoryLines.join("\n"));

  const playbook = path.join(dir, "sysctl.yml");
  fs.writeFileSync(
    playbook,
    [
      "- name: Tune sysctls (same keys and values as the nettune SysctlSet)",
      "  hosts: bench",
      "  gather_facts: false",
      "  vars:",
      "    sysctls:",
      ...Object.entries(values).map(([k, v]) => `      ${k}: ${yamlString(v)}`),
      "  tasks:",
      "    - name: Set {{ item.key }}",
      "      ansible.posix.sysctl:",
      '        name: "{{ item.key }}"',
      '        value: "{{ item.value }}"',
      `        sysctl_file: ${ANSIBLE_SYSCTL_FILE}`,
      "        reload: true",
      "        state: present",
      '      loop: "{{ sysctls | dict2items }}"',
      ...(offloads === undefined
        ? []
        : [
            // Always reported changed: ethtool -K is run without reading the features first.
            `    - name: Set offloads of ${offloads.interface}`,
            `      ansible.builtin.command: "ethtool -K ${offloads.interface} {{ offload_features }}"`,
          ]),
      "",
    ].join("\n"),
  );
  return { dir, inventory, playbook, callLog };
}

export interface AnsibleRun {
  ms: number;
  startedAt: number;
  endedAt: number;
  /** Per host (inventory name): ok/changed/failed/unreachable from PLAY RECAP. */
  recap: Record<string, Record<string, number>>;
  /** Per host: remote commands (ssh) and file transfers (sftp/scp) started. */
  calls: Record<string, { ssh: number; sftp: number; scp: number }>;
}

function parseRecap(out: string): Record<string, Record<string, number>> {
  const recap: Record<string, Record<string, number>> = {};
  const start = out.lastIndexOf("PLAY RECAP");
  if (start < 0) return recap;
  for (const line of out.slice(start).split("\n").slice(1)) {
    const m = /^(\S+)\s+:\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const counts: Record<string, number> = {};
    for (const [, k, v] of m[2]!.matchAll(/(\w+)=(\d+)/g)) counts[k!] = Number(v);
    recap[m[1]!] = counts;
  }
  return recap;
}

/** Ansible's environment with no ANSIBLE_* settings from the caller: only the config file. */
function ansibleEnv(config: string, controlDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("ANSIBLE_")) env[k] = v;
  env.ANSIBLE_CONFIG = config;
  // A fresh ControlPath folder per run: no master connection is reused from an earlier run.
  env.ANSIBLE_SSH_CONTROL_PATH_DIR = controlDir;
  env.ANSIBLE_NOCOLOR = "1";
  return env;
}

/**
 * Runs the playbook once with `config` (an ansible.cfg) and a fresh control folder, then
 * closes the master connections it left behind (ControlPersist keeps them for 60 s).
 */
export async function runPlaybook(
  setup: AnsibleSetup,
  config: string,
  runDir: string,
  timeoutMs: number,
): Promise<AnsibleRun> {
  const controlDir = path.join(runDir, "cp");
  fs.mkdirSync(controlDir, { recursive: true });
  fs.writeFileSync(setup.callLog, "");
  const startedAt = Date.now();
  const res = await run(["ansible-playbook", "-i", setup.inventory, setup.playbook], {
    timeoutMs,
    cwd: runDir,
    env: ansibleEnv(config, controlDir),
  });
  const endedAt = Date.now();
  fs.writeFileSync(path.join(runDir, "ansible-playbook.log"), `${res.stdout}\n${res.stderr}`);
  await closeMasters(controlDir);
  if (res.timedOut)
    throw new Error(`ansible-playbook: no end within ${timeoutMs / 1000} s\n${tail(res)}`);
  const recap = parseRecap(res.stdout);
  const bad = Object.entries(recap).filter(
    ([, c]) => (c.failed ?? 0) > 0 || (c.unreachable ?? 0) > 0,
  );
  if (res.code !== 0 || bad.length > 0 || Object.keys(recap).length === 0) {
    throw new Error(`ansible-playbook failed (${res.code ?? res.signal}):\n${tail(res)}`);
  }
  const calls: AnsibleRun["calls"] = {};
  for (const line of fs.readFileSync(setup.callLog, "utf8").split("\n")) {
    const [, host, tool] = line.split(" ");
    if (!host || (tool !== "ssh" && tool !== "sftp" && tool !== "scp")) continue;
    const c = (calls[host] ??= { ssh: 0, sftp: 0, scp: 0 });
    c[tool]++;
  }
  return { ms: res.ms, startedAt, endedAt, recap, calls };
}

async function closeMasters(controlDir: string): Promise<void> {
  for (const sock of fs.readdirSync(controlDir)) {
    await run(
      ["/usr/bin/ssh", "-o", `ControlPath=${path.join(controlDir, sock)}`, "-O", "exit", "bench"],
      { timeoutMs: 10_000, cleanup: true },
    );
  }
}

export async function ansibleVersion(): Promise<string> {
  const res = await run(["ansible", "--version"], { timeoutMs: 30_000 });
  const core = /ansible \[core ([^\]]+)\]/.exec(res.stdout)?.[1] ?? "unknown";
  let posix = "unknown";
  try {
    const manifest =
      "/usr/lib/python3/dist-packages/ansible_collections/ansible/posix/MANIFEST.json";
    posix = (
      JSON.parse(fs.readFileSync(manifest, "utf8")) as { collection_info: { version: string } }
    ).collection_info.version;
  } catch {
    /* not the Debian layout; the core version is enough */
  }
  return `ansible-core ${core}, ansible.posix ${posix}`;
}
