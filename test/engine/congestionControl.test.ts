/**
 * CongestionControl through the real Pulumi engine against sandbox host 2 over SSH.
 *
 * What the sandbox kernel offers decides the values used here: bbr, cubic and reno are built in,
 * but a network namespace may only set the algorithms of the machine's
 * tcp_allowed_congestion_control ("reno bbr" with bbr as the machine's default), so the tests
 * switch between reno and bbr; the qdiscs are pfifo_fast, pfifo, htb (no fq, fq_codel, netem);
 * net.core.default_qdisc does not exist inside a namespace, so root qdiscs are set through
 * `interfaces`: a veth pair made inside the host (ntcc0 with a tbf root, ntcc1 with the kernel's
 * default noqueue), never eth0, which carries the SSH session, except for the harmless
 * pfifo_fast of the reboot test.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EngineStack, resourceOps } from "../helpers/engine";
import { namesField } from "../helpers/checkErrors";
import { onHost, procSysNet } from "../helpers/hostShell";
import { cli, direct, sandboxHosts, SANDBOX } from "../helpers/sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import type { CongestionArg } from "../programs/congestion";

const TYPE = "pulumi-nodejs:dynamic/nettune:CongestionControl";
/** The lifecycle stack, and its resource's file and units: named after `cc` and the stack. */
const LIFECYCLE = new EngineStack("congestion", "lifecycle");
const CC = LIFECYCLE.named("cc");
const SYSCTL_FILE = `/etc/sysctl.d/90-nettune-congestion-${CC}.conf`;

let host: SandboxHost;

interface Qdisc {
  kind: string;
  handle: string;
  root?: boolean;
  options: Record<string, unknown>;
}

const algorithm = async () =>
  (await onHost(host, "cat /proc/sys/net/ipv4/tcp_congestion_control")).trim();
const rootOf = async (dev: string): Promise<Qdisc | undefined> =>
  (JSON.parse(await onHost(host, `tc -j -raw qdisc show dev ${dev}`)) as Qdisc[]).find(
    (q) => q.root,
  );
/** Opens a TCP connection inside the host, as a user would, and reads its algorithm with ss. */
const newConnectionAlgorithm = async () => {
  const out = await onHost(
    host,
    `bash -c 'exec 3<>/dev/tcp/127.0.0.1/22; ino=$(readlink /proc/$$/fd/3 | tr -dc 0-9); ss -Htine dst 127.0.0.1:22 | grep -A1 "ino:$ino "'`,
  );
  return /^\s+(?:(?:ts|sack|ecn|ecnseen|fastopen)\s+)*([a-z0-9_]+)\s/m.exec(out)?.[1];
};
/** Everything a failed preview must leave alone. */
const hostState = async () => ({
  proc: await procSysNet(host),
  tc: await onHost(host, "tc qdisc show"),
  files: await onHost(
    host,
    "ls -la /etc/sysctl.d /etc/systemd/system /etc/modules-load.d 2>&1 | grep -v '^total'",
  ),
});

/** The target nettune names in messages: `user@address:port`. */
const TARGET_OF = (h: SandboxHost) => `${h.user}@${h.hostAddress}:${h.directPort}`;

const args = (c: Omit<CongestionArg, "name" | "host">, name = "cc") => ({
  ccs: [{ name, host: direct(host), ...c }],
});

const TBF = "tc qdisc replace dev ntcc0 root tbf rate 1gbit burst 256kb latency 50ms";

beforeAll(async () => {
  host = sandboxHosts()[1]!;
  await onHost(
    host,
    [
      "ip link del ntcc0 2>/dev/null",
      "ip link add ntcc0 numtxqueues 4 numrxqueues 4 type veth peer name ntcc1",
      "ip link set dev ntcc0 up && ip link set dev ntcc1 up",
      TBF,
    ].join("\n"),
  );
});
afterAll(async () => {
  await onHost(host, "ip link del ntcc0 2>/dev/null; true");
});

