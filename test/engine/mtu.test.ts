/**
 * Mtu through the real Pulumi engine against a sandbox host whose SSH runs over the very
 * interface being changed: commit-confirmed apply, DF-ping verification of peers, a cut
 * management path rolled back by the host itself, persistence across a real reboot.
 */
import { spawn, spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EngineStack } from "../helpers/engine";
import { namesField } from "../helpers/checkErrors";
import { onHost, procSysNet } from "../helpers/hostShell";
import { cli, direct, sandboxHosts, SANDBOX } from "../helpers/sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import type { MtuArg } from "../programs/mtu";

let host: SandboxHost;
beforeAll(() => {
  host = sandboxHosts()[0]!;
});

const mtuOf = async (h: SandboxHost) =>
  Number((await onHost(h, "cat /sys/class/net/eth0/mtu")).trim());
const args = (m: Partial<MtuArg> & { mtu: number }) => ({
  mtus: [{ name: "eth0-mtu", host: direct(host), interface: "eth0", ...m }],
});

describe("Mtu lifecycle on the interface SSH runs over", () => {
  const stack = new EngineStack("mtu", "lifecycle");
  afterAll(() => {
    stack.destroy(args({ mtu: 1500 }));
    stack.dispose();
  });

  test("up sets the MTU commit-confirmed, persists it, and leaves no rollback armed", async () => {
    expect(await mtuOf(host)).toBe(1500);
    const r = stack.up(args({ mtu: 1400, txQueueLength: 2000 }));
    expect(r.error).toBeUndefined();
    expect(r.outputs["eth0-mtu_carriesSsh"]).toBe(true);
    expect(r.outputs["eth0-mtu_originals"]).toEqual({ mtu: 1500, txQueueLength: 1000 });
    expect(r.outputs["eth0-mtu_unitPath"]).toBe(
      `/etc/systemd/system/nettune-mtu-${stack.named("eth0-mtu")}.service`,
    );
    expect(await mtuOf(host)).toBe(1400);
    expect((await onHost(host, "cat /sys/class/net/eth0/tx_queue_len")).trim()).toBe("2000");
    const timers = await onHost(
      host,
      "systemctl list-units --all --no-legend 'nettune-rollback-*' | wc -l",
    );
    expect(timers.trim()).toBe("0");
    const unit = await onHost(
      host,
      `systemctl is-enabled nettune-mtu-${stack.named("eth0-mtu")}.service`,
    );
    expect(unit.trim()).toBe("enabled");
  });

  test("a second preview shows no changes; an edit previews exactly mtu old => new", () => {
    expect(stack.preview(args({ mtu: 1400, txQueueLength: 2000 })).changes).toEqual({ same: 2 });
    const p = stack.preview(args({ mtu: 1450, txQueueLength: 2000 }));
    expect(p.changes).toEqual({ same: 1, update: 1 });
    const lines = p.stdout
      .split("--outputs:--")[0]!
      .split("\n")
      .filter((l) => /^\s*~ /.test(l));
    expect(lines.filter((l) => !l.includes("pulumi-nodejs:dynamic"))).toEqual([
      expect.stringMatching(/~ mtu\s*: 1400 => 1450/),
    ]);
  });

  test("a change behind Pulumi's back shows as drift on refresh", async () => {
    await onHost(host, "ip link set dev eth0 mtu 1300");
    const r = stack.refresh(args({ mtu: 1400, txQueueLength: 2000 }));
    expect(r.changes.update).toBe(1);
    const p = stack.preview(args({ mtu: 1400, txQueueLength: 2000 }));
    expect(p.stdout).toMatch(/~ mtu\s*: 1300 => 1400/);
    expect(stack.up(args({ mtu: 1400, txQueueLength: 2000 })).error).toBeUndefined();
    expect(await mtuOf(host)).toBe(1400);
  });

  test("after a real reboot the host comes back with the declared MTU (its unit ran at boot)", async () => {
    cli(["sandbox", "reboot", "host1", "--name", SANDBOX]);
    expect(await mtuOf(host)).toBe(1400);
  });

  test("destroy restores the MTU and queue length and removes the unit; a reboot then keeps the default", async () => {
    const r = stack.destroy(args({ mtu: 1400 }));
    expect(r.error).toBeUndefined();
    expect(await mtuOf(host)).toBe(1500);
    expect((await onHost(host, "cat /sys/class/net/eth0/tx_queue_len")).trim()).toBe("1000");
    expect((await onHost(host, "ls /etc/systemd/system/")).split(/\s+/)).not.toContain(
      `nettune-mtu-${stack.named("eth0-mtu")}.service`,
    );
    cli(["sandbox", "reboot", "host1", "--name", SANDBOX]);
    expect(await mtuOf(host)).toBe(1500);
  });
});

