/**
 * The sysctl parsers and the catalogue against real output recorded on a real machine (see
 * test/fixtures/SOURCES.md): what a kernel prints is what these functions must read.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";

import { sysctlSetHandler } from "../../src/specs/sysctlSet";
import { sysctlSetSchema } from "../../src/schemas/sysctlSet";
import { parseSysctlRead, renderSysctlRead, sysctlPath } from "../../src/host/sysctl";
import {
  SYSCTL_CATALOGUE,
  formatSysctl,
  normalizeSysctl,
  parseSysctlValue,
  specFor,
  validateSysctl,
} from "../../src/schemas/sysctl";
import type { Command, ExecResult, Transport } from "../../src/transport/types";

const DIR = path.resolve(__dirname, "../fixtures/sysctl");
const KERNEL = "6.18.44-fc-v782";
const fixture = (name: string) => fs.readFileSync(path.join(DIR, name), "utf8");

/** The keys the read fixtures were captured with, in order (SOURCES.md). */
const KEYS = [
  "net.core.somaxconn",
  "net.core.netdev_max_backlog",
  "net.core.netdev_budget",
  "net.core.netdev_budget_usecs",
  "net.core.rmem_max",
  "net.core.wmem_max",
  "net.core.rmem_default",
  "net.core.wmem_default",
  "net.core.optmem_max",
  "net.core.default_qdisc",
  "net.ipv4.tcp_max_syn_backlog",
  "net.ipv4.tcp_rmem",
  "net.ipv4.tcp_wmem",
  "net.ipv4.tcp_mem",
  "net.ipv4.udp_mem",
  "net.ipv4.tcp_tw_reuse",
  "net.ipv4.tcp_fin_timeout",
  "net.ipv4.tcp_congestion_control",
  "net.ipv4.tcp_available_congestion_control",
  "net.ipv4.ip_local_port_range",
  "net.ipv4.tcp_slow_start_after_idle",
  "net.ipv4.tcp_fastopen",
  "net.ipv4.tcp_timestamps",
  "net.ipv4.tcp_sack",
  "net.ipv4.tcp_syncookies",
  "net.ipv4.tcp_max_orphans",
  "net.netfilter.nf_conntrack_max",
  "fs.file-max",
  "net.ipv4.tcp_no_such_key",
  "net.nettune.missing",
];
const UDP_MEM = "net.ipv4.udp_mem";
const CC_AVAILABLE = "net.ipv4.tcp_available_congestion_control";
const MISSING = ["net.ipv4.tcp_no_such_key", "net.nettune.missing"];

/** `key = value` lines as procps `sysctl -a` prints them (the value keeps its tabs). */
function sysctlA(name: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of fixture(name).split("\n")) {
    if (!line) continue;
    const m = /^(\S+) = ?(.*)$/.exec(line);
    if (!m) throw new Error(`unexpected sysctl -a line ${JSON.stringify(line)}`);
    out.set(m[1]!, m[2]!);
  }
  return out;
}

function liveValue(res: ReturnType<typeof parseSysctlRead>, key: string): string {
  const r = res.get(key);
  if (!r?.ok) throw new Error(`${key} was not read: ${JSON.stringify(r)}`);
  return r.value;
}

