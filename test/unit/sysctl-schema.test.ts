/**
 * The sysctl catalogue and the SysctlSet input schema: what `pulumi preview` accepts and
 * refuses before any host is touched, and the warnings it prints for risky settings.
 */
import { describe, expect, it } from "vitest";

import { validate } from "../../src/engine/lifecycle";
import { sysctlSetSchema, sysctlWarnings } from "../../src/schemas/sysctlSet";
import {
  SYSCTL_CATALOGUE,
  formatSysctl,
  normalizeSysctl,
  parseSysctlValue,
  specFor,
  sysctlFileName,
  validateSysctl,
} from "../../src/schemas/sysctl";

const INT_MAX = 2_147_483_647;
const MIB64 = 64 * 1024 * 1024;

/** Integer keys: [min, max] of the range the catalogue allows. */
const INT_RANGES: Record<string, [number, number]> = {
  "net.core.somaxconn": [1, INT_MAX],
  "net.core.netdev_max_backlog": [1, INT_MAX],
  "net.core.netdev_budget": [1, INT_MAX],
  "net.core.netdev_budget_usecs": [1, INT_MAX],
  "net.core.rmem_max": [256, INT_MAX],
  "net.core.wmem_max": [256, INT_MAX],
  "net.core.rmem_default": [256, INT_MAX],
  "net.core.wmem_default": [256, INT_MAX],
  "net.core.optmem_max": [1, INT_MAX],
  "net.core.rps_sock_flow_entries": [0, INT_MAX],
  "net.core.busy_poll": [0, INT_MAX],
  "net.core.busy_read": [0, INT_MAX],
  "net.ipv4.tcp_max_syn_backlog": [1, INT_MAX],
  "net.ipv4.tcp_fin_timeout": [1, 600],
  "net.ipv4.tcp_keepalive_time": [1, 32767],
  "net.ipv4.tcp_keepalive_intvl": [1, 32767],
  "net.ipv4.tcp_keepalive_probes": [1, 127],
  "net.ipv4.tcp_fastopen": [0, 0x707],
  "net.ipv4.tcp_max_orphans": [0, INT_MAX],
  "net.ipv4.tcp_max_tw_buckets": [0, INT_MAX],
  "net.ipv4.tcp_notsent_lowat": [1, 4_294_967_295],
  "net.ipv4.tcp_synack_retries": [0, 255],
  "net.ipv4.tcp_syn_retries": [1, 127],
  "net.ipv4.udp_rmem_min": [1, INT_MAX],
  "net.ipv4.udp_wmem_min": [1, INT_MAX],
  "net.netfilter.nf_conntrack_max": [1, INT_MAX],
  "fs.file-max": [1, Number.MAX_SAFE_INTEGER],
};
const BOOLEANS = [
  "net.ipv4.tcp_slow_start_after_idle",
  "net.ipv4.tcp_sack",
  "net.ipv4.tcp_window_scaling",
  "net.ipv4.tcp_no_metrics_save",
  "net.ipv4.tcp_moderate_rcvbuf",
  "net.ipv4.tcp_rfc1337",
  "net.ipv4.ip_forward",
];
const TRISTATES = [
  "net.ipv4.tcp_tw_reuse",
  "net.ipv4.tcp_timestamps",
  "net.ipv4.tcp_syncookies",
  "net.ipv4.tcp_mtu_probing",
  "net.ipv4.tcp_ecn",
];
const TRIPLETS = ["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.ipv4.tcp_mem", "net.ipv4.udp_mem"];
const WORDS = ["net.core.default_qdisc", "net.ipv4.tcp_congestion_control"];
const PORT_RANGE = "net.ipv4.ip_local_port_range";

/** Wrong types every key refuses, whatever its shape. */
const NEVER = [null, undefined, true, {}, "", "1; reboot", Number.NaN, Number.POSITIVE_INFINITY];

const ok = (key: string, value: unknown) =>
  expect(validateSysctl(key, value), `${key}=${JSON.stringify(value)}`).toBeUndefined();
const bad = (key: string, value: unknown, reason?: RegExp) => {
  const problem = validateSysctl(key, value);
  expect(problem, `${key}=${JSON.stringify(value)} should be refused`).toBeTypeOf("string");
  if (reason) expect(problem).toMatch(reason);
  return problem!;
};

