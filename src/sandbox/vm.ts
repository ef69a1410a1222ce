/**
 * VM sandbox hosts (`nettune sandbox up --vm`): each host a QEMU virtual machine with its own
 * kernel (Debian's cloud kernel and modules), several vCPUs in NUMA nodes and a multi-queue
 * virtio-net NIC with one MSI-X interrupt per queue, where nspawn hosts share this machine's
 * kernel and have neither IRQs nor modules.
 *
 * The guest image is made once from the cached root filesystem plus what a VM needs (udev,
 * irqbalance, bpftool, xdp-tools, the kernel's modules), cached under a hash of its inputs:
 * a raw ext4 disk, the kernel, and a small busybox initramfs that loads the virtio drivers
 * and switches to the root disk. Each host boots a copy-on-write qcow2 disk backed by that
 * image, plus a read-only seed disk (a tar archive) with its name, keys and address, which a
 * unit in the image applies on every boot before sshd starts.
 *
 * Network: the host's namespace holds a bridge joining the veth toward this machine and a
 * multi-queue tap that QEMU (started inside the namespace) attaches the NIC to, so the
 * guest's eth0 takes the address nspawn hosts give their eth0.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { processAlive, removeTree, run, sleep, which } from "./system";
import { qmp } from "./qmp";

/**
 * What a VM host is made of. The defaults show per-queue IRQs and NUMA placement; memory stays
 * small.
 */
export interface VmShape {
  vcpus: number;
  numaNodes: number;
  queues: number;
  memoryMiB: number;
}

export const VM_DEFAULTS: VmShape = { vcpus: 4, numaNodes: 2, queues: 4, memoryMiB: 512 };

/** Packages added to the root filesystem for the guest image. */
export const VM_PACKAGES = ["udev", "irqbalance", "bpftool", "xdp-tools", "cloud-init"];

/** Bumped when the image recipe changes in a way the hashed texts below do not show. */
const IMAGE_RECIPE = 1;
const KERNEL_META_PACKAGE = "linux-image-cloud-amd64";
const ROOT_DISK_SIZE = "3G";
/**
 * Modules the initramfs loads: the root disk's (ext4 is built into this kernel), and the NIC's,
 * so eth0 exists when systemd starts instead of waiting for udev's coldplug to load it.
 */
const INITRAMFS_MODULES = ["virtio_pci", "virtio_blk", "virtio_net"];
/** The namespace's side of a VM host: a bridge joining the veth and the tap. */
export const VM_BRIDGE = "br0";
export const VM_TAP = "tap0";
export const VM_UPLINK = "uplink";
const BOOT_MARKER = "nettune-initramfs: starting";
/** A bound on every wait for a guest: fail with the console's tail after it. */
export const VM_BOOT_TIMEOUT_MS = 180_000;

export function validateShape(s: VmShape): VmShape {
  const whole = (v: number, lo: number, hi: number, flag: string) => {
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new Error(`sandbox: --${flag} must be a whole number from ${lo} to ${hi}, got ${v}`);
    }
  };
  whole(s.vcpus, 1, 64, "cpus");
  whole(s.numaNodes, 1, 8, "numa");
  whole(s.queues, 1, 16, "queues");
  whole(s.memoryMiB, 256, 65536, "memory");
  if (s.vcpus % s.numaNodes !== 0) {
    throw new Error(
      `sandbox: --cpus (${s.vcpus}) must be a multiple of --numa (${s.numaNodes}): each node gets the same vCPUs`,
    );
  }
  if ((s.memoryMiB / s.numaNodes) % 2 !== 0 || s.memoryMiB / s.numaNodes < 128) {
    throw new Error(
      `sandbox: --memory (${s.memoryMiB} MiB) must give each of the ${s.numaNodes} NUMA node(s) an even number of MiB, at least 128`,
    );
  }
  return s;
}

/** TCG unless asked for KVM: a nested KVM guest can hang at boot where /dev/kvm exists. */
export function vmAccel(): "tcg" | "kvm" {
  const v = (process.env.NETTUNE_VM_ACCEL ?? "tcg").toLowerCase();
  if (v !== "tcg" && v !== "kvm") {
    throw new Error(`sandbox: NETTUNE_VM_ACCEL must be tcg or kvm, got ${JSON.stringify(v)}`);
  }
  return v;
}

// --- the guest image -----------------------------------------------------------------------

export interface VmImage {
  dir: string;
  kernel: string;
  initrd: string;
  rootDisk: string;
  kernelVersion: string;
}

function vmCache(cacheDir: string): string {
  return path.join(cacheDir, "vm");
}

/**
 * The guest's per-host setup, run on every boot: the seed disk is a tar archive of the host's
 * files at their places (name, keys, authorized_keys, /etc/nettune-seed.env with the address).
 * Few processes: each one costs tens of milliseconds in a TCG guest that is still booting.
 */
const SEED_SCRIPT = `#!/bin/sh
# nettune sandbox VM: this host's name, keys and address, from its seed disk.
set -eu
seed=
for b in /sys/block/vd*; do
  s=; read -r s 2>/dev/null < "$b/serial" || true
  if [ "$s" = nettune-seed ]; then seed="/dev/\${b##*/}"; fi
done
[ -n "$seed" ] || { echo "nettune-seed: no seed disk" >&2; exit 1; }
tar -xpf "$seed" -C / --no-overwrite-dir --numeric-owner
. /etc/nettune-seed.env
[ -e /sys/class/net/eth0 ] || modprobe virtio_net
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
ip -batch - <<EOF
link set lo up
addr replace $NT_ADDRESS dev eth0
link set eth0 up
route replace default via $NT_GATEWAY
EOF
`;

