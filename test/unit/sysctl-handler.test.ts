/**
 * The SysctlSet lifecycle against a fake host whose /proc/sys and /etc/sysctl.d live in a temp
 * directory and whose scripts are really run by dash (test/helpers/fakeTransport.ts): the
 * handler's logic end to end, and its cost in round trips, without a host.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { handle, setTransportFactory } from "../../src/engine/provider";
import { checkFailures } from "../helpers/checkErrors";
import type { HandlerContext } from "../../src/engine/lifecycle";
import { sysctlSetHandler as handler, type SysctlSetOutputs } from "../../src/specs/sysctlSet";
import { sysctlSetSchema, type SysctlSetInputs } from "../../src/schemas/sysctlSet";
import { renderSysctlConf, renderSysctlRead, sysctlPath } from "../../src/host/sysctl";
import { parseSysctlValue } from "../../src/schemas/sysctl";
import { FakeHost } from "../helpers/fakeTransport";

const CONNECTION = {
  host: "198.18.9.9",
  privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
};
const FILE = "90-web.conf";
const FILE_PATH = `/etc/sysctl.d/${FILE}`;

/** What a 6.x kernel prints before tuning (lists with tabs, as /proc/sys does). */
const ORIGINAL: Record<string, string> = {
  "net.core.somaxconn": "4096",
  "net.core.netdev_max_backlog": "1000",
  "net.core.netdev_budget": "300",
  "net.core.netdev_budget_usecs": "2000",
  "net.core.rmem_max": "212992",
  "net.core.wmem_max": "212992",
  "net.core.rmem_default": "212992",
  "net.core.wmem_default": "212992",
  "net.core.optmem_max": "131072",
  "net.core.default_qdisc": "pfifo_fast",
  "net.ipv4.tcp_max_syn_backlog": "2048",
  "net.ipv4.tcp_rmem": "4096\t131072\t6291456",
  "net.ipv4.tcp_wmem": "4096\t16384\t4194304",
  "net.ipv4.tcp_tw_reuse": "2",
  "net.ipv4.tcp_fin_timeout": "60",
  "net.ipv4.tcp_congestion_control": "cubic",
  "net.ipv4.ip_local_port_range": "32768\t60999",
  "net.ipv4.tcp_slow_start_after_idle": "1",
  "net.ipv4.tcp_fastopen": "1",
  "net.ipv4.tcp_max_orphans": "131072",
  "net.ipv4.tcp_keepalive_time": "7200",
};

/** The guide's web-server values: 20 keys. */
const TUNED: Record<string, unknown> = {
  "net.core.somaxconn": 65535,
  "net.core.netdev_max_backlog": 16384,
  "net.core.netdev_budget": 600,
  "net.core.netdev_budget_usecs": 4000,
  "net.core.rmem_max": 16777216,
  "net.core.wmem_max": 16777216,
  "net.core.rmem_default": 262144,
  "net.core.wmem_default": 262144,
  "net.core.optmem_max": 65536,
  "net.core.default_qdisc": "fq",
  "net.ipv4.tcp_max_syn_backlog": 8192,
  "net.ipv4.tcp_rmem": [4096, 87380, 16777216],
  "net.ipv4.tcp_wmem": [4096, 65536, 16777216],
  "net.ipv4.tcp_tw_reuse": 1,
  "net.ipv4.tcp_fin_timeout": 30,
  "net.ipv4.tcp_congestion_control": "bbr",
  "net.ipv4.ip_local_port_range": [1024, 65535],
  "net.ipv4.tcp_slow_start_after_idle": 0,
  "net.ipv4.tcp_fastopen": 3,
  "net.ipv4.tcp_max_orphans": 262144,
};

