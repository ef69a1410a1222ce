/**
 * Sandbox hosts: small local Debian servers for trying and testing nettune.
 *
 * Each host is a Debian bookworm root filesystem (made once with debootstrap, cached, shared
 * read-only through an overlay so each host has its own /etc), booted with systemd as PID 1
 * by systemd-nspawn inside its own network namespace, joined to this machine by a veth pair
 * with 4 rx/tx queues, reachable over SSH at an address from 198.18.0.0/15.
 *
 * Isolation: the host's /proc/sys is read-only except /proc/sys/net (its namespace's own);
 * its /sys is a sysfs mounted from inside its namespace, read-only except the namespace's
 * own network devices (/sys/devices/virtual/net), so nothing it does reaches this machine's
 * interfaces, global sysctls or files.
 *
 * With `vm`, hosts are QEMU VMs instead (vm.ts): same addresses, keys, JSON and commands,
 * with a kernel of their own.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as net from "node:net";
import { spawn } from "node:child_process";
import { killAndWait, run, succeeds, sleep, unmountBelow } from "./system";
import {
  bootCount,
  checkVmAlive,
  consoleTail,
  createVmNetwork,
  launchVm,
  prepareVmHostFiles,
  prepareVmImage,
  qemuArgs,
  readUserData,
  rebootVm,
  stopVm,
  validateShape,
  vmAccel,
  vmPid,
  vmInstanceId,
  vmProcessTag,
  VM_BOOT_TIMEOUT_MS,
  VM_DEFAULTS,
  type VmImage,
  type VmShape,
} from "./vm";

export const ROOTFS_SUITE = "bookworm";
/** Packages of a small real server, plus python3 so configuration tools (Ansible) can manage it. */
export const ROOTFS_PACKAGES = [
  "systemd",
  "systemd-sysv",
  "dbus",
  "openssh-server",
  "iproute2",
  "ethtool",
  "procps",
  "kmod",
  "iputils-ping",
  "iperf3",
  "sudo",
  "python3",
  "netcat-openbsd",
];
const QUEUES = 4;
const MAX_HOSTS = 16;
const SSH_USER = "root";
/** A non-root user with password-less sudo, for trying `sudo: true` connections. */
export const SUDO_USER = "tuner";
const RELAY_PORT = 2222;

/** A systemd-nspawn container on this machine's kernel, or a QEMU VM with its own. */
export type SandboxKind = "nspawn" | "vm";

export interface SandboxHost {
  /** Host name, also its machine name: host1, host2, … */
  name: string;
  /** Absent in state written before VM hosts existed, which means nspawn. */
  kind?: SandboxKind;
  /** Network namespace (ip netns) the host lives in. */
  namespace: string;
  /** Address and port to SSH to (through the delaying relay when delayMs > 0). */
  address: string;
  port: number;
  user: string;
  /** Path of the private key (OpenSSH format) that logs in as root and as the sudo user. */
  privateKeyPath: string;
  /** The host's own public key (OpenSSH one-line form), for pinning. */
  hostKey: string;
  /** The host's interface and this machine's end of the veth pair. */
  hostInterface: string;
  rootInterface: string;
  /** The host's address on its interface and this machine's address on the veth. */
  hostAddress: string;
  rootAddress: string;
  /** Direct SSH port on hostAddress (no added delay). */
  directPort: number;
  /** Added delay on the SSH path, each way, in ms (0: none). */
  delayMs: number;
  /** A user with password-less sudo (same key). */
  sudoUser: string;
  /** VM hosts only: vCPUs, NUMA nodes, NIC queue pairs, memory and QEMU's accelerator. */
  vcpus?: number;
  numaNodes?: number;
  queues?: number;
  memoryMiB?: number;
  accel?: "tcg" | "kvm";
  /** VM hosts given user data: cloud-init's NoCloud instance id and the user data's sha256. */
  cloudInit?: { instanceId: string; userDataSha256: string };
}

export function hostKind(host: SandboxHost): SandboxKind {
  return host.kind ?? "nspawn";
}

export interface SandboxState {
  name: string;
  block: number;
  createdAt: string;
  hosts: SandboxHost[];
}