const SEED_UNIT = `[Unit]
Description=nettune sandbox: host name, keys and address from the seed disk
DefaultDependencies=no
After=local-fs.target systemd-remount-fs.service
Before=network-pre.target ssh.service cloud-init-local.service
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/nettune-seed

[Install]
WantedBy=multi-user.target
`;

function initScript(modules: string[]): string {
  return `#!/bin/busybox sh
# nettune sandbox VM initramfs: load the virtio disk drivers, mount the root disk, start systemd.
/bin/busybox --install -s /bin
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
fail() { echo "nettune-initramfs: error: $*" > /dev/console; poweroff -f; }
echo "${BOOT_MARKER}" > /dev/console
for m in ${modules.join(" ")}; do insmod "/lib/modules/$m" || fail "insmod $m"; done
root=; i=0
while [ -z "$root" ] && [ $i -lt 100 ]; do
  for b in /sys/block/vd*; do
    [ "$(cat "$b/serial" 2>/dev/null)" = nettune-root ] && root="/dev/\${b##*/}"
  done
  [ -n "$root" ] || { sleep 0.1; i=$((i+1)); }
done
[ -n "$root" ] || fail "no root disk (serial nettune-root)"
mount -t ext4 -o rw "$root" /newroot || fail "cannot mount $root"
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
`;
}

/**
 * cloud-init's configuration in the image. It reads only a NoCloud seed
 * (/var/lib/cloud/seed/nocloud, from the seed disk) and never asks a metadata service; the
 * network stays nettune-seed's (eth0's address from /etc/nettune-seed.env, no DHCP); the host
 * key, root's login and authorized_keys the seed put in place stay as they are (Debian's
 * defaults would delete and regenerate the host keys on a new instance, add a `debian` user and
 * turn root's keys into a "log in as debian" message): ed25519 is the only type to generate and
 * the seed's key exists when cloud-init looks, and `users: {}` is no user (schema-valid, where
 * an empty list is not). The host name is the seed's. No boot loader or partition to manage:
 * QEMU loads the kernel, the root disk is the file system. `locale: C.UTF-8` needs no
 * locale-gen (seconds under TCG). User data may override any of it.
 */
export const CLOUD_CFG = `# nettune sandbox VM: NoCloud seed only; network, host keys, users and name stay the seed's.
datasource_list: [NoCloud, None]
network: {config: disabled}
ssh_deletekeys: false
ssh_genkeytypes: [ed25519]
disable_root: false
users: {}
preserve_hostname: true
manage_etc_hosts: false
locale: C.UTF-8
grub_dpkg: {enabled: false}
growpart: {mode: "off"}
resize_rootfs: false
`;
const CLOUD_CFG_FILE = "etc/cloud/cloud.cfg.d/90_nettune_sandbox.cfg";
/**
 * Off unless the kernel command line says `cloud-init=enabled` (hosts given user data). With a
 * single datasource (plus None) ds-identify would enable cloud-init without looking for a seed,
 * so a host without one would run all its Python stages on every boot.
 */
const CLOUD_INIT_DISABLED_FILE = "etc/cloud/cloud-init.disabled";
const CLOUD_INIT_DISABLED =
  "nettune sandbox VM: enabled by cloud-init=enabled on the kernel command line\n";

/**
 * Units that have nothing to do in a sandbox VM; masking keeps a TCG boot short (each unit
 * started costs a guest process or a mount, about 5 s apiece while the machine is busy).
 * Kept: the root and debugfs mounts (IrqAffinity reads /sys/kernel/debug/irq), bpffs, udev,
 * journald, logind (sshd's PAM session registers with it) and dbus.
 */
const MASKED_UNITS = [
  "systemd-firstboot.service",
  "serial-getty@ttyS0.service",
  "e2scrub_reap.service",
  // Modules for devices a sandbox VM has none of (loop, device-mapper, FUSE, DRM, EFI).
  "modprobe@loop.service",
  "modprobe@dm_mod.service",
  "modprobe@fuse.service",
  "modprobe@drm.service",
  "modprobe@efi_pstore.service",
  "modprobe@configfs.service",
  "sys-kernel-config.mount",
  "systemd-pstore.service",
  // binfmt, huge pages, POSIX message queues, tracefs, utmp: nothing here uses them.
  "systemd-binfmt.service",
  "proc-sys-fs-binfmt_misc.automount",
  "proc-sys-fs-binfmt_misc.mount",
  "dev-hugepages.mount",
  "dev-mqueue.mount",
  "sys-kernel-tracing.mount",
  "systemd-update-utmp.service",
  "systemd-update-utmp-runlevel.service",
  // Housekeeping that would wake up in the middle of a test.
  "systemd-tmpfiles-clean.timer",
  "dpkg-db-backup.timer",
];

/**
 * systemd generators that find nothing in a sandbox VM (no encrypted, verity or GPT disks, no
 * SysV scripts, rc.local, hibernation or offline updates; the serial getty is masked). They run
 * at boot and at every `systemctl daemon-reload`, which the resources' unit installs and
 * removals run: masked, a reload takes about half as long on a TCG guest. fstab's and
 * cloud-init's stay.
 */