const inputsOf = (values: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  sysctlSetSchema.parse({ connection: CONNECTION, values, fileName: FILE, ...extra });

const pick = (keys: string[]) => Object.fromEntries(keys.map((k) => [k, TUNED[k]]));
const text = (v: unknown) => (Array.isArray(v) ? v.join(" ") : String(v));

const SOMAXCONN = "net.core.somaxconn";
const RMEM = "net.ipv4.tcp_rmem";
const FIN = "net.ipv4.tcp_fin_timeout";
const FASTOPEN = "net.ipv4.tcp_fastopen";
const KEEPALIVE = "net.ipv4.tcp_keepalive_time";
const CC = "net.ipv4.tcp_congestion_control";
const TARGET = "root@198.18.9.9:22";

/** The live values of the fake kernel, normalized as the kernel's text compares. */
const live = (host: FakeHost, keys: string[]) =>
  Object.fromEntries(keys.map((k) => [k, host.getProc(k)?.trim().split(/\s+/).join(" ")]));

let host: FakeHost;
let warnings: string[];
let ctx: HandlerContext;

beforeEach(() => {
  host = new FakeHost({ proc: ORIGINAL });
  warnings = [];
  ctx = { transport: host, warn: (m) => warnings.push(m) };
});
afterEach(async () => {
  await host.close();
});

async function created(values: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const res = await handler.create(inputsOf(values, extra), ctx);
  host.commands.length = 0;
  host.stats.execs = 0;
  return res.outs;
}

describe("create", () => {
  it("refuses a sysctl.d file nettune did not write, before any key is changed, and keeps it", async () => {
    const theirs = "# the distribution's own settings\nkernel.sysrq = 0\n";
    fs.mkdirSync(path.join(host.root, "sysctl.d"), { recursive: true });
    fs.writeFileSync(path.join(host.root, "sysctl.d", FILE), theirs);
    const before = host.procSnapshot();
    await expect(handler.create(inputsOf(TUNED), ctx)).rejects.toThrow(
      /exists and nettune did not write it; nettune writes and removes only files it made: choose another fileName/,
    );
    expect(host.procSnapshot()).toEqual(before);
    expect(host.sysctlD()).toEqual({ [FILE]: theirs });
  });

  it("the journal of originals: a create run again after a lost answer records the first originals", async () => {
    await handler.create(inputsOf(TUNED), ctx);
    // Pulumi recorded nothing; the host is tuned. The next create must not take the tuned
    // values for the originals.
    const { outs } = await handler.create(inputsOf(TUNED), ctx);
    const keys = Object.keys(TUNED);
    expect(outs.originals).toEqual(
      Object.fromEntries(keys.map((k) => [k, parseSysctlValue(ORIGINAL[k]!)])),
    );
    // Destroy puts those back and removes the journal.
    await handler.delete(`${TARGET}/sysctl/${FILE}`, outs, ctx);
    expect(live(host, keys)).toEqual(
      Object.fromEntries(keys.map((k) => [k, ORIGINAL[k]!.split("\t").join(" ")])),
    );
    expect(fs.existsSync(path.join(host.root, "originals"))).toBe(false);
  });

  it("reads the originals, applies 20 keys and writes the file in 1 round trip", async () => {
    const inputs = inputsOf(TUNED);
    const { id, outs } = await handler.create(inputs, ctx);

    expect(host.stats.execs).toBe(1);
    expect(host.commands).toHaveLength(1);
    // The originals are read before the first write, in the same script.
    const script = host.commands[0]!;
    expect(script.indexOf("cat /proc/sys/")).toBeLessThan(script.indexOf("tee /proc/sys/"));
    expect(id).toBe(`${TARGET}/sysctl/${FILE}`);

    // Originals typed as the values are (what the kernel printed, parsed); applied as declared.
    const keys = Object.keys(TUNED);
    expect(outs.originals).toEqual(
      Object.fromEntries(keys.map((k) => [k, parseSysctlValue(ORIGINAL[k]!)])),
    );
    expect(outs.applied).toEqual(TUNED);
    expect(outs.filePath).toBe(FILE_PATH);
    expect(outs.warnings).toEqual([]);

    expect(live(host, keys)).toEqual(Object.fromEntries(keys.map((k) => [k, text(TUNED[k])])));
    // A key that was not declared is untouched.
    expect(host.getProc(KEEPALIVE)).toBe("7200\n");
    expect(host.sysctlD()).toEqual({ [FILE]: renderSysctlConf(FILE, inputs.values) });
    // The new file is reloaded before it is moved into place.
    expect(host.sysctlCalls()).toEqual([`-q -p /etc/sysctl.d/.${FILE}.nettune-tmp`]);
  });

  it("costs the same 1 round trip for one key", async () => {
    await handler.create(inputsOf(pick(["net.core.somaxconn"])), ctx);
    expect(host.stats.execs).toBe(1);
  });

  it('persist "runtime" writes no file, "persistent" writes only the file', async () => {
    const values = pick(["net.core.somaxconn", "net.ipv4.tcp_rmem"]);
    const runtime = await handler.create(inputsOf(values, { persist: "runtime" }), ctx);
    expect(runtime.outs.filePath).toBeNull();
    expect(host.sysctlD()).toEqual({});
    expect(host.sysctlCalls()).toEqual([]);
    expect(live(host, ["net.core.somaxconn"])).toEqual({ "net.core.somaxconn": "65535" });

    const other = new FakeHost({ proc: ORIGINAL });
    try {
      const inputs = inputsOf(values, { persist: "persistent" });
      const file = await handler.create(inputs, { transport: other, warn: () => undefined });
      expect(file.outs.filePath).toBe(FILE_PATH);
      expect(other.sysctlD()).toEqual({ [FILE]: renderSysctlConf(FILE, inputs.values) });
      // The next boot applies it; nothing changes now and nothing is reloaded.
      expect(other.getProc("net.core.somaxconn")).toBe("4096\n");
      expect(other.sysctlCalls()).toEqual([]);
      expect(file.outs.originals).toEqual({
        "net.core.somaxconn": 4096,
        "net.ipv4.tcp_rmem": [4096, 131072, 6291456],
      });
    } finally {
      await other.close();
    }
  });

  it("a value the kernel refuses fails naming the key, and the host is as it was", async () => {
    host.reject(FIN, "Invalid argument");
    const before = host.procSnapshot();
    await expect(handler.create(inputsOf(TUNED), ctx)).rejects.toThrow(
      `sysctl ${FIN}: the kernel rejected the value on ${TARGET}: Invalid argument; nothing was`,
    );
    expect(host.procSnapshot()).toEqual(before);
    expect(host.sysctlD()).toEqual({});
    expect(host.sysctlCalls()).toEqual([]);
    expect(host.stats.execs).toBe(1);
  });

  it("a value the kernel clamps fails with both values and leaves the host as it was", async () => {
    host.clamp("net.core.rmem_max", "212992");
    const before = host.procSnapshot();
    await expect(handler.create(inputsOf(TUNED), ctx)).rejects.toThrow(
      "sysctl net.core.rmem_max: wrote 16777216, kernel reports 212992 on root@198.18.9.9:22",
    );
    expect(host.procSnapshot()).toEqual(before);
    expect(host.sysctlD()).toEqual({});
  });

  it("a key the host does not have fails before anything is written", async () => {
    const values = { ...pick(["net.core.somaxconn"]), "net.ipv4.tcp_nettune_missing": 1 };
    const before = host.procSnapshot();
    await expect(handler.create(inputsOf(values), ctx)).rejects.toThrow(
      "key net.ipv4.tcp_nettune_missing cannot be read on root@198.18.9.9:22: " +
        "/proc/sys/net/ipv4/tcp_nettune_missing: No such file or directory",
    );
    expect(host.stats.execs).toBe(1);
    expect(host.procSnapshot()).toEqual(before);
  });
});

describe("read", () => {
  it("returns the live values, drift included, in one round trip", async () => {
    const olds = await created(pick([SOMAXCONN, RMEM, CC]));
    host.setProc("net.ipv4.tcp_rmem", "4096\t131072\t6291456");
    const { props, inputs } = await handler.read("id", olds, ctx);
    expect(host.stats.execs).toBe(1);
    expect(props.values).toEqual({
      "net.core.somaxconn": 65535,
      "net.ipv4.tcp_rmem": [4096, 131072, 6291456],
      "net.ipv4.tcp_congestion_control": "bbr",
    });
    expect(props.originals).toEqual(olds.originals);
    expect(props.applied).toEqual(olds.applied);
    // Inputs carry no state-only fields, so a refresh does not invent a diff.
    expect(Object.keys(inputs).sort()).toEqual([
      "behindNat",
      "connection",
      "fileName",
      "persist",
      "values",
    ]);
    expect(inputs.values).toEqual(props.values);
  });

  it('persist "persistent" reads the file the next boot applies', async () => {
    const olds = await created(pick([SOMAXCONN, RMEM]), { persist: "persistent" });
    const { props } = await handler.read("id", olds, ctx);
    expect(props.values).toEqual({ [SOMAXCONN]: 65535, [RMEM]: [4096, 87380, 16777216] });
    fs.rmSync(path.join(host.root, "sysctl.d", FILE));
    const gone = await handler.read("id", olds, ctx);
    expect(gone.props.values).toEqual({});
  });
});

describe("update", () => {
  const KEYS = [SOMAXCONN, RMEM, FIN, FASTOPEN];

  it("applies only what changed, restores what was removed, records new originals", async () => {
    const olds = await created(pick(KEYS));
    // Not part of the change: if update wrote it, this marker would be gone.
    host.setProc("net.ipv4.tcp_rmem", "4096\t87380\t16777216 ");
    const news: SysctlSetInputs = inputsOf({
      "net.core.somaxconn": 32768,
      "net.ipv4.tcp_rmem": [4096, 87380, 16777216],
      "net.ipv4.tcp_fin_timeout": 30,
      "net.ipv4.tcp_keepalive_time": 600,
    });
    const outs = await handler.update("id", olds, news, ctx);

    expect(host.stats.execs).toBe(2);
    const apply = host.commands[1]!;
    expect(apply).toContain(`/proc/sys/${sysctlPath("net.core.somaxconn")}`);
    expect(apply).toContain(`/proc/sys/${sysctlPath("net.ipv4.tcp_keepalive_time")}`);
    expect(apply).toContain(`/proc/sys/${sysctlPath("net.ipv4.tcp_fastopen")}`);
    expect(apply).not.toContain(`/proc/sys/${sysctlPath("net.ipv4.tcp_rmem")}`);
    expect(apply).not.toContain(`/proc/sys/${sysctlPath("net.ipv4.tcp_fin_timeout")}`);

    expect(host.getProc("net.core.somaxconn")).toBe("32768\n");
    expect(host.getProc("net.ipv4.tcp_keepalive_time")).toBe("600\n");
    expect(host.getProc("net.ipv4.tcp_fastopen")).toBe("1\n");
    expect(host.getProc("net.ipv4.tcp_rmem")).toBe("4096\t87380\t16777216 \n");
    expect(host.getProc("net.ipv4.tcp_fin_timeout")).toBe("30\n");

    expect(outs.originals).toEqual({
      "net.core.somaxconn": 4096,
      "net.ipv4.tcp_rmem": [4096, 131072, 6291456],
      "net.ipv4.tcp_fin_timeout": 60,
      "net.ipv4.tcp_keepalive_time": 7200,
    });
    expect(outs.originalsText).toEqual({});
    expect(outs.applied).toEqual(news.values);
    expect(outs.warnings).toEqual([]);
    expect(host.sysctlD()).toEqual({ [FILE]: renderSysctlConf(FILE, news.values) });
  });

  it("re-applies a key that drifted (seen by refresh) with an unchanged declaration", async () => {
    const olds = await created(pick(KEYS));
    host.setProc("net.ipv4.tcp_fin_timeout", "45");
    const refreshed = (await handler.read("id", olds, ctx)).props;
    await handler.update("id", refreshed, inputsOf(pick(KEYS)), ctx);
    expect(host.getProc("net.ipv4.tcp_fin_timeout")).toBe("30\n");
  });

  it("leaves a removed key that was changed outside nettune, and says so", async () => {
    const olds = await created(pick(KEYS));
    host.setProc("net.ipv4.tcp_fastopen", "1027");
    const outs = await handler.update("id", olds, inputsOf(pick(KEYS.slice(0, 3))), ctx);
    expect(host.getProc("net.ipv4.tcp_fastopen")).toBe("1027\n");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^net\.ipv4\.tcp_fastopen: left at 1027\b.*set to 3/);
    expect(outs.warnings).toEqual(warnings);
  });

  it("a refused value undoes the whole update, the file included", async () => {
    const olds = await created(pick(KEYS));
    const fileBefore = host.sysctlD();
    const procBefore = host.procSnapshot();
    host.reject(KEEPALIVE, "Invalid argument");
    const news = inputsOf({ ...pick(KEYS.slice(0, 3)), [SOMAXCONN]: 1024, [KEEPALIVE]: 600 });
    await expect(handler.update("id", olds, news, ctx)).rejects.toThrow(
      `sysctl ${KEEPALIVE}: the kernel rejected the value on ${TARGET}: Invalid argument`,
    );
    expect(host.procSnapshot()).toEqual(procBefore);
    expect(host.sysctlD()).toEqual(fileBefore);
  });
});

