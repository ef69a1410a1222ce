/**
 * PacketSteering against a fake host: scripts really run in dash, with the interface answered
 * by the captured veth outputs (test/helpers/fakeLinkHost.ts) and /sys and /proc/sys rewritten
 * into a temp directory laid out like a host's: queues/rx-N and tx-N with their steering files,
 * /sys/devices/system/cpu/possible and online, and /proc/sys/net/core/rps_sock_flow_entries
 * (left out to stand for a container in its own network namespace). Its files start as the
 * kernel printed them on the sandbox hosts (test/fixtures/cpumask/); a `tee` stub refuses
 * writes to the files a test names, as the kernel refuses a mask with EINVAL.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";

import { handle, setTransportFactory } from "../../src/engine/provider";
import { checkFailures } from "../helpers/checkErrors";
import type { HandlerContext } from "../../src/engine/lifecycle";
import { packetSteeringSchema } from "../../src/schemas/packetSteering";
import {
  flowCntPerQueue,
  packetSteeringHandler as steering,
  parseSteeringRead,
  renderSteeringRead,
} from "../../src/specs/packetSteering";
import { renderCommand } from "../../src/transport/quote";
import type { Command, ExecOptions, ExecResult, Transport } from "../../src/transport/types";
import { FakeLinkHost } from "../helpers/fakeLinkHost";

const CONNECTION = {
  host: "198.18.9.9",
  privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
};
const TARGET = "root@198.18.9.9:22";
const UNIT = "nettune-packetsteering-eth0-steering.service";

interface SysOptions {
  possible?: string;
  online?: string;
  rx?: number;
  tx?: number;
  /** `net.core.rps_sock_flow_entries`; undefined: no such file (own network namespace). */
  sockFlowEntries?: string;
  /** Initial file contents by `rx-0/rps_cpus` (default: an empty mask, 0). */
  files?: Record<string, string>;
}

/** /sys and /proc/sys of the fake host, in a temp directory. */
class FakeSteeringHost implements Transport {
  readonly target: string;
  readonly commands: string[] = [];
  readonly root: string;
  constructor(
    readonly link: FakeLinkHost,
    opts: SysOptions,
  ) {
    this.target = link.target;
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-steering-"));
    const cpu = path.join(this.root, "sys/devices/system/cpu");
    fs.mkdirSync(cpu, { recursive: true });
    fs.writeFileSync(path.join(cpu, "possible"), `${opts.possible ?? "0-3"}\n`);
    fs.writeFileSync(path.join(cpu, "online"), `${opts.online ?? opts.possible ?? "0-3"}\n`);
    const zero = (nr: number) =>
      nr > 32
        ? `${"0".repeat(Math.ceil((nr % 32 || 32) / 4))}${",00000000".repeat(Math.ceil(nr / 32) - 1)}`
        : "0".repeat(Math.ceil(nr / 4));
    const nr = Number((opts.possible ?? "0-3").split("-").pop()) + 1;
    for (let q = 0; q < (opts.rx ?? 4); q++) {
      this.write(`rx-${q}/rps_cpus`, opts.files?.[`rx-${q}/rps_cpus`] ?? zero(nr));
      this.write(`rx-${q}/rps_flow_cnt`, opts.files?.[`rx-${q}/rps_flow_cnt`] ?? "0");
    }
    for (let q = 0; q < (opts.tx ?? 4); q++) {
      this.write(`tx-${q}/xps_cpus`, opts.files?.[`tx-${q}/xps_cpus`] ?? zero(nr));
      this.write(`tx-${q}/xps_rxqs`, opts.files?.[`tx-${q}/xps_rxqs`] ?? "0");
    }
    fs.mkdirSync(path.join(this.root, "proc/sys/net/core"), { recursive: true });
    if (opts.sockFlowEntries !== undefined) this.setSockFlowEntries(opts.sockFlowEntries);
    fs.mkdirSync(path.join(this.root, "bin"));
    fs.writeFileSync(path.join(this.root, "reject.tsv"), "");
    // Refuses writes to the listed files as the kernel refuses a mask (EINVAL).
    fs.writeFileSync(
      path.join(this.root, "bin", "tee"),
      `#!/bin/sh\nfor a in "$@"; do if grep -qxF "$a" ${this.root}/reject.tsv; then cat >/dev/null; echo "tee: $a: Invalid argument" >&2; exit 1; fi; done\nexec /usr/bin/tee "$@"\n`,
      { mode: 0o755 },
    );
  }

