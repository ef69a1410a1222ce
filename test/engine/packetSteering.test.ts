/**
 * PacketSteering through the real Pulumi engine: on sandbox host 2 (nspawn), whose eth0 is a
 * veth with 4 rx and 4 tx queues that carries the SSH connection and whose network namespace
 * is its own (no net.core.rps_sock_flow_entries, so rfs fails at preview). On a VM host, where
 * RFS is real: packetSteeringVm.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EngineStack, resourceOps } from "../helpers/engine";
import { namesField } from "../helpers/checkErrors";
import { onHost } from "../helpers/hostShell";
import { STEERING_STATE as STATE_SCRIPT } from "../helpers/steeringState";
import { cli, direct, sandboxHosts, SANDBOX } from "../helpers/sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import type { SteeringArg, SteeringProgramArgs } from "../programs/packetSteering";

const STEERING = "pulumi-nodejs:dynamic/nettune:PacketSteering";
const UNIT_DIR = "/etc/systemd/system";
/** One queue file's text. */
const file = (h: SandboxHost, key: string) =>
  onHost(h, `cat /sys/class/net/eth0/queues/${key}`).then((s) => s.trim());

/** The lines of a preview that mark a changed property (resource lines and totals left out). */
function changedLines(stdout: string): string[] {
  return stdout
    .split("--outputs:--")[0]!
    .split("\n")
    .filter(
      (l) =>
        /^\s*[-+~] /.test(l) &&
        !l.includes("pulumi-nodejs:dynamic") &&
        !/^\s*[-+~] \d+ to /.test(l),
    );
}

function errorsOf(r: { events: { type: string; severity?: string; message?: string }[] }) {
  return r.events
    .filter((e) => e.type === "diagnostic" && e.severity === "error")
    .map((e) => e.message ?? "")
    .join("\n");
}

