/**
 * `nettune sandbox up --vm`: hosts that are QEMU VMs with a kernel of their own, checked over
 * real SSH for what nspawn hosts cannot show: per-queue MSI interrupts of a multi-queue
 * virtio NIC, NUMA nodes, module loading, IRQ affinity, a real guest reboot, a clean `down`.
 */
import * as fs from "node:fs";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { cli, SANDBOX } from "../helpers/sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";

/** A sandbox of its own, independent of the shared nspawn sandbox of the run. */
const NAME = `${SANDBOX}v`;
const STATE = `/var/lib/nettune/sandbox/${NAME}`;
/** Bringing up two TCG guests on a busy 2-core machine; `up` bounds each boot itself. */
const UP_TIMEOUT_MS = 900_000;

let knownHosts = "";

function ssh(
  h: SandboxHost,
  command: string,
  user = h.user,
): { status: number | null; out: string } {
  const res = spawnSync(
    "ssh",
    [
      "-i",
      h.privateKeyPath,
      "-p",
      String(h.directPort),
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${knownHosts}`,
      "-o",
      "ConnectTimeout=20",
      `${user}@${h.hostAddress}`,
      command,
    ],
    { encoding: "utf8", timeout: 60_000 },
  );
  return { status: res.status, out: `${res.stdout}${res.stderr}` };
}

/** Runs a command that must succeed; returns its output. */
function sh(h: SandboxHost, command: string): string {
  const r = ssh(h, command);
  expect(r.status, r.out).toBe(0);
  return r.out;
}

function processesOf(name: string): string[] {
  return fs
    .readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .map((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, "utf8");
      } catch {
        return "";
      }
    })
    .filter((c) => c.includes(`guest=nettune-${name}-`));
}

describe("nettune sandbox up --vm", () => {
  let hosts: SandboxHost[] = [];

  beforeAll(() => {
    cli(["sandbox", "down", "--name", NAME]);
    try {
      hosts = JSON.parse(
        cli(["sandbox", "up", "--vm", "--hosts", "2", "--name", NAME, "--json"], UP_TIMEOUT_MS),
      ) as SandboxHost[];
    } catch (err) {
      cli(["sandbox", "down", "--name", NAME]);
      throw err;
    }
    knownHosts = `/tmp/nettune-vm-known-hosts-${process.pid}`;
    fs.writeFileSync(
      knownHosts,
      hosts.map((h) => `${h.hostAddress} ${h.hostKey}`).join("\n") + "\n",
    );
  }, UP_TIMEOUT_MS + 60_000);

  afterAll(() => {
    cli(["sandbox", "down", "--name", NAME]);
    if (knownHosts) fs.rmSync(knownHosts, { force: true });
  }, 120_000);

  test("two VM hosts with their own kernel, reachable with plain ssh as root and as the sudo user", () => {
    expect(hosts.map((h) => h.name)).toEqual(["host1", "host2"]);
    for (const h of hosts) {
      expect(h).toMatchObject({ kind: "vm", vcpus: 4, numaNodes: 2, queues: 4, user: "root" });
      expect(h.hostAddress).toMatch(/^198\.(18|19)\./);
      const [kernel, pid1, sshd] = sh(h, "uname -r; cat /proc/1/comm; systemctl is-active ssh")
        .trim()
        .split("\n");
      expect(kernel).toMatch(/-cloud-amd64$/);
      expect(pid1).toBe("systemd");
      expect(sshd).toBe("active");
      const sudo = ssh(h, "id -un; sudo -n id -un", h.sudoUser);
      expect(sudo.out.trim().split("\n")).toEqual(["tuner", "root"]);
    }
  });

  test("/proc/interrupts shows one MSI interrupt per virtio-net queue, input and output", () => {
    for (const h of hosts) {
      const lines = sh(h, "cat /proc/interrupts").split("\n");
      for (let q = 0; q < 4; q++) {
        for (const dir of ["input", "output"]) {
          const re = new RegExp(`PCI-MSI.*virtio\\d+-${dir}\\.${q}$`);
          expect(
            lines.filter((l) => re.test(l.trim())),
            `${h.name} ${dir}.${q}`,
          ).toHaveLength(1);
        }
      }
    }
  });

  test("2 NUMA nodes of 2 vCPUs each, and the NIC reports the node it is on", () => {
    const h = hosts[0]!;
    const out = sh(
      h,
      "ls -d /sys/devices/system/node/node* | xargs -n1 basename; cat /sys/devices/system/node/node*/cpulist; cat /sys/class/net/eth0/device/../numa_node",
    )
      .trim()
      .split("\n");
    expect(out).toEqual(["node0", "node1", "0-1", "2-3", "1"]);
  });

  test("modprobe sch_fq and tcp_bbr load real modules; cubic is set with sysctl; fq becomes the root qdisc", () => {
    const h = hosts[0]!;
    const out = sh(
      h,
      [
        "modprobe sch_fq",
        "modprobe tcp_bbr",
        'lsmod | awk \'$1 == "sch_fq" || $1 == "tcp_bbr" {print $1}\' | sort',
        "sysctl -w net.ipv4.tcp_congestion_control=cubic",
        "cat /proc/sys/net/ipv4/tcp_available_congestion_control",
        "tc qdisc replace dev eth0 root fq",
        "tc qdisc show dev eth0 root",
        "tc qdisc del dev eth0 root",
      ].join(" && "),
    );
    expect(out).toMatch(/^sch_fq\ntcp_bbr\n/);
    expect(out).toContain("net.ipv4.tcp_congestion_control = cubic");
    expect(out).toMatch(/reno cubic bbr|cubic.*bbr/);
    expect(out).toMatch(/qdisc fq [0-9a-f]+: root/);
  });

  test("ethtool -l eth0 shows 4 combined channels, maximum and current", () => {
    const out = sh(hosts[0]!, "ethtool -l eth0");
    expect(out.match(/^Combined:\s+(\d+)$/gm)).toEqual(["Combined:\t4", "Combined:\t4"]);
  });

  test("pinning a queue's IRQ with smp_affinity_list takes effect and is put back", () => {
    const h = hosts[1]!;
    const irq = sh(
      h,
      "awk -F: '/virtio[0-9]+-input\\.0$/ {gsub(/ /, \"\", $1); print $1}' /proc/interrupts",
    ).trim();
    expect(irq).toMatch(/^\d+$/);
    const dir = `/proc/irq/${irq}`;
    const before = sh(h, `cat ${dir}/smp_affinity_list`).trim();
    const target = before === "3" ? "2" : "3";
    // Every received packet to queue 0 (QEMU's RSS follows the guest's indirection table),
    // so traffic raises exactly this IRQ: x86 moves an MSI at its next interrupt.
    sh(h, `ethtool -X eth0 equal 1 && echo ${target} > ${dir}/smp_affinity_list`);
    try {
      let effective = "";
      for (let i = 0; i < 5 && effective !== target; i++) {
        spawnSync("ping", ["-c", "3", "-i", "0.2", "-W", "2", h.hostAddress], { timeout: 10_000 });
        effective = sh(h, `cat ${dir}/effective_affinity_list`).trim();
      }
      expect(effective).toBe(target);
      expect(sh(h, `cat ${dir}/smp_affinity_list`).trim()).toBe(target);
    } finally {
      sh(h, `ethtool -X eth0 default && echo ${before} > ${dir}/smp_affinity_list`);
    }
    expect(sh(h, `cat ${dir}/smp_affinity_list`).trim()).toBe(before);
  });

  test("status reports both VMs running with ssh ready", () => {
    const s = JSON.parse(cli(["sandbox", "status", "--name", NAME, "--json"])) as {
      hosts: Array<{ kind: string; running: boolean; sshReady: boolean }>;
    };
    expect(s.hosts).toHaveLength(2);
    expect(s.hosts.every((x) => x.kind === "vm" && x.running && x.sshReady)).toBe(true);
  });

  test(
    "reboot is a real guest reboot: a new boot with kernel defaults plus what its boot applies",
    () => {
      const h = hosts[1]!;
      const read =
        "cat /proc/sys/kernel/random/boot_id /proc/sys/net/core/somaxconn /proc/sys/net/ipv4/tcp_fin_timeout";
      const [bootBefore, somaxconnDefault] = sh(h, read).trim().split("\n");
      sh(
        h,
        "sysctl -q -w net.core.somaxconn=7777 && echo 'net.ipv4.tcp_fin_timeout = 19' > /etc/sysctl.d/50-reboot-test.conf",
      );
      cli(["sandbox", "reboot", "host2", "--name", NAME], UP_TIMEOUT_MS);
      const [bootAfter, somaxconn, finTimeout] = sh(h, read).trim().split("\n");
      expect(bootAfter).not.toBe(bootBefore);
      expect(somaxconn).toBe(somaxconnDefault);
      expect(finTimeout).toBe("19");
      sh(h, "rm -f /etc/sysctl.d/50-reboot-test.conf");
    },
    UP_TIMEOUT_MS,
  );

  test("down leaves no qemu process, tap, namespace, veth or state, also for a VM whose pidfile is lost", () => {
    // host2's pidfile gone as after a crash: down must find its QEMU by name.
    fs.rmSync(`${STATE}/host2/qemu.pid`);
    expect(processesOf(NAME)).toHaveLength(2);
    cli(["sandbox", "down", "--name", NAME]);
    expect(processesOf(NAME)).toEqual([]);
    expect(spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout).not.toMatch(
      new RegExp(`nt-${NAME}-`),
    );
    const links = JSON.parse(
      spawnSync("ip", ["-j", "link", "show"], { encoding: "utf8" }).stdout,
    ) as Array<{
      ifname: string;
    }>;
    const mine = hosts.map((h) => h.rootInterface);
    expect(links.map((l) => l.ifname).filter((n) => mine.includes(n))).toEqual([]);
    expect(fs.existsSync(STATE)).toBe(false);
  });
});
