/**
 * XdpProgram through the real engine on a VM sandbox host (QEMU, Debian's 6.1 cloud kernel, a
 * virtio_net NIC), on eth0, which carries the SSH session: native attach as a pinned bpf_link
 * that the host's own bpftool shows, a second up that changes nothing, destroy that leaves
 * nothing; too large an MTU for virtio_net on this kernel refused at preview with the limit,
 * and the limit itself attaching; a drop-all program detached by the host itself within
 * rollbackAfter (commit-confirmed).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EngineStack } from "../helpers/engine";
import { onHost } from "../helpers/hostShell";
import { direct, ROOT, sharedVmHosts } from "../helpers/sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import type { XdpArg, XdpProgramArgs } from "../programs/xdp";

const UP_TIMEOUT_MS = 600_000;
/** Every SSH command to a TCG guest takes a second or more. */
const TEST_TIMEOUT_MS = 600_000;
const FIXTURES = path.join(ROOT, "test/fixtures/xdp");

let vm: SandboxHost;
let tmp: string;

/** Everything XdpProgram may leave on the host besides the attachment. */
const FILES =
  "ls /sys/fs/bpf /usr/local/lib /etc/systemd/system /run 2>/dev/null | grep -i nettune || true; " +
  "ls -A /sys/fs/bpf | grep -v '[.]debug$' || true";

/** What the host's own bpftool says is attached to eth0 by XDP: `[{ devname, mode, id }]`. */
async function bpftoolXdp(): Promise<
  { devname: string; ifindex: number; mode: string; id: number }[]
> {
  const net = JSON.parse(await onHost(vm, "bpftool -j net show dev eth0")) as {
    xdp: { devname: string; ifindex: number; mode: string; id: number }[];
  }[];
  return net[0]!.xdp;
}

function args(extra: Partial<XdpArg> = {}): XdpProgramArgs {
  return {
    xdps: [
      {
        name: "vm-xdp",
        host: direct(vm),
        interface: "eth0",
        source: path.join(tmp, "pass_count.c"),
        programName: "xdp_pass_count",
        ...extra,
      },
    ],
  };
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-xdp-vm-"));
  for (const f of ["pass_count.c", "drop_all.c"])
    fs.copyFileSync(path.join(FIXTURES, f), path.join(tmp, f));
  // The first of the run's shared VM hosts (test/helpers/sandbox.ts).
  vm = sharedVmHosts()[0];
}, UP_TIMEOUT_MS + 60_000);

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}, 180_000);