describe("CongestionControl lifecycle", () => {
  const stack = LIFECYCLE;
  const DECL = { algorithm: "reno", qdisc: "pfifo_fast", interfaces: ["ntcc0", "ntcc1"] };
  let originalAlgorithm: string;
  let tbfBefore: Qdisc;
  afterAll(() => {
    stack.destroy(args(DECL));
    stack.dispose();
  });

  test("up sets the algorithm and the root qdiscs, persists them, and a new connection reports the algorithm", async () => {
    originalAlgorithm = await algorithm();
    expect(originalAlgorithm).toBe("bbr");
    tbfBefore = (await rootOf("ntcc0"))!;
    expect(tbfBefore.kind).toBe("tbf");
    expect(await rootOf("ntcc1")).toMatchObject({ kind: "noqueue", handle: "0:" });

    const r = stack.up(args(DECL));
    expect(r.error).toBeUndefined();
    expect(r.changes.create).toBe(2);
    expect(await algorithm()).toBe("reno");
    expect((await rootOf("ntcc0"))?.kind).toBe("pfifo_fast");
    expect((await rootOf("ntcc1"))?.kind).toBe("pfifo_fast");

    // What the resource saw on a connection it opened after applying, and what a new one gets.
    expect(r.outputs.cc_observedAlgorithm).toBe("reno");
    expect(await newConnectionAlgorithm()).toBe("reno");

    expect(r.outputs.cc_originals).toMatchObject({
      algorithm: "bbr",
      defaultQdisc: null,
      qdiscs: {
        ntcc0: { kind: "tbf", handle: tbfBefore.handle, kernelDefault: false },
        ntcc1: { kind: "noqueue", handle: "0:", kernelDefault: true },
      },
    });
    expect(r.outputs.cc_applied).toEqual({
      algorithm: "reno",
      defaultQdisc: null,
      qdisc: "pfifo_fast",
    });
    expect(r.outputs.cc_rootQdiscs).toEqual({ ntcc0: "pfifo_fast", ntcc1: "pfifo_fast" });
    expect((r.outputs.cc_warnings as string[]).join("\n")).toMatch(
      /net\.core\.default_qdisc does not exist on .*only the root qdisc of ntcc0, ntcc1 is set to pfifo_fast/,
    );
    // Create's warning is shown under the resource, not the stack.
    const shown = r.events.filter(
      (e) =>
        e.type === "diagnostic" &&
        e.severity === "warning" &&
        (e.message ?? "").includes("net.core.default_qdisc does not exist"),
    );
    expect(shown.map((e) => e.urn)).toEqual([
      expect.stringMatching(/::pulumi-nodejs:dynamic\/nettune:CongestionControl::cc$/),
    ]);
    const file = await onHost(host, `cat ${SYSCTL_FILE}`);
    expect(file).toContain("net.ipv4.tcp_congestion_control = reno");
    expect(file).not.toContain("default_qdisc");
    expect(r.outputs.cc_filePath).toBe(SYSCTL_FILE);
    expect(r.outputs.cc_unitPaths).toEqual([
      `/etc/systemd/system/nettune-qdisc-${CC}-ntcc0.service`,
      `/etc/systemd/system/nettune-qdisc-${CC}-ntcc1.service`,
    ]);
    const enabled = await onHost(
      host,
      `systemctl is-enabled nettune-qdisc-${CC}-ntcc0.service nettune-qdisc-${CC}-ntcc1.service`,
    );
    expect(enabled.trim().split("\n")).toEqual(["enabled", "enabled"]);
  });

  test("a second preview and up change nothing", () => {
    const p = stack.preview(args(DECL));
    expect(p.error).toBeUndefined();
    expect(p.changes).toEqual({ same: 2 });
    expect(stack.up(args(DECL)).changes).toEqual({ same: 2 });
  });

  test("an algorithm set with sysctl -w and a root qdisc replaced behind Pulumi's back show as drift; up repairs both", async () => {
    await onHost(
      host,
      "sysctl -q -w net.ipv4.tcp_congestion_control=bbr && tc qdisc replace dev ntcc1 root pfifo",
    );
    const r = stack.refresh(args(DECL));
    expect(r.error).toBeUndefined();
    expect(r.changes.update).toBe(1);
    const refreshed = r.events.find((e) => e.type === "outputs" && e.resourceType === TYPE);
    expect(refreshed?.newOutputs).toMatchObject({
      algorithm: "bbr",
      qdisc: "pfifo",
      observedAlgorithm: "bbr",
      rootQdiscs: { ntcc0: "pfifo_fast", ntcc1: "pfifo" },
    });
    const p = stack.preview(args(DECL));
    expect(p.changes).toEqual({ same: 1, update: 1 });
    const resourcePart = p.stdout.split("--outputs:--")[0]!;
    expect(resourcePart).toMatch(/~ algorithm\s*: "bbr" => "reno"/);
    expect(resourcePart).toMatch(/~ qdisc\s*: "pfifo" => "pfifo_fast"/);
    const u = stack.up(args(DECL));
    expect(u.error).toBeUndefined();
    expect(await algorithm()).toBe("reno");
    expect((await rootOf("ntcc1"))?.kind).toBe("pfifo_fast");
    expect(u.outputs.cc_observedAlgorithm).toBe("reno");
  });

  test("editing the qdisc previews exactly qdisc old => new and up replaces the roots", async () => {
    const edited = { ...DECL, qdisc: "htb" };
    const p = stack.preview(args(edited));
    expect(p.changes).toEqual({ same: 1, update: 1 });
    const changed = p.stdout
      .split("--outputs:--")[0]!
      .split("\n")
      .filter((l) => /^\s*[-+~] /.test(l) && !l.includes("pulumi-nodejs:dynamic"));
    expect(changed).toEqual([expect.stringMatching(/~ qdisc\s*: "pfifo_fast" => "htb"/)]);
    // Preview never changes the host.
    expect((await rootOf("ntcc0"))?.kind).toBe("pfifo_fast");
    const u = stack.up(args(edited));
    expect(u.error).toBeUndefined();
    expect((await rootOf("ntcc0"))?.kind).toBe("htb");
    expect((await rootOf("ntcc1"))?.kind).toBe("htb");
    expect(await algorithm()).toBe("reno");
  });

  test("destroy restores the algorithm and each interface's previous root qdisc, and removes its files and units", async () => {
    const r = stack.destroy(args({ ...DECL, qdisc: "htb" }));
    expect(r.error).toBeUndefined();
    expect(r.changes.delete).toBe(2);
    expect(await algorithm()).toBe(originalAlgorithm);
    expect(await newConnectionAlgorithm()).toBe(originalAlgorithm);
    // ntcc0 gets its tbf back under its own handle, with its rate and limit; tc turns burst into
    // whole microseconds at its rate, so burst (and the latency derived from it) may round by a
    // fraction of a percent.
    const tbf = (await rootOf("ntcc0"))!;
    expect(tbf).toMatchObject({ kind: "tbf", handle: tbfBefore.handle });
    expect(tbf.options.rate).toBe(tbfBefore.options.rate);
    expect(tbf.options.limit).toBe(tbfBefore.options.limit);
    const near = (a: unknown, b: unknown) => Math.abs(Number(a) - Number(b)) / Number(b);
    expect(near(tbf.options.burst, tbfBefore.options.burst)).toBeLessThan(0.001);
    expect(near(tbf.options.lat, tbfBefore.options.lat)).toBeLessThan(0.001);
    // ntcc1 gets the kernel's own default back.
    expect(await rootOf("ntcc1")).toMatchObject({ kind: "noqueue", handle: "0:" });
    const files = await onHost(host, "ls /etc/sysctl.d /etc/systemd/system /etc/modules-load.d");
    expect(files).not.toMatch(/nettune-congestion-cc|nettune-qdisc-cc|nettune-cc/);
  });
});