  static async create(opts: SysOptions = {}): Promise<FakeSteeringHost> {
    const link = await FakeLinkHost.create({
      devices: [{ fixture: "veth-b", ifname: "eth0" }],
    });
    return new FakeSteeringHost(link, opts);
  }

  get stats() {
    return this.link.stats;
  }

  private queuePath(key: string): string {
    return path.join(this.root, "sys/class/net/eth0/queues", key);
  }
  /** A queue file's text as the kernel prints it. */
  read(key: string): string {
    return fs.readFileSync(this.queuePath(key), "utf8");
  }
  write(key: string, text: string): void {
    fs.mkdirSync(path.dirname(this.queuePath(key)), { recursive: true });
    fs.writeFileSync(this.queuePath(key), `${text}\n`);
  }
  /** Every queue file and the sysctl, to compare the whole "kernel" before and after. */
  snapshot(): Record<string, string> {
    const out: Record<string, string> = {};
    const base = path.join(this.root, "sys/class/net/eth0/queues");
    for (const q of fs.readdirSync(base).sort())
      for (const f of fs.readdirSync(path.join(base, q)).sort())
        out[`${q}/${f}`] = fs.readFileSync(path.join(base, q, f), "utf8");
    const sysctl = this.sockPath();
    if (fs.existsSync(sysctl)) out.sysctl = fs.readFileSync(sysctl, "utf8");
    return out;
  }
  private sockPath(): string {
    return path.join(this.root, "proc/sys/net/core/rps_sock_flow_entries");
  }
  setSockFlowEntries(v: string): void {
    fs.writeFileSync(this.sockPath(), `${v}\n`);
  }
  sockFlowEntries(): string | undefined {
    return fs.existsSync(this.sockPath()) ? fs.readFileSync(this.sockPath(), "utf8") : undefined;
  }
  reject(key: string): void {
    fs.appendFileSync(path.join(this.root, "reject.tsv"), `${this.queuePath(key)}\n`);
  }
  /** The unit files, with the host's paths. */
  units(): Record<string, string> {
    return Object.fromEntries(
      Object.entries(this.link.units()).map(([k, v]) => [k, v.split(this.root).join("")]),
    );
  }
  /** Commands that wrote a file (every write goes through tee). */
  writes(): string[] {
    return this.commands.flatMap((c) => c.split("\n").filter((l) => /^tee /.test(l)));
  }