const MASKED_GENERATORS = [
  "systemd-cryptsetup-generator",
  "systemd-debug-generator",
  "systemd-getty-generator",
  "systemd-gpt-auto-generator",
  "systemd-hibernate-resume-generator",
  "systemd-integritysetup-generator",
  "systemd-rc-local-generator",
  "systemd-run-generator",
  "systemd-system-update-generator",
  "systemd-sysv-generator",
  "systemd-veritysetup-generator",
];

/**
 * Downloads a Debian package into `dir` with apt-get (no install on this machine) and returns
 * the .deb's path. Refreshes apt's lists once when apt does not know the package yet.
 */
function aptDownload(pkg: string, dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const download = () =>
    spawnSync("sh", ["-c", 'cd "$1" && apt-get download -q "$2"', "sh", dir, pkg], {
      encoding: "utf8",
    });
  let res = download();
  if (res.status !== 0) {
    run(["apt-get", "update", "-qq"]);
    res = download();
  }
  if (res.status !== 0) {
    throw new Error(`sandbox: apt-get download ${pkg} failed:\n${res.stdout}${res.stderr}`);
  }
  const deb = fs.readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
  if (!deb) throw new Error(`sandbox: apt-get download ${pkg} left no .deb in ${dir}`);
  return path.join(dir, deb);
}

/** The versioned kernel package the cloud kernel meta-package points to. */
function resolveKernelPackage(): string {
  const ask = () =>
    run(["apt-cache", "depends", KERNEL_META_PACKAGE], { allowFailure: true }).match(
      /Depends:\s*(linux-image-[0-9][^\s]*)/,
    )?.[1];
  let pkg = ask();
  if (!pkg) {
    run(["apt-get", "update", "-qq"]);
    pkg = ask();
  }
  if (!pkg) throw new Error(`sandbox: apt does not know ${KERNEL_META_PACKAGE}`);
  return pkg;
}

/** Directories in `base` that finished (hold `.nettune-ready`), newest first. */
function readyDirs(base: string, prefix: string): string[] {
  if (!fs.existsSync(base)) return [];
  return fs
    .readdirSync(base)
    .filter((d) => d.startsWith(prefix) && !d.includes(".tmp"))
    .filter((d) => fs.existsSync(path.join(base, d, ".nettune-ready")))
    .sort(
      (a, b) => fs.statSync(path.join(base, b)).mtimeMs - fs.statSync(path.join(base, a)).mtimeMs,
    );
}

/**
 * The guest kernel and its modules, extracted from Debian's package into the cache (never
 * installed here). A cached one is used as it is: remove the cache to take a newer kernel.
 */
function prepareKernel(
  cache: string,
  log: (m: string) => void,
): { pkg: string; dir: string; version: string } {
  const base = path.join(vmCache(cache), "kernel");
  const found = readyDirs(base, "linux-image-")[0];
  const pkg = found ?? resolveKernelPackage();
  const dir = path.join(base, pkg);
  const version = pkg.replace(/^linux-image-/, "");
  // The package's files (boot/, lib/modules/) are extracted below root/.
  const result = { pkg, dir: path.join(dir, "root"), version };
  if (found) return result;
  log(`sandbox: fetching the guest kernel ${pkg} (apt-get download, once)`);
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const deb = aptDownload(pkg, path.join(tmp, "deb"));
  run(["dpkg-deb", "-x", deb, path.join(tmp, "root")]);
  if (!fs.existsSync(path.join(tmp, "root/boot", `vmlinuz-${version}`))) {
    throw new Error(`sandbox: ${pkg} has no boot/vmlinuz-${version}`);
  }
  // dpkg-deb -x runs no maintainer scripts: the module index is made here.
  run(["depmod", "-b", path.join(tmp, "root"), version]);
  fs.rmSync(path.join(tmp, "deb"), { recursive: true, force: true });
  fs.writeFileSync(path.join(tmp, ".nettune-ready"), new Date().toISOString() + "\n");
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  return result;
}

