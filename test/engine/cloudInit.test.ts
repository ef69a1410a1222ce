/**
 * The same tuning two ways, on two VM hosts of one shape (4 vCPUs, 2 NUMA nodes, a virtio_net
 * NIC with 4 queues): host "ci" boots with `nettune.cloudInit` of the apiGateway profile (plus
 * lowLatency's RFS, so packet steering is rendered too) as its NoCloud user data; host "ssh"
 * boots plain and is tuned by a NetworkTuning of the same model over SSH. After boot, what the
 * user data applies (sysctls, congestion control and default qdisc, offloads, channel count,
 * the queue IRQ pins it plans on the instance, and RFS's per-queue counts) equals the
 * SSH-tuned host key by key; a NetworkTuning with the same name on "ci" (waitForCloudInit)
 * changes none of it, adds what the user data leaves to it (the XDP filter), and both hosts
 * are then equal in every key; a second preview shows
 * no change. The SSH host goes through the profile's whole life: preview, up, no-op, a real
 * reboot, destroy restoring everything; destroy on "ci" puts the image's own values back
 * (the journal the user data wrote at first boot). Then every other profile, two at a time on
 * the two hosts: up, no-op, a real reboot (the same state, no drift), destroy restoring
 * everything. The SSH host is the second of the run's shared VM hosts.
 *
 * The cloud-init host also shows what the sandbox's cloud-init must never do: it reads only the
 * NoCloud seed, keeps the seeded host key, logins and network, and asks no metadata service.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EngineStack } from "../helpers/engine";
import { onHost } from "../helpers/hostShell";
import {
  cli,
  cliAsync,
  direct,
  SANDBOX,
  SHARED_VMS,
  sharedVmHosts,
  VM_UP_TIMEOUT_MS,
  vmSandboxUp,
} from "../helpers/sandbox";
import { cloudInitSchema } from "../helpers/cloudInitSchema";
import * as nettune from "../../src";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import type { TuningArg, TuningProgramArgs } from "../programs/tuning";

const CI = `${SANDBOX}ct`;
/** The SSH host is the second of the run's shared VM hosts (test/helpers/sandbox.ts). */
const SSH = SHARED_VMS;
const NAME = "gw";
/** apiGateway has no packet steering: lowLatency's RFS is added to it, on both hosts. */
const STEERING = nettune.profiles.lowLatency.steering!;
const SHAPE = ["--cpus", "4", "--numa", "2", "--queues", "4"];
/** A component's whole lifecycle on a TCG guest takes minutes: every SSH command a second. */
const STEP_MS = 600_000;

let ci: SandboxHost;
let ssh: SandboxHost;
/** The stacks of the NetworkTuning over SSH and of the one on the cloud-init host. */
const SSH_STACK = new EngineStack("tuning", "cissh");
const CI_STACK = new EngineStack("tuning", "cici");
let dir = "";

/** Keys the comparison reads: the profile's sysctls and the two CongestionControl sets. */
const KEYS = [
  ...Object.keys(nettune.profiles.apiGateway.sysctls!),
  "net.ipv4.tcp_congestion_control",
  "net.core.default_qdisc",
];
const FEATURES = [
  "rx-checksumming",
  "tx-checksumming",
  "scatter-gather",
  "tcp-segmentation-offload",
  "generic-segmentation-offload",
  "generic-receive-offload",
  "large-receive-offload",
];

/**
 * The host's tuning, one `kind key=value` line each: sysctls, offloads, the channel count, the
 * queue IRQs' CPUs by queue (virtioN- dropped: the device's number is the same part of both
 * names), each rx queue's rps_flow_cnt and rps_sock_flow_entries, the XDP program on eth0, and nettune's files and units.
 */
const STATE_SCRIPT = [
  ...KEYS.map((k) => `echo "sysctl ${k}=$(echo $(cat /proc/sys/${k.replace(/\./g, "/")}))"`),
  `ethtool -k eth0 | grep -E '^(${FEATURES.join("|")}):' | sed 's/^/feature /; s/: /=/; s/ \\[fixed\\]//'`,
  "echo \"channels combined=$(ethtool -l eth0 | sed -n '/^Current/,$p' | awk '/^Combined:/{print $2}')\"",
  "for i in $(ls /sys/class/net/eth0/device/../msi_irqs); do for d in /proc/irq/$i/*/; do n=${d%/}; n=${n##*/}; " +
    'case "$n" in *-input.*|*-output.*) echo "irq ${n#virtio*-}=$(cat /proc/irq/$i/smp_affinity_list)";; esac; done; done',
  'for f in /sys/class/net/eth0/queues/rx-*/rps_flow_cnt; do q=${f%/*}; echo "steering ${q##*/}=$(cat $f)"; done',
  'echo "steering sock=$(cat /proc/sys/net/core/rps_sock_flow_entries)"',
  `echo "xdp eth0=$(ip -d -j link show eth0 | python3 -c 'import json,sys; l=json.load(sys.stdin)[0]; print(l.get("xdp",{}).get("prog",{}).get("name","none"))')"`,
  "ls /etc/sysctl.d /etc/modules-load.d /etc/systemd/system | grep nettune | sed 's/^/file /' || true",
].join("\n");