describe("the catalogue", () => {
  it("is fully covered by this test, so a new key cannot arrive untested", () => {
    const covered = [
      ...Object.keys(INT_RANGES),
      ...BOOLEANS,
      ...TRISTATES,
      ...TRIPLETS,
      ...WORDS,
      PORT_RANGE,
    ].sort();
    expect(covered).toEqual(Object.keys(SYSCTL_CATALOGUE).sort());
    for (const key of covered) {
      expect(specFor(key)?.doc.length, key).toBeGreaterThan(10);
      // Every catalogue key must pass the key-name rules the generic path enforces.
      expect(validateSysctl(key, "not a value ;")).not.toMatch(/invalid key name/);
    }
    expect(specFor("toString")).toBeUndefined();
    expect(specFor("__proto__")).toBeUndefined();
  });

  it.each(Object.entries(INT_RANGES))("%s takes integers in [%s]", (key, [min, max]) => {
    ok(key, min);
    ok(key, max);
    ok(key, Math.min(max, min + 4096));
    bad(key, min - 1, new RegExp(`must be at least ${min} \\(got ${min - 1}\\)`));
    if (max < Number.MAX_SAFE_INTEGER) bad(key, max + 1, new RegExp(`must be at most ${max}`));
    bad(key, min + 0.5, /expected an integer/);
    bad(key, String(min), /expected an integer/);
    bad(key, [min], /expected an integer/);
    for (const v of NEVER) bad(key, v);
  });

  it("tcp_fastopen takes the documented bit flags and nothing above 0x707", () => {
    const key = "net.ipv4.tcp_fastopen";
    for (const flags of [0, 1, 2, 3, 0x400 | 3, 0x200 | 0x400 | 3, 0x707]) ok(key, flags);
    bad(key, 0x708, /at most 1799/);
    bad(key, -1, /at least 0/);
    bad(key, "0x3");
  });

  it.each(BOOLEANS)("%s takes 0 or 1 only", (key) => {
    ok(key, 0);
    ok(key, 1);
    for (const v of [2, -1, true, false, "1", "on", 0.5, ...NEVER]) bad(key, v);
    expect(bad(key, 2)).toBe("expected 0 or 1 (got 2)");
  });

  it.each(TRISTATES)("%s takes 0, 1 or 2", (key) => {
    for (const v of [0, 1, 2]) ok(key, v);
    for (const v of [3, -1, 1.5, "1", true, ...NEVER]) bad(key, v, /expected 0, 1 or 2/);
  });

  it("tcp_tw_reuse keeps 2 (loopback only), the kernel's default", () => {
    ok("net.ipv4.tcp_tw_reuse", 2);
    bad("net.ipv4.tcp_tw_reuse", 3, /expected 0, 1 or 2 \(got 3\)/);
  });

  it.each(TRIPLETS)("%s takes [min, default, max] with min <= default <= max", (key) => {
    ok(key, [4096, 131072, 6291456]);
    ok(key, [1, 1, 1]);
    ok(key, [4096, 4096, 8192]);
    bad(key, [4096, 2048, 8192], /min <= default <= max/);
    bad(key, [4096, 8192, 6000], /min <= default <= max/);
    bad(key, [0, 1, 2], /at least 1/);
    bad(key, [1, 2], /expected \[min, default, max\]/);
    bad(key, [1, 2, 3, 4], /expected \[min, default, max\]/);
    bad(key, [1, 2.5, 3], /expected an integer/);
    bad(key, ["4096", "87380", "6291456"]);
    bad(key, "4096 87380 6291456", /expected \[min, default, max\]/);
    bad(key, 4096);
    for (const v of NEVER) bad(key, v);
  });

  it("tcp_rmem and tcp_wmem stop at INT_MAX, tcp_mem and udp_mem (pages) go higher", () => {
    bad("net.ipv4.tcp_rmem", [1, 2, INT_MAX + 1], /at most 2147483647/);
    bad("net.ipv4.tcp_wmem", [1, 2, INT_MAX + 1], /at most 2147483647/);
    ok("net.ipv4.tcp_mem", [1, 2, INT_MAX + 1]);
    ok("net.ipv4.udp_mem", [1, 2, INT_MAX + 1]);
  });

  it("ip_local_port_range takes [low, high] with low < high inside 1-65535", () => {
    ok(PORT_RANGE, [1024, 65535]);
    ok(PORT_RANGE, [32768, 60999]);
    bad(PORT_RANGE, [5000, 5000], /low must be below high/);
    bad(PORT_RANGE, [60999, 32768], /low must be below high/);
    bad(PORT_RANGE, [0, 1000], /at least 1/);
    bad(PORT_RANGE, [1024, 65536], /at most 65535/);
    bad(PORT_RANGE, [1024], /expected \[low, high\]/);
    bad(PORT_RANGE, [1024, 2048, 4096], /expected \[low, high\]/);
    bad(PORT_RANGE, "1024 65535");
    for (const v of NEVER) bad(PORT_RANGE, v);
  });

  it.each(WORDS)("%s takes a lower-case name and nothing a shell would read", (key) => {
    for (const v of ["bbr", "cubic", "fq_codel", "htcp2"]) ok(key, v);
    for (const v of ["BBR", "fq codel", "bbr;reboot", "$(id)", "`id`", "bbr\n", "a".repeat(33)]) {
      bad(key, v, /lower-case name/);
    }
    bad(key, 1, /expected a name/);
    bad(key, ["bbr"]);
  });
});