describe("CongestionControl on an interface that has never been up (a bridge without ports)", () => {
  // tc lists no root qdisc for such a device (`ip link` shows `qdisc noop`), yet a root can be
  // set on it; before, preview passed and up failed with "no interface tbr0".
  const stack = new EngineStack("congestion", "downbridge");
  const decl = () => args({ algorithm: "reno", qdisc: "pfifo_fast", interfaces: ["tbr0"] }, "br");
  const tcJson = async () => JSON.parse(await onHost(host, "tc -j qdisc show dev tbr0")) as Qdisc[];
  beforeAll(async () => {
    await onHost(host, "ip link del tbr0 2>/dev/null; ip link add tbr0 type bridge");
  });
  afterAll(async () => {
    stack.destroy(decl());
    stack.dispose();
    await onHost(host, "ip link del tbr0 2>/dev/null; true");
  });

  test("preview and up set its root qdisc; destroy gives it back the kernel's noop", async () => {
    expect(await tcJson()).toEqual([]);
    expect(await onHost(host, "ip link show dev tbr0")).toMatch(/qdisc noop state DOWN/);

    const p = stack.preview(decl());
    expect(p.error).toBeUndefined();
    expect(p.changes.create).toBe(2);
    const u = stack.up(decl());
    expect(u.error).toBeUndefined();
    expect((await rootOf("tbr0"))?.kind).toBe("pfifo_fast");
    expect(u.outputs.br_originals).toMatchObject({
      qdiscs: { tbr0: { kind: "noop", handle: "0:", params: [], kernelDefault: true } },
    });
    expect(u.outputs.br_rootQdiscs).toEqual({ tbr0: "pfifo_fast" });
    expect(stack.up(decl()).changes).toEqual({ same: 2 });

    const d = stack.destroy(decl());
    expect(d.error).toBeUndefined();
    expect(await tcJson()).toEqual([]);
    expect(await onHost(host, "ip link show dev tbr0")).toMatch(/qdisc noop state DOWN/);
    // Brought up, it gets the kernel's default, as if nettune had never been there.
    await onHost(host, "ip link set dev tbr0 up");
    expect(await rootOf("tbr0")).toMatchObject({ kind: "noqueue", handle: "0:" });
  });
});

