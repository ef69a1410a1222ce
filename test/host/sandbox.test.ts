/**
 * `nettune sandbox` as a user runs it: hosts reachable with the printed details, added delay
 * on the SSH path, real reboots with kernel defaults, and a clean `down`.
 */
import * as fs from "node:fs";
import { spawnSync } from "node:child_process";
import { afterAll, describe, expect, test } from "vitest";
import { cli, SANDBOX } from "../helpers/sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";

/** A sandbox of its own, so this file can bring it up and down freely. */
const NAME = `${SANDBOX}c`;

function ssh(
  key: string,
  port: number,
  target: string,
  command: string,
): { ms: number; status: number | null; out: string } {
  const t0 = performance.now();
  const res = spawnSync(
    "ssh",
    [
      "-i",
      key,
      "-p",
      String(port),
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${knownHosts}`,
      "-o",
      "ConnectTimeout=10",
      target,
      command,
    ],
    { encoding: "utf8", timeout: 30_000 },
  );
  return { ms: performance.now() - t0, status: res.status, out: `${res.stdout}${res.stderr}` };
}

let knownHosts = "";

describe("nettune sandbox", () => {
  let hosts: SandboxHost[] = [];
  afterAll(() => {
    cli(["sandbox", "down", "--name", NAME]);
    if (knownHosts) fs.rmSync(knownHosts, { force: true });
  });

  test("up --hosts 2 --delay 50 --json prints hosts reachable with plain ssh, host keys pinned", () => {
    hosts = JSON.parse(
      cli(["sandbox", "up", "--name", NAME, "--hosts", "2", "--delay", "50", "--json"]),
    ) as SandboxHost[];
    expect(hosts.map((h) => h.name)).toEqual(["host1", "host2"]);
    knownHosts = `/tmp/nettune-known-hosts-${process.pid}`;
    // Pin every printed host key for both the relayed and the direct address.
    fs.writeFileSync(
      knownHosts,
      hosts
        .flatMap((h) => [`[${h.address}]:${h.port} ${h.hostKey}`, `${h.hostAddress} ${h.hostKey}`])
        .join("\n") + "\n",
    );
    for (const h of hosts) {
      expect(h.address).toMatch(/^198\.(18|19)\./);
      expect(h.hostAddress).toMatch(/^198\.(18|19)\./);
      const r = ssh(h.privateKeyPath, h.port, `${h.user}@${h.address}`, "true");
      expect(r.status, r.out).toBe(0);
      // systemd is PID 1 on the host and sshd is its unit.
      const pid1 = ssh(
        h.privateKeyPath,
        h.port,
        `${h.user}@${h.address}`,
        "cat /proc/1/comm; systemctl is-active ssh",
      );
      expect(pid1.out.split("\n").slice(0, 2)).toEqual(["systemd", "active"]);
    }
  });

  test("the delayed path adds at least 100 ms to an SSH command round trip", () => {
    const h = hosts[0]!;
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const direct: number[] = [];
    const delayed: number[] = [];
    for (let i = 0; i < 3; i++) {
      direct.push(ssh(h.privateKeyPath, h.directPort, `${h.user}@${h.hostAddress}`, "true").ms);
      delayed.push(ssh(h.privateKeyPath, h.port, `${h.user}@${h.address}`, "true").ms);
    }
    // A whole ssh session is several round trips; one round trip alone adds 2 x 50 ms.
    expect(median(delayed) - median(direct)).toBeGreaterThanOrEqual(100);
  });

  test("the sudo user runs commands as root with sudo -n", () => {
    const h = hosts[0]!;
    const r = ssh(
      h.privateKeyPath,
      h.directPort,
      `${h.sudoUser}@${h.hostAddress}`,
      "id -un; sudo -n id -un",
    );
    expect(r.out.trim().split("\n")).toEqual(["tuner", "root"]);
  });

  test("status reports each host running with ssh ready", () => {
    const s = JSON.parse(cli(["sandbox", "status", "--name", NAME, "--json"])) as {
      hosts: Array<{ running: boolean; sshReady: boolean }>;
    };
    expect(s.hosts).toHaveLength(2);
    expect(s.hosts.every((x) => x.running && x.sshReady)).toBe(true);
  });

  test("up again with the same shape reuses the running sandbox; another shape is refused", () => {
    const again = JSON.parse(
      cli(["sandbox", "up", "--name", NAME, "--hosts", "2", "--delay", "50", "--json"]),
    ) as SandboxHost[];
    expect(again.map((h) => h.hostKey)).toEqual(hosts.map((h) => h.hostKey));
    expect(() => cli(["sandbox", "up", "--name", NAME, "--hosts", "3"])).toThrow(/already up/);
  });

  test("reboot brings a host back with kernel defaults plus exactly what its own boot applies", () => {
    const h = hosts[1]!;
    const run = (c: string) => ssh(h.privateKeyPath, h.directPort, `${h.user}@${h.hostAddress}`, c);
    const defaults = run("cat /proc/sys/net/core/somaxconn /proc/sys/net/ipv4/tcp_fin_timeout").out;
    // One change live only, one through the host's own persistence (/etc/sysctl.d), and the MTU.
    expect(
      run(
        "sysctl -q -w net.core.somaxconn=7777 && echo 'net.ipv4.tcp_fin_timeout = 19' > /etc/sysctl.d/50-reboot-test.conf && sysctl -q -p /etc/sysctl.d/50-reboot-test.conf && ip link set eth0 mtu 1400",
      ).status,
    ).toBe(0);
    const bootBefore = run("cat /proc/sys/kernel/random/boot_id").out.trim();
    cli(["sandbox", "reboot", "host2", "--name", NAME]);
    const after = run(
      "cat /proc/sys/net/core/somaxconn /proc/sys/net/ipv4/tcp_fin_timeout; cat /sys/class/net/eth0/mtu; cat /proc/sys/kernel/random/boot_id",
    )
      .out.trim()
      .split("\n");
    const [somaxconn, finTimeout, mtu, bootAfter] = after;
    expect(somaxconn).toBe(defaults.split("\n")[0]);
    expect(finTimeout).toBe("19");
    expect(mtu).toBe("1500");
    expect(bootAfter).not.toBe(bootBefore);
    run("rm -f /etc/sysctl.d/50-reboot-test.conf");
  });

  test("down leaves no namespace, veth, container, relay, mount or file behind", () => {
    cli(["sandbox", "down", "--name", NAME]);
    expect(spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout).not.toMatch(
      new RegExp(`nt-${NAME}-`),
    );
    const links = JSON.parse(
      spawnSync("ip", ["-j", "link", "show"], { encoding: "utf8" }).stdout,
    ) as Array<{ ifname: string }>;
    const mine = hosts.map((h) => h.rootInterface);
    expect(links.map((l) => l.ifname).filter((n) => mine.includes(n))).toEqual([]);
    const procs = fs
      .readdirSync("/proc")
      .filter((p) => /^\d+$/.test(p))
      .map((p) => {
        try {
          return fs.readFileSync(`/proc/${p}/cmdline`, "utf8");
        } catch {
          return "";
        }
      });
    expect(
      procs.filter((c) => c.includes(`nettune-${NAME}-`) || c.includes(`nettune-relay-${NAME}-`)),
    ).toEqual([]);
    // No relay of this sandbox listens any more.
    const listening = spawnSync("ss", ["-Htln"], { encoding: "utf8" }).stdout;
    for (const h of hosts) expect(listening).not.toContain(`${h.address}:${h.port}`);
    expect(fs.readFileSync("/proc/self/mounts", "utf8")).not.toContain(`/sandbox/${NAME}/`);
    expect(fs.existsSync(`/var/lib/nettune/sandbox/${NAME}`)).toBe(false);
  });

  test("down after a crash (state left, processes killed) still removes everything", () => {
    hosts = JSON.parse(
      cli(["sandbox", "up", "--name", NAME, "--hosts", "1", "--json"]),
    ) as SandboxHost[];
    // Simulate a crash: kill the container with SIGKILL behind the tool's back.
    const pid = Number(
      fs.readFileSync(`/var/lib/nettune/sandbox/${NAME}/host1/nspawn.pid`, "utf8"),
    );
    process.kill(pid, "SIGKILL");
    cli(["sandbox", "down", "--name", NAME]);
    expect(spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout).not.toMatch(
      new RegExp(`nt-${NAME}-`),
    );
    expect(fs.readFileSync("/proc/self/mounts", "utf8")).not.toContain(`/sandbox/${NAME}/`);
    expect(fs.existsSync(`/var/lib/nettune/sandbox/${NAME}`)).toBe(false);
  });
});