export function cacheDir(): string {
  return (
    process.env.NETTUNE_CACHE ??
    path.join(
      process.env.XDG_CACHE_HOME ?? path.join(process.env.HOME ?? "/root", ".cache"),
      "nettune",
    )
  );
}

export function stateRoot(): string {
  return process.env.NETTUNE_SANDBOX_DIR ?? "/var/lib/nettune/sandbox";
}

function rootfsDir(): string {
  return path.join(cacheDir(), "rootfs", ROOTFS_SUITE);
}

function assertRoot(): void {
  if (process.getuid?.() !== 0) throw new Error("sandbox: needs root (namespaces, systemd-nspawn)");
}

function validName(name: string): string {
  if (!/^[a-z][a-z0-9]{0,7}$/.test(name)) {
    throw new Error(
      `sandbox: name must be 1-8 lower-case letters or digits, got ${JSON.stringify(name)}`,
    );
  }
  return name;
}

// --- root filesystem -----------------------------------------------------------------------

/** Makes the cached Debian root filesystem once; later calls return at once. */
export function prepareRootfs(log: (m: string) => void = () => {}): string {
  assertRoot();
  const dir = rootfsDir();
  if (fs.existsSync(path.join(dir, ".nettune-ready"))) return dir;
  const tmp = `${dir}.tmp`;
  const bootstrapped = path.join(tmp, ".nettune-debootstrapped");
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  if (!fs.existsSync(bootstrapped)) {
    fs.rmSync(tmp, { recursive: true, force: true });
    log(`sandbox: making the Debian ${ROOTFS_SUITE} root filesystem (debootstrap, once)`);
    debootstrap(tmp);
    fs.writeFileSync(bootstrapped, "");
  }
  finishRootfs(tmp);
  fs.rmSync(bootstrapped);
  fs.writeFileSync(path.join(tmp, ".nettune-ready"), new Date().toISOString() + "\n");
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  return dir;
}

function debootstrap(target: string): void {
  run([
    "debootstrap",
    "--variant=minbase",
    `--include=${ROOTFS_PACKAGES.join(",")}`,
    ROOTFS_SUITE,
    target,
    "http://deb.debian.org/debian",
  ]);
}

/** What every sandbox host shares: sshd settings, a sudo user, units masked for containers. */
function finishRootfs(tmp: string): void {
  // Host keys made by the package are never used: each sandbox gets fresh ones.
  for (const f of fs.readdirSync(path.join(tmp, "etc/ssh"))) {
    if (f.startsWith("ssh_host_")) fs.rmSync(path.join(tmp, "etc/ssh", f));
  }
  fs.writeFileSync(
    path.join(tmp, "etc/ssh/sshd_config.d/nettune-sandbox.conf"),
    [
      "# sandbox host: key-only logins, one fresh ed25519 host key",
      "HostKey /etc/ssh/ssh_host_ed25519_key",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin prohibit-password",
      "UseDNS no",
      "MaxSessions 32",
      "MaxStartups 64:30:128",
      "",
    ].join("\n"),
  );
  // Units that have nothing to do in a container; masking keeps boot short and quiet.
  for (const unit of [
    "systemd-networkd-wait-online.service",
    "getty@tty1.service",
    "console-getty.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
  ]) {
    fs.rmSync(path.join(tmp, "etc/systemd/system", unit), { force: true });
    fs.symlinkSync("/dev/null", path.join(tmp, "etc/systemd/system", unit));
  }
  if (!succeeds(["chroot", tmp, "id", SUDO_USER])) {
    run(["chroot", tmp, "useradd", "--create-home", "--shell", "/bin/bash", SUDO_USER]);
  }
  fs.writeFileSync(
    path.join(tmp, "etc/sudoers.d/nettune-sandbox"),
    `${SUDO_USER} ALL=(ALL) NOPASSWD: ALL\n`,
    {
      mode: 0o440,
    },
  );
  fs.writeFileSync(path.join(tmp, "etc/hostname"), "sandbox\n");
  fs.writeFileSync(path.join(tmp, "etc/machine-id"), "");
}

// --- state ---------------------------------------------------------------------------------

function sandboxDir(name: string): string {
  return path.join(stateRoot(), name);
}

export function readState(name: string): SandboxState | undefined {
  const file = path.join(sandboxDir(name), "state.json");
  if (!fs.existsSync(file)) return undefined;
  return JSON.parse(fs.readFileSync(file, "utf8")) as SandboxState;
}