describe(`read script output, root namespace (read-host-${KERNEL}.txt)`, () => {
  const res = parseSysctlRead(fixture(`read-host-${KERNEL}.txt`), KEYS);

  it("answers every key: 28 values and 2 missing keys", () => {
    expect([...res.keys()]).toEqual(KEYS);
    expect([...res.values()].filter((r) => r.ok)).toHaveLength(28);
    for (const key of MISSING) {
      const r = res.get(key)!;
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toBe(`/proc/sys/${sysctlPath(key)}: No such file or directory`);
    }
  });

  it("reads tcp_rmem, tcp_wmem, tcp_mem and udp_mem as min <= default <= max", () => {
    for (const key of ["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.ipv4.tcp_mem", UDP_MEM]) {
      const v = parseSysctlValue(liveValue(res, key));
      expect(Array.isArray(v), key).toBe(true);
      const [min, def, max] = v as number[];
      expect(v).toHaveLength(3);
      expect(min!).toBeLessThanOrEqual(def!);
      expect(def!).toBeLessThanOrEqual(max!);
    }
    expect(parseSysctlValue(liveValue(res, "net.ipv4.tcp_rmem"))).toEqual([4096, 131072, 33554432]);
  });

  it("reads the port range, scalars and words in their declared shapes", () => {
    const range = liveValue(res, "net.ipv4.ip_local_port_range");
    expect(parseSysctlValue(range)).toEqual([32768, 60999]);
    expect(parseSysctlValue(liveValue(res, "net.core.somaxconn"))).toBe(4096);
    expect(parseSysctlValue(liveValue(res, "net.ipv4.tcp_tw_reuse"))).toBe(2);
    expect(parseSysctlValue(liveValue(res, "net.ipv4.tcp_congestion_control"))).toBe("bbr");
    const available = liveValue(res, CC_AVAILABLE).split(" ");
    expect(available).toContain("bbr");
    expect(available).toContain("cubic");
  });

  it("sees every key writable for root except the read-only list of algorithms", () => {
    for (const [key, r] of res) {
      if (!r.ok) continue;
      expect(r.writable, key).toBe(key !== CC_AVAILABLE);
    }
  });

  it("the catalogue accepts the value the kernel has for each of its keys", () => {
    for (const [key, r] of res) {
      if (!r.ok || !specFor(key)) continue;
      expect(validateSysctl(key, parseSysctlValue(r.value)), key).toBeUndefined();
    }
  });
});

describe(`read script output, a network namespace (read-netns-${KERNEL}.txt)`, () => {
  const res = parseSysctlRead(fixture(`read-netns-${KERNEL}.txt`), KEYS);

  it("shows the kernel-wide buffer limits read-only and per-namespace keys writable", () => {
    for (const name of ["rmem_max", "wmem_max", "rmem_default", "wmem_default"]) {
      const key = `net.core.${name}`;
      expect(res.get(key), key).toMatchObject({ ok: true, writable: false });
    }
    for (const key of ["net.core.somaxconn", "net.ipv4.tcp_rmem", "net.ipv4.tcp_fin_timeout"]) {
      expect(res.get(key), key).toMatchObject({ ok: true, writable: true });
    }
  });

  it("has no entry at all for some global keys", () => {
    for (const key of ["net.core.netdev_max_backlog", "net.core.default_qdisc", UDP_MEM]) {
      expect(res.get(key), key).toEqual({
        key,
        ok: false,
        error: `/proc/sys/${sysctlPath(key)}: No such file or directory`,
      });
    }
  });
});

/**
 * Answers read scripts with the recorded lines of the keys they read, and refuses any other
 * script: the handler's host checks run against a real kernel's answers without a host.
 */
class ReplayTransport implements Transport {
  readonly target = "root@198.18.9.9:22";
  readonly stats = { handshakes: 0, execs: 0 };
  private readonly lines = new Map<string, string>();

  constructor(text: string) {
    for (const line of text.split("\n")) if (line) this.lines.set(line.split("\t")[1]!, line);
  }

  exec(command: Command): Promise<ExecResult> {
    this.stats.execs++;
    // The read, and for a new set's preview the check of its sysctl.d file (none here).
    const full = (command as { script: string }).script;
    const mark = full.indexOf("\necho --nettune-file--");
    const script = mark < 0 ? full : full.slice(0, mark);
    const byPath = new Map([...this.lines.keys()].map((k) => [sysctlPath(k), k]));
    const paths = [...script.matchAll(/v=\$\(cat \/proc\/sys\/(\S+) 2>&1\)/g)].map((m) => m[1]!);
    const keys = paths.map((p) => byPath.get(p) ?? `(no recording for /proc/sys/${p})`);
    if (script !== renderSysctlRead(keys)) {
      return Promise.reject(new Error(`not a recorded read script:\n${script}`));
    }
    const stdout =
      keys.map((k) => `${this.lines.get(k)}\n`).join("") + (mark < 0 ? "" : "--nettune-file--\n");
    return Promise.resolve({ stdout, stderr: "", exitCode: 0 });
  }

  async close(): Promise<void> {}
}