describe("CongestionControl warnings", () => {
  test("bbr without fq on a host whose kernel has no fq: preview gives no advice to use fq, and changes nothing", async () => {
    const stack = new EngineStack("congestion", "bbr");
    const decl = args({ algorithm: "bbr", qdisc: "pfifo_fast", interfaces: ["ntcc1"] });
    try {
      const before = await hostState();
      // This sandbox kernel offers no fq: the advice would be noise on every preview.
      const fq = stack.preview(args({ algorithm: "bbr", qdisc: "fq", interfaces: ["ntcc1"] }));
      expect(fq.error).toMatch(/fq is not available/);
      const p = stack.preview(decl);
      expect(p.error).toBeUndefined();
      const warnings = p.events
        .filter((e) => e.type === "diagnostic" && e.severity === "warning")
        .map((e) => e.message ?? "")
        .join("\n");
      expect(warnings).not.toMatch(/fq/);
      expect(await hostState()).toEqual(before);
    } finally {
      stack.dispose();
    }
  });
});

describe("CongestionControl qdiscFallback on this kernel without fq", () => {
  test('fq with qdiscFallback "none": preview says the algorithm runs alone, under the resource; up sets it alone; destroy puts the host back', async () => {
    const stack = new EngineStack("congestion", "fallback");
    // The algorithm the host is not on (this namespace may set reno and bbr).
    const live = (await onHost(host, "cat /proc/sys/net/ipv4/tcp_congestion_control")).trim();
    const algorithm = live === "bbr" ? "reno" : "bbr";
    const decl = args({ algorithm, qdisc: "fq", qdiscFallback: "none", interfaces: ["ntcc1"] });
    const state = async () => ({
      proc: await procSysNet(host),
      tc: await onHost(host, "tc qdisc show"),
      files: await onHost(host, "ls /etc/sysctl.d /etc/systemd/system /etc/modules-load.d"),
    });
    try {
      const before = await state();
      const p = stack.preview(decl);
      expect(p.error).toBeUndefined();
      const notes = p.events.filter(
        (e) =>
          e.type === "diagnostic" &&
          e.severity === "warning" &&
          /qdiscFallback/.test(e.message ?? ""),
      );
      expect(notes.map((e) => e.message?.trim())).toEqual([
        `qdisc: fq is not available on ${TARGET_OF(host)}; available: bfifo htb noqueue pfifo pfifo_fast pfifo_head_drop. ` +
          `qdiscFallback is "none": no qdisc is set (${algorithm} runs alone, and ntcc1 keeps its root qdisc)`,
      ]);
      expect(notes[0]!.urn).toMatch(/CongestionControl::cc$/);
      expect(await state()).toEqual(before);
      const up = stack.up(decl);
      expect(up.error).toBeUndefined();
      expect(up.outputs.cc_applied).toEqual({ algorithm, defaultQdisc: null, qdisc: null });
      expect((await onHost(host, "cat /proc/sys/net/ipv4/tcp_congestion_control")).trim()).toBe(
        algorithm,
      );
      expect(stack.preview(decl).changes).toEqual({ same: 2 });
      expect(stack.destroy(decl).error).toBeUndefined();
      expect(await state()).toEqual(before);
    } finally {
      stack.destroy(decl);
      stack.dispose();
    }
  });
});