function writeState(state: SandboxState): void {
  fs.writeFileSync(
    path.join(sandboxDir(state.name), "state.json"),
    JSON.stringify(state, null, 2) + "\n",
  );
}

/**
 * Picks a free address block and claims it (the state file, written at once) under a lock, so
 * that two `up`s at once (two test runs, two terminals) never take the same block.
 */
export function claimBlock(name: string): SandboxState {
  fs.mkdirSync(stateRoot(), { recursive: true, mode: 0o700 });
  const lock = path.join(stateRoot(), ".claim.lock");
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      fs.writeFileSync(lock, `${process.pid}\n`, { flag: "wx" });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      // Held for milliseconds: one older than 10 s was left by a process that died holding it.
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > 10_000) fs.rmSync(lock, { force: true });
      } catch {
        /* gone meanwhile */
      }
      if (Date.now() > deadline) {
        throw new Error(
          `sandbox: ${lock} stays held; remove it if no other sandbox command is running`,
        );
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  }
  try {
    const used = usedBlocks();
    let block = 0;
    while (used.has(block)) block++;
    if (block > 14) throw new Error("sandbox: too many sandboxes are up at once (15 at most)");
    fs.mkdirSync(sandboxDir(name), { recursive: true, mode: 0o700 });
    const state: SandboxState = { name, block, createdAt: new Date().toISOString(), hosts: [] };
    writeState(state);
    return state;
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

function usedBlocks(): Set<number> {
  const used = new Set<number>();
  if (!fs.existsSync(stateRoot())) return used;
  for (const n of fs.readdirSync(stateRoot())) {
    const s = readStateLoose(n);
    if (s) used.add(s.block);
  }
  return used;
}

function readStateLoose(name: string): SandboxState | undefined {
  try {
    return readState(name);
  } catch {
    return undefined;
  }
}

// Addresses: sandbox block b (0..14), host i (1..16) uses 198.18.(b*16+i).0/24.
function subnet(block: number, index: number): string {
  return `198.18.${block * 16 + index}`;
}

function hostLayout(
  state: { name: string; block: number },
  index: number,
  delayMs: number,
  keyPath: string,
  hostKey: string,
  kind: SandboxKind,
): SandboxHost {
  const sn = subnet(state.block, index);
  const name = `host${index}`;
  return {
    name,
    kind,
    namespace: `nt-${state.name}-${name}`,
    address: delayMs > 0 ? `${sn}.1` : `${sn}.2`,
    port: delayMs > 0 ? RELAY_PORT : 22,
    user: SSH_USER,
    privateKeyPath: keyPath,
    hostKey,
    hostInterface: "eth0",
    rootInterface: `nt${state.block}h${index}`,
    hostAddress: `${sn}.2`,
    rootAddress: `${sn}.1`,
    directPort: 22,
    delayMs,
    sudoUser: SUDO_USER,
  };
}

// --- up / down -----------------------------------------------------------------------------

export interface UpOptions {
  name?: string;
  hosts: number;
  delayMs?: number;
  /** QEMU VM hosts of this shape (defaults filled in) instead of nspawn containers. */
  vm?: Partial<VmShape>;
  /**
   * VM hosts only: a cloud-config file (or gzip) that cloud-init runs on each host's first
   * boot, from a NoCloud seed (/var/lib/cloud/seed/nocloud/user-data).
   */
  userData?: string;
  log?: (m: string) => void;
}

/** How many VMs boot at once: TCG guests on a small machine boot faster one or two at a time. */
function vmBootParallel(): number {
  const n = Number(process.env.NETTUNE_VM_BOOT_PARALLEL ?? 2);
  return Number.isInteger(n) && n > 0 ? n : 2;
}

function sameShape(host: SandboxHost, kind: SandboxKind, shape: VmShape | undefined): boolean {
  if (hostKind(host) !== kind) return false;
  if (!shape) return true;
  return (
    host.vcpus === shape.vcpus &&
    host.numaNodes === shape.numaNodes &&
    host.queues === shape.queues &&
    host.memoryMiB === shape.memoryMiB
  );
}

/** Brings up a sandbox of N hosts, or returns the running one when it matches. */
export async function up(options: UpOptions): Promise<SandboxState> {
  assertRoot();
  const name = validName(options.name ?? "nettune");
  const log = options.log ?? (() => {});
  const count = options.hosts;
  const delayMs = options.delayMs ?? 0;
  if (!Number.isInteger(count) || count < 1 || count > MAX_HOSTS) {
    throw new Error(`sandbox: --hosts must be a whole number from 1 to ${MAX_HOSTS}, got ${count}`);
  }
  if (!Number.isInteger(delayMs) || delayMs < 0 || delayMs > 10_000) {
    throw new Error(
      `sandbox: --delay must be a whole number of ms from 0 to 10000, got ${delayMs}`,
    );
  }
  const shape = options.vm ? validateShape({ ...VM_DEFAULTS, ...options.vm }) : undefined;
  const kind: SandboxKind = shape ? "vm" : "nspawn";
  if (options.userData !== undefined && !shape) {
    throw new Error(
      "sandbox: --user-data is for VM hosts (nspawn hosts have no cloud-init): add --vm",
    );
  }
  const userData = options.userData !== undefined ? readUserData(options.userData) : undefined;
  const userDataSha256 = userData
    ? crypto.createHash("sha256").update(userData).digest("hex")
    : undefined;
  const existing = readStateLoose(name);
  if (existing) {
    const same =
      existing.hosts.length === count &&
      existing.hosts.every(
        (h) =>
          h.delayMs === delayMs &&
          sameShape(h, kind, shape) &&
          h.cloudInit?.userDataSha256 === userDataSha256,
      );
    const alive = existing.hosts.every((h) => hostRunning(existing, h));
    if (same && alive) {
      log(`sandbox: ${name} is already up with ${count} host(s); reusing it`);
      return existing;
    }
    const first = existing.hosts[0];
    throw new Error(
      `sandbox: ${name} is already up (${existing.hosts.length} ${first ? hostKind(first) : ""} host(s), delay ${first?.delayMs ?? 0} ms` +
        `${alive ? "" : ", not all running"}); run \`nettune sandbox down${name === "nettune" ? "" : ` --name ${name}`}\` first`,
    );
  }
  const rootfs = prepareRootfs(log);
  const image = shape ? prepareVmImage(rootfs, cacheDir(), log, stateRoot()) : undefined;
  const accel = shape ? vmAccel() : undefined;
  const state = claimBlock(name);
  const dir = sandboxDir(name);
  try {
    // One client key per sandbox, fresh every time.
    const keyPath = path.join(dir, "id_ed25519");
    run([
      "ssh-keygen",
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      `nettune-sandbox-${name}`,
      "-f",
      keyPath,
    ]);
    const clientPub = fs.readFileSync(`${keyPath}.pub`, "utf8");
    for (let i = 1; i <= count; i++) {
      const hdir = path.join(dir, `host${i}`);
      fs.mkdirSync(hdir, { recursive: true });
      run([
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        `host${i}`,
        "-f",
        path.join(hdir, "ssh_host_ed25519_key"),
      ]);
      const hostKey = fs
        .readFileSync(path.join(hdir, "ssh_host_ed25519_key.pub"), "utf8")
        .trim()
        .split(/\s+/)
        .slice(0, 2)
        .join(" ");
      const host = hostLayout(state, i, delayMs, keyPath, hostKey, kind);
      if (shape) Object.assign(host, { ...shape, accel });
      state.hosts.push(host);
      writeState(state);
      if (image && shape) {
        fs.writeFileSync(path.join(hdir, "known_hosts"), `${host.hostAddress} ${hostKey}\n`);
        if (userData && userDataSha256) {
          host.cloudInit = { instanceId: vmInstanceId(name, host.name, hostKey), userDataSha256 };
        }
        prepareVmHostFiles(
          hdir,
          host,
          image,
          clientPub,
          { user: SUDO_USER, uid: userId(rootfs, SUDO_USER) },
          userData && host.cloudInit
            ? { userData, instanceId: host.cloudInit.instanceId }
            : undefined,
        );
      } else {
        prepareHostFiles(rootfs, hdir, host, clientPub);
        boot(state, host, log);
      }
    }
    writeState(state);
    if (image && shape) {
      // A pool of boots: each VM's wait starts when it is started.
      const queue = [...state.hosts];
      const worker = async () => {
        for (let h = queue.shift(); h; h = queue.shift()) {
          bootVm(state, h, image, shape, log);
          await waitForVm(state, h, log);
        }
      };
      await Promise.all(Array.from({ length: Math.min(vmBootParallel(), count) }, worker));
    } else {
      await Promise.all(state.hosts.map((h) => waitForSsh(h, 90_000)));
    }
    return state;
  } catch (err) {
    log(`sandbox: bringing ${name} up failed; cleaning up`);
    await down({ name, log });
    throw err;
  }
}

/** A user's uid in a root filesystem, from its /etc/passwd. */
function userId(root: string, user: string): number {
  const line = fs
    .readFileSync(path.join(root, "etc/passwd"), "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${user}:`));
  const uid = Number(line?.split(":")[2]);
  if (!Number.isInteger(uid)) throw new Error(`sandbox: no user ${user} in ${root}/etc/passwd`);
  return uid;
}

function prepareHostFiles(
  rootfs: string,
  hdir: string,
  host: SandboxHost,
  clientPub: string,
): void {
  const upper = path.join(hdir, "upper");
  const work = path.join(hdir, "work");
  const merged = path.join(hdir, "root");
  for (const d of [upper, work, merged, path.join(hdir, "sys"), path.join(hdir, "bpf")])
    fs.mkdirSync(d, { recursive: true });
  run([
    "mount",
    "-t",
    "overlay",
    "overlay",
    "-o",
    `lowerdir=${rootfs},upperdir=${upper},workdir=${work}`,
    merged,
  ]);
  const etcSsh = path.join(merged, "etc/ssh");
  fs.copyFileSync(
    path.join(hdir, "ssh_host_ed25519_key"),
    path.join(etcSsh, "ssh_host_ed25519_key"),
  );
  fs.chmodSync(path.join(etcSsh, "ssh_host_ed25519_key"), 0o600);
  fs.copyFileSync(
    path.join(hdir, "ssh_host_ed25519_key.pub"),
    path.join(etcSsh, "ssh_host_ed25519_key.pub"),
  );
  for (const home of [path.join(merged, "root"), path.join(merged, "home", SUDO_USER)]) {
    const sshDir = path.join(home, ".ssh");
    fs.mkdirSync(sshDir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(sshDir, "authorized_keys"), clientPub, { mode: 0o600 });
  }
  const uid = Number(run(["chroot", merged, "id", "-u", SUDO_USER]).trim());
  run(["chown", "-R", `${uid}:${uid}`, path.join(merged, "home", SUDO_USER, ".ssh")]);
  fs.writeFileSync(path.join(merged, "etc/hostname"), `${host.name}\n`);
  fs.writeFileSync(
    path.join(merged, "etc/hosts"),
    `127.0.0.1 localhost\n${host.hostAddress} ${host.name}\n`,
  );
}

/** Creates the namespace and veth with kernel defaults, mounts the host's sysfs and boots it. */
function boot(state: SandboxState, host: SandboxHost, log: (m: string) => void): void {
  const hdir = path.join(sandboxDir(state.name), host.name);
  const ns = host.namespace;
  log(`sandbox: booting ${host.name} (${host.hostAddress}, namespace ${ns})`);
  run(["ip", "netns", "add", ns]);
  run([
    "ip",
    "link",
    "add",
    host.rootInterface,
    "numtxqueues",
    String(QUEUES),
    "numrxqueues",
    String(QUEUES),
    "type",
    "veth",
    "peer",
    "name",
    host.hostInterface,
    "numtxqueues",
    String(QUEUES),
    "numrxqueues",
    String(QUEUES),
    "netns",
    ns,
  ]);
  run(["ip", "addr", "add", `${host.rootAddress}/24`, "dev", host.rootInterface]);
  run(["ip", "link", "set", host.rootInterface, "up"]);
  run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
  run([
    "ip",
    "netns",
    "exec",
    ns,
    "ip",
    "addr",
    "add",
    `${host.hostAddress}/24`,
    "dev",
    host.hostInterface,
  ]);
  run(["ip", "netns", "exec", ns, "ip", "link", "set", host.hostInterface, "up"]);
  run(["ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", host.rootAddress]);
  // A sysfs mounted from inside the namespace shows that namespace's network devices only.
  const sys = path.join(hdir, "sys");
  const bpf = path.join(hdir, "bpf");
  run(["nsenter", `--net=/run/netns/${ns}`, "mount", "-t", "sysfs", "sysfs", sys]);
  run(["mount", "-t", "bpf", "bpf", bpf]);

  const logFile = fs.openSync(path.join(hdir, "console.log"), "a");
  const child = spawn(
    "systemd-nspawn",
    [
      "--quiet",
      "--boot",
      `--directory=${path.join(hdir, "root")}`,
      `--machine=nettune-${state.name}-${host.name}`,
      `--hostname=${host.name}`,
      `--network-namespace-path=/run/netns/${ns}`,
      "--register=no",
      "--keep-unit",
      "--console=read-only",
      "--capability=CAP_NET_ADMIN,CAP_SYS_ADMIN,CAP_BPF,CAP_PERFMON,CAP_NET_RAW",
      "--system-call-filter=bpf perf_event_open",
      `--bind-ro=${sys}:/sys`,
      `--bind=${sys}/devices/virtual/net:/sys/devices/virtual/net`,
      `--bind=${bpf}:/sys/fs/bpf`,
    ],
    {
      detached: true,
      stdio: ["ignore", logFile, logFile],
      env: {
        ...process.env,
        SYSTEMD_NSPAWN_API_VFS_WRITABLE: "network",
        SYSTEMD_LOG_LEVEL: "warning",
      },
    },
  );
  child.unref();
  fs.closeSync(logFile);
  fs.writeFileSync(path.join(hdir, "nspawn.pid"), String(child.pid));
  if (host.delayMs > 0) startRelay(hdir, host);
}

/** Creates a VM host's namespace (once) and starts its QEMU; the command line is kept for reboots. */
function bootVm(
  state: SandboxState,
  host: SandboxHost,
  image: VmImage,
  shape: VmShape,
  log: (m: string) => void,
): void {
  const hdir = path.join(sandboxDir(state.name), host.name);
  log(`sandbox: booting VM ${host.name} (${host.hostAddress}, namespace ${host.namespace})`);
  if (!fs.existsSync(`/run/netns/${host.namespace}`)) createVmNetwork(host);
  const args = qemuArgs({
    sandbox: state.name,
    host,
    hdir,
    image,
    shape,
    accel: host.accel ?? "tcg",
    block: state.block,
    index: state.hosts.indexOf(host) + 1,
    cloudInit: host.cloudInit !== undefined,
  });
  fs.writeFileSync(path.join(hdir, "qemu.args.json"), JSON.stringify(args) + "\n");
  launchVm(hdir, host.namespace, args);
  fs.writeFileSync(path.join(hdir, "boot-started"), String(Date.now()));
  if (host.delayMs > 0) startRelay(hdir, host);
}

/** Waits (bounded) for a VM's sshd; fails early when QEMU exits or the guest panics. */
async function waitForVm(
  state: SandboxState,
  host: SandboxHost,
  log: (m: string) => void,
  sinceBoot = 0,
): Promise<void> {
  const hdir = path.join(sandboxDir(state.name), host.name);
  const t0 = Date.now();
  try {
    await waitForSsh(host, VM_BOOT_TIMEOUT_MS, () => checkVmAlive(hdir, sinceBoot));
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(msg.includes("--- console") ? msg : `${msg}\n${consoleTail(hdir)}`);
  }
  log(
    `sandbox: ${host.name} has sshd up ${((Date.now() - t0) / 1000).toFixed(1)} s after boot began`,
  );
}

function startRelay(hdir: string, host: SandboxHost): void {
  const relay = path.join(__dirname, "relay.js");
  const out = fs.openSync(path.join(hdir, "relay.log"), "a");
  const child = spawn(
    process.execPath,
    [
      relay,
      "--listen",
      `${host.rootAddress}:${RELAY_PORT}`,
      "--target",
      `${host.hostAddress}:22`,
      "--delay",
      String(host.delayMs),
      "--tag",
      `nettune-relay-${relayTag(host)}`,
    ],
    { detached: true, stdio: ["ignore", out, out] },
  );
  child.unref();
  fs.closeSync(out);
  fs.writeFileSync(path.join(hdir, "relay.pid"), String(child.pid));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readPid(file: string): number | undefined {
  try {
    const n = Number(fs.readFileSync(file, "utf8").trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export function hostRunning(state: SandboxState, host: SandboxHost): boolean {
  if (hostKind(host) === "vm")
    return vmPid(path.join(sandboxDir(state.name), host.name)) !== undefined;
  const pid = readPid(path.join(sandboxDir(state.name), host.name, "nspawn.pid"));
  return pid !== undefined && pidAlive(pid);
}

/**
 * Waits until sshd answers with its banner on the SSH address. `check` runs between tries
 * and ends the wait by throwing (a VM that died).
 */
export async function waitForSsh(
  host: SandboxHost,
  timeoutMs: number,
  check?: () => void,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    check?.();
    const banner = await new Promise<string>((resolve) => {
      const s = net.connect(host.port, host.address);
      let buf = "";
      const done = (v: string) => {
        s.destroy();
        resolve(v);
      };
      s.setTimeout(3000, () => done(buf));
      s.on("data", (d) => {
        buf += d.toString("latin1");
        if (buf.includes("\n")) done(buf);
      });
      s.on("error", (e) => done(`error: ${e.message}`));
      // A relay in front of a host that is still booting closes without a word.
      s.on("close", () => done(buf || "closed"));
    });
    if (banner.startsWith("SSH-")) return;
    last = banner;
    await sleep(250);
  }
  throw new Error(
    `sandbox: ${host.name} did not start sshd within ${timeoutMs / 1000}s (last: ${last || "no answer"})`,
  );
}

/** Stops a host's container gracefully (poweroff through its systemd), then by force; a VM by QMP. */
async function stopHost(state: SandboxState, host: SandboxHost): Promise<void> {
  const hdir = path.join(sandboxDir(state.name), host.name);
  const relay = readPid(path.join(hdir, "relay.pid"));
  if (relay && pidAlive(relay)) process.kill(relay, "SIGTERM");
  if (hostKind(host) === "vm") await stopVm(hdir);
  const pid = readPid(path.join(hdir, "nspawn.pid"));
  if (pid && pidAlive(pid)) {
    // systemd-nspawn turns SIGTERM into an orderly shutdown of the booted container.
    process.kill(pid, "SIGTERM");
    const deadline = Date.now() + 20_000;
    while (pidAlive(pid) && Date.now() < deadline) await sleep(100);
    if (pidAlive(pid)) {
      process.kill(pid, "SIGKILL");
      while (pidAlive(pid)) await sleep(50);
    }
  }
  await killNamespace(host.namespace);
  fs.rmSync(path.join(hdir, "nspawn.pid"), { force: true });
  fs.rmSync(path.join(hdir, "relay.pid"), { force: true });
  unmountBelow(path.join(hdir, "sys"));
  unmountBelow(path.join(hdir, "bpf"));
  run(["ip", "link", "del", host.rootInterface], { allowFailure: true });
  run(["ip", "netns", "del", host.namespace], { allowFailure: true });
}

/** Kills whatever still runs in a host's namespace (a container left behind by a crash). */
async function killNamespace(ns: string): Promise<void> {
  if (!fs.existsSync(`/run/netns/${ns}`)) return;
  const pids = run(["ip", "netns", "pids", ns], { allowFailure: true })
    .split("\n")
    .map((p) => Number(p.trim()))
    .filter((pid) => Number.isInteger(pid) && pid > 1 && pid !== process.pid);
  await killAndWait(pids);
}

/** A real reboot: stop, recreate namespace and link (kernel defaults), boot with its own /etc. */
export async function reboot(
  name: string,
  hostName: string,
  log: (m: string) => void = () => {},
): Promise<SandboxHost> {
  assertRoot();
  const state = readState(validName(name));
  if (!state) throw new Error(`sandbox: ${name} is not up`);
  const host = state.hosts.find((h) => h.name === hostName);
  if (!host)
    throw new Error(
      `sandbox: no host ${hostName} in ${name} (hosts: ${state.hosts.map((h) => h.name).join(", ")})`,
    );
  log(`sandbox: rebooting ${host.name}`);
  if (hostKind(host) === "vm") {
    const hdir = path.join(sandboxDir(state.name), host.name);
    const since = bootCount(hdir);
    if (vmPid(hdir)) {
      await rebootVm(
        hdir,
        {
          address: host.hostAddress,
          port: host.directPort,
          user: host.user,
          privateKeyPath: host.privateKeyPath,
        },
        log,
      );
    } else {
      // QEMU is gone (a guest poweroff or a crash): start it again on the same disk.
      log(`sandbox: ${host.name} was not running; starting it`);
      if (!fs.existsSync(`/run/netns/${host.namespace}`)) createVmNetwork(host);
      const args = JSON.parse(
        fs.readFileSync(path.join(hdir, "qemu.args.json"), "utf8"),
      ) as string[];
      launchVm(hdir, host.namespace, args);
      const relay = readPid(path.join(hdir, "relay.pid"));
      if (host.delayMs > 0 && !(relay && pidAlive(relay))) startRelay(hdir, host);
    }
    await waitForVm(state, host, log, since);
    return host;
  }
  await stopHost(state, host);
  boot(state, host, log);
  await waitForSsh(host, 90_000);
  return host;
}

/** Processes whose command line names this sandbox (containers and relays), also after a crash. */
function strayProcesses(name: string): number[] {
  const pids: number[] = [];
  for (const p of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    let cmd = "";
    try {
      cmd = fs.readFileSync(`/proc/${p}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (
      cmd.includes(`--machine=nettune-${name}-`) ||
      cmd.includes(`nettune-relay-${name}-`) ||
      cmd.includes(vmProcessTag(name))
    ) {
      pids.push(Number(p));
    }
  }
  return pids;
}

function relayTag(host: SandboxHost): string {
  return host.namespace.replace(/^nt-/, "");
}

export interface DownOptions {
  name?: string;
  log?: (m: string) => void;
}

/** Removes everything a sandbox made: containers, relays, mounts, links, namespaces, files. */
export async function down(options: DownOptions = {}): Promise<void> {
  assertRoot();
  const name = validName(options.name ?? "nettune");
  const log = options.log ?? (() => {});
  const state = readStateLoose(name);
  if (state) {
    for (const h of state.hosts) {
      log(`sandbox: stopping ${h.name}`);
      await stopHost(state, h);
    }
  }
  // Leftovers from a crashed run: anything named after this sandbox.
  await killAndWait(strayProcesses(name));
  const dir = sandboxDir(name);
  unmountBelow(dir);
  const links = run(["ip", "-j", "link", "show"], { allowFailure: true });
  const block = state?.block;
  for (const l of JSON.parse(links || "[]") as { ifname: string }[]) {
    if (block !== undefined && new RegExp(`^nt${block}h\\d+$`).test(l.ifname)) {
      run(["ip", "link", "del", l.ifname], { allowFailure: true });
    }
  }
  for (const ns of run(["ip", "netns", "list"], { allowFailure: true }).split("\n")) {
    const n = ns.split(" ")[0];
    if (n && n.startsWith(`nt-${name}-`)) {
      await killNamespace(n);
      run(["ip", "netns", "del", n], { allowFailure: true });
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

export interface HostStatus {
  name: string;
  kind: SandboxKind;
  running: boolean;
  sshReady: boolean;
  address: string;
  port: number;
}

export async function status(
  name = "nettune",
): Promise<{ state?: SandboxState; hosts: HostStatus[] }> {
  const state = readStateLoose(validName(name));
  if (!state) return { hosts: [] };
  const hosts: HostStatus[] = [];
  for (const h of state.hosts) {
    const running = hostRunning(state, h);
    let sshReady = false;
    if (running) {
      try {
        // A TCG guest on a busy machine can take seconds to fork sshd for a banner.
        await waitForSsh(h, hostKind(h) === "vm" ? 10_000 : 1500);
        sshReady = true;
      } catch {
        sshReady = false;
      }
    }
    hosts.push({
      name: h.name,
      kind: hostKind(h),
      running,
      sshReady,
      address: h.address,
      port: h.port,
    });
  }
  return { state, hosts };
}

/** Every sandbox with a state directory on this machine. */
export function listSandboxes(): string[] {
  if (!fs.existsSync(stateRoot())) return [];
  return fs.readdirSync(stateRoot()).filter((n) => /^[a-z][a-z0-9]{0,7}$/.test(n));
}