describe("host checks against a recorded network namespace", () => {
  const CONNECTION = {
    host: "198.18.9.9",
    privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
  };
  /** The preview check's failures; its notes go to `notes`. */
  const check = async (values: Record<string, unknown>, persist = "both", notes: string[] = []) => {
    const t = new ReplayTransport(fixture(`read-netns-${KERNEL}.txt`));
    const inputs = sysctlSetSchema.parse({
      connection: CONNECTION,
      values,
      persist,
      fileName: "90-t.conf",
    });
    const ctx = { transport: t, warn: () => undefined, note: (m: string) => notes.push(m) };
    const failures = await sysctlSetHandler.hostCheck!(inputs, ctx);
    expect(t.stats.execs).toBe(1);
    return failures;
  };

  it("refuses a read-only key for a live change, not for a file only", async () => {
    const values = { "net.core.rmem_max": 8388608, "net.core.somaxconn": 65535 };
    const failures = await check(values);
    expect(failures).toHaveLength(1);
    expect(failures[0]!.property).toBe('values["net.core.rmem_max"]');
    const reason = failures[0]!.reason;
    expect(reason).toMatch(/^net\.core\.rmem_max is read-only on root@198\.18\.9\.9:22 \(/);
    expect(reason).toContain('use persist "persistent"');
    expect(await check(values, "persistent")).toEqual([]);
  });

  it("names a key the host does not have, with the kernel's reason", async () => {
    const failures = await check({ "net.core.default_qdisc": "fq", "net.core.somaxconn": 1024 });
    expect(failures).toEqual([
      {
        property: 'values["net.core.default_qdisc"]',
        reason:
          "no such key on root@198.18.9.9:22: " +
          "/proc/sys/net/core/default_qdisc: No such file or directory",
      },
    ]);
  });

  it("notes a set whose every value is live already (a live write only)", async () => {
    const notes = async (values: Record<string, unknown>, persist = "both") => {
      const out: string[] = [];
      expect(await check(values, persist, out)).toEqual([]);
      return out;
    };
    // As recorded: somaxconn 4096, tcp_rmem "4096 131072 33554432", the port range 32768 60999.
    const live = {
      "net.core.somaxconn": 4096,
      "net.ipv4.tcp_rmem": [4096, 131072, 33554432],
      "net.ipv4.ip_local_port_range": [32768, 60999],
    };
    expect(await notes(live)).toEqual([
      "already as declared on root@198.18.9.9:22: creating it changes no setting there " +
        "(it records the values it finds as the originals and writes its own files and units)",
    ]);
    expect(await notes({ ...live, "net.core.somaxconn": 1024 })).toEqual([]);
    // A file only changes the next boot, which preview does not read.
    expect(await notes(live, "persistent")).toEqual([]);
  });

  it("accepts an available congestion control and lists the choices otherwise", async () => {
    expect(await check({ "net.ipv4.tcp_congestion_control": "bbr" })).toEqual([]);
    expect(await check({ "net.ipv4.tcp_congestion_control": "htcp" })).toEqual([
      {
        property: 'values["net.ipv4.tcp_congestion_control"]',
        reason: "htcp is not available on root@198.18.9.9:22; available: reno bbr cubic",
      },
    ]);
  });
});

describe(`sysctl -a output (sysctl-a-*-${KERNEL}.txt)`, () => {
  const net = sysctlA(`sysctl-a-net-${KERNEL}.txt`);
  const top = sysctlA(`sysctl-a-core-ipv4-${KERNEL}.txt`);

  it("holds what SOURCES.md says", () => {
    expect(net.size).toBe(400);
    expect([...net.keys()].every((k) => k.startsWith("net."))).toBe(true);
    expect(top.size).toBeGreaterThan(150);
    expect(top.has("net.ipv4.tcp_fastopen_key")).toBe(false);
  });

  it("every real value survives parse and format: format(parse(text)) = normalized text", () => {
    for (const [key, text] of [...net, ...top]) {
      expect(formatSysctl(parseSysctlValue(text)), key).toBe(normalizeSysctl(text));
    }
  });

  it("lists printed with tabs parse to numbers, words stay words", () => {
    expect(top.get("net.ipv4.tcp_rmem")).toBe("4096\t131072\t33554432");
    expect(parseSysctlValue(top.get("net.ipv4.tcp_rmem")!)).toEqual([4096, 131072, 33554432]);
    expect(parseSysctlValue(top.get("net.ipv4.ip_local_port_range")!)).toEqual([32768, 60999]);
    expect(parseSysctlValue(top.get(CC_AVAILABLE)!)).toBe("reno bbr cubic");
    expect(parseSysctlValue(top.get("net.ipv4.ip_local_reserved_ports")!)).toBe("");
    expect(parseSysctlValue(net.get("net.core.default_qdisc")!)).toBe("pfifo_fast");
    // A colon-separated key must not turn into a number or a list.
    expect(typeof parseSysctlValue(net.get("net.core.netdev_rss_key")!)).toBe("string");
    expect(parseSysctlValue(net.get("net.ipv4.conf.all.rp_filter")!)).toBeTypeOf("number");
  });

  it("agrees with the read script on the keys both captured", () => {
    const res = parseSysctlRead(fixture(`read-host-${KERNEL}.txt`), KEYS);
    let compared = 0;
    for (const [key, r] of res) {
      const text = top.get(key) ?? net.get(key);
      if (!r.ok || text === undefined) continue;
      expect(r.value, key).toBe(normalizeSysctl(text));
      compared++;
    }
    expect(compared).toBeGreaterThan(20);
  });

  // tcp_notsent_lowat is an unsigned int; the catalogue caps it at INT_MAX (see below).
  const KNOWN_REFUSED = new Set<string>();

  it("the catalogue accepts the kernel's value of each of its keys found here", () => {
    let checked = 0;
    for (const [key, text] of top) {
      if (!specFor(key) || KNOWN_REFUSED.has(key)) continue;
      expect(validateSysctl(key, parseSysctlValue(text)), `${key} = ${text}`).toBeUndefined();
      checked++;
    }
    expect(checked).toBeGreaterThan(Object.keys(SYSCTL_CATALOGUE).length / 2);
  });

  // Known bug: the kernel's default 4294967295 ("no limit") cannot be declared. Drop `.fails`
  // once the catalogue takes the unsigned range.
  it("the catalogue accepts tcp_notsent_lowat's default, 4294967295", () => {
    const text = top.get("net.ipv4.tcp_notsent_lowat")!;
    expect(text).toBe("4294967295");
    expect(validateSysctl("net.ipv4.tcp_notsent_lowat", parseSysctlValue(text))).toBeUndefined();
  });
});

describe("interfaces with a dot in their name (sysctl's '/' form), on real output", () => {
  // Captured in a namespace with veths named lan0.5 and x.y (SOURCES.md).
  const DOTTED_KERNEL = "6.18.44-fc-v669";
  const DOTTED = [
    "net.ipv4.conf.lan0/5.rp_filter",
    "net.ipv4.conf.x/y.forwarding",
    "net.ipv6.conf.lan0/5.mtu",
    "net.ipv4.conf.eth0/9.rp_filter",
  ];

  it("every key sysctl -a prints for them is well formed and maps to its /proc/sys file", () => {
    const lines = fixture(`sysctl-a-dotted-netns-${DOTTED_KERNEL}.txt`).trim().split("\n");
    expect(lines.length).toBeGreaterThan(50);
    for (const line of lines) {
      const [key, text] = line.split(" = ") as [string, string];
      expect(validateSysctl(key, parseSysctlValue(text)), line).toBeUndefined();
      expect(sysctlPath(key)).toMatch(/^net\/ipv4\/conf\/(lan0\.5|x\.y)\/[a-z_0-9]+$/);
    }
  });

  it("the read script reads /proc/sys/…/lan0.5/… and reports under the declared key", () => {
    const script = renderSysctlRead(DOTTED);
    expect(script).toContain("cat /proc/sys/net/ipv4/conf/lan0.5/rp_filter");
    expect(script).toContain("cat /proc/sys/net/ipv4/conf/x.y/forwarding");
    const res = parseSysctlRead(fixture(`read-dotted-netns-${DOTTED_KERNEL}.txt`), DOTTED);
    expect(res.get("net.ipv4.conf.lan0/5.rp_filter")).toEqual({
      key: "net.ipv4.conf.lan0/5.rp_filter",
      ok: true,
      value: "0",
      writable: true,
    });
    expect(res.get("net.ipv6.conf.lan0/5.mtu")).toMatchObject({ ok: true, value: "1500" });
    expect(res.get("net.ipv4.conf.x/y.forwarding")).toMatchObject({ ok: true, value: "0" });
    expect(res.get("net.ipv4.conf.eth0/9.rp_filter")).toEqual({
      key: "net.ipv4.conf.eth0/9.rp_filter",
      ok: false,
      error: "/proc/sys/net/ipv4/conf/eth0.9/rp_filter: No such file or directory",
    });
  });
});