describe("Mtu verifyPeers: every device on the path must agree", () => {
  test("9000 fails and is rolled back when the peer's side is 1500, and succeeds when both are 9000", async () => {
    const stack = new EngineStack("mtu", "jumbo");
    const jumbo = args({ mtu: 9000, verifyPeers: [host.rootAddress], persist: false });
    try {
      const r = stack.up(jumbo);
      expect(r.ok).toBe(false);
      expect(r.error).toMatch(
        new RegExp(
          `verifyPeers: the path from eth0 .* to ${host.rootAddress.replace(/\./g, "\\.")} does not carry 9000-byte packets`,
        ),
      );
      expect(r.error).toMatch(/put back to 1500/);
      expect(await mtuOf(host)).toBe(1500);

      // This machine's end of the host's veth (made by the sandbox) now takes jumbo frames too.
      spawnSync("ip", ["link", "set", "dev", host.rootInterface, "mtu", "9000"]);
      const ok = stack.up(jumbo);
      expect(ok.error).toBeUndefined();
      expect(await mtuOf(host)).toBe(9000);
      expect(stack.destroy(jumbo).error).toBeUndefined();
      expect(await mtuOf(host)).toBe(1500);
    } finally {
      spawnSync("ip", ["link", "set", "dev", host.rootInterface, "mtu", "1500"]);
      stack.dispose();
    }
  });
});

describe("Mtu bad input fails at preview with the host untouched", () => {
  test.each([
    [
      "an unknown interface",
      { interface: "eth9", mtu: 1400 },
      "interface",
      // ip's own words, as the host said them.
      "no interface eth9 on root@",
      'Device "eth9" does not exist',
    ],
    ["an MTU above 65535", { mtu: 70000 }, "mtu"],
    ["an MTU below 68", { mtu: 67 }, "mtu"],
    [
      "a peer that is not an address",
      { mtu: 1400, verifyPeers: ["peer; reboot"] },
      "verifyPeers[0]",
    ],
    ["a rollback timer under 5 s", { mtu: 1400, rollbackAfter: 1 }, "rollbackAfter"],
    ["a hostile interface name", { interface: "eth0;reboot", mtu: 1400 }, "interface"],
  ])("%s", async (_label, m, field, ...said) => {
    const stack = new EngineStack("mtu", "bad");
    try {
      const before = await procSysNet(host);
      const linkBefore = await onHost(host, "ip -d link show");
      const r = stack.preview(args(m));
      expect(r.ok).toBe(false);
      const errors = r.events
        .filter((e) => e.type === "diagnostic" && e.severity === "error")
        .map((e) => e.message ?? "");
      expect(namesField(errors.join("\n"), field), errors.join("\n")).toBe(true);
      for (const words of said) expect(errors.join("\n")).toContain(words);
      expect(await procSysNet(host)).toEqual(before);
      expect(await onHost(host, "ip -d link show")).toEqual(linkBefore);
    } finally {
      stack.dispose();
    }
  });
});

describe("Mtu that cuts the management path", () => {
  test("the host puts the old MTU back within the timer, is reachable again, and the resource fails saying why", async () => {
    const stack = new EngineStack("mtu", "cut");
    // Stand-in for a path that breaks at the new MTU: while the host's eth0 is at 1280, this
    // machine's end of its link is down. Bounded: gives up (and restores the link) after 90 s.
    const watcher = spawn(
      "sh",
      [
        "-c",
        `state=up; i=0; while [ $i -lt 900 ]; do
           m=$(ip netns exec ${host.namespace} cat /sys/class/net/eth0/mtu 2>/dev/null)
           if [ "$m" = 1280 ] && [ $state = up ]; then ip link set dev ${host.rootInterface} down; state=down; fi
           if [ "$m" = 1500 ] && [ $state = down ]; then ip link set dev ${host.rootInterface} up; exit 0; fi
           sleep 0.1; i=$((i+1))
         done; ip link set dev ${host.rootInterface} up; exit 1`,
      ],
      { stdio: "ignore" },
    );
    const watcherDone = new Promise<number | null>((resolve) => watcher.on("exit", resolve));
    try {
      const t0 = Date.now();
      const r = stack.up(args({ mtu: 1280, rollbackAfter: 8, persist: false }));
      expect(r.ok).toBe(false);
      expect(r.error).toMatch(/MTU 1280 on eth0 cut the SSH connection/);
      expect(r.error).toMatch(/undid the change by itself after 8 s .* reachable again/);
      // The watcher saw the host go back to 1500 by itself and restored the link.
      expect(await watcherDone).toBe(0);
      expect(await mtuOf(host)).toBe(1500);
      expect(Date.now() - t0).toBeLessThan(120_000);
    } finally {
      watcher.kill();
      spawnSync("ip", ["link", "set", "dev", host.rootInterface, "up"]);
      stack.destroy(args({ mtu: 1500 }));
      stack.dispose();
    }
  });
});