/**
 * The host's tuning (STATE_SCRIPT). `tag` is the stack tag its nettune file and unit names carry
 * (src/schemas/names.ts): shown as `<tag>`, so two stacks' hosts compare.
 */
async function state(h: SandboxHost, tag?: string): Promise<Record<string, string>> {
  const raw = await onHost(h, STATE_SCRIPT);
  const out = tag === undefined ? raw : raw.replaceAll(`-${tag}`, "-<tag>");
  return Object.fromEntries(
    out
      .trim()
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => {
        const i = l.indexOf("=");
        return i < 0 ? [l, ""] : [l.slice(0, i), l.slice(i + 1)];
      }),
  );
}

const only = (s: Record<string, string>, kinds: string[]) =>
  Object.fromEntries(Object.entries(s).filter(([k]) => kinds.includes(k.split(" ")[0]!)));

function tuning(h: SandboxHost, extra: Partial<TuningArg> = {}): TuningProgramArgs {
  return {
    tunings: [
      {
        name: NAME,
        host: direct(h),
        interface: "eth0",
        profile: "apiGateway",
        overrides: { steering: STEERING },
        ...extra,
      },
    ],
  };
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-cloudinit-"));
  const userData = nettune.cloudInit({
    name: NAME,
    interface: "eth0",
    profile: nettune.profiles.apiGateway,
    steering: STEERING,
    // The stack whose NetworkTuning manages the host after boot: the same file and unit names.
    stack: { project: `nettune-test-${CI_STACK.program}`, stack: CI_STACK.stack },
  });
  expect(cloudInitSchema(userData).errors).toEqual([]);
  const file = path.join(dir, "user-data");
  fs.writeFileSync(file, userData);
  [ci] = vmSandboxUp(CI, 1, [...SHAPE, "--user-data", file]) as [SandboxHost];
  ssh = sharedVmHosts()[1];
}, 2 * VM_UP_TIMEOUT_MS);