describe("XdpProgram on a virtio_net VM (eth0 carries SSH)", () => {
  test(
    "native on eth0: a pinned bpf_link the host's bpftool shows, counting; a second up is a no-op; destroy leaves nothing",
    async () => {
      expect(await onHost(vm, "ethtool -i eth0 | head -1; uname -r")).toMatch(
        /^driver: virtio_net\n6\.1\./,
      );
      // The NIC can turn its guest offloads off (VIRTIO_NET_F_CTRL_GUEST_OFFLOADS): rx-gro-hw
      // is on but not [fixed], so preview does not refuse native mode, and the kernel takes it.
      expect(await onHost(vm, "ethtool -k eth0 | grep '^rx-gro-hw:'")).toBe("rx-gro-hw: on\n");
      const files = await onHost(vm, FILES);
      const stack = new EngineStack("xdp", "vmxdp");
      try {
        const up = stack.up(args());
        expect(up.error).toBeUndefined();
        const attached = up.outputs["vm-xdp_attached"] as {
          progId: number;
          linkId: number;
          tag: string;
        };
        expect(attached).toMatchObject({ name: "xdp_pass_count", mode: "native", via: "link" });
        expect(await bpftoolXdp()).toEqual([
          { devname: "eth0", ifindex: 2, mode: "driver", id: attached.progId },
        ]);
        const prog = JSON.parse(await onHost(vm, `bpftool -j prog show id ${attached.progId}`)) as {
          name: string;
          tag: string;
          type: string;
        };
        expect(prog).toMatchObject({ type: "xdp", name: "xdp_pass_count", tag: attached.tag });
        const lnk = JSON.parse(await onHost(vm, `bpftool -j link show id ${attached.linkId}`)) as {
          type: string;
          prog_id: number;
        };
        expect(lnk).toMatchObject({ type: "xdp", prog_id: attached.progId });
        // The map counts this very SSH session's packets.
        const dump = JSON.parse(
          await onHost(
            vm,
            `bpftool -j map dump pinned /sys/fs/bpf/nettune/nettune-xdpprogram-${stack.named("vm-xdp")}/maps/pkt_count`,
          ),
        ) as { value: number | string[] }[];
        const value = dump[0]!.value;
        const count =
          typeof value === "number"
            ? value
            : Number(BigInt(`0x${[...value].reverse().join("").replace(/0x/g, "")}`));
        expect(count).toBeGreaterThan(0);

        expect(stack.preview(args()).changes).toEqual({ same: 2 });
        const again = stack.up(args());
        expect(again.changes).toEqual({ same: 2 });
        expect((await bpftoolXdp())[0]?.id).toBe(attached.progId);

        expect(stack.destroy(args()).error).toBeUndefined();
        expect(await bpftoolXdp()).toEqual([]);
        expect(await onHost(vm, FILES)).toBe(files);
      } finally {
        stack.destroy(args());
        stack.dispose();
      }
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "MTU: 4065 on this kernel's virtio_net fails at preview with the limit 4064; 4064 attaches",
    async () => {
      const stack = new EngineStack("xdp", "vmxdpmtu");
      try {
        await onHost(vm, "ip link set eth0 mtu 4065");
        const p = stack.preview(args());
        expect(p.ok).toBe(false);
        expect(p.error ?? p.stdout).toMatch(
          /native XDP on eth0 \(driver virtio_net\) needs an MTU of at most 4064 .*page size 4096 - 32 virtio header, on kernels before 6\.3 \(this one is 6\.1\.[^)]*\).*eth0 has MTU 4065/s,
        );
        expect(await bpftoolXdp()).toEqual([]);
        // Generic mode has no such limit.
        expect(stack.preview(args({ mode: "generic" })).error).toBeUndefined();

        await onHost(vm, "ip link set eth0 mtu 4064");
        const up = stack.up(args());
        expect(up.error).toBeUndefined();
        expect((await bpftoolXdp())[0]).toMatchObject({ mode: "driver" });
        expect(stack.destroy(args()).error).toBeUndefined();
        expect(await bpftoolXdp()).toEqual([]);
      } finally {
        stack.destroy(args());
        stack.dispose();
        await onHost(vm, "ip link set eth0 mtu 1500");
      }
    },
    TEST_TIMEOUT_MS,
  );

  test(
    "a drop-all program natively on virtio_net: the host detaches it by itself, up fails saying so, nothing is left",
    async () => {
      const files = await onHost(vm, FILES);
      const stack = new EngineStack("xdp", "vmxdpdrop");
      const a = args({
        name: "vm-drop",
        source: path.join(tmp, "drop_all.c"),
        programName: "xdp_drop_all",
        rollbackAfter: 15,
      });
      try {
        const up = stack.up(a);
        expect(up.ok).toBe(false);
        expect(up.error ?? up.stdout).toMatch(
          /XDP program xdp_drop_all on eth0 cut the SSH connection to .*The host undid the change by itself after 15 s \(commit-confirmed rollback\) and is reachable again.*detached the program and removed its boot unit and object/s,
        );
        expect(await bpftoolXdp()).toEqual([]);
        expect(await onHost(vm, FILES)).toBe(files);
      } finally {
        stack.destroy(a);
        stack.dispose();
      }
    },
    TEST_TIMEOUT_MS,
  );
});