describe("key names", () => {
  it.each([
    "net.core.somaxconn",
    "fs.file-max",
    "net.ipv4.conf.eth0.rp_filter",
    "net.ipv4.conf.br-lan.forwarding",
    "net.ipv6.conf.all.disable_ipv6",
    "net.ipv4.neigh.default.gc_thresh3",
    "net.ipv4.conf.Eth0.rp_filter",
    "vm.swappiness",
    // sysctl(8)'s form for an interface with a dot in its name (eth0.100, a VLAN).
    "net.ipv4.conf.eth0/100.rp_filter",
    "net.ipv6.conf.br-lan/5/7.mtu",
  ])("%s is well formed", (key) => {
    ok(key, 1);
  });

  it.each([
    ["net/core/somaxconn"],
    ["net.core.somaxconn/../x"],
    ["net/ipv4.conf.eth0.rp_filter"],
    ["net.ipv4.conf.eth0/.rp_filter"],
    ["net.ipv4.conf./eth0.rp_filter"],
    ["net.ipv4.conf.eth0//100.rp_filter"],
    ["net.ipv4.conf.eth0/100/.rp_filter"],
    ["net.ipv4.conf./.rp_filter"],
    ["net.ipv4.conf.//.rp_filter"],
    ["net..core"],
    ["..net.core"],
    ["net.core."],
    [".net.core"],
    ["net.core.some key"],
    ["net.core.$(reboot)"],
    ["net.core.`id`"],
    ["net.core.x;reboot"],
    ["net.core.x\nreboot"],
    ["net.core.x\treboot"],
    ["net.core.x'y"],
    ["net.core.x*"],
    ["Net.core.somaxconn"],
    ["NET.core.somaxconn"],
    ["1net.core"],
    ["net"],
    [""],
    ["ne"],
    [`net.${"a".repeat(200)}`],
  ])("%j is refused before it reaches a shell", (key) => {
    expect(validateSysctl(key, 1)).toMatch(/^invalid key name /);
  });
});

describe("values of keys outside the catalogue", () => {
  const key = "net.ipv4.conf.eth0.rp_filter";

  it("take an integer, a list of integers or a plain word", () => {
    for (const v of [0, 2, -1, 2 ** 40, [1], [4096, 87380, 6291456], Array(16).fill(1)]) ok(key, v);
    for (const v of ["word", "fq_codel", "1.2.3.4", "a:b", "x-y", "A".repeat(64)]) ok(key, v);
  });

  it("refuse shell metacharacters, blanks and odd shapes", () => {
    for (const v of [
      "a;b",
      "$(reboot)",
      "`id`",
      "a  b",
      " a",
      "a ",
      "a\tb",
      "a\nb",
      "a|b",
      "a&b",
      "a>b",
      "'quoted'",
      '"quoted"',
      "a\\b",
      "*",
      "",
      "A".repeat(257),
    ]) {
      bad(
        key,
        v,
        /expected an integer, a list of integers or plain words|plain words|256 characters/,
      );
    }
    for (const v of [1.5, true, null, {}, [], [1.5], ["1"], Array(17).fill(1), 2 ** 60]) {
      bad(key, v);
    }
  });
});

