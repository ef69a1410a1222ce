/**
 * IrqAffinity through the real engine on two VM sandbox hosts (QEMU, 4 vCPUs in 2 NUMA nodes,
 * a virtio-net NIC with 4 queue pairs and per-queue MSI-X interrupts behind a PCI bridge on
 * node 1): "spread" placement read back from /proc/irq, irqbalance running and banned from the
 * pins through 30 s of iperf3 traffic between the hosts, re-pinning after `ethtool -L` and a
 * real reboot, drift, the "stop" choice, bad inputs at preview, a kernel-managed IRQ rolled
 * back, and destroy putting everything back.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EngineStack } from "../helpers/engine";
import { onHost } from "../helpers/hostShell";
import { cli, direct, SHARED_VMS, sharedVmHosts } from "../helpers/sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import { parsePinResult, renderPinScript } from "../../src/host/irqs";
import { run } from "../../src/sandbox/system";

/** The run's shared VM hosts (test/helpers/sandbox.ts). */
const NAME = SHARED_VMS;
const UP_TIMEOUT_MS = 600_000;
const TEST_TIMEOUT_MS = 900_000;

let a: SandboxHost;
let b: SandboxHost;

/** The queue IRQs of eth0 by action name, with their CPUs: `virtio3-input.0=2 …`. */
const PINS_SCRIPT =
  "for i in $(ls /sys/class/net/eth0/device/../msi_irqs); do for d in /proc/irq/$i/*/; do n=${d%/}; n=${n##*/}; " +
  'case "$n" in *-input.*|*-output.*) echo "$n=$(cat /proc/irq/$i/smp_affinity_list)";; esac; done; done | sort -t. -k2n -k1';

/** Everything IrqAffinity may touch besides the pins. */
const FILES_SCRIPT =
  "md5sum /etc/default/irqbalance; ls /etc/systemd/system /etc/udev/rules.d /usr/local/lib /var/lib | grep -i nettune || true; " +
  "ls -A /var/lib/nettune 2>/dev/null; systemctl is-active irqbalance; systemctl is-enabled irqbalance; true";

/** irqbalance's own view of its banned IRQs, from its socket (`setup` as irqbalance-ui asks). */
const BANNED_SCRIPT = `python3 - <<'EOF'
import glob, re, socket
p = glob.glob("/run/irqbalance/irqbalance*.sock")[0]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(p)
s.sendall(b"setup")
data = s.recv(65536).decode()
print(" ".join(re.findall(r"IRQ (\\d+)", data)))
EOF`;

function pinsOf(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .trim()
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => l.split("=") as [string, string]),
  );
}

/** What "spread" must give on node 1 = CPUs 2-3 first: queue 0 → 2, 1 → 3, 2 → 0, 3 → 1. */
function spreadExpected(dev: string): Record<string, string> {
  const cpu = ["2", "3", "0", "1"];
  const out: Record<string, string> = {};
  for (let q = 0; q < 4; q++) {
    out[`${dev}-input.${q}`] = cpu[q]!;
    out[`${dev}-output.${q}`] = cpu[q]!;
  }
  return out;
}

/** The virtioN of the NIC: its queue IRQs are named after it. */
async function nicDevice(h: SandboxHost): Promise<string> {
  return (await onHost(h, "basename $(readlink -f /sys/class/net/eth0/device)")).trim();
}

/**
 * A routed path between the two guests through the namespaces that hold their taps: each
 * namespace gets an address on its bridge and one end of a veth pair, and forwards (its own
 * sysctl); each guest a /32 route to the other through it.
 */
async function linkGuests(): Promise<void> {
  const [na, nb] = [a.namespace, b.namespace];
  run([
    "ip",
    "link",
    "add",
    "ntirqa",
    "netns",
    na,
    "type",
    "veth",
    "peer",
    "name",
    "ntirqb",
    "netns",
    nb,
  ]);
  // The bridge address of a guest's namespace: 198.18.N.3 beside the guest's 198.18.N.2.
  const bridgeOf = (h: SandboxHost) => h.hostAddress.replace(/\.\d+$/, ".3");
  for (const [ns, me, own, peer, addr, gw] of [
    [na, "ntirqa", a, b, "198.19.250.1/30", "198.19.250.2"],
    [nb, "ntirqb", b, a, "198.19.250.2/30", "198.19.250.1"],
  ] as const) {
    run(["ip", "-n", ns, "addr", "add", addr, "dev", me]);
    run(["ip", "-n", ns, "link", "set", me, "up"]);
    run(["ip", "-n", ns, "addr", "add", `${bridgeOf(own)}/24`, "dev", "br0"]);
    run(["ip", "-n", ns, "route", "add", `${peer.hostAddress}/32`, "via", gw]);
    run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
  }
  await onHost(a, `ip route replace ${b.hostAddress}/32 via ${bridgeOf(a)}`);
  await onHost(b, `ip route replace ${a.hostAddress}/32 via ${bridgeOf(b)}`);
}

