/**
 * The engine on a VM sandbox host (QEMU, Debian's cloud kernel, a multi-queue virtio-net NIC):
 * the success paths the shared kernel of nspawn hosts cannot show, through real `pulumi up` and
 * `destroy`: cubic and bbr loaded as a module, fq as the default and the root qdisc, ring
 * sizes, fewer channels with an RSS indirection table, offloads of a virtio NIC; everything put
 * back by destroy.
 */
import { beforeAll, describe, expect, test } from "vitest";
import { EngineStack, stackNamed } from "../helpers/engine";
import { onHost } from "../helpers/hostShell";
import { cli, direct, SHARED_VMS, sharedVmHosts } from "../helpers/sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";

/** The run's shared VM hosts (test/helpers/sandbox.ts); this file uses the first. */
const NAME = SHARED_VMS;
const UP_TIMEOUT_MS = 600_000;
/** Every SSH command to a TCG guest takes a second or more: a whole lifecycle takes minutes. */
const TEST_TIMEOUT_MS = 600_000;

let vm: SandboxHost;

/** Everything the resources below touch, as one text to compare before and after. */
const STATE_SCRIPT = [
  "sysctl -n net.ipv4.tcp_congestion_control net.core.default_qdisc",
  "tc qdisc show dev eth0 root | cut -d' ' -f1-2",
  "ethtool -g eth0 | sed -n '/Current/,$p' | grep -E '^(RX|TX):'",
  "ethtool -l eth0 | sed -n '/Current/,$p' | grep -E '^Combined:'",
  "ethtool -x eth0 | grep -E '^ +[0-9]+:' | md5sum",
  "ethtool -k eth0 | grep -E '^(generic-receive-offload|tcp-segmentation-offload):'",
  "ls /etc/systemd/system | grep nettune || true",
  "ls /etc/sysctl.d /etc/modules-load.d | grep nettune || true",
].join("; ");

/** What the link resources below set, as they read back. */
const LINK_SCRIPT = [
  "ethtool -g eth0 | sed -n '/Current/,$p' | grep '^RX:'",
  "ethtool -l eth0 | sed -n '/Current/,$p' | grep '^Combined:'",
  // Every bucket of the table on queue 0 or 1.
  "ethtool -x eth0 | grep -E '^ +[0-9]+:' | cut -d: -f2 | tr -s ' ' '\\n' | grep . | sort -u | tr '\\n' ' '",
  "echo",
  "ethtool -k eth0 | grep '^generic-receive-offload:'",
  // The units of stack vmlink's resources (their names carry the stack's tag).
  `systemctl is-enabled ${[
    ["nicrings", "vm-rings"],
    ["rssqueues", "vm-rss"],
    ["nicoffloads", "vm-offloads"],
  ]
    .map(([kind, name]) => `nettune-${kind}-${stackNamed("link", "vmlink", name!)}.service`)
    .join(" ")}`,
].join("; ");

beforeAll(() => {
  vm = sharedVmHosts()[0];
}, UP_TIMEOUT_MS + 60_000);

describe("on a VM host", () => {
  test(
    "CongestionControl: bbr loaded as a module with fq as default and root qdisc; destroy puts cubic and the old qdiscs back",
    async () => {
      // Another file on the shared host may have loaded them (nettune leaves modules loaded).
      await onHost(vm, "modprobe -r tcp_bbr sch_fq 2>/dev/null || true");
      const before = await onHost(vm, STATE_SCRIPT);
      expect(await onHost(vm, "lsmod | grep -c '^tcp_bbr' || true")).toBe("0\n");
      expect(await onHost(vm, "sysctl -n net.ipv4.tcp_congestion_control")).toBe("cubic\n");
      const stack = new EngineStack("congestion", "vmcc");
      const args = {
        ccs: [
          { name: "vm-bbr", host: direct(vm), algorithm: "bbr", qdisc: "fq", interfaces: ["eth0"] },
        ],
      };
      try {
        const up = stack.up(args);
        expect(up.error).toBeUndefined();
        expect(up.outputs["vm-bbr_observedAlgorithm"]).toBe("bbr");
        expect(up.outputs["vm-bbr_originals"]).toMatchObject({ algorithm: "cubic" });
        const live = await onHost(
          vm,
          "sysctl -n net.ipv4.tcp_congestion_control net.core.default_qdisc; lsmod | grep -E '^(tcp_bbr|sch_fq) ' | cut -d' ' -f1 | sort; tc qdisc show dev eth0 root | cut -d' ' -f2; " +
            `cat /etc/modules-load.d/nettune-${stack.named("vm-bbr")}.conf`,
        );
        expect(live.split("\n").slice(0, 5)).toEqual(["bbr", "fq", "sch_fq", "tcp_bbr", "fq"]);
        expect(live).toMatch(/^tcp_bbr$/m);
        expect(stack.preview(args).changes).toEqual({ same: 2 });
        expect(stack.destroy(args).error).toBeUndefined();
        expect(await onHost(vm, STATE_SCRIPT)).toBe(before);
      } finally {
        stack.destroy(args);
        stack.dispose();
      }
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "NicRings, RssQueues with an indirection table, NicOffloads on the virtio NIC SSH runs over: applied, verified, back after a real reboot, put back by destroy",
    async () => {
      const before = await onHost(vm, STATE_SCRIPT);
      const host = direct(vm);
      const args = {
        rings: [{ name: "vm-rings", host, interface: "eth0", rx: 512 }],
        rss: [{ name: "vm-rss", host, interface: "eth0", combined: 2, indirection: { equal: 2 } }],
        offloads: [{ name: "vm-offloads", host, interface: "eth0", features: { gro: false } }],
      };
      const stack = new EngineStack("link", "vmlink");
      try {
        const up = stack.up(args);
        expect(up.error).toBeUndefined();
        expect(up.outputs["vm-offloads_driver"]).toBe("virtio_net");
        const live = await onHost(vm, LINK_SCRIPT);
        expect(live.split("\n").map((l) => l.replace(/\s+/g, " ").trim())).toEqual([
          "RX: 512",
          "Combined: 2",
          "0 1",
          "generic-receive-offload: off",
          "enabled",
          "enabled",
          "enabled",
          "",
        ]);
        expect(stack.preview(args).changes).toEqual({ same: 4 });
        // A real guest reboot: the kernel starts from the driver's defaults, the units put back
        // what was declared.
        cli(["sandbox", "reboot", vm.name, "--name", NAME], UP_TIMEOUT_MS);
        expect(await onHost(vm, LINK_SCRIPT)).toBe(live);
        expect(stack.destroy(args).error).toBeUndefined();
        expect(await onHost(vm, STATE_SCRIPT)).toBe(before);
      } finally {
        stack.destroy(args);
        stack.dispose();
      }
    },
    TEST_TIMEOUT_MS,
  );
});