/** A statically linked busybox for the initramfs, from Debian's busybox-static (not installed). */
function prepareBusybox(cache: string, log: (m: string) => void): string {
  const base = path.join(vmCache(cache), "busybox");
  const found = readyDirs(base, "busybox-static")[0];
  if (found) return path.join(base, found, "busybox");
  log("sandbox: fetching busybox-static for the VM initramfs (apt-get download, once)");
  const tmp = path.join(base, `busybox-static.tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  const deb = aptDownload("busybox-static", path.join(tmp, "deb"));
  const version = run(["dpkg-deb", "-f", deb, "Version"])
    .trim()
    .replace(/[^A-Za-z0-9.+~-]/g, "_");
  run(["dpkg-deb", "-x", deb, path.join(tmp, "root")]);
  fs.copyFileSync(path.join(tmp, "root/bin/busybox"), path.join(tmp, "busybox"));
  fs.chmodSync(path.join(tmp, "busybox"), 0o755);
  fs.rmSync(path.join(tmp, "deb"), { recursive: true, force: true });
  fs.rmSync(path.join(tmp, "root"), { recursive: true, force: true });
  fs.writeFileSync(path.join(tmp, ".nettune-ready"), new Date().toISOString() + "\n");
  const dir = path.join(base, `busybox-static_${version}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  return path.join(dir, "busybox");
}

/** Mounts what apt and maintainer scripts expect in a chroot; returns an undo. */
function chrootMounts(root: string): () => void {
  const mounted: string[] = [];
  try {
    for (const [type, src, dst] of [
      ["proc", "proc", "proc"],
      ["sysfs", "sysfs", "sys"],
      ["bind", "/dev", "dev"],
    ] as const) {
      const target = path.join(root, dst);
      fs.mkdirSync(target, { recursive: true });
      run(type === "bind" ? ["mount", "--bind", src, target] : ["mount", "-t", type, src, target]);
      mounted.push(target);
    }
  } catch (err) {
    for (const m of mounted.reverse()) run(["umount", "-l", m], { allowFailure: true });
    throw err;
  }
  return () => {
    for (const m of mounted.reverse()) {
      if (spawnSync("umount", [m]).status !== 0) run(["umount", "-l", m], { allowFailure: true });
    }
  };
}

/** Adds the VM packages to a copy of the root filesystem with the copy's own apt. */
function installPackages(root: string, log: (m: string) => void): void {
  log(`sandbox: adding ${VM_PACKAGES.join(", ")} to the VM image (apt-get in a chroot, once)`);
  const resolv = path.join(root, "etc/resolv.conf");
  const resolvBefore = fs.existsSync(resolv) ? fs.readFileSync(resolv) : undefined;
  fs.rmSync(resolv, { force: true });
  fs.copyFileSync("/etc/resolv.conf", resolv);
  // Services must not start inside the chroot.
  const policy = path.join(root, "usr/sbin/policy-rc.d");
  fs.writeFileSync(policy, "#!/bin/sh\nexit 101\n", { mode: 0o755 });
  const undo = chrootMounts(root);
  try {
    const env = ["env", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"];
    run(["chroot", root, ...env, "apt-get", "update", "-qq"]);
    run([
      "chroot",
      root,
      ...env,
      "apt-get",
      "install",
      "-y",
      "-qq",
      "--no-install-recommends",
      ...VM_PACKAGES,
    ]);
    run(["chroot", root, "apt-get", "clean"]);
  } finally {
    undo();
    fs.rmSync(policy, { force: true });
    fs.rmSync(resolv, { force: true });
    if (resolvBefore) fs.writeFileSync(resolv, resolvBefore);
  }
  fs.rmSync(path.join(root, "var/lib/apt/lists"), { recursive: true, force: true });
  fs.mkdirSync(path.join(root, "var/lib/apt/lists/partial"), { recursive: true });
}

/** The VM's own files: the seed unit, fstab, masked and disabled units. */
function finishImageRoot(root: string): void {
  fs.writeFileSync(path.join(root, "usr/local/sbin/nettune-seed"), SEED_SCRIPT, { mode: 0o755 });
  const units = path.join(root, "etc/systemd/system");
  fs.writeFileSync(path.join(units, "nettune-seed.service"), SEED_UNIT);
  fs.mkdirSync(path.join(units, "multi-user.target.wants"), { recursive: true });
  fs.rmSync(path.join(units, "multi-user.target.wants/nettune-seed.service"), { force: true });
  fs.symlinkSync(
    "/etc/systemd/system/nettune-seed.service",
    path.join(units, "multi-user.target.wants/nettune-seed.service"),
  );
  for (const unit of MASKED_UNITS) {
    fs.rmSync(path.join(units, unit), { force: true });
    fs.symlinkSync("/dev/null", path.join(units, unit));
  }
  const generators = path.join(root, "etc/systemd/system-generators");
  fs.mkdirSync(generators, { recursive: true });
  for (const g of MASKED_GENERATORS) {
    fs.rmSync(path.join(generators, g), { force: true });
    fs.symlinkSync("/dev/null", path.join(generators, g));
  }
  // Installed, not running: IRQ affinity stays what was written until a test starts it.
  fs.rmSync(path.join(units, "multi-user.target.wants/irqbalance.service"), { force: true });
  fs.writeFileSync(path.join(root, "etc/fstab"), "/dev/vda / ext4 rw,noatime 0 0\n");
  fs.writeFileSync(path.join(root, CLOUD_CFG_FILE), CLOUD_CFG);
  fs.writeFileSync(path.join(root, CLOUD_INIT_DISABLED_FILE), CLOUD_INIT_DISABLED);
}

/** Modules (paths below lib/modules/VERSION) to insmod, dependencies first. */
function moduleClosure(kernelDir: string, version: string, names: string[]): string[] {
  const out = run(["modprobe", "-d", kernelDir, "-S", version, "--show-depends", "-a", ...names]);
  const prefix = path.join(kernelDir, "lib/modules", version) + "/";
  const mods: string[] = [];
  for (const line of out.split("\n")) {
    const m = line.match(/^insmod (\S+)/);
    if (!m?.[1]) continue;
    const rel = m[1].startsWith(prefix) ? m[1].slice(prefix.length) : m[1];
    if (!mods.includes(rel)) mods.push(rel);
  }
  return mods;
}

function buildInitramfs(
  kernel: { dir: string; version: string },
  busybox: string,
  work: string,
  out: string,
): void {
  const dir = path.join(work, "initramfs");
  fs.rmSync(dir, { recursive: true, force: true });
  for (const d of ["bin", "dev", "proc", "sys", "newroot", "lib/modules"]) {
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  }
  fs.copyFileSync(busybox, path.join(dir, "bin/busybox"));
  fs.chmodSync(path.join(dir, "bin/busybox"), 0o755);
  const mods = moduleClosure(kernel.dir, kernel.version, INITRAMFS_MODULES);
  const flat: string[] = [];
  for (const rel of mods) {
    const name = path.basename(rel);
    fs.copyFileSync(
      path.join(kernel.dir, "lib/modules", kernel.version, rel),
      path.join(dir, "lib/modules", name),
    );
    flat.push(name);
  }
  fs.writeFileSync(path.join(dir, "init"), initScript(flat), { mode: 0o755 });
  run(["sh", "-c", 'cd "$1" && find . | cpio -o -H newc --quiet | gzip -1 > "$2"', "sh", dir, out]);
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * Makes the guest image once (cached under a hash of its inputs); later calls return at
 * once. Needs the cached root filesystem (`rootfs`).
 */
export function prepareVmImage(
  rootfs: string,
  cache: string,
  log: (m: string) => void = () => {},
  stateRoot?: string,
): VmImage {
  for (const tool of ["qemu-system-x86_64", "qemu-img", "mkfs.ext4", "cpio", "apt-get"]) {
    if (!which(tool)) {
      throw new Error(
        `sandbox: --vm needs ${tool} (Debian packages qemu-system-x86, qemu-utils, e2fsprogs, cpio; \`npm run setup\` installs them)`,
      );
    }
  }
  const kernel = prepareKernel(cache, log);
  const busybox = prepareBusybox(cache, log);
  const inputs = JSON.stringify({
    recipe: IMAGE_RECIPE,
    rootfs: fs.readFileSync(path.join(rootfs, ".nettune-ready"), "utf8"),
    kernel: kernel.pkg,
    busybox: path.basename(path.dirname(busybox)),
    packages: VM_PACKAGES,
    files: [
      SEED_SCRIPT,
      SEED_UNIT,
      initScript([]),
      MASKED_UNITS,
      MASKED_GENERATORS,
      INITRAMFS_MODULES,
      ROOT_DISK_SIZE,
      CLOUD_CFG,
      CLOUD_INIT_DISABLED,
    ],
  });
  const hash = crypto.createHash("sha256").update(inputs).digest("hex").slice(0, 16);
  const dir = path.join(vmCache(cache), `image-${hash}`);
  const image: VmImage = {
    dir,
    kernel: path.join(dir, "vmlinuz"),
    initrd: path.join(dir, "initrd.img"),
    rootDisk: path.join(dir, "root.raw"),
    kernelVersion: kernel.version,
  };
  if (fs.existsSync(path.join(dir, ".nettune-ready"))) return image;

  log(`sandbox: making the VM image (kernel ${kernel.version}; once)`);
  removeStaleBuilds(vmCache(cache));
  const tmp = `${dir}.tmp-${process.pid}`;
  removeTree(tmp);
  fs.mkdirSync(tmp, { recursive: true });
  const root = path.join(tmp, "root");
  try {
    run(["cp", "-a", rootfs, root]);
    fs.rmSync(path.join(root, ".nettune-ready"), { force: true });
    installPackages(root, log);
    const modules = path.join(root, "usr/lib/modules");
    fs.mkdirSync(modules, { recursive: true });
    run(["cp", "-a", path.join(kernel.dir, "lib/modules", kernel.version), modules]);
    run(["depmod", "-b", root, kernel.version]);
    finishImageRoot(root);
    fs.copyFileSync(
      path.join(kernel.dir, "boot", `vmlinuz-${kernel.version}`),
      path.join(tmp, "vmlinuz"),
    );
    buildInitramfs(kernel, busybox, tmp, path.join(tmp, "initrd.img"));
    const raw = path.join(tmp, "root.raw");
    run(["truncate", "-s", ROOT_DISK_SIZE, raw]);
    run(["mkfs.ext4", "-q", "-F", "-L", "nettune-root", "-d", root, raw]);
    removeTree(root);
    fs.writeFileSync(path.join(tmp, ".nettune-ready"), new Date().toISOString() + "\n");
    if (fs.existsSync(path.join(dir, ".nettune-ready"))) {
      // Another run made the same image meanwhile: keep theirs (VMs may be using it).
      removeTree(tmp);
    } else {
      removeTree(dir);
      fs.renameSync(tmp, dir);
    }
  } catch (err) {
    removeTree(tmp);
    throw err;
  }
  if (stateRoot) pruneImages(vmCache(cache), dir, stateRoot);
  return image;
}

/** Leftovers of builds whose process died (`*.tmp-PID`), chroot mounts included. */
function removeStaleBuilds(base: string): void {
  for (const sub of [base, path.join(base, "kernel"), path.join(base, "busybox")]) {
    if (!fs.existsSync(sub)) continue;
    for (const d of fs.readdirSync(sub)) {
      const pid = Number(d.match(/\.tmp-(\d+)$/)?.[1]);
      if (pid && pid !== process.pid && !processAlive(pid)) removeTree(path.join(sub, d));
    }
  }
}

/** Older images no VM host on this machine boots from any more (each is several hundred MB). */
function pruneImages(base: string, keep: string, stateRoot: string): void {
  const used = new Set<string>();
  if (fs.existsSync(stateRoot)) {
    for (const sb of fs.readdirSync(stateRoot)) {
      const sdir = path.join(stateRoot, sb);
      if (!fs.statSync(sdir).isDirectory()) continue;
      for (const h of fs.readdirSync(sdir)) {
        try {
          const args = fs.readFileSync(path.join(sdir, h, "qemu.args.json"), "utf8");
          for (const m of args.matchAll(/image-[0-9a-f]{16}/g)) used.add(m[0]);
        } catch {
          /* not a VM host */
        }
      }
    }
  }
  for (const d of fs.readdirSync(base)) {
    if (/^image-[0-9a-f]{16}$/.test(d) && path.join(base, d) !== keep && !used.has(d)) {
      removeTree(path.join(base, d));
    }
  }
}

// --- one VM host ---------------------------------------------------------------------------

/** What a VM host needs to know about its place in the sandbox (a subset of SandboxHost). */
export interface VmHostLayout {
  name: string;
  namespace: string;
  hostAddress: string;
  rootAddress: string;
  rootInterface: string;
}

/** Processes of a sandbox's VMs carry this in their command line (`-name guest=…`). */
export function vmProcessTag(sandbox: string, host?: string): string {
  return `guest=nettune-${sandbox}-${host ?? ""}`;
}

/** QEMU option values double their commas. */
function qopt(v: string): string {
  return v.replace(/,/g, ",,");
}

/** The namespace of a VM host: veth toward this machine and the NIC's tap, bridged. */
export function createVmNetwork(host: VmHostLayout): void {
  const ns = host.namespace;
  const inNs = (...argv: string[]) => run(["ip", "-n", ns, ...argv]);
  run(["ip", "netns", "add", ns]);
  run([
    "ip",
    "link",
    "add",
    host.rootInterface,
    "type",
    "veth",
    "peer",
    "name",
    VM_UPLINK,
    "netns",
    ns,
  ]);
  run(["ip", "addr", "add", `${host.rootAddress}/24`, "dev", host.rootInterface]);
  run(["ip", "link", "set", host.rootInterface, "up"]);
  inNs("link", "set", "lo", "up");
  inNs("link", "add", VM_BRIDGE, "type", "bridge");
  inNs("tuntap", "add", "dev", VM_TAP, "mode", "tap", "multi_queue");
  inNs("link", "set", VM_UPLINK, "master", VM_BRIDGE);
  inNs("link", "set", VM_TAP, "master", VM_BRIDGE);
  for (const dev of [VM_UPLINK, VM_TAP, VM_BRIDGE]) inNs("link", "set", dev, "up");
}

/** EC2's limit on user data, which the sandbox keeps to so a file that works here fits there. */
export const USER_DATA_MAX_BYTES = 16384;

/**
 * Reads and checks a `--user-data` file before anything boots: it must exist, hold at most
 * 16384 bytes, and be cloud-config text (first line `#cloud-config`) or gzip (which cloud-init
 * unpacks).
 */
export function readUserData(file: string): Buffer {
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch (err) {
    throw new Error(
      `sandbox: --user-data ${file}: cannot read it (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  if (data.length > USER_DATA_MAX_BYTES) {
    throw new Error(
      `sandbox: --user-data ${file} has ${data.length} bytes; EC2 takes at most ${USER_DATA_MAX_BYTES}, and so does the sandbox (gzip it to fit)`,
    );
  }
  if (data.length >= 2 && data[0] === 0x1f && data[1] === 0x8b) return data;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    throw new Error(`sandbox: --user-data ${file} is neither UTF-8 text nor gzip`);
  }
  if (!/^#cloud-config[ \t]*\r?(\n|$)/.test(text)) {
    throw new Error(
      `sandbox: --user-data ${file} must begin with a "#cloud-config" line (or be gzip); it begins with ${JSON.stringify(text.split("\n")[0]!.slice(0, 40))}`,
    );
  }
  return data;
}

/**
 * A host's cloud-init instance id, EC2-shaped (`i-` and 17 hex digits): from the sandbox, the
 * host and its fresh host key, so it differs per host and per `up` and stays the same across
 * the host's reboots (per-instance modules run once).
 */
export function vmInstanceId(sandbox: string, host: string, hostKey: string): string {
  const h = crypto.createHash("sha256").update(`${sandbox}/${host}/${hostKey}`).digest("hex");
  return `i-${h.slice(0, 17)}`;
}

/** Writes the host's seed disk and copy-on-write root disk into its state directory. */
export function prepareVmHostFiles(
  hdir: string,
  host: VmHostLayout,
  image: VmImage,
  clientPub: string,
  sudo: { user: string; uid: number },
  cloudInit?: { userData: Buffer; instanceId: string },
): void {
  const seed = path.join(hdir, "seed");
  fs.rmSync(seed, { recursive: true, force: true });
  const put = (rel: string, content: string | Buffer, mode: number, uid = 0) => {
    const file = path.join(seed, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content, { mode });
    fs.chmodSync(file, mode);
    fs.chownSync(file, uid, uid);
  };
  const key = path.join(hdir, "ssh_host_ed25519_key");
  put("etc/ssh/ssh_host_ed25519_key", fs.readFileSync(key), 0o600);
  put("etc/ssh/ssh_host_ed25519_key.pub", fs.readFileSync(`${key}.pub`), 0o644);
  put("etc/hostname", `${host.name}\n`, 0o644);
  put("etc/hosts", `127.0.0.1 localhost\n${host.hostAddress} ${host.name}\n`, 0o644);
  put(
    "etc/nettune-seed.env",
    `NT_ADDRESS=${host.hostAddress}/24\nNT_GATEWAY=${host.rootAddress}\n`,
    0o644,
  );
  put("root/.ssh/authorized_keys", clientPub, 0o600);
  put(`home/${sudo.user}/.ssh/authorized_keys`, clientPub, 0o600, sudo.uid);
  fs.chmodSync(path.join(seed, "root/.ssh"), 0o700);
  fs.chmodSync(path.join(seed, "home", sudo.user, ".ssh"), 0o700);
  fs.chownSync(path.join(seed, "home", sudo.user, ".ssh"), sudo.uid, sudo.uid);
  if (cloudInit) {
    // cloud-init's NoCloud seed directory; the unit unpacks it before cloud-init-local runs.
    put("var/lib/cloud/seed/nocloud/user-data", cloudInit.userData, 0o600);
    put(
      "var/lib/cloud/seed/nocloud/meta-data",
      `instance-id: ${cloudInit.instanceId}\nlocal-hostname: ${host.name}\n`,
      0o644,
    );
  }
  // Only these entries, not "." (which would carry the staging directory's mode onto /).
  run([
    "tar",
    "-cf",
    path.join(hdir, "seed.tar"),
    "--numeric-owner",
    "-C",
    seed,
    "etc",
    "root",
    "home",
    ...(cloudInit ? ["var"] : []),
  ]);
  fs.rmSync(seed, { recursive: true, force: true });
  run([
    "qemu-img",
    "create",
    "-q",
    "-f",
    "qcow2",
    "-b",
    image.rootDisk,
    "-F",
    "raw",
    path.join(hdir, "disk.qcow2"),
  ]);
}

function macAddress(block: number, index: number): string {
  const hex = (n: number) => n.toString(16).padStart(2, "0");
  return `52:54:00:18:${hex(block)}:${hex(index)}`;
}

/** QEMU's command line for one host. */
export function qemuArgs(opts: {
  sandbox: string;
  host: VmHostLayout;
  hdir: string;
  image: VmImage;
  shape: VmShape;
  accel: "tcg" | "kvm";
  block: number;
  index: number;
  /** The host has user data: `cloud-init=enabled` on its kernel command line. */
  cloudInit?: boolean;
}): string[] {
  const { host, hdir, image, shape } = opts;
  const machineId = crypto
    .createHash("sha256")
    .update(`${opts.sandbox}/${host.name}`)
    .digest("hex")
    .slice(0, 32);
  const perNode = shape.memoryMiB / shape.numaNodes;
  const cpusPerNode = shape.vcpus / shape.numaNodes;
  const numa: string[] = [];
  for (let n = 0; n < shape.numaNodes; n++) {
    const first = n * cpusPerNode;
    const cpus = cpusPerNode === 1 ? `${first}` : `${first}-${first + cpusPerNode - 1}`;
    numa.push(
      "-object",
      `memory-backend-ram,id=mem${n},size=${perNode}M`,
      "-numa",
      `node,nodeid=${n},cpus=${cpus},memdev=mem${n}`,
    );
  }
  // The NIC sits behind a PCI expander bridge on the last node, so its device reports a
  // NUMA node the way a NIC in a real multi-socket server does.
  const nicNode = shape.numaNodes - 1;
  const append = [
    "console=ttyS0",
    "net.ifnames=0",
    "biosdevname=0",
    `systemd.hostname=${host.name}`,
    `systemd.machine_id=${machineId}`,
    ...(opts.cloudInit ? ["cloud-init=enabled"] : []),
  ].join(" ");
  return [
    "-name",
    `guest=nettune-${opts.sandbox}-${host.name},debug-threads=on`,
    "-machine",
    "pc",
    ...(opts.accel === "kvm"
      ? ["-accel", "kvm", "-cpu", "host"]
      : // qemu64, not max: with max the guest's glibc picks AVX2 string routines that TCG runs
        // through helper calls; with SSE2 ones, commands in the guest run about a third faster.
        ["-accel", "tcg,thread=multi,tb-size=128", "-cpu", process.env.NETTUNE_VM_CPU ?? "qemu64"]),
    "-smp",
    `${shape.vcpus},sockets=${shape.numaNodes},cores=${cpusPerNode},threads=1`,
    "-m",
    `${shape.memoryMiB}M`,
    ...numa,
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-monitor",
    "none",
    "-serial",
    `file:${qopt(path.join(hdir, "console.log"))}`,
    "-qmp",
    `unix:${qopt(path.join(hdir, "qmp.sock"))},server=on,wait=off`,
    "-kernel",
    image.kernel,
    "-initrd",
    image.initrd,
    "-append",
    append,
    "-drive",
    `file=${qopt(path.join(hdir, "disk.qcow2"))},format=qcow2,if=none,id=root,cache=unsafe,discard=unmap`,
    "-device",
    "virtio-blk-pci,bus=pci.0,drive=root,serial=nettune-root",
    "-drive",
    `file=${qopt(path.join(hdir, "seed.tar"))},format=raw,if=none,id=seed,readonly=on`,
    "-device",
    "virtio-blk-pci,bus=pci.0,drive=seed,serial=nettune-seed",
    "-device",
    `pxb,id=pxb${nicNode},bus_nr=${32 + nicNode * 32},numa_node=${nicNode},bus=pci.0`,
    "-netdev",
    `tap,id=net0,ifname=${VM_TAP},script=no,downscript=no,queues=${shape.queues},vhost=off`,
    "-device",
    [
      "virtio-net-pci",
      "netdev=net0",
      `bus=pxb${nicNode}`,
      "addr=0x0",
      `mac=${macAddress(opts.block, opts.index)}`,
      `mq=${shape.queues > 1 ? "on" : "off"}`,
      // One vector per rx and tx queue, one for config changes, one for the control queue.
      `vectors=${2 * shape.queues + 2}`,
      "rss=on",
      "hash=on",
      "rx_queue_size=1024",
      "tx_queue_size=1024",
      "romfile=",
    ].join(","),
    "-device",
    "virtio-rng-pci,bus=pci.0",
  ];
}

/** Starts QEMU inside the host's namespace, detached; its pid goes to qemu.pid. */
export function launchVm(hdir: string, namespace: string, args: string[]): void {
  fs.rmSync(path.join(hdir, "qmp.sock"), { force: true });
  const out = fs.openSync(path.join(hdir, "qemu.log"), "a");
  // nsenter execs QEMU in place, so the child's pid is QEMU's.
  const child = spawn(
    "nsenter",
    [`--net=/run/netns/${namespace}`, "--", "qemu-system-x86_64", ...args],
    { detached: true, stdio: ["ignore", out, out] },
  );
  child.unref();
  fs.closeSync(out);
  fs.writeFileSync(path.join(hdir, "qemu.pid"), String(child.pid));
}

function readPid(file: string): number | undefined {
  try {
    const n = Number(fs.readFileSync(file, "utf8").trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export function vmPid(hdir: string): number | undefined {
  const pid = readPid(path.join(hdir, "qemu.pid"));
  return pid !== undefined && processAlive(pid) ? pid : undefined;
}

/** The last lines of the host's serial console (and QEMU's own messages), for errors. */
export function consoleTail(hdir: string, lines = 25): string {
  const tail = (file: string) => {
    try {
      return fs.readFileSync(file, "utf8").split("\n").slice(-lines).join("\n").trim();
    } catch {
      return "";
    }
  };
  const qemuLog = tail(path.join(hdir, "qemu.log"));
  return (
    `--- console (${path.join(hdir, "console.log")}) ---\n${tail(path.join(hdir, "console.log")) || "(empty)"}` +
    (qemuLog ? `\n--- qemu ---\n${qemuLog}` : "")
  );
}

function consoleText(hdir: string): string {
  try {
    return fs.readFileSync(path.join(hdir, "console.log"), "latin1");
  } catch {
    return "";
  }
}

/** Number of boots the console has seen so far. */
export function bootCount(hdir: string): number {
  return consoleText(hdir).split(BOOT_MARKER).length - 1;
}

/**
 * Throws when a booting guest can no longer come up: QEMU exited, or the console shows a
 * kernel panic or an initramfs error. For waits, so they end early with the reason.
 */
export function checkVmAlive(hdir: string, sinceBoot = 0): void {
  const why = !vmPid(hdir)
    ? "QEMU is not running"
    : (() => {
        const boots = consoleText(hdir)
          .split(BOOT_MARKER)
          .slice(sinceBoot + 1)
          .join(BOOT_MARKER);
        if (/Kernel panic/.test(boots)) return "the guest kernel panicked";
        if (/nettune-initramfs: error/.test(boots)) return "the initramfs failed";
        return undefined;
      })();
  if (why) throw new Error(`sandbox: VM ${path.basename(hdir)}: ${why}\n${consoleTail(hdir)}`);
}

/** Stops QEMU: QMP `quit`, then SIGKILL after a bound. */
export async function stopVm(hdir: string): Promise<void> {
  const pid = vmPid(hdir);
  if (pid) {
    try {
      await qmp(path.join(hdir, "qmp.sock"), "quit", undefined, 3000);
    } catch {
      /* the socket is gone or QEMU hangs: killed below */
    }
    const deadline = Date.now() + 10_000;
    while (processAlive(pid) && Date.now() < deadline) await sleep(100);
    if (processAlive(pid)) {
      process.kill(pid, "SIGKILL");
      const hard = Date.now() + 10_000;
      while (processAlive(pid) && Date.now() < hard) await sleep(50);
    }
  }
  fs.rmSync(path.join(hdir, "qemu.pid"), { force: true });
  fs.rmSync(path.join(hdir, "qmp.sock"), { force: true });
}

/**
 * Asks the guest to reboot the way an operator would (`systemctl reboot` over SSH, so files
 * just written reach the disk); a guest that does not answer gets a QMP system_reset.
 * Returns once the new boot has started (its initramfs spoke on the console).
 */
export async function rebootVm(
  hdir: string,
  ssh: { address: string; port: number; user: string; privateKeyPath: string },
  log: (m: string) => void,
): Promise<void> {
  const before = bootCount(hdir);
  const res = spawnSync(
    "ssh",
    [
      "-i",
      ssh.privateKeyPath,
      "-p",
      String(ssh.port),
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${path.join(hdir, "known_hosts")}`,
      "-o",
      "ConnectTimeout=10",
      `${ssh.user}@${ssh.address}`,
      "systemctl reboot",
    ],
    { encoding: "utf8", timeout: 30_000 },
  );
  const started = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (bootCount(hdir) > before) return true;
      if (!vmPid(hdir)) return false;
      await sleep(250);
    }
    return false;
  };
  if (res.status !== 0 && res.status !== 255) {
    log(
      `sandbox: ${path.basename(hdir)}: ssh reboot failed (${res.status}); resetting through QMP`,
    );
  } else if (await started(90_000)) {
    return;
  } else {
    log(`sandbox: ${path.basename(hdir)}: no reboot within 90 s; resetting through QMP`);
  }
  checkVmAlive(hdir);
  await qmp(path.join(hdir, "qmp.sock"), "system_reset");
  if (!(await started(30_000))) {
    throw new Error(`sandbox: VM ${path.basename(hdir)} did not restart\n${consoleTail(hdir)}`);
  }
}