/** Undoes linkGuests, so the shared hosts go to the next test file as they came. */
async function unlinkGuests() {
  const bridgeOf = (h: SandboxHost) => h.hostAddress.replace(/\.\d+$/, ".3");
  run(["ip", "-n", a.namespace, "link", "del", "ntirqa"], { allowFailure: true });
  for (const h of [a, b]) {
    run(["ip", "-n", h.namespace, "addr", "del", `${bridgeOf(h)}/24`, "dev", "br0"], {
      allowFailure: true,
    });
    run(["ip", "netns", "exec", h.namespace, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0"]);
  }
  await onHost(a, `ip route del ${b.hostAddress}/32 2>/dev/null || true`);
  await onHost(b, `ip route del ${a.hostAddress}/32 2>/dev/null || true`);
}

beforeAll(async () => {
  [a, b] = sharedVmHosts();
  await linkGuests();
}, UP_TIMEOUT_MS + 60_000);

afterAll(async () => {
  await unlinkGuests();
}, 180_000);

describe("IrqAffinity on VM hosts", () => {
  test(
    "bad inputs fail at preview naming the field, and the host is unchanged",
    async () => {
      const before = (await onHost(a, PINS_SCRIPT)) + (await onHost(a, FILES_SCRIPT));
      const host = direct(a);
      const stack = new EngineStack("irq", "irqbad");
      const cases: [object, RegExp][] = [
        [{ policy: { cpus: "7" } }, /policy\.cpus.*CPU 7 is not online \(online: 0-3\)/s],
        [{ policy: { cpus: "" } }, /policy\.cpus.*empty/s],
        [{ policy: { map: { 9: "1" } } }, /policy\.map\["9"\].*no queue 9.*its queues: 0-3/s],
        [
          { policy: { map: { 0: "1", "00": "2" } } },
          /policy\.map\["00"\].*queue 0 is given twice/s,
        ],
        [{ policy: "spread", exclude: "0-3" }, /exclude.*excludes every online CPU/s],
        [{ interface: "eth0;reboot" }, /interface.*must be an interface name/s],
        [{ interface: "lo" }, /interface.*no device with queue interrupts/s],
      ];
      try {
        const results = stack.previewEach(
          cases.map(([c]) => ({
            irqs: [{ name: "bad", host, interface: "eth0", policy: "spread", ...c }],
          })),
        );
        results.forEach((r, i) => {
          expect(r.ok, JSON.stringify(cases[i]![0])).toBe(false);
          expect(r.error ?? r.stdout).toMatch(cases[i]![1]);
        });
        expect((await onHost(a, PINS_SCRIPT)) + (await onHost(a, FILES_SCRIPT))).toBe(before);
      } finally {
        stack.dispose();
      }
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a kernel-managed IRQ (virtio-blk) fails with EIO: every IRQ written before it and irqbalance's options are put back",
    async () => {
      const dev = await nicDevice(a);
      const blk = (
        await onHost(a, "grep -o 'virtio[0-9]*-req\\.0' /proc/interrupts | head -n 1")
      ).trim();
      expect(blk).toMatch(/^virtio\d+-req\.0$/);
      const before = (await onHost(a, PINS_SCRIPT)) + (await onHost(a, FILES_SCRIPT));
      const script = renderPinScript(
        [
          { action: `${dev}-input.0`, cpus: "1" },
          { action: `${dev}-output.0`, cpus: "1" },
          { action: blk, cpus: "1" },
        ],
        {
          owner: "nettune-irqaffinity-managed",
          irqbalance: { mode: "ban", optionsFile: "/etc/default/irqbalance" },
          waitSeconds: 0,
          missing: "fail",
        },
      );
      const text = await onHost(a, `(\n${script}\n)\necho "exit=$?"`);
      expect(text).toMatch(/^exit=3$/m);
      const out = parsePinResult(text);
      expect(out.failed?.action).toBe(blk);
      expect(out.failed?.reason).toMatch(/I\/O error/);
      expect(out.pinned).toEqual([]);
      expect((await onHost(a, PINS_SCRIPT)) + (await onHost(a, FILES_SCRIPT))).toBe(before);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    '"spread" with irqbalance running: pins on the NIC\'s node first, banned in irqbalance, held through 30 s of iperf3; back after ethtool -L and a reboot; drift; destroy gives everything back',
    async () => {
      const dev = await nicDevice(a);
      await onHost(a, "systemctl enable --now --quiet irqbalance");
      const files = await onHost(a, FILES_SCRIPT);
      expect(files).toMatch(/^active\nenabled\n$/m);
      const host = direct(a);
      const args = { irqs: [{ name: "vm-irq", host, interface: "eth0", policy: "spread" }] };
      const stack = new EngineStack("irq", "irqvm");
      try {
        const preview = stack.preview(args);
        expect(preview.error).toBeUndefined();
        expect(preview.changes).toEqual({ create: 2 });
        const up = stack.up(args);
        expect(up.error).toBeUndefined();
        expect(up.outputs["vm-irq_devices"]).toEqual([
          { ifname: "eth0", driver: "virtio_net", numaNode: 1 },
        ]);
        const expected = spreadExpected(dev);
        expect(pinsOf(await onHost(a, PINS_SCRIPT))).toEqual(expected);
        const applied = up.outputs["vm-irq_applied"] as { irq: number; action: string }[];
        expect(applied.map((p) => p.action).sort()).toEqual(Object.keys(expected).sort());
        const irqs = applied.map((p) => p.irq).sort((x, y) => x - y);
        // irqbalance's own state: every pinned IRQ banned.
        expect(
          (await onHost(a, BANNED_SCRIPT))
            .trim()
            .split(" ")
            .map(Number)
            .sort((x, y) => x - y),
        ).toEqual(irqs);

        // 30 s of traffic from b to a with irqbalance rebalancing every 10 s.
        const counts = async () =>
          (
            await onHost(
              a,
              `grep -E '${dev}-(input|output)' /proc/interrupts | awk '{ s = 0; for (i = 2; i <= 5; i++) s += $i; print s }'`,
            )
          )
            .trim()
            .split("\n")
            .map(Number);
        const c0 = await counts();
        await onHost(a, `iperf3 -s -1 -D -B ${a.hostAddress} -p 5301`);
        const iperf = await onHost(
          b,
          `timeout 60 iperf3 -c ${a.hostAddress} -p 5301 -t 30 -P 4 -J | ` +
            `python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bytes"]))'`,
        );
        expect(Number(iperf.trim())).toBeGreaterThan(1_000_000);
        const c1 = await counts();
        expect(c1.filter((c, i) => c > c0[i]!).length).toBeGreaterThanOrEqual(2);
        expect(await onHost(a, "systemctl is-active irqbalance")).toBe("active\n");
        expect(pinsOf(await onHost(a, PINS_SCRIPT))).toEqual(expected);

        expect(stack.preview(args).changes).toEqual({ same: 2 });

        // Fewer queues and back: the udev rule re-runs the unit, which pins by name.
        await onHost(
          a,
          "ethtool -L eth0 combined 2 && sleep 1 && ethtool -L eth0 combined 4 && sleep 8",
        );
        expect(pinsOf(await onHost(a, PINS_SCRIPT))).toEqual(expected);
        // A real reboot: irqbalance starts, the unit pins again and keeps the bans.
        cli(["sandbox", "reboot", a.name, "--name", NAME], UP_TIMEOUT_MS);
        await onHost(
          a,
          `for i in $(seq 60); do systemctl is-active --quiet nettune-irqaffinity-${stack.named("vm-irq")}.service && break; sleep 1; done`,
        );
        expect(pinsOf(await onHost(a, PINS_SCRIPT))).toEqual(expected);
        expect(
          (await onHost(a, BANNED_SCRIPT))
            .trim()
            .split(" ")
            .map(Number)
            .sort((x, y) => x - y),
        ).toEqual(irqs);
        const refreshed = stack.refresh(args);
        expect(refreshed.error).toBeUndefined();
        expect(refreshed.changes).toEqual({ same: 2 });

        // A hand change is drift, and the next up puts the pin back.
        await onHost(
          a,
          `echo 0 > /proc/irq/${applied.find((p) => p.action === `${dev}-input.1`)!.irq}/smp_affinity_list`,
        );
        const drift = stack.refresh(args);
        expect(drift.changes).toEqual({ same: 1, update: 1 });
        expect(stack.preview(args).changes).toEqual({ same: 1, update: 1 });
        expect(stack.up(args).error).toBeUndefined();
        expect(pinsOf(await onHost(a, PINS_SCRIPT))).toEqual(expected);

        const down = stack.destroy(args);
        expect(down.error).toBeUndefined();
        expect(await onHost(a, FILES_SCRIPT)).toBe(files);
        expect((await onHost(a, BANNED_SCRIPT)).trim()).toBe("");
      } finally {
        stack.destroy(args);
        stack.dispose();
        await onHost(a, "systemctl disable --now --quiet irqbalance");
      }
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'irqbalance: "stop" with a map: stopped and disabled while pinned; a create run again with its state lost keeps the journaled originals; destroy puts the pins back exactly and irqbalance as it was (enabled, then running)',
    async () => {
      const dev = await nicDevice(b);
      // Enabled but not running, so nothing moves the originals while they are compared.
      await onHost(b, "systemctl enable --quiet irqbalance && systemctl stop irqbalance");
      const pinsBefore = await onHost(b, PINS_SCRIPT);
      const files = await onHost(b, FILES_SCRIPT);
      expect(files).toMatch(/^inactive\nenabled\n$/m);
      const host = direct(b);
      const args = {
        irqs: [
          {
            name: "vm-map",
            host,
            interface: "eth0",
            policy: { map: { 0: "3", 1: "2-3" } },
            irqbalance: "stop",
          },
        ],
      };
      const first = new EngineStack("irq", "irqstop");
      // The same stack with its state lost after the apply (a fresh backend): the same names.
      const stack = new EngineStack("irq", "irqstop");
      try {
        expect(first.up(args).error).toBeUndefined();
        expect(await onHost(b, "systemctl is-enabled irqbalance; true")).toBe("disabled\n");
        const pins = pinsOf(await onHost(b, PINS_SCRIPT));
        const was = pinsOf(pinsBefore);
        const mapped = [`${dev}-input.0`, `${dev}-output.0`, `${dev}-input.1`, `${dev}-output.1`];
        expect(pins).toEqual({
          ...was,
          [mapped[0]!]: "3",
          [mapped[1]!]: "3",
          [mapped[2]!]: "2-3",
          [mapped[3]!]: "2-3",
        });
        // A create run again with the host already pinned takes the originals and irqbalance's
        // state from the journal the first create wrote, not the tuned host.
        const again = stack.up(args);
        expect(again.error).toBeUndefined();
        expect(again.outputs["vm-map_originals"]).toEqual(
          Object.fromEntries(mapped.map((a) => [a, was[a]])),
        );
        expect(again.outputs["vm-map_irqbalanceBefore"]).toEqual({
          installed: true,
          active: false,
          enabled: "enabled",
        });
        expect(stack.destroy(args).error).toBeUndefined();
        expect(await onHost(b, PINS_SCRIPT)).toBe(pinsBefore);
        // Journal and record gone with the unit.
        expect(await onHost(b, FILES_SCRIPT)).toBe(files);

        // Running before: stopped while pinned, running again after destroy.
        await onHost(b, "systemctl start irqbalance");
        expect(stack.up(args).error).toBeUndefined();
        expect(
          await onHost(b, "systemctl is-active irqbalance; systemctl is-enabled irqbalance; true"),
        ).toBe("inactive\ndisabled\n");
        expect(stack.destroy(args).error).toBeUndefined();
        expect(
          await onHost(b, "systemctl is-active irqbalance; systemctl is-enabled irqbalance; true"),
        ).toBe("active\nenabled\n");
      } finally {
        stack.destroy(args);
        stack.dispose();
        first.dispose();
        await onHost(b, "systemctl disable --now --quiet irqbalance");
      }
    },
    TEST_TIMEOUT_MS,
  );
});