describe("delete", () => {
  const KEYS = ["net.core.somaxconn", "net.ipv4.tcp_rmem", "net.ipv4.tcp_congestion_control"];

  it("restores the originals, removes the file, in 2 round trips", async () => {
    const olds = await created(pick(KEYS));
    await handler.delete("id", olds, ctx);
    expect(host.stats.execs).toBe(2);
    expect(live(host, KEYS)).toEqual({
      "net.core.somaxconn": "4096",
      "net.ipv4.tcp_rmem": "4096 131072 6291456",
      "net.ipv4.tcp_congestion_control": "cubic",
    });
    expect(host.sysctlD()).toEqual({});
    expect(warnings).toEqual([]);
  });

  it("leaves a key changed outside nettune, and names it with its live value", async () => {
    const olds = await created(pick(KEYS));
    host.setProc("net.ipv4.tcp_congestion_control", "reno");
    await handler.delete("id", olds, ctx);
    expect(host.getProc("net.ipv4.tcp_congestion_control")).toBe("reno\n");
    expect(live(host, KEYS.slice(0, 2))).toEqual({
      "net.core.somaxconn": "4096",
      "net.ipv4.tcp_rmem": "4096 131072 6291456",
    });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("net.ipv4.tcp_congestion_control");
    expect(warnings[0]).toContain("left at reno");
    expect(warnings[0]).toContain("set to bbr");
  });

  it("warns about a key that has disappeared and restores the others", async () => {
    const olds = await created(pick(KEYS));
    fs.rmSync(host.procPath("net.core.somaxconn"));
    await handler.delete("id", olds, ctx);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^net\.core\.somaxconn: cannot be read.*No such file or directory/);
    expect(host.getProc("net.ipv4.tcp_congestion_control")).toBe("cubic\n");
  });

  it('persist "persistent" only removes the file', async () => {
    const olds = await created(pick(KEYS), { persist: "persistent" });
    host.setProc("net.core.somaxconn", "65535");
    await handler.delete("id", olds, ctx);
    expect(host.sysctlD()).toEqual({});
    expect(host.getProc("net.core.somaxconn")).toBe("65535\n");
    expect(host.stats.execs).toBe(1);
  });

  it("create then delete leaves every value of the fake kernel as it was", async () => {
    const before = host.procSnapshot();
    const olds = await created(TUNED);
    await handler.delete("id", olds, ctx);
    expect(host.procSnapshot()).toEqual(before);
    expect(warnings).toEqual([]);
  });
});

