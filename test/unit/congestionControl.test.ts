/**
 * The CongestionControl lifecycle against fake hosts whose scripts are really run by dash, with
 * /proc/sys, /etc, the kernel's module lists and tc kept in a temp directory
 * (test/helpers/fakeNetHost.ts). Two hosts:
 *
 * - NAMESPACE: what a sandbox host showed (test/fixtures/congestion/probe-sandbox-host-*): a
 *   network namespace of a kernel with everything built in and no modules directory, where only
 *   reno and bbr may be set and net.core.default_qdisc does not exist; its veth ntcc0 has the
 *   tbf root captured there (test/fixtures/tc/veth-tbf.raw.json).
 * - MODULAR: a machine's first namespace with a distribution-style kernel where bbr, fq and
 *   fq_codel are modules. No machine with such a kernel was at hand: its module lists and
 *   config lines are written here, in the formats of modules.dep, modules.builtin, /proc/modules
 *   and /proc/config.gz, and marked as such.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";

import {
  congestionControlHandler as handler,
  type CongestionControlOutputs,
} from "../../src/specs/congestionControl";
import { congestionControlSchema } from "../../src/schemas/congestionControl";
import { handle, setTransportFactory } from "../../src/engine/provider";
import { checkFailures } from "../helpers/checkErrors";
import { validate, type HandlerContext } from "../../src/engine/lifecycle";
import { renderLinkUnit } from "../../src/host/systemd";
import { ALWAYS_QDISCS } from "../../src/host/tc";
import { FakeNetHost, type FakeNetHostOptions, type FakeQdisc } from "../helpers/fakeNetHost";

const CONNECTION = {
  host: "198.18.9.9",
  privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
};
const TARGET = "root@198.18.9.9:22";
const FIX = path.join(__dirname, "..", "fixtures");
const CC_KEY = "net.ipv4.tcp_congestion_control";
const QDISC_KEY = "net.core.default_qdisc";

const NOQUEUE: FakeQdisc = { kind: "noqueue", handle: "0:", root: true, refcnt: 2, options: {} };
const TBF = (
  JSON.parse(fs.readFileSync(path.join(FIX, "tc/veth-tbf.raw.json"), "utf8")) as FakeQdisc[]
)[0]!;

const NAMESPACE: FakeNetHostOptions = {
  algorithm: "bbr",
  available: "reno bbr cubic",
  allowed: "reno bbr",
  namespace: true,
  config: fs.readFileSync(path.join(FIX, "congestion/config-6.18.44-fc-v782.txt"), "utf8"),
  kinds: [...ALWAYS_QDISCS, "htb", "tbf", "ingress", "clsact"],
  devices: { eth0: [NOQUEUE], ntcc0: [TBF], ntcc1: [NOQUEUE] },
};

// Written for this test (see the header): a kernel with bbr, htcp, fq and fq_codel as modules.
const FQ_CODEL: FakeQdisc = {
  kind: "fq_codel",
  handle: "0:",
  root: true,
  refcnt: 2,
  options: { limit: 10240, flows: 1024, quantum: 1514, target: 4999, interval: 99999 },
};
const MODULAR: FakeNetHostOptions = {
  algorithm: "cubic",
  available: "reno cubic",
  allowed: "reno cubic",
  namespace: false,
  defaultQdisc: "fq_codel",
  config: [
    "CONFIG_TCP_CONG_ADVANCED=y",
    "CONFIG_TCP_CONG_CUBIC=y",
    "CONFIG_TCP_CONG_BBR=m",
    "CONFIG_TCP_CONG_HTCP=m",
    "# CONFIG_TCP_CONG_VEGAS is not set",
    "CONFIG_NET_SCH_HTB=m",
    "CONFIG_NET_SCH_FQ=m",
    "CONFIG_NET_SCH_FQ_CODEL=m",
    "",
  ].join("\n"),
  loadable: [
    "kernel/net/ipv4/tcp_bbr.ko.xz",
    "kernel/net/ipv4/tcp_htcp.ko.xz",
    "kernel/net/ipv4/tcp_diag.ko.xz",
    "kernel/net/sched/sch_htb.ko.xz",
    "kernel/net/sched/sch_fq.ko.xz",
    "kernel/net/sched/sch_fq_codel.ko.xz",
  ],
  builtin: ["kernel/net/ipv4/tcp_cubic.ko"],
  loaded: [
    "sch_fq_codel 24576 2 - Live 0x0000000000000000",
    "virtio_net 77824 0 - Live 0x0000000000000000",
  ],
  kinds: [...ALWAYS_QDISCS, "htb", "fq", "fq_codel"],
  devices: { eth0: [FQ_CODEL] },
};

const inputsOf = (fields: Record<string, unknown>) =>
  congestionControlSchema.parse({ connection: CONNECTION, resourceName: "cc", ...fields });

const hosts: FakeNetHost[] = [];
async function fake(options: FakeNetHostOptions) {
  const host = new FakeNetHost(options);
  hosts.push(host);
  await host.listen();
  const warnings: string[] = [];
  const ctx: HandlerContext = { transport: host, warn: (m) => warnings.push(m) };
  return { host, warnings, ctx };
}
afterEach(async () => {
  while (hosts.length) await hosts.pop()!.close();
});

const rootKind = (host: FakeNetHost, dev: string) => host.qdiscs()[dev]?.[0];
const DECL = { algorithm: "reno", qdisc: "pfifo_fast", interfaces: ["ntcc0", "ntcc1"] };
const SYSCTL_FILE = "/etc/sysctl.d/90-nettune-congestion-cc.conf";
const unitFile = (dev: string) => `/etc/systemd/system/nettune-qdisc-cc-${dev}.service`;

describe("a network namespace with everything built in (a sandbox host)", () => {
  it("create sets the algorithm and root qdiscs in 2 round trips, persists them, and reads the algorithm on a new connection", async () => {
    const { host, ctx, warnings } = await fake(NAMESPACE);
    const { id, outs } = await handler.create(inputsOf(DECL), ctx);

    expect(host.stats.execs).toBe(2);
    expect(id).toBe(`${TARGET}/congestion/cc`);
    expect(host.proc(CC_KEY)).toBe("reno");
    expect(rootKind(host, "ntcc0")?.kind).toBe("pfifo_fast");
    expect(rootKind(host, "ntcc1")?.kind).toBe("pfifo_fast");
    expect(outs).toMatchObject({
      originals: {
        algorithm: "bbr",
        defaultQdisc: null,
        qdiscs: {
          ntcc0: {
            kind: "tbf",
            handle: "8022:",
            params: ["rate", "125000000bps", "burst", "262125", "limit", "6512144"],
            kernelDefault: false,
          },
          ntcc1: { kind: "noqueue", handle: "0:", params: [], kernelDefault: true },
        },
      },
      applied: { algorithm: "reno", defaultQdisc: null, qdisc: "pfifo_fast" },
      rootQdiscs: { ntcc0: "pfifo_fast", ntcc1: "pfifo_fast" },
      modules: [],
      modulesFilePath: null,
      filePath: SYSCTL_FILE,
      unitPaths: [
        "/etc/systemd/system/nettune-qdisc-cc-ntcc0.service",
        "/etc/systemd/system/nettune-qdisc-cc-ntcc1.service",
      ],
      observedAlgorithm: "reno",
    });
    // The only warning: the kernel-wide default qdisc does not exist in a namespace.
    expect(warnings).toEqual([
      `net.core.default_qdisc does not exist on ${TARGET} (it is kernel-wide and absent inside a network namespace): only the root qdisc of ntcc0, ntcc1 is set to pfifo_fast`,
    ]);
    expect(outs.warnings).toEqual(warnings);

    const unit = (dev: string) =>
      renderLinkUnit({
        name: `nettune-qdisc-cc-${dev}.service`,
        description: `nettune CongestionControl cc: root qdisc pfifo_fast on ${dev}`,
        interface: dev,
        commands: [["tc", "qdisc", "replace", "dev", dev, "root", "pfifo_fast"]],
      });
    expect(host.etc()).toEqual({
      [SYSCTL_FILE]:
        "# Managed by nettune (cc). Changes here are overwritten; edit the Pulumi program instead.\n" +
        "net.ipv4.tcp_congestion_control = reno\n",
      [unitFile("ntcc0")]: unit("ntcc0"),
      [unitFile("ntcc1")]: unit("ntcc1"),
    });
    expect(host.log("systemctl")).toEqual([
      "enable --quiet --no-reload nettune-qdisc-cc-ntcc0.service",
      "daemon-reload",
      "enable --quiet --no-reload nettune-qdisc-cc-ntcc1.service",
      "daemon-reload",
    ]);
    // Built in: modprobe is never run, and its absence would not matter.
    expect(host.log("modprobe")).toEqual([]);
  });

  it("read shows the live algorithm and root qdiscs, so refresh finds drift", async () => {
    const { host, ctx } = await fake(NAMESPACE);
    const { id, outs } = await handler.create(inputsOf(DECL), ctx);
    host.stats.execs = 0;
    const same = await handler.read(id, outs, ctx);
    expect(host.stats.execs).toBe(1);
    expect(same.props).toEqual({ ...outs, warnings: [] });
    expect(same.inputs).toEqual(inputsOf(DECL));

    host.setProc(CC_KEY, "bbr");
    host.setRoot("ntcc1", { kind: "pfifo", handle: "1:", root: true, options: { limit: 100 } });
    const drift = await handler.read(id, outs, ctx);
    expect(drift.props).toMatchObject({
      algorithm: "bbr",
      qdisc: "pfifo",
      observedAlgorithm: "bbr",
      rootQdiscs: { ntcc0: "pfifo_fast", ntcc1: "pfifo" },
      originals: { algorithm: "bbr" },
      applied: { algorithm: "reno" },
    });
    expect(drift.inputs).toEqual({ ...inputsOf(DECL), algorithm: "bbr", qdisc: "pfifo" });
    expect(handler.diff(id, drift.props, inputsOf(DECL)).detailedDiff).toEqual({
      algorithm: { kind: "update", inputDiff: true },
      qdisc: { kind: "update", inputDiff: true },
    });
  });

  it("delete restores the algorithm and each interface's root qdisc, and removes the files and units", async () => {
    const { host, ctx, warnings } = await fake(NAMESPACE);
    const before = host.snapshot();
    const { id, outs } = await handler.create(inputsOf(DECL), ctx);
    warnings.length = 0;
    host.stats.execs = 0;
    await handler.delete(id, outs, ctx);
    expect(host.stats.execs).toBe(2);
    expect(warnings).toEqual([]);
    expect(host.proc(CC_KEY)).toBe("bbr");
    // tbf comes back under its handle with its settings; ntcc1 gets the kernel's default again.
    expect(rootKind(host, "ntcc0")).toMatchObject({
      kind: "tbf",
      handle: "8022:",
      options: { rate: 125000000, burst: 262125, limit: 6512144 },
    });
    expect(rootKind(host, "ntcc1")).toEqual(NOQUEUE);
    expect(host.etc()).toEqual({});
    expect(host.log("tc")).toContain(
      "qdisc replace dev ntcc0 root handle 8022: tbf rate 125000000bps burst 262125 limit 6512144",
    );
    expect(host.log("tc")).toContain("qdisc del dev ntcc1 root");
    expect(host.snapshot()).toEqual(before);
  });

  it("delete leaves a root qdisc changed outside nettune, and says so", async () => {
    const { host, ctx, warnings } = await fake(NAMESPACE);
    const { id, outs } = await handler.create(inputsOf(DECL), ctx);
    warnings.length = 0;
    const htb: FakeQdisc = { kind: "htb", handle: "1:", root: true, options: { r2q: 10 } };
    host.setRoot("ntcc1", htb);
    await handler.delete(id, outs, ctx);
    expect(warnings).toEqual([
      `root qdisc of ntcc1: left at htb on ${TARGET}: it was changed outside nettune after it was set to pfifo_fast`,
    ]);
    expect(rootKind(host, "ntcc1")).toEqual(htb);
    expect(rootKind(host, "ntcc0")?.kind).toBe("tbf");
    expect(host.proc(CC_KEY)).toBe("bbr");
  });

  it("a failing interface undoes the algorithm and the interface already changed; the error names it", async () => {
    const { host, ctx } = await fake(NAMESPACE);
    host.failTc("replace", "ntcc1", "RTNETLINK answers: No buffer space available");
    const before = host.snapshot();
    await expect(handler.create(inputsOf(DECL), ctx)).rejects.toThrow(
      `interfaces: tc qdisc replace dev ntcc1 root pfifo_fast failed on ${TARGET}: ` +
        "RTNETLINK answers: No buffer space available; nothing was changed: every step already applied was undone",
    );
    expect(host.snapshot()).toEqual(before);
    // It did change them before it failed: the undo is real.
    expect(host.log("tc")).toContain("qdisc replace dev ntcc0 root pfifo_fast");
  });

  it("a failing persistence step undoes everything, files included", async () => {
    const { host, ctx } = await fake(NAMESPACE);
    host.failSystemctl("Failed to enable unit: Unit file is masked.");
    const before = host.snapshot();
    await expect(handler.create(inputsOf(DECL), ctx)).rejects.toThrow(
      /^persist: install the systemd unit nettune-qdisc-cc-ntcc0\.service failed on .*Unit file is masked\.; nothing was changed/,
    );
    expect(host.snapshot()).toEqual(before);
  });

  it.each([
    [
      "vegas",
      { algorithm: "vegas" },
      "algorithm",
      `vegas is not available on ${TARGET}; available: bbr reno`,
    ],
    [
      "cubic",
      { algorithm: "cubic" },
      "algorithm",
      `cubic is in the kernel, but ${TARGET} is a network namespace (a container), which may only set ` +
        "the algorithms in net.ipv4.tcp_allowed_congestion_control, decided by the machine: bbr reno",
    ],
    [
      "fq",
      { algorithm: "reno", qdisc: "fq", interfaces: ["ntcc1"] },
      "qdisc",
      `fq is not available on ${TARGET}; available: bfifo htb noqueue pfifo pfifo_fast pfifo_head_drop`,
    ],
    [
      "a qdisc without interfaces",
      { algorithm: "reno", qdisc: "pfifo" },
      "qdisc",
      `net.core.default_qdisc does not exist on ${TARGET}: it is kernel-wide and absent inside a network ` +
        "namespace (a container); list the interfaces whose root qdisc to replace, or leave qdisc out",
    ],
    [
      "a missing interface",
      { algorithm: "reno", qdisc: "pfifo", interfaces: ["ntcc1", "ntcc9"] },
      "interfaces[1]",
      `no interface ntcc9 on ${TARGET}`,
    ],
  ])(
    "%s fails the preview check, and create when preview could not check, host unchanged",
    async (_label, fields, property, reason) => {
      const { host, ctx } = await fake(NAMESPACE);
      const before = host.snapshot();
      expect(await handler.hostCheck!(inputsOf(fields), ctx)).toEqual([{ property, reason }]);
      host.stats.execs = 0;
      await expect(handler.create(inputsOf(fields), ctx)).rejects.toThrow(`${property}: ${reason}`);
      // Only the read-only probe ran.
      expect(host.stats.execs).toBe(1);
      expect(host.snapshot()).toEqual(before);
    },
  );

  it("update changes the qdisc, puts back an interface taken out of the list, then drops persistence", async () => {
    const { host, ctx } = await fake(NAMESPACE);
    const { id, outs } = await handler.create(inputsOf(DECL), ctx);
    const next = inputsOf({ algorithm: "reno", qdisc: "htb", interfaces: ["ntcc0"] });
    const diff = handler.diff(id, outs, next);
    expect(diff.detailedDiff).toEqual({
      qdisc: { kind: "update", inputDiff: true },
      interfaces: { kind: "update", inputDiff: true },
    });
    expect(diff.replaces).toEqual([]);
    const updated = await handler.update(id, outs, next, ctx);
    expect(rootKind(host, "ntcc0")?.kind).toBe("htb");
    expect(rootKind(host, "ntcc1")).toEqual(NOQUEUE);
    // The original of ntcc0 is still the tbf it had before nettune first touched it.
    expect(updated.originals.qdiscs).toEqual({ ntcc0: outs.originals.qdiscs.ntcc0 });
    expect(updated.unitPaths).toEqual(["/etc/systemd/system/nettune-qdisc-cc-ntcc0.service"]);
    expect(Object.keys(host.etc()).sort()).toEqual([unitFile("ntcc0"), SYSCTL_FILE].sort());
    expect(host.etc()[unitFile("ntcc0")]).toContain("root htb");

    const runtimeOnly = inputsOf({
      algorithm: "reno",
      qdisc: "htb",
      interfaces: ["ntcc0"],
      persist: false,
    });
    const last = await handler.update(id, updated, runtimeOnly, ctx);
    expect(last).toMatchObject({ filePath: null, unitPaths: [] });
    expect(host.etc()).toEqual({});
    expect(rootKind(host, "ntcc0")?.kind).toBe("htb");

    await handler.delete(id, last, ctx);
    expect(rootKind(host, "ntcc0")).toMatchObject({ kind: "tbf", handle: "8022:" });
    expect(host.proc(CC_KEY)).toBe("bbr");
  });
});

describe("a first namespace whose kernel has bbr, fq and fq_codel as modules", () => {
  const BBR_FQ = { algorithm: "bbr", qdisc: "fq", interfaces: ["eth0"] };

  it("create loads the modules, lists them in modules-load.d, sets both keys and the root qdisc", async () => {
    const { host, ctx, warnings } = await fake(MODULAR);
    const { outs } = await handler.create(inputsOf(BBR_FQ), ctx);
    expect(host.log("modprobe")).toEqual(["tcp_bbr", "sch_fq"]);
    expect(host.proc(CC_KEY)).toBe("bbr");
    expect(host.proc(QDISC_KEY)).toBe("fq");
    expect(rootKind(host, "eth0")?.kind).toBe("fq");
    expect(outs).toMatchObject({
      originals: {
        algorithm: "cubic",
        defaultQdisc: "fq_codel",
        qdiscs: { eth0: { kind: "fq_codel", handle: "0:", kernelDefault: true } },
      },
      applied: { defaultQdisc: "fq" },
      modules: ["tcp_bbr", "sch_fq"],
      modulesFilePath: "/etc/modules-load.d/nettune-cc.conf",
      observedAlgorithm: "bbr",
    });
    expect(host.etc()["/etc/modules-load.d/nettune-cc.conf"]).toBe(
      "# Managed by nettune (cc). Removed when the Pulumi resource is destroyed.\ntcp_bbr\nsch_fq\n",
    );
    expect(host.etc()[SYSCTL_FILE]).toBe(
      "# Managed by nettune (cc). Changes here are overwritten; edit the Pulumi program instead.\n" +
        "net.core.default_qdisc = fq\nnet.ipv4.tcp_congestion_control = bbr\n",
    );
    expect(warnings).toEqual([]);
  });

  it("delete puts the default qdisc back before the interface, so eth0 gets fq_codel again; modules stay loaded", async () => {
    const { host, ctx } = await fake(MODULAR);
    const { id, outs } = await handler.create(inputsOf(BBR_FQ), ctx);
    await handler.delete(id, outs, ctx);
    expect(host.proc(CC_KEY)).toBe("cubic");
    expect(host.proc(QDISC_KEY)).toBe("fq_codel");
    expect(rootKind(host, "eth0")).toEqual(FQ_CODEL);
    expect(host.etc()).toEqual({});
    expect(host.log("modprobe")).toEqual(["tcp_bbr", "sch_fq"]);
  });

  it("a failure after loading the modules unloads them and puts both keys back", async () => {
    const { host, ctx } = await fake(MODULAR);
    host.failTc("replace", "eth0", "Error: Exclusivity flag on, cannot modify.");
    const before = host.snapshot();
    await expect(handler.create(inputsOf(BBR_FQ), ctx)).rejects.toThrow(
      /^interfaces: tc qdisc replace dev eth0 root fq failed on .*Exclusivity flag on, cannot modify\.; nothing was changed/,
    );
    expect(host.snapshot()).toEqual(before);
    expect(host.log("modprobe")).toEqual(["tcp_bbr", "sch_fq", "-r sch_fq", "-r tcp_bbr"]);
  });

  it("bbr with another qdisc where fq exists: a warning recommends fq", async () => {
    const { ctx, warnings } = await fake(MODULAR);
    await handler.create(inputsOf({ algorithm: "bbr", qdisc: "fq_codel" }), ctx);
    expect(warnings).toEqual([
      `${TARGET} offers the fq qdisc: qdisc "fq" is the recommended pairing for bbr (bbr paces its ` +
        `packets itself since Linux 4.13, so it works with any qdisc; fq paces them at lower CPU cost)`,
    ]);
  });

  it("bbr with another qdisc on a kernel without fq: no advice to use fq", async () => {
    const noFq = {
      ...MODULAR,
      config: MODULAR.config!.replace("CONFIG_NET_SCH_FQ=m", "# CONFIG_NET_SCH_FQ is not set"),
      loadable: MODULAR.loadable!.filter((m) => !m.endsWith("/sch_fq.ko.xz")),
      kinds: MODULAR.kinds.filter((k) => k !== "fq"),
    };
    const { ctx, warnings } = await fake(noFq);
    await handler.create(inputsOf({ algorithm: "bbr", qdisc: "fq_codel" }), ctx);
    expect(warnings.filter((w) => w.includes('"fq"'))).toEqual([]);
  });

  it("without modprobe, a module algorithm fails at preview naming the module; a built-in one is fine", async () => {
    const { ctx } = await fake({ ...MODULAR, noModprobe: true });
    expect(await handler.hostCheck!(inputsOf({ algorithm: "bbr" }), ctx)).toEqual([
      {
        property: "algorithm",
        reason: `bbr comes as the module tcp_bbr, which is not loaded, and ${TARGET} has no modprobe (install kmod)`,
      },
    ]);
    expect(
      await handler.hostCheck!(inputsOf({ algorithm: "cubic", qdisc: "fq_codel" }), ctx),
    ).toEqual([]);
  });

  it("lists what the host offers, modules included", async () => {
    const { ctx } = await fake(MODULAR);
    expect(await handler.hostCheck!(inputsOf({ algorithm: "vegas", qdisc: "cake" }), ctx)).toEqual([
      {
        property: "algorithm",
        reason: `vegas is not available on ${TARGET}; available: bbr cubic htcp reno`,
      },
      {
        property: "qdisc",
        reason: `cake is not available on ${TARGET}; available: bfifo fq fq_codel htb noqueue pfifo pfifo_fast pfifo_head_drop`,
      },
    ]);
  });

  it("delete leaves an algorithm changed outside nettune, and says so", async () => {
    const { host, ctx, warnings } = await fake(MODULAR);
    const { id, outs } = await handler.create(inputsOf({ algorithm: "bbr" }), ctx);
    warnings.length = 0;
    host.setProc(CC_KEY, "htcp");
    await handler.delete(id, outs, ctx);
    expect(warnings).toEqual([
      `${CC_KEY}: left at htcp on ${TARGET}: it was changed outside nettune after it was set to bbr`,
    ]);
    expect(host.proc(CC_KEY)).toBe("htcp");
  });

  it("a new connection that gets another algorithm is reported", async () => {
    const { host, ctx, warnings } = await fake(MODULAR);
    host.observeAs("cubic");
    const { outs } = await handler.create(inputsOf({ algorithm: "bbr", qdisc: "fq" }), ctx);
    expect(outs.observedAlgorithm).toBe("cubic");
    expect(warnings).toEqual([
      `a new TCP connection on ${TARGET} got cubic, not bbr: a route with congctl, a BPF program or the application itself chooses another algorithm for it`,
    ]);
  });
});

describe("preview of a new CongestionControl on a host already as declared", () => {
  it("notes it when the algorithm, default qdisc and root qdiscs are live, and not otherwise", async () => {
    const { host, ctx } = await fake(NAMESPACE);
    // Applied once, then given back to the state: the host as another tool (or cloud-init) left it.
    await handler.create(inputsOf(DECL), ctx);
    const notes: string[] = [];
    const c: HandlerContext = { ...ctx, note: (m) => notes.push(m) };
    host.stats.execs = 0;
    expect(await handler.hostCheck!(inputsOf(DECL), c)).toEqual([]);
    expect(notes).toEqual([
      `already as declared on ${TARGET}: creating it changes no setting there ` +
        "(it records the values it finds as the originals and writes its own files and units)",
    ]);
    expect(host.stats.execs).toBe(1);
    notes.length = 0;
    expect(await handler.hostCheck!(inputsOf({ ...DECL, algorithm: "bbr" }), c)).toEqual([]);
    expect(await handler.hostCheck!(inputsOf({ ...DECL, qdisc: "pfifo" }), c)).toEqual([]);
    expect(notes).toEqual([]);
  });
});

describe("qdiscFallback: where the host cannot take qdisc", () => {
  const NO_FQ = `fq is not available on ${TARGET}; available: bfifo htb noqueue pfifo pfifo_fast pfifo_head_drop`;

  it('"none": preview says what it chose and why; create sets the algorithm alone', async () => {
    const { host, ctx, warnings } = await fake(NAMESPACE);
    const inputs = inputsOf({ algorithm: "reno", qdisc: "fq", qdiscFallback: "none" });
    expect(await handler.hostCheck!(inputs, ctx)).toEqual([]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^qdisc: fq is not available on \S+; available: .*\. qdiscFallback is "none": no qdisc is set \(reno runs alone\)$/,
    );
    const before = host.qdiscs();
    const { outs } = await handler.create(inputs, ctx);
    expect(host.proc(CC_KEY)).toBe("reno");
    expect(host.qdiscs()).toEqual(before);
    expect(outs.applied).toEqual({ algorithm: "reno", defaultQdisc: null, qdisc: null });
    expect(outs.qdisc).toBe("fq");
    expect(outs.warnings[0]).toBe(warnings[0]);
  });

  it("another qdisc: set on the listed interfaces instead, put back by delete", async () => {
    const { host, ctx } = await fake(NAMESPACE);
    const before = host.snapshot();
    const inputs = inputsOf({
      algorithm: "reno",
      qdisc: "fq",
      qdiscFallback: "pfifo_fast",
      interfaces: ["ntcc1"],
    });
    const { id, outs } = await handler.create(inputs, ctx);
    expect(rootKind(host, "ntcc1")?.kind).toBe("pfifo_fast");
    expect(outs.applied).toEqual({ algorithm: "reno", defaultQdisc: null, qdisc: "pfifo_fast" });
    expect(outs.unitPaths).toEqual([unitFile("ntcc1")]);
    await handler.delete(id, outs, ctx);
    expect(host.snapshot()).toEqual(before);
  });

  it("a fallback the host cannot take either fails naming qdiscFallback; none at all names qdisc", async () => {
    const { ctx } = await fake(NAMESPACE);
    expect(
      await handler.hostCheck!(
        inputsOf({
          algorithm: "reno",
          qdisc: "fq",
          qdiscFallback: "fq_codel",
          interfaces: ["ntcc1"],
        }),
        ctx,
      ),
    ).toEqual([
      {
        property: "qdiscFallback",
        reason: NO_FQ.replace("fq is", "fq_codel is"),
      },
    ]);
    expect(
      await handler.hostCheck!(
        inputsOf({ algorithm: "reno", qdisc: "fq", interfaces: ["ntcc1"] }),
        ctx,
      ),
    ).toEqual([{ property: "qdisc", reason: NO_FQ }]);
  });

  it("where the host has qdisc, the fallback is not used and nothing is said", async () => {
    const { host, ctx, warnings } = await fake(MODULAR);
    const inputs = inputsOf({ algorithm: "bbr", qdisc: "fq", qdiscFallback: "none" });
    expect(await handler.hostCheck!(inputs, ctx)).toEqual([]);
    const { outs } = await handler.create(inputs, ctx);
    expect(host.proc(QDISC_KEY)).toBe("fq");
    expect(outs.applied.defaultQdisc).toBe("fq");
    expect(warnings).toEqual([]);
  });

  it("inputs: it needs qdisc, and refuses a qdisc that needs parameters", () => {
    expect(() => inputsOf({ algorithm: "bbr", qdiscFallback: "none" })).toThrow(
      /qdiscFallback needs qdisc/,
    );
    expect(() => inputsOf({ algorithm: "bbr", qdisc: "fq", qdiscFallback: "tbf" })).toThrow(/tbf/);
  });
});

describe("the journal of originals (/var/lib/nettune/originals)", () => {
  const BBR_FQ = { algorithm: "bbr", qdisc: "fq", interfaces: ["eth0"] };
  const FOUND =
    "algorithm\tcubic\ndefaultQdisc\tfq_codel\n" +
    'qdisc eth0\t{"kind":"fq_codel","handle":"0:","params":[],"kernelDefault":true}\n';

  it("create writes what it found before its first change; delete puts it back and removes the journal", async () => {
    const { host, ctx } = await fake(MODULAR);
    const { id, outs } = await handler.create(inputsOf(BBR_FQ), ctx);
    expect(host.journals()).toEqual({ "cc-cc": FOUND });
    await handler.delete(id, outs, ctx);
    expect(host.proc(CC_KEY)).toBe("cubic");
    expect(host.journals()).toEqual({});
    expect(host.snapshot()).toMatchObject({ stateDir: false });
  });

  it("a create whose answer was lost, run again on the tuned host, records the first originals; delete restores them", async () => {
    const { host, ctx } = await fake(MODULAR);
    // The engine recorded nothing of the first create; the host is tuned.
    await handler.create(inputsOf(BBR_FQ), ctx);
    expect(host.proc(CC_KEY)).toBe("bbr");
    const { id, outs } = await handler.create(inputsOf(BBR_FQ), ctx);
    expect(outs.originals).toEqual({
      algorithm: "cubic",
      defaultQdisc: "fq_codel",
      qdiscs: { eth0: { kind: "fq_codel", handle: "0:", params: [], kernelDefault: true } },
    });
    await handler.delete(id, outs, ctx);
    expect(host.proc(CC_KEY)).toBe("cubic");
    expect(host.proc(QDISC_KEY)).toBe("fq_codel");
    expect(rootKind(host, "eth0")).toEqual(FQ_CODEL);
    expect(host.journals()).toEqual({});
  });

  it("a journal another writer left (cloud-init at first boot) gives the originals; a garbled root qdisc is read live", async () => {
    const { host, ctx } = await fake(MODULAR);
    host.setProc(CC_KEY, "bbr");
    host.setJournal("cc-cc", "algorithm\treno\ndefaultQdisc\tpfifo_fast\nqdisc eth0\tnot json\n");
    const { outs } = await handler.create(inputsOf(BBR_FQ), ctx);
    expect(outs.originals).toMatchObject({
      algorithm: "reno",
      defaultQdisc: "pfifo_fast",
      qdiscs: { eth0: { kind: "fq_codel", kernelDefault: true } },
    });
  });
});

describe("inputs", () => {
  it.each([
    [{ algorithm: "bbr; reboot" }, "algorithm", /lower-case name/],
    [{ algorithm: "BBR" }, "algorithm", /lower-case name/],
    [{ algorithm: "bbr", qdisc: "tbf", interfaces: ["eth0"] }, "qdisc", /tbf needs parameters/],
    [{ algorithm: "bbr", qdisc: "mq" }, "qdisc", /multi-queue/],
    [{ algorithm: "bbr", qdisc: "plug" }, "qdisc", /stops all traffic/],
    [{ algorithm: "bbr", interfaces: ["eth0"] }, "interfaces", /needs qdisc/],
    [{ algorithm: "bbr", qdisc: "fq", interfaces: ["eth0", "eth0"] }, "interfaces", /repeat/],
    [{ algorithm: "bbr", qdisc: "fq", interfaces: ["eth 0"] }, "interfaces[0]", /interface name/],
    [{ algorithm: "bbr", persist: "yes" }, "persist", /true or false/],
    [{ algorithm: "bbr", qdisk: "fq" }, "qdisk", /unknown field/],
  ])("%j fails naming %s", (fields, property, reason) => {
    const { failures } = validate(congestionControlSchema, {
      connection: CONNECTION,
      resourceName: "cc",
      ...fields,
    });
    expect(failures.map((f) => f.property)).toEqual([property]);
    expect(failures[0]!.reason).toMatch(reason);
  });

  it("defaults: no interfaces, persist on", () => {
    expect(inputsOf({ algorithm: "bbr" })).toMatchObject({ interfaces: [], persist: true });
  });

  it("diff: a host change replaces; the same declaration is no change, whatever the interface order", () => {
    const olds = { ...inputsOf(DECL) } as CongestionControlOutputs;
    expect(
      handler.diff("x", olds, inputsOf({ ...DECL, interfaces: ["ntcc1", "ntcc0"] })),
    ).toMatchObject({
      changes: false,
    });
    const moved = congestionControlSchema.parse({
      ...inputsOf(DECL),
      connection: { ...CONNECTION, host: "198.18.9.10" },
    });
    expect(handler.diff("x", olds, moved)).toMatchObject({
      changes: true,
      replaces: ["connection"],
      deleteBeforeReplace: true,
    });
    expect(handler.diff("x", olds, inputsOf({ algorithm: "reno" })).detailedDiff).toEqual({
      qdisc: { kind: "delete", inputDiff: true },
      interfaces: { kind: "update", inputDiff: true },
    });
  });
});

describe("through nettune/provider", () => {
  it("check runs the host check and names the field", async () => {
    const host = new FakeNetHost(NAMESPACE);
    hosts.push(host);
    setTransportFactory(() => host);
    try {
      const res = {
        failures: await checkFailures(
          "CongestionControl",
          handle(
            "CongestionControl",
            "check",
            {},
            {
              connection: CONNECTION,
              resourceName: "cc",
              algorithm: "vegas",
            },
          ),
        ),
      };
      expect(res.failures).toEqual([
        {
          property: "algorithm",
          reason: `vegas is not available on ${TARGET}; available: bbr reno`,
        },
      ]);
    } finally {
      setTransportFactory(undefined);
    }
  });
});