describe("formatSysctl, normalizeSysctl and parseSysctlValue", () => {
  it("format lists with single spaces and scalars as they are", () => {
    expect(formatSysctl([4096, 87380, 6291456])).toBe("4096 87380 6291456");
    expect(formatSysctl(65535)).toBe("65535");
    expect(formatSysctl("bbr")).toBe("bbr");
  });

  it("normalize the kernel's tabs, runs of blanks and trailing newline", () => {
    expect(normalizeSysctl("4096\t131072\t6291456\n")).toBe("4096 131072 6291456");
    expect(normalizeSysctl("  32768   60999 \n")).toBe("32768 60999");
    expect(normalizeSysctl("reno bbr cubic\n")).toBe("reno bbr cubic");
    expect(normalizeSysctl("\n")).toBe("");
  });

  it.each([
    ["4096\t131072\t6291456\n", [4096, 131072, 6291456]],
    ["32768\t60999\n", [32768, 60999]],
    ["4096 \t 87380   6291456", [4096, 87380, 6291456]],
    ["65535\n", 65535],
    ["-1\n", -1],
    ["0", 0],
    ["bbr\n", "bbr"],
    ["reno bbr cubic\n", "reno bbr cubic"],
    ["1 bbr", "1 bbr"],
    ["", ""],
    // Beyond 2^53 a number would lose digits: keep the kernel's text.
    ["18446744073709551615\n", "18446744073709551615"],
  ])("parse %j as %j", (text, value) => {
    expect(parseSysctlValue(text)).toEqual(value);
  });

  it("round trip: format(parse(kernel text)) is the normalized text, parse(format(v)) is v", () => {
    const texts = ["4096\t131072\t6291456\n", "32768\t60999", "bbr\n", "  1  ", "reno bbr cubic"];
    for (const text of texts) {
      expect(formatSysctl(parseSysctlValue(text))).toBe(normalizeSysctl(text));
    }
    for (const v of [[4096, 87380, 6291456], [1024, 65535], 65535, 0, "cubic"] as const) {
      expect(parseSysctlValue(`${formatSysctl(v).split(" ").join("\t")}\n`)).toEqual(v);
    }
  });
});

const CONNECTION = {
  host: "198.18.9.9",
  privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
};

describe("sysctlSetSchema through validate()", () => {
  it("fills the defaults: persist both, behindNat false, port 22, user root", () => {
    const { value, failures } = validate(sysctlSetSchema, {
      connection: CONNECTION,
      values: { "net.core.somaxconn": 65535, "net.ipv4.tcp_rmem": [4096, 87380, 33554432] },
      fileName: "90-web.conf",
    });
    expect(failures).toEqual([]);
    expect(value).toMatchObject({
      persist: "both",
      behindNat: false,
      fileName: "90-web.conf",
      connection: { host: "198.18.9.9", port: 22, user: "root" },
      values: { "net.core.somaxconn": 65535, "net.ipv4.tcp_rmem": [4096, 87380, 33554432] },
    });
  });

  it("names every bad field with a path users can read, all at once", () => {
    const { value, failures } = validate(sysctlSetSchema, {
      connection: { ...CONNECTION, port: 70000 },
      values: {
        "net.core.somaxconn": "lots",
        "net.ipv4.tcp_rmem": [8192, 4096, 6291456],
        "net.core/../x": 1,
        "net.ipv4.tcp_sack": 1,
      },
      persist: "forever",
      fileName: "../../etc/passwd",
    });
    expect(value).toBeUndefined();
    const byPath = Object.fromEntries(failures.map((f) => [f.property, f.reason]));
    expect(Object.keys(byPath).sort()).toEqual(
      [
        "connection.port",
        'values["net.core.somaxconn"]',
        'values["net.ipv4.tcp_rmem"]',
        'values["net.core/../x"]',
        "persist",
        "fileName",
      ].sort(),
    );
    expect(byPath['values["net.core.somaxconn"]']).toBe('expected an integer (got "lots")');
    expect(byPath['values["net.ipv4.tcp_rmem"]']).toMatch(/min <= default <= max/);
    expect(byPath['values["net.core/../x"]']).toMatch(/invalid key name/);
    expect(byPath["persist"]).toMatch(/"runtime", "persistent" or "both"/);
    expect(byPath["fileName"]).toMatch(/plain file name ending in \.conf/);
    expect(byPath["connection.port"]).toMatch(/between 1 and 65535/);
  });

  it("refuses an empty set, a missing file name and non-boolean behindNat", () => {
    const { failures } = validate(sysctlSetSchema, {
      connection: CONNECTION,
      values: {},
      behindNat: "yes",
    });
    const paths = failures.map((f) => f.property).sort();
    expect(paths).toEqual(["behindNat", "fileName", "values"]);
    expect(failures.find((f) => f.property === "values")?.reason).toMatch(/at least one key/);
  });

  it("accepts file names of the sysctl.d kind only", () => {
    for (const f of ["90-nettune.conf", "web.conf", "a_b.c-d.conf"]) {
      expect(sysctlFileName.safeParse(f).success, f).toBe(true);
    }
    const refused = ["x.txt", ".hidden.conf", "a/b.conf", "../a.conf", "a b.conf", "a;b", ".conf"];
    for (const f of refused) {
      expect(sysctlFileName.safeParse(f).success, f).toBe(false);
    }
  });
});