describe("diff", () => {
  const olds = (values: Record<string, unknown>, extra = {}): SysctlSetOutputs => {
    const inputs = inputsOf(values, extra);
    return {
      ...inputs,
      originals: {},
      originalsText: {},
      applied: inputs.values,
      filePath: FILE_PATH,
      warnings: [],
    };
  };

  it("reports one entry per key: add, update, delete", () => {
    const d = handler.diff(
      "id",
      olds({ [SOMAXCONN]: 4096, [RMEM]: [4096, 87380, 6291456], "net.ipv4.tcp_sack": 1 }),
      inputsOf({ [SOMAXCONN]: 65535, [RMEM]: [4096, 87380, 6291456], [FIN]: 30 }),
    );
    expect(d).toEqual({
      changes: true,
      replaces: [],
      deleteBeforeReplace: true,
      detailedDiff: {
        'values["net.core.somaxconn"]': { kind: "update", inputDiff: true },
        'values["net.ipv4.tcp_sack"]': { kind: "delete", inputDiff: true },
        'values["net.ipv4.tcp_fin_timeout"]': { kind: "add", inputDiff: true },
      },
    });
  });

  it("sees no change when only the order of keys differs", () => {
    const a = { "net.core.somaxconn": 65535, "net.ipv4.tcp_rmem": [4096, 87380, 6291456] };
    const b = { "net.ipv4.tcp_rmem": [4096, 87380, 6291456], "net.core.somaxconn": 65535 };
    const d = handler.diff("id", olds(a), inputsOf(b));
    expect(d).toMatchObject({ changes: false, replaces: [], detailedDiff: {} });
  });

  it("compares values as the kernel prints them: a number and its text are the same", () => {
    const key = "net.ipv4.conf.all.rp_filter";
    const d = handler.diff("id", olds({ [key]: 1 }), inputsOf({ [key]: "1" }));
    expect(d.changes).toBe(false);
  });

  it("replaces the resource when the host or port changes, deleting first", () => {
    const values = { "net.core.somaxconn": 65535 };
    const moved = [
      { ...CONNECTION, host: "198.18.9.10" },
      { ...CONNECTION, port: 2222 },
    ];
    for (const connection of moved) {
      const d = handler.diff("id", olds(values), inputsOf(values, { connection }));
      expect(d.replaces).toEqual(["connection"]);
      expect(d.deleteBeforeReplace).toBe(true);
      expect(d.detailedDiff).toEqual({ connection: { kind: "update-replace", inputDiff: true } });
    }
  });

  it("replaces when persist or the owned file changes, updates in place for a new key", () => {
    const values = { "net.core.somaxconn": 65535 };
    const replaces = (o: SysctlSetOutputs, extra: Record<string, unknown>) =>
      handler.diff("id", o, inputsOf(values, extra)).replaces;
    expect(replaces(olds(values), { persist: "runtime" })).toEqual(["persist"]);
    expect(replaces(olds(values), { fileName: "91-x.conf" })).toEqual(["fileName"]);
    // Without a file, its name only names the resource.
    const runtimeOnly = olds(values, { persist: "runtime" });
    expect(replaces(runtimeOnly, { persist: "runtime", fileName: "91-x.conf" })).toEqual([]);
  });

  it("a changed connection detail that is not the host is a change, not a replacement", () => {
    const values = { "net.core.somaxconn": 65535 };
    const connection = { ...CONNECTION, commandTimeout: 120 };
    const d = handler.diff("id", olds(values), inputsOf(values, { connection }));
    // Marked, so preview says what changed: `~ connection: [secret]`.
    expect(d).toMatchObject({ changes: true, replaces: [] });
    expect(d.detailedDiff).toEqual({ connection: { kind: "update", inputDiff: true } });
    const nat = handler.diff("id", olds(values), inputsOf(values, { behindNat: true }));
    expect(nat.changes).toBe(true);
  });

  it("a state from before a connection field existed is the same connection (no update after an upgrade)", () => {
    const values = { "net.core.somaxconn": 65535 };
    const state = olds(values);
    const { waitForCloudInit: _w, ...written } = state.connection as Record<string, unknown>;
    const before = { ...state, connection: written } as typeof state;
    const d = handler.diff("id", before, inputsOf(values));
    expect(d).toMatchObject({ changes: false, replaces: [], detailedDiff: {} });
  });
});