afterAll(() => {
  cli(["sandbox", "down", "--name", CI]);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 180_000);

describe("apiGateway: cloud-init at boot, and NetworkTuning over SSH", () => {
  const onSsh = SSH_STACK;
  const onCi = CI_STACK;
  let before: Record<string, string>;
  let ciBefore: Record<string, string>;
  let ciJournals: string[];
  let tuned: Record<string, string>;
  afterAll(() => {
    // The SSH host is shared with other test files: after a failure, leave nothing on it (a
    // destroy of an empty stack does not touch the host).
    onSsh.destroy(tuning(ssh));
    onSsh.dispose();
    onCi.dispose();
  }, STEP_MS);

  test(
    "the SSH host: preview, then up applies the profile; a second up is a no-op",
    async () => {
      before = await state(ssh, onSsh.tag);
      expect(before["xdp eth0"]).toBe("none");
      const p = onSsh.preview(tuning(ssh));
      expect(p.error).toBeUndefined();
      // The component and its children: queues, irqs, steering, offloads, congestion, sysctls, xdp.
      expect(p.changes.create).toBeGreaterThanOrEqual(8);
      const up = onSsh.up(tuning(ssh));
      expect(up.error).toBeUndefined();
      tuned = await state(ssh, onSsh.tag);
      expect(tuned["sysctl net.core.somaxconn"]).toBe("16384");
      expect(tuned["sysctl net.ipv4.tcp_congestion_control"]).toBe("bbr");
      expect(tuned["channels combined"]).toBe("4");
      expect(tuned["xdp eth0"]).toBe("xdp_syn_flood");
      // RFS: 32768 flow entries over 4 rx queues.
      expect(tuned["steering sock"]).toBe("32768");
      for (let q = 0; q < 4; q++) expect(tuned[`steering rx-${q}`]).toBe("8192");
      // spread: one queue's rx and tx share a CPU, every queue its own.
      const cpus = [0, 1, 2, 3].map((q) => tuned[`irq input.${q}`]);
      expect(new Set(cpus).size).toBe(4);
      for (let q = 0; q < 4; q++) expect(tuned[`irq output.${q}`]).toBe(tuned[`irq input.${q}`]);
      expect(onSsh.preview(tuning(ssh)).changes).toEqual({ same: up.changes.create });
    },
    STEP_MS,
  );

  test(
    "the cloud-init host after boot equals the SSH host in every part the user data applies",
    async () => {
      const status = await onHost(
        ci,
        "timeout 600 cloud-init status --wait >/dev/null; cloud-init status",
      );
      expect(status.trim()).toBe("status: done");
      // Only the NoCloud seed; the seeded host key (the pinned connection works), logins and
      // network; no DHCP and no metadata service.
      const sandbox = await onHost(
        ci,
        [
          "cloud-init status --long | grep -c 'DataSourceNoCloud \\[seed=/var/lib/cloud/seed/nocloud\\]'",
          "ls /etc/ssh/ | grep -c '^ssh_host_.*_key$'",
          "getent passwd debian || echo 'no default user'",
          "ip -4 -o addr show dev eth0 | awk '{print $4}'",
          "pgrep -c dhclient || true",
          "grep -cE 'dhclient|EphemeralDHCP|169\\.254\\.169\\.254|url_helper' /var/log/cloud-init.log || true",
        ].join("; "),
      );
      expect(sandbox.trim().split("\n")).toEqual([
        "1",
        "1",
        "no default user",
        `${ci.hostAddress}/24`,
        "0",
        "0",
      ]);
      ciBefore = await state(ci, onCi.tag);
      // The journals of originals the first boot wrote before applying anything.
      ciJournals = (await onHost(ci, "ls /var/lib/nettune/originals")).trim().split("\n");
      const applied = ["sysctl", "feature", "channels", "irq", "steering", "file"];
      const sshFiles = only(tuned, ["file"]);
      // The user data writes the units and files of the parts it applies, the IRQ pins planned
      // on the instance at boot and RFS's counts for the queues it has among them; XDP is left to NetworkTuning, whose XdpProgram unit
      // is not there yet.
      expect(only(ciBefore, ["sysctl", "feature", "channels", "irq", "steering"])).toEqual(
        only(tuned, ["sysctl", "feature", "channels", "irq", "steering"]),
      );
      for (const f of Object.keys(only(ciBefore, applied)).filter((k) => k.startsWith("file ")))
        expect(sshFiles, f).toHaveProperty([f]);
      expect(ciBefore["xdp eth0"]).toBe("none");
    },
    STEP_MS,
  );

  /** The SSH host's reboot, begun while NetworkTuning runs on the cloud-init host. */
  let sshRebooted: Promise<Record<string, string> | Error> | undefined;

  test(
    "NetworkTuning on the cloud-init host changes nothing the user data applied, adds the rest, and both hosts are equal",
    async () => {
      // The next test's reboot of the other host runs meanwhile: neither host sees the other.
      sshRebooted = cliAsync(["sandbox", "reboot", ssh.name, "--name", SSH], VM_UP_TIMEOUT_MS)
        .then(() => state(ssh, onSsh.tag))
        .catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
      const args = tuning(ci, { waitForCloudInit: true });
      const [up, again] = await onCi.runStepsAsync([
        { op: "up", args },
        { op: "preview", args },
      ]);
      expect(up!.error).toBeUndefined();
      // Each child the user data applied says, when it is checked, that the host has its
      // settings already: the creates change none of them. XDP, left to NetworkTuning, does not.
      const asDeclared = up!.events
        .filter(
          (e) =>
            e.type === "diagnostic" &&
            e.severity === "info" &&
            e.message?.includes(`already as declared on root@${ci.hostAddress}`),
        )
        .map((e) => e.urn!.slice(e.urn!.lastIndexOf("::") + 2))
        .sort();
      expect(asDeclared).toEqual(
        ["congestion", "irqs", "offloads", "queues", "steering", "sysctls"].map((c) => `gw-${c}`),
      );
      const after = await state(ci, onCi.tag);
      expect(only(after, ["sysctl", "feature", "channels", "irq", "steering"])).toEqual(
        only(ciBefore, ["sysctl", "feature", "channels", "irq", "steering"]),
      );
      expect(after).toEqual(tuned);
      expect(again!.changes).toEqual({ same: up!.changes.create });
    },
    STEP_MS,
  );

  test(
    "a real reboot of the SSH host: the same tuning, no drift",
    async () => {
      expect(sshRebooted).toBeDefined();
      const rebooted = await sshRebooted!;
      if (rebooted instanceof Error) throw rebooted;
      expect(rebooted).toEqual(tuned);
      const r = onSsh.refresh(tuning(ssh));
      expect(r.error).toBeUndefined();
      expect(onSsh.preview(tuning(ssh)).changes).toEqual({ same: r.changes.same });
    },
    STEP_MS,
  );

  test(
    "destroy: the SSH host as it was; the cloud-init host back on the image's sysctl values",
    async () => {
      // Both hosts at once.
      const [[onSshDown], [onCiDown]] = await Promise.all([
        onSsh.runStepsAsync([{ op: "destroy", args: tuning(ssh) }]),
        onCi.runStepsAsync([{ op: "destroy", args: tuning(ci) }]),
      ]);
      expect(onSshDown!.error).toBeUndefined();
      expect(await state(ssh, onSsh.tag)).toEqual(before);
      expect(onCiDown!.error).toBeUndefined();
      const ciAfter = await state(ci, onCi.tag);
      // The journals the user data wrote before applying: the image's own values, congestion
      // control included.
      expect(only(ciAfter, ["sysctl"])).toEqual(only(before, ["sysctl"]));
      // The offloads, channel count, IRQ pins and steering from their journals too; every
      // journal removed.
      expect(only(ciAfter, ["feature", "channels", "irq", "steering"])).toEqual(
        only(before, ["feature", "channels", "irq", "steering"]),
      );
      expect(ciJournals).toEqual([
        `cc-${onCi.named("gw-congestion")}`,
        `irq-eth0-nettune-irqaffinity-${onCi.named("gw-irqs")}`,
        `offloads-eth0-nettune-nicoffloads-${onCi.named("gw-offloads")}`,
        `rss-eth0-nettune-rssqueues-${onCi.named("gw-queues")}`,
        `steering-eth0-nettune-packetsteering-${onCi.named("gw-steering")}`,
        `sysctl-90-nettune-${onCi.named("gw-sysctls")}.conf`,
      ]);
      expect(await onHost(ci, "ls -A /var/lib/nettune/originals 2>/dev/null || true")).toBe("");
      // No nettune file left: only the sandbox's own seed unit, as on the untouched SSH host.
      expect(only(ciAfter, ["file"])).toEqual(only(before, ["file"]));
      expect(Object.keys(only(before, ["file"]))).toEqual(["file nettune-seed.service"]);
      expect(ciAfter["xdp eth0"]).toBe("none");
    },
    STEP_MS,
  );
});

/**
 * One profile's whole life on one host: up and a no-op preview in one driver process, a real
 * reboot, then refresh, a preview and destroy in another.
 */
async function lifecycle(h: SandboxHost, sandbox: string, profile: nettune.ProfileName) {
  const stack = new EngineStack("tuning", `p${profile.toLowerCase()}`);
  const args = tuning(h, { name: `p-${profile}`, profile, overrides: {} });
  let destroyed = false;
  try {
    const before = await state(h);
    const [up, again] = await stack.runStepsAsync([
      { op: "up", args },
      { op: "preview", args },
    ]);
    const tuned = await state(h);
    await cliAsync(["sandbox", "reboot", h.name, "--name", sandbox], VM_UP_TIMEOUT_MS);
    const rebooted = await state(h);
    const [refreshed, afterBoot, down] = await stack.runStepsAsync([
      { op: "refresh", args },
      { op: "preview", args },
      { op: "destroy", args },
    ]);
    destroyed = true;
    return {
      before,
      tuned,
      rebooted,
      after: await state(h),
      up: up!,
      again: again!,
      refreshed: refreshed!,
      afterBoot: afterBoot!,
      down: down!,
    };
  } finally {
    // The SSH host is shared with other test files: leave nothing on it after a failure.
    if (!destroyed) await stack.runStepsAsync([{ op: "destroy", args }]).catch(() => undefined);
    stack.dispose();
  }
}

describe("every other profile on a VM host: up, a no-op preview, a reboot without drift, destroy restoring every key", () => {
  test.each([
    ["streamingIngest", "cdnEdge"],
    ["lowLatency", "guideDefaults"],
  ] as const)(
    "%s on the SSH host and %s on the cloud-init host, at once",
    async (onSsh, onCi) => {
      const runs = await Promise.all([lifecycle(ssh, SSH, onSsh), lifecycle(ci, CI, onCi)]);
      for (const [i, r] of runs.entries()) {
        const name = [onSsh, onCi][i]!;
        expect(r.up.error, name).toBeUndefined();
        expect(r.up.outputs[`p-${name}_chosen`], name).toBeDefined();
        expect(r.again.changes, name).toEqual({ same: r.up.changes.create });
        // The boot units and files bring back everything the profile set.
        expect(r.rebooted, name).toEqual(r.tuned);
        expect(r.refreshed.error, name).toBeUndefined();
        expect(r.afterBoot.changes, name).toEqual({ same: r.up.changes.create });
        expect(r.down.error, name).toBeUndefined();
        expect(r.after, name).toEqual(r.before);
      }
    },
    3 * STEP_MS,
  );
});