describe("sysctlWarnings", () => {
  const SAFE = {
    "net.core.somaxconn": 65535,
    "net.ipv4.tcp_syncookies": 1,
    "net.ipv4.tcp_timestamps": 1,
    "net.ipv4.tcp_sack": 1,
    "net.ipv4.tcp_tw_reuse": 2,
    "net.core.rmem_max": MIB64,
    "net.core.wmem_max": MIB64,
    "net.ipv4.tcp_rmem": [4096, 87380, MIB64],
    "net.ipv4.tcp_wmem": [4096, 65536, MIB64],
    "net.ipv4.tcp_congestion_control": "bbr",
  };

  it("says nothing about safe settings, with or without NAT", () => {
    expect(sysctlWarnings(SAFE, false)).toEqual([]);
    expect(sysctlWarnings(SAFE, true)).toEqual([]);
    expect(sysctlWarnings({}, true)).toEqual([]);
  });

  it.each([
    ["net.ipv4.tcp_syncookies", 0, /SYN floods/],
    ["net.ipv4.tcp_timestamps", 0, /PAWS/],
    ["net.ipv4.tcp_sack", 0, /recovery from packet loss/],
    ["net.core.rmem_max", MIB64 + 1, /above 64 MiB.*bufferbloat/],
    ["net.core.wmem_max", 128 * 1024 * 1024, /above 64 MiB.*bufferbloat/],
    ["net.ipv4.tcp_rmem", [4096, 87380, MIB64 + 1], /tcp_rmem max = 67108865 is above 64 MiB/],
    ["net.ipv4.tcp_wmem", [4096, 65536, 1 << 30], /tcp_wmem max = 1073741824 is above 64 MiB/],
  ])("warns about %s = %j", (key, value, reason) => {
    const w = sysctlWarnings({ ...SAFE, [key]: value }, false);
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(reason);
    expect(w[0]).toContain(key);
  });

  it("warns about tcp_tw_reuse = 1 only behind NAT", () => {
    const values = { ...SAFE, "net.ipv4.tcp_tw_reuse": 1 };
    expect(sysctlWarnings(values, false)).toEqual([]);
    const w = sysctlWarnings(values, true);
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/^net\.ipv4\.tcp_tw_reuse = 1 on a server behind NAT/);
  });

  it("lists every risky setting of one declaration", () => {
    const w = sysctlWarnings(
      {
        "net.ipv4.tcp_syncookies": 0,
        "net.ipv4.tcp_timestamps": 0,
        "net.ipv4.tcp_sack": 0,
        "net.ipv4.tcp_tw_reuse": 1,
        "net.core.rmem_max": 1 << 30,
        "net.ipv4.tcp_wmem": [4096, 65536, 1 << 30],
      },
      true,
    );
    expect(w).toHaveLength(6);
  });
});