describe("on an nspawn host's veth (4 rx, 4 tx queues, 2 CPUs, its own network namespace)", () => {
  let host: SandboxHost;
  let before: string;
  const steering = (extra: Partial<SteeringArg>): SteeringArg => ({
    name: "eth0-steering",
    host: direct(host),
    interface: "eth0",
    ...extra,
  });
  const declared = (): SteeringProgramArgs => ({
    steering: [steering({ rps: "0-1", xps: { cpus: { 0: "0", 1: "1" } } })],
  });
  const stack = new EngineStack("packetSteering", "nspawn");

  beforeAll(async () => {
    host = sandboxHosts()[1]!;
    before = await onHost(host, STATE_SCRIPT);
  });
  afterAll(() => {
    stack.destroy(declared());
    stack.dispose();
  });

  test("preview shows the resource and changes nothing", async () => {
    const p = stack.preview(declared());
    expect(p.error).toBeUndefined();
    expect(p.changes).toEqual({ create: 2 });
    expect(await onHost(host, STATE_SCRIPT)).toBe(before);
  });

  test("up writes rps_cpus on every rx queue and xps_cpus per tx queue, verified over ssh", async () => {
    const r = stack.up(declared());
    expect(r.error).toBeUndefined();
    expect(r.changes.create).toBe(2);
    for (const q of [0, 1, 2, 3]) expect(await file(host, `rx-${q}/rps_cpus`)).toBe("3");
    expect(await file(host, "tx-0/xps_cpus")).toBe("1");
    expect(await file(host, "tx-1/xps_cpus")).toBe("2");
    expect(await file(host, "tx-2/xps_cpus")).toBe("0");
    expect(r.outputs["eth0-steering_originals"]).toEqual({
      "rx-0/rps_cpus": "0",
      "rx-1/rps_cpus": "0",
      "rx-2/rps_cpus": "0",
      "rx-3/rps_cpus": "0",
      "tx-0/xps_cpus": "0",
      "tx-1/xps_cpus": "0",
    });
    expect(r.outputs["eth0-steering_unitPath"]).toBe(
      `${UNIT_DIR}/nettune-packetsteering-${stack.named("eth0-steering")}.service`,
    );
    // 4 rx queues for 2 CPUs: the redundancy warning, which says what it did not check.
    expect(r.outputs["eth0-steering_warnings"]).toEqual([
      expect.stringMatching(
        /^rps: eth0 \(driver veth\) has 4 rx queues for 2 online CPUs: .*not the IRQ pinning/,
      ),
    ]);
  });

  test("a second up is a no-op; the same CPUs written another way are no change", () => {
    expect(stack.up(declared()).changes).toEqual({ same: 2 });
    const other = { steering: [steering({ rps: "1,0", xps: { cpus: { 0: "0", 1: "1" } } })] };
    expect(stack.preview(other).changes).toEqual({ same: 2 });
  });

  test("a hand change shows as drift on refresh; up repairs it", async () => {
    await onHost(host, "echo 1 > /sys/class/net/eth0/queues/rx-2/rps_cpus");
    const r = stack.refresh(declared());
    expect(r.error).toBeUndefined();
    expect(r.changes.update).toBe(1);
    const refreshed = r.events.find((e) => e.type === "outputs" && e.resourceType === STEERING);
    expect(refreshed?.newOutputs?.rps).toEqual({ 0: "0-1", 1: "0-1", 2: "0", 3: "0-1" });
    const p = stack.preview(declared());
    expect(p.changes).toEqual({ same: 1, update: 1 });
    const lines = changedLines(p.stdout);
    expect(lines[0]).toMatch(/[-~] rps\s*:/);
    expect(lines.join("\n")).not.toMatch(/xps/);
    expect(stack.up(declared()).error).toBeUndefined();
    expect(await file(host, "rx-2/rps_cpus")).toBe("3");
  });

  test("the unit writes the files again after a real reboot", async () => {
    cli(["sandbox", "reboot", "host2", "--name", SANDBOX]);
    for (const q of [0, 1, 2, 3]) expect(await file(host, `rx-${q}/rps_cpus`)).toBe("3");
    expect(await file(host, "tx-1/xps_cpus")).toBe("2");
    expect(stack.preview(declared()).changes).toEqual({ same: 2 });
  });

  test("destroy restores every original byte for byte and removes the unit", async () => {
    const r = stack.destroy(declared());
    expect(r.error).toBeUndefined();
    expect(r.changes.delete).toBe(2);
    expect(await onHost(host, STATE_SCRIPT)).toBe(before);
  });

  test("bad input fails at preview naming the field, the host untouched", async () => {
    const cases: Array<[string, SteeringProgramArgs, string, RegExp]> = [
      [
        "rfs in the host's own network namespace",
        { steering: [steering({ rfs: { flowEntries: 32768 } })] },
        "rfs.flowEntries",
        /net\.core\.rps_sock_flow_entries does not exist on .*: it exists only in the initial network namespace, and this host is a container in its own network namespace, which cannot set it/,
      ],
      [
        "a CPU above the host's highest",
        { steering: [steering({ rps: "0-7" })] },
        "rps",
        /CPU 2-7 is above the highest CPU of .* \(1; possible CPUs: 0-1\)/,
      ],
      [
        "an rx queue the veth lacks",
        { steering: [steering({ rps: { 7: "0" } })] },
        "rps.7",
        /eth0 \(driver veth\) has no rx queue 7: its rx queues are 0-3/,
      ],
      [
        "an empty cpulist",
        { steering: [steering({ xps: { cpus: "" } })] },
        "xps.cpus",
        /is empty: name at least one CPU/,
      ],
      ["nothing declared", { steering: [steering({})] }, "", /declare rps, rfs and\/or xps/],
      [
        "flowEntries not a power of two",
        { steering: [steering({ rfs: { flowEntries: 30000 } })] },
        "rfs.flowEntries",
        /must be a power of two/,
      ],
      [
        "a hostile interface name",
        { steering: [steering({ interface: "eth0;reboot", rps: "0" })] },
        "interface",
        /must be an interface name/,
      ],
    ];
    const stateBefore = await onHost(host, STATE_SCRIPT);
    const bad = new EngineStack("packetSteering", "bad");
    try {
      const results = bad.previewEach(cases.map(([, a]) => a));
      for (const [i, [label, , field, reason]] of cases.entries()) {
        const r = results[i]!;
        expect(r.ok, `${label} should fail`).toBe(false);
        const errors = errorsOf(r);
        if (field)
          expect(namesField(errors, field), `${label} should name ${field}: ${errors}`).toBe(true);
        expect(errors, label).toMatch(reason);
        expect(resourceOps(r, STEERING)).not.toContain("create");
      }
    } finally {
      bad.dispose();
    }
    expect(await onHost(host, STATE_SCRIPT)).toBe(stateBefore);
  });
});