  async exec(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    const text = Array.isArray(command)
      ? renderCommand(command as readonly string[])
      : (command as { script: string }).script;
    this.commands.push(text);
    const moved = text
      .split("/proc/sys/")
      .join("\u0000")
      .split("/sys/")
      .join(`${this.root}/sys/`)
      .split("\u0000")
      .join(`${this.root}/proc/sys/`);
    // A host path the rewrite missed would reach this machine: refuse to run it.
    const left = moved.split(`${this.root}/proc/sys/`).join("").split(`${this.root}/sys/`).join("");
    if (/\/(sys|proc)\//.test(left))
      throw new Error(`fake host: script names a host path it cannot redirect:\n${text}`);
    const res = await this.link.exec(
      { script: `PATH=${this.root}/bin:$PATH; export PATH\n${moved}` },
      options,
    );
    const back = (s: string) => s.split(this.root).join("");
    return { ...res, stdout: back(res.stdout), stderr: back(res.stderr) };
  }

  async close(): Promise<void> {
    await this.link.close();
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

let host: FakeSteeringHost | undefined;
let warnings: string[] = [];

async function fake(opts: SysOptions = {}): Promise<{ h: FakeSteeringHost; ctx: HandlerContext }> {
  host = await FakeSteeringHost.create(opts);
  warnings = [];
  return { h: host, ctx: { transport: host, warn: (m) => warnings.push(m) } };
}

afterEach(async () => {
  setTransportFactory(undefined);
  await host?.close();
  host = undefined;
});

const inputs = (extra: Record<string, unknown>) =>
  packetSteeringSchema.parse({
    connection: CONNECTION,
    interface: "eth0",
    unitName: UNIT,
    ...extra,
  });

/** Every schema issue as `path: message`. */
function schemaFailures(input: Record<string, unknown>): string[] {
  const r = packetSteeringSchema.safeParse({
    connection: CONNECTION,
    interface: "eth0",
    unitName: UNIT,
    ...input,
  });
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
}

type Checked = { failures?: { property: string; reason: string }[] };
async function check(h: FakeSteeringHost, extra: Record<string, unknown>): Promise<Checked> {
  setTransportFactory(() => h);
  const run = handle(
    "PacketSteering",
    "check",
    {},
    { connection: CONNECTION, interface: "eth0", unitName: UNIT, ...extra },
  );
  return { failures: await checkFailures("PacketSteering", run) };
}

// ---------------------------------------------------------------------------------------------

describe("schema: bad input names the field, before any host is read", () => {
  it.each<[string, Record<string, unknown>, RegExp]>([
    ["nothing declared", {}, /^: declare rps, rfs and\/or xps$/],
    ["an empty cpulist", { rps: "" }, /^rps: is empty: name at least one CPU/],
    ["a mask instead of a cpulist", { rps: "0xff" }, /^rps: "0xff" is not a CPU or range/],
    ["a range that goes down", { rps: "3-1" }, /^rps: range 3-1 goes down: write 1-3/],
    ["a CPU above Linux's limit", { rps: "0-9000" }, /^rps: CPU 9000 is above 8191/],
    ["a bad list for one queue", { rps: { 0: "0-1", 1: "1,,2" } }, /^rps.1: "" is not a CPU/],
    [
      "a queue that is not a number",
      { rps: { a: "0" } },
      /^rps: expected a list of CPUs such as "0-3", or one per rx queue such as \{ 0: "0-1", 1: "2-3" \}$/,
    ],
    ["no queue in the record", { rps: {} }, /^rps: name at least one rx queue/],
    ["a number, not a list", { rps: 3 }, /^rps: expected a list of CPUs such as "0-3"/],
    [
      "flowEntries not a power of two",
      { rfs: { flowEntries: 1000 } },
      /^rfs.flowEntries: flowEntries must be a power of two/,
    ],
    [
      "flowEntries above 2^29",
      { rfs: { flowEntries: 2 ** 30 } },
      /^rfs.flowEntries: flowEntries must be at most 536870912/,
    ],
    [
      "flowEntries 0",
      { rfs: { flowEntries: 0 } },
      /^rfs.flowEntries: flowEntries must be at least 1/,
    ],
    [
      "flowEntries not an integer",
      { rfs: { flowEntries: 1.5 } },
      /^rfs.flowEntries: flowEntries must be an integer/,
    ],
    ["an unknown rfs field", { rfs: { flowEntries: 4096, flows: 1 } }, /^rfs: /],
    [
      "xps with both cpus and rxqs",
      { xps: { cpus: "0", rxqs: { 0: "0" } } },
      /^xps: xps must be \{ cpus/,
    ],
    ["xps rxqs as one list", { xps: { rxqs: "0-1" } }, /^xps: xps must be/],
    [
      "an rx queue above the limit",
      { xps: { rxqs: { 0: "5000" } } },
      /^xps.rxqs.0: 5000 is above 4095$/,
    ],
    [
      "a hostile interface name",
      { interface: "eth0;reboot", rps: "0" },
      /^interface: must be an interface name/,
    ],
    [
      "an interface that is a path",
      { interface: "../lo", rps: "0" },
      /^interface: must be an interface name/,
    ],
  ])("%s", (_what, input, message) => {
    const failures = schemaFailures(input);
    expect(failures.length).toBeGreaterThan(0);
    expect(failures[0]).toMatch(message);
  });

  it("takes one list for every queue, a list per queue, rfs and either kind of xps", () => {
    expect(schemaFailures({ rps: "0-3,8" })).toEqual([]);
    expect(schemaFailures({ rps: { 0: "0-1", 1: "2-3" } })).toEqual([]);
    expect(schemaFailures({ rfs: { flowEntries: 32768 } })).toEqual([]);
    expect(schemaFailures({ rfs: { flowEntries: 2 ** 29 } })).toEqual([]);
    expect(schemaFailures({ xps: { cpus: "0-1" } })).toEqual([]);
    expect(schemaFailures({ xps: { cpus: { 0: "0", 3: "3" } } })).toEqual([]);
    expect(schemaFailures({ xps: { rxqs: { 0: "0", 1: "1-2" } } })).toEqual([]);
  });
});

describe("the read script", () => {
  it("reads queues, CPUs and the sysctl, and says when the sysctl is absent", async () => {
    const { h } = await fake({ possible: "0-39", online: "0-35,38", rx: 2, tx: 3 });
    const read = parseSteeringRead((await h.exec({ script: renderSteeringRead("eth0") })).stdout);
    expect(read).toMatchObject({
      possible: "0-39",
      online: "0-35,38",
      rxQueues: [0, 1],
      txQueues: [0, 1, 2],
      sockFlowEntries: undefined,
    });
    expect(read.files["rx-1/rps_cpus"]).toBe("00,00000000");
    h.setSockFlowEntries("4096");
    expect(
      parseSteeringRead((await h.exec({ script: renderSteeringRead("eth0") })).stdout)
        .sockFlowEntries,
    ).toBe("4096");
  });

  it("refuses output that ended early", () => {
    expect(() => parseSteeringRead("cpus\tpossible\t0-1\n")).toThrow(/ended early/);
  });
});

describe("preview: what the host cannot take names the field, the host untouched", () => {
  it.each<[string, SysOptions, Record<string, unknown>, string, RegExp]>([
    [
      "a CPU above the highest possible one",
      {},
      { rps: "0-4" },
      "rps",
      /CPU 4 is above the highest CPU of root@198\.18\.9\.9:22 \(3; possible CPUs: 0-3\)/,
    ],
    [
      "an offline CPU",
      { online: "0-1,3" },
      { rps: { 0: "1-2" } },
      "rps.0",
      /CPU 2 is offline on root@198\.18\.9\.9:22 \(online CPUs: 0-1,3\)/,
    ],
    [
      "an rx queue the interface lacks",
      {},
      { rps: { 7: "0" } },
      "rps.7",
      /eth0 \(driver veth\) has no rx queue 7: its rx queues are 0-3/,
    ],
    [
      "a tx queue the interface lacks",
      { tx: 2 },
      { xps: { cpus: { 2: "0" } } },
      "xps.cpus.2",
      /has no tx queue 2: its tx queues are 0-1/,
    ],
    [
      "an rx queue xps_rxqs names that is not there",
      { rx: 2 },
      { xps: { rxqs: { 0: "1-3" } } },
      "xps.rxqs.0",
      /has no rx queue 2-3: its rx queues are 0-1/,
    ],
    [
      "rfs in a container's own network namespace",
      {},
      { rfs: { flowEntries: 32768 } },
      "rfs.flowEntries",
      /net\.core\.rps_sock_flow_entries does not exist on root@198\.18\.9\.9:22: it exists only in the initial network namespace, and this host is a container in its own network namespace, which cannot set it/,
    ],
  ])("%s", async (_what, sys, extra, property, reason) => {
    const { h } = await fake(sys);
    const before = h.snapshot();
    const res = await check(h, extra);
    expect(res.failures?.map((f) => f.property)).toEqual([property]);
    expect(res.failures?.[0]?.reason).toMatch(reason);
    expect(h.writes()).toEqual([]);
    expect(h.snapshot()).toEqual(before);
  });

  it("one list for every queue fails once, not once per queue", async () => {
    const { h } = await fake({ possible: "0-1" });
    const res = await check(h, { rps: "0-2", xps: { cpus: "5" } });
    expect(res.failures?.map((f) => f.property)).toEqual(["rps", "xps.cpus"]);
  });
});

describe("apply", () => {
  it("writes the kernel's masks at nr_cpu_ids (40 CPUs), counts, and the sysctl, in one round trip after the probe", async () => {
    const { h, ctx } = await fake({ possible: "0-39", sockFlowEntries: "0", rx: 4, tx: 4 });
    const before = h.snapshot();
    const res = await steering.create(
      inputs({
        rps: "0-3,32-39",
        rfs: { flowEntries: 32768 },
        xps: { cpus: { 0: "0", 1: "39", 2: "0-39" } },
      }),
      ctx,
    );
    expect(res.id).toBe(`${TARGET}/steering/eth0/${UNIT}`);
    expect(h.stats.execs).toBe(2);
    expect(h.read("rx-0/rps_cpus")).toBe("ff,0000000f\n");
    expect(h.read("rx-3/rps_cpus")).toBe("ff,0000000f\n");
    expect(h.read("rx-2/rps_flow_cnt")).toBe("8192\n");
    expect(h.sockFlowEntries()).toBe("32768\n");
    expect(h.read("tx-0/xps_cpus")).toBe("00,00000001\n");
    expect(h.read("tx-1/xps_cpus")).toBe("80,00000000\n");
    expect(h.read("tx-2/xps_cpus")).toBe("ff,ffffffff\n");
    expect(h.read("tx-3/xps_cpus")).toBe(before["tx-3/xps_cpus"]);
    const outs = res.outs;
    expect(outs.originals).toEqual({
      "rx-0/rps_cpus": "00,00000000",
      "rx-0/rps_flow_cnt": "0",
      "rx-1/rps_cpus": "00,00000000",
      "rx-1/rps_flow_cnt": "0",
      "rx-2/rps_cpus": "00,00000000",
      "rx-2/rps_flow_cnt": "0",
      "rx-3/rps_cpus": "00,00000000",
      "rx-3/rps_flow_cnt": "0",
      "tx-0/xps_cpus": "00,00000000",
      "tx-1/xps_cpus": "00,00000000",
      "tx-2/xps_cpus": "00,00000000",
      "net.core.rps_sock_flow_entries": "0",
    });
    expect(outs.applied["rx-0/rps_cpus"]).toBe("0-3,32-39");
    expect(outs.applied["tx-2/xps_cpus"]).toBe("0-39");
    expect(outs.rpsFlowCnt).toBe(8192);
    expect(outs.driver).toBe("veth");
    expect(outs.unitPath).toBe(`/etc/systemd/system/${UNIT}`);
    expect(h.link.enabled.has(UNIT)).toBe(true);
    // 4 rx queues for 40 CPUs: RPS is not redundant.
    expect(outs.warnings).toEqual([]);
    expect(h.writes()[0]).toMatchInlineSnapshot(
      `"tee /sys/class/net/eth0/queues/rx-0/rps_cpus >/dev/null <<'NETTUNE'"`,
    );
    expect(h.units()[UNIT]).toMatchInlineSnapshot(`
      "# Managed by nettune. Removed when the Pulumi resource is destroyed.
      [Unit]
      Description=nettune PacketSteering on eth0
      DefaultDependencies=no
      After=local-fs.target
      Before=network-pre.target
      Wants=network-pre.target

      [Service]
      Type=oneshot
      RemainAfterExit=yes
      ExecStart=/bin/sh -c 'i=0; while [ ! -e /sys/class/net/eth0 ] && [ $$i -lt 300 ]; do sleep 0.1; i=$$((i+1)); done; sh -c '\\''echo ff,0000000f > /sys/class/net/eth0/queues/rx-0/rps_cpus && echo 8192 > /sys/class/net/eth0/queues/rx-0/rps_flow_cnt && echo ff,0000000f > /sys/class/net/eth0/queues/rx-1/rps_cpus && echo 8192 > /sys/class/net/eth0/queues/rx-1/rps_flow_cnt && echo ff,0000000f > /sys/class/net/eth0/queues/rx-2/rps_cpus && echo 8192 > /sys/class/net/eth0/queues/rx-2/rps_flow_cnt && echo ff,0000000f > /sys/class/net/eth0/queues/rx-3/rps_cpus && echo 8192 > /sys/class/net/eth0/queues/rx-3/rps_flow_cnt && echo 00,00000001 > /sys/class/net/eth0/queues/tx-0/xps_cpus && echo 80,00000000 > /sys/class/net/eth0/queues/tx-1/xps_cpus && echo ff,ffffffff > /sys/class/net/eth0/queues/tx-2/xps_cpus && echo 32768 > /proc/sys/net/core/rps_sock_flow_entries'\\'''

      [Install]
      WantedBy=multi-user.target
      "
    `);
    // At boot (the files back to the kernel's defaults) the unit's command writes them again.
    const execStart = /^ExecStart=(.*)$/m.exec(h.units()[UNIT]!)![1]!;
    const unescaped = execStart.replace(/\$\$/g, "$").replace(/%%/g, "%").replace(/\\\\/g, "\\");
    for (const [key, text] of Object.entries(before)) {
      if (key !== "sysctl") h.write(key, text.trim());
      else h.setSockFlowEntries(text.trim());
    }
    const boot = await h.exec({ script: unescaped });
    expect(boot.exitCode).toBe(0);
    expect(h.read("rx-1/rps_cpus")).toBe("ff,0000000f\n");
    expect(h.read("rx-1/rps_flow_cnt")).toBe("8192\n");
    expect(h.read("tx-1/xps_cpus")).toBe("80,00000000\n");
    expect(h.sockFlowEntries()).toBe("32768\n");
  });

  it("rps_flow_cnt is flowEntries / rx queues, rounded up to a power of two", () => {
    expect(flowCntPerQueue(32768, 4)).toBe(8192);
    expect(flowCntPerQueue(32768, 3)).toBe(16384);
    expect(flowCntPerQueue(32768, 1)).toBe(32768);
    expect(flowCntPerQueue(4, 8)).toBe(1);
    expect(flowCntPerQueue(2 ** 29, 64)).toBe(2 ** 23);
  });

  it("xps_rxqs masks are as wide as the device's rx queues (num_rx_queues)", async () => {
    const { h, ctx } = await fake({ rx: 4, tx: 4 });
    await steering.create(inputs({ xps: { rxqs: { 0: "0", 1: "1-3" } }, persist: false }), ctx);
    expect(h.read("tx-0/xps_rxqs")).toBe("1\n");
    expect(h.read("tx-1/xps_rxqs")).toBe("e\n");
  });

  it("warns that RPS may be redundant with as many rx queues as online CPUs, and says what it did not check", async () => {
    const { ctx } = await fake({ possible: "0-3", rx: 4 });
    const res = await steering.create(inputs({ rps: "0-3", persist: false }), ctx);
    const w = res.outs.warnings;
    expect(w).toEqual([
      expect.stringMatching(
        /^rps: eth0 \(driver veth\) has 4 rx queues for 4 online CPUs: if each rx queue's IRQ is pinned to its own CPU, RSS already spreads the load .*nettune compares the counts only, not the IRQ pinning/,
      ),
    ]);
    expect(warnings).toEqual(w);
  });

  it("all or nothing: a write the kernel refuses puts back every file already written and leaves no unit", async () => {
    const { h, ctx } = await fake({ possible: "0-7", sockFlowEntries: "0" });
    const before = h.snapshot();
    h.reject("tx-2/xps_cpus");
    await expect(
      steering.create(inputs({ rps: "0-7", rfs: { flowEntries: 4096 }, xps: { cpus: "1" } }), ctx),
    ).rejects.toThrow(
      /^xps\.cpus \(tx-2\): requested 1, driver reports none on eth0 \(driver veth\); tee said: tee: \/sys\/class\/net\/eth0\/queues\/tx-2\/xps_cpus: Invalid argument\non root@198\.18\.9\.9:22; rps \(rx-0\) none, .* put back$/s,
    );
    expect(h.snapshot()).toEqual(before);
    expect(h.units()).toEqual({});
  });
});

describe("refresh, update, destroy", () => {
  async function created(sys: SysOptions, extra: Record<string, unknown>) {
    const f = await fake(sys);
    const res = await steering.create(inputs(extra), f.ctx);
    warnings.length = 0;
    return { ...f, id: res.id, outs: res.outs };
  }

  it("refresh: the live masks as cpulists, values as declared while they are equal", async () => {
    const { h, ctx, id, outs } = await created({}, { rps: "3,0-2", xps: { cpus: { 1: "1" } } });
    let r = await steering.read(id, outs, ctx);
    expect(r.inputs.rps).toBe("3,0-2");
    expect(r.inputs.xps).toEqual({ cpus: { 1: "1" } });
    // Behind nettune's back: one queue's RPS CPUs, the XPS of tx-1.
    h.write("rx-2/rps_cpus", "3");
    h.write("tx-1/xps_cpus", "c");
    r = await steering.read(id, outs, ctx);
    expect(r.inputs.rps).toEqual({ 0: "0-3", 1: "0-3", 2: "0-1", 3: "0-3" });
    expect(r.inputs.xps).toEqual({ cpus: { 1: "2-3" } });
    // The same change on every queue reads as one list.
    for (const q of [0, 1, 2, 3]) h.write(`rx-${q}/rps_cpus`, "1");
    expect((await steering.read(id, outs, ctx)).inputs.rps).toBe("0");
  });

  it("refresh: rfs drifts with the sysctl, and with per-queue counts other than flowEntries gives", async () => {
    const { h, ctx, id, outs } = await created(
      { sockFlowEntries: "0" },
      { rfs: { flowEntries: 4096 } },
    );
    expect((await steering.read(id, outs, ctx)).inputs.rfs).toEqual({ flowEntries: 4096 });
    h.setSockFlowEntries("8192");
    h.write("rx-0/rps_flow_cnt", "2048");
    h.write("rx-1/rps_flow_cnt", "2048");
    h.write("rx-2/rps_flow_cnt", "2048");
    h.write("rx-3/rps_flow_cnt", "2048");
    expect((await steering.read(id, outs, ctx)).inputs.rfs).toEqual({ flowEntries: 8192 });
    h.write("rx-3/rps_flow_cnt", "0");
    expect((await steering.read(id, outs, ctx)).inputs.rfs).toEqual({
      flowEntries: 8192,
      rpsFlowCnt: { 0: "2048", 1: "2048", 2: "2048", 3: "0" },
    });
  });

  it("the same CPUs written another way are no change", async () => {
    const { outs } = await created({}, { rps: "0-3", persist: false });
    const same = steering.diff("id", outs, inputs({ rps: "0,1,2,3", persist: false }));
    expect(same.changes).toBe(false);
    const other = steering.diff("id", outs, inputs({ rps: "0-2", persist: false }));
    expect(other.changes).toBe(true);
    expect(other.detailedDiff).toEqual({ rps: { kind: "update", inputDiff: true } });
  });

  it("update: a field no longer declared gets its originals back; the rest stays", async () => {
    const { h, ctx, id, outs } = await created(
      { files: { "tx-0/xps_cpus": "1", "tx-1/xps_cpus": "2" } },
      { rps: "0-1", xps: { cpus: "0-3" } },
    );
    expect(h.read("tx-1/xps_cpus")).toBe("f\n");
    const next = await steering.update(id, outs, inputs({ rps: "0-1" }), ctx);
    expect(h.read("tx-0/xps_cpus")).toBe("1\n");
    expect(h.read("tx-1/xps_cpus")).toBe("2\n");
    expect(h.read("tx-2/xps_cpus")).toBe("0\n");
    expect(h.read("rx-0/rps_cpus")).toBe("3\n");
    expect(Object.keys(next.applied).every((k) => k.endsWith("rps_cpus"))).toBe(true);
    expect(next.originals["rx-0/rps_cpus"]).toBe("0");
  });

  it("destroy: every original back byte for byte, the unit removed", async () => {
    const { h, ctx, id, outs } = await created(
      { possible: "0-39", sockFlowEntries: "0", files: { "tx-1/xps_cpus": "00,00000002" } },
      { rps: { 0: "0-1", 3: "39" }, rfs: { flowEntries: 1024 }, xps: { cpus: "0-39" } },
    );
    const before = { ...h.snapshot() };
    expect(h.units()[UNIT]).toBeDefined();
    await steering.delete(id, outs, ctx);
    const after = h.snapshot();
    for (const [key, text] of Object.entries(outs.originals)) {
      const file = key === "net.core.rps_sock_flow_entries" ? "sysctl" : key;
      expect(after[file]).toBe(`${text}\n`);
    }
    expect(after["tx-1/xps_cpus"]).toBe("00,00000002\n");
    expect(before["tx-1/xps_cpus"]).toBe("ff,ffffffff\n");
    expect(h.units()).toEqual({});
    expect(warnings).toEqual([]);
  });

  it("the journal of originals: a create run again after a lost answer records the first values; delete puts them back and removes it", async () => {
    const sys: SysOptions = {
      possible: "0-39",
      sockFlowEntries: "0",
      files: { "tx-1/xps_cpus": "00,00000002" },
    };
    const decl = { rps: "0-1", rfs: { flowEntries: 1024 }, xps: { cpus: "0-39" } };
    const { h, ctx } = await fake(sys);
    const pristine = h.snapshot();
    // The engine recorded nothing of the first create; the host is tuned.
    const first = await steering.create(inputs(decl), ctx);
    expect(Object.keys(h.link.journals())).toEqual([
      "steering-eth0-nettune-packetsteering-eth0-steering",
    ]);
    const again = await steering.create(inputs(decl), ctx);
    expect(again.outs.originals).toEqual({
      ...first.outs.originals,
      // Read back from the journal's cpulist, at the host's mask width.
      "tx-1/xps_cpus": "00,00000002",
    });
    await steering.delete(again.id, again.outs, ctx);
    expect(h.snapshot()).toEqual(pristine);
    expect(h.link.hasStateDir()).toBe(false);
    expect(h.units()).toEqual({});
  });

  it("destroy: a file changed outside nettune is left as it is, with a warning", async () => {
    const { h, ctx, id, outs } = await created({}, { rps: "0-1", persist: false });
    h.write("rx-1/rps_cpus", "8");
    await steering.delete(id, outs, ctx);
    expect(h.read("rx-0/rps_cpus")).toBe("0\n");
    expect(h.read("rx-1/rps_cpus")).toBe("8\n");
    expect(warnings).toEqual([
      "rps (rx-1): left at 3 on eth0 (driver veth): it was changed outside nettune after it was set to 0-1",
    ]);
  });
});