describe("CongestionControl: what the host does not offer fails at preview, host unchanged", () => {
  const cases: Array<[string, Omit<CongestionArg, "name" | "host">, string, RegExp]> = [
    [
      "vegas (not in this kernel)",
      { algorithm: "vegas" },
      "algorithm",
      /vegas is not available on .*; available: bbr reno/,
    ],
    [
      "cubic (in the kernel, but not allowed in a network namespace)",
      { algorithm: "cubic" },
      "algorithm",
      /cubic is in the kernel, but .* is a network namespace .*tcp_allowed_congestion_control.*: bbr reno/,
    ],
    [
      "fq (not in this kernel)",
      { algorithm: "reno", qdisc: "fq", interfaces: ["ntcc1"] },
      "qdisc",
      /fq is not available on .*; available: bfifo htb noqueue pfifo pfifo_fast pfifo_head_drop/,
    ],
    [
      "fq_codel (not in this kernel)",
      { algorithm: "bbr", qdisc: "fq_codel", interfaces: ["ntcc1"] },
      "qdisc",
      /fq_codel is not available on .*; available: bfifo htb/,
    ],
    [
      "tbf (needs parameters)",
      { algorithm: "reno", qdisc: "tbf", interfaces: ["ntcc1"] },
      "qdisc",
      /tbf needs parameters/,
    ],
    [
      "a qdisc with no interfaces where default_qdisc does not exist",
      { algorithm: "reno", qdisc: "pfifo" },
      "qdisc",
      /net\.core\.default_qdisc does not exist on .*list the interfaces/,
    ],
    [
      "an interface the host lacks",
      { algorithm: "reno", qdisc: "pfifo", interfaces: ["ntcc1", "ntcc9"] },
      "interfaces[1]",
      /no interface ntcc9/,
    ],
    [
      "an algorithm name with shell in it",
      { algorithm: "bbr; reboot" },
      "algorithm",
      /must be a lower-case name/,
    ],
  ];

  test(`${cases.length} declarations each fail preview naming the field and what the host has`, async () => {
    const before = await hostState();
    const stack = new EngineStack("congestion", "bad");
    try {
      const results = stack.previewEach(cases.map(([, c]) => args(c, "bad")));
      for (const [i, [label, , field, reason]] of cases.entries()) {
        const r = results[i]!;
        expect(r.ok, `${label} should fail`).toBe(false);
        const errors = r.events
          .filter((e) => e.type === "diagnostic" && e.severity === "error")
          .map((e) => e.message ?? "")
          .join("\n");
        expect(namesField(errors, field), `${label}: ${errors}`).toBe(true);
        expect(errors, label).toMatch(reason);
        expect(resourceOps(r, TYPE)).not.toContain("create");
      }
    } finally {
      stack.dispose();
    }
    expect(await hostState()).toEqual(before);
  });
});

describe("CongestionControl persistence across a real reboot", () => {
  // A reboot recreates only eth0 and lo: ntcc0/ntcc1 are gone afterwards. So the qdisc part of
  // persistence is tested on eth0, which carries the SSH session, with pfifo_fast: harmless, and
  // different from the noqueue the kernel gives a veth.
  test("the algorithm (sysctl.d) and eth0's root qdisc (systemd unit) come back after a reboot; destroy removes both", async () => {
    const stack = new EngineStack("congestion", "persist");
    const decl = args({ algorithm: "reno", qdisc: "pfifo_fast", interfaces: ["eth0"] }, "boot");
    try {
      expect(await rootOf("eth0")).toMatchObject({ kind: "noqueue", handle: "0:" });
      expect(stack.up(decl).error).toBeUndefined();
      cli(["sandbox", "reboot", "host2", "--name", SANDBOX]);
      expect(await algorithm()).toBe("reno");
      expect((await rootOf("eth0"))?.kind).toBe("pfifo_fast");
      expect(await newConnectionAlgorithm()).toBe("reno");

      const d = stack.destroy(decl);
      expect(d.error).toBeUndefined();
      expect(await algorithm()).toBe("bbr");
      expect(await rootOf("eth0")).toMatchObject({ kind: "noqueue", handle: "0:" });
      // Destroy plus reboot gives the defaults back: nothing of the resource is left to run.
      cli(["sandbox", "reboot", "host2", "--name", SANDBOX]);
      expect(await algorithm()).toBe("bbr");
      expect(await rootOf("eth0")).toMatchObject({ kind: "noqueue", handle: "0:" });
    } finally {
      stack.destroy(decl);
      stack.dispose();
    }
  });
});