describe("check, through the provider entry point", () => {
  afterEach(() => setTransportFactory(undefined));

  const check = async (news: Record<string, unknown>) => {
    const props = { connection: CONNECTION, fileName: FILE, __nettuneName: "web", ...news };
    return {
      failures: await checkFailures("SysctlSet web", handle("SysctlSet", "check", {}, props)),
    };
  };

  it("bad input fails with the field's path and nothing is sent to the host", async () => {
    setTransportFactory(() => host);
    const res = await check({ values: { [SOMAXCONN]: "lots", [RMEM]: [8192, 4096, 1] } });
    expect(res.failures?.map((f) => f.property)).toEqual([
      `values["${SOMAXCONN}"]`,
      `values["${RMEM}"]`,
    ]);
    expect(host.stats.execs).toBe(0);
  });

  it("a new set whose sysctl.d file nettune did not write is refused at preview; nothing is written", async () => {
    setTransportFactory(() => host);
    fs.mkdirSync(path.join(host.root, "sysctl.d"), { recursive: true });
    fs.writeFileSync(
      path.join(host.root, "sysctl.d", FILE),
      "# the distribution's own settings\nkernel.sysrq = 0\n",
    );
    const before = host.procSnapshot();
    const res = await check({ values: { [SOMAXCONN]: 65535 } });
    expect(res.failures).toEqual([
      {
        property: "fileName",
        reason: `/etc/sysctl.d/${FILE} exists on ${TARGET} and nettune did not write it; nettune writes and removes only files it made: choose another fileName`,
      },
    ]);
    expect(host.procSnapshot()).toEqual(before);
    expect(host.sysctlD()[FILE]).toBe("# the distribution's own settings\nkernel.sysrq = 0\n");
  });

  it("good input is checked against the host in one read-only round trip", async () => {
    setTransportFactory(() => host);
    const before = host.procSnapshot();
    const res = await check({ values: { [SOMAXCONN]: 65535, "net.ipv4.tcp_nettune_x": 1 } });
    expect(res.failures).toEqual([
      {
        property: 'values["net.ipv4.tcp_nettune_x"]',
        reason:
          `no such key on ${TARGET}: ` +
          "/proc/sys/net/ipv4/tcp_nettune_x: No such file or directory",
      },
    ]);
    expect(host.stats.execs).toBe(1);
    // The keys, and whether the set's sysctl.d file is one nettune did not write.
    expect(host.commands[0]).toMatch(
      new RegExp(
        `^${renderSysctlRead([SOMAXCONN, "net.ipv4.tcp_nettune_x"]).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\necho --nettune-file--; f=/etc/sysctl.d/${FILE.replace(/\./g, "\\.")}; `,
      ),
    );
    expect(host.procSnapshot()).toEqual(before);
  });
});
