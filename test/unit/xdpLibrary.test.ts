/**
 * The XDP program library and constants, without a host: each program's typed config becomes
 * the constants its C declares (names read from the shipped object's BTF string table), bad
 * configs fail naming the field, the
 * constants reach the loader's command line (attach, boot unit, rollback) and a change of
 * constants is an update that re-attaches. What the programs do with the constants is tested
 * by the kernel itself in tools/xdp-loader/programs_test.go; on hosts in test/engine/xdp.test.ts.
 */
import * as fs from "node:fs";
import { createHash } from "node:crypto";
import { describe, expect, test } from "vitest";
import * as nettune from "../../src";
import {
  allowList,
  dropPorts,
  parsePrefix,
  synFlood,
  XDP_COUNTERS,
} from "../../src/resources/xdpLibrary";
import { xdpProgramSchema } from "../../src/schemas/xdpProgram";
import { xdpProgramSpec, type XdpProgramOutputs } from "../../src/specs/xdpProgram";
import { specDiff } from "../../src/engine/spec";
import {
  canonicalJson,
  constantsArgv,
  parseCounters,
  renderAttach,
} from "../../src/host/xdpLoader";
import { renderBootAttach, renderXdpRollback, xdpPaths } from "../../src/host/xdpProgram";

/** The names in an object's BTF string section: the constants the C declares. */
function btfNames(file: string): Set<string> {
  const text = fs.readFileSync(file).toString("latin1");
  return new Set(text.split("\0").filter((s) => /^[A-Za-z_]\w*$/.test(s)));
}

function decodeConsts(argv: readonly string[]): unknown {
  const i = argv.indexOf("--consts-base64");
  return i < 0 ? undefined : JSON.parse(Buffer.from(argv[i + 1]!, "base64").toString());
}

describe("the library's programs", () => {
  test("synFlood: defaults and config become the object's constants", () => {
    const p = synFlood();
    expect(p.programName).toBe("xdp_syn_flood");
    expect(p.constants).toEqual({
      cfg_rate: 100,
      cfg_burst: 200,
      cfg_total_rate: 0,
      cfg_total_burst: 0,
      cfg_port_count: 0,
      cfg_ports: [],
    });
    const q = synFlood({ perSourceRate: 50, burst: 10, totalRate: 5000, ports: [80, 443] });
    expect(q.constants).toMatchObject({
      cfg_rate: 50,
      cfg_burst: 10,
      cfg_total_rate: 5000,
      cfg_total_burst: 5000,
      cfg_port_count: 2,
      cfg_ports: [80, 443],
    });
    // The shipped object holds the program and every constant named.
    const obj = (q.program as { objectPath: string }).objectPath;
    expect(obj).toMatch(/dist\/xdp\/syn_flood\.o$/);
    const names = btfNames(obj);
    for (const k of [...Object.keys(q.constants), "xdp_syn_flood", "syn_stats"])
      expect(names.has(k), k).toBe(true);
  });

  test("dropPorts and allowList: constants the objects declare", () => {
    const d = dropPorts({ tcp: [23], udp: [53, 11211] });
    expect(d.constants).toEqual({
      cfg_tcp_count: 1,
      cfg_tcp_ports: [23],
      cfg_udp_count: 2,
      cfg_udp_ports: [53, 11211],
    });
    const a = allowList({
      sources: ["198.18.0.0/15", "10.0.0.7", "2001:db8::/32", "::ffff:198.18.0.1"],
      ports: { tcp: [22] },
    });
    expect(a.constants).toMatchObject({
      cfg_v4_count: 2,
      cfg_v4_addr: [0xc6120000, 0x0a000007],
      cfg_v4_mask: [0xfffe0000, 0xffffffff],
      cfg_v6_count: 2,
      cfg_v6_addr: [
        [0x20010db8, 0, 0, 0],
        [0, 0, 0xffff, 0xc6120001],
      ],
      cfg_v6_mask: [
        [0xffffffff, 0, 0, 0],
        [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
      ],
      cfg_tcp_count: 1,
      cfg_tcp_ports: [22],
      cfg_udp_count: 0,
    });
    for (const p of [d, a]) {
      const names = btfNames((p.program as { objectPath: string }).objectPath);
      for (const k of [...Object.keys(p.constants), p.programName])
        expect(names.has(k), k).toBe(true);
      expect(names.has(XDP_COUNTERS[p.programName as keyof typeof XDP_COUNTERS].map)).toBe(true);
    }
  });

  test("bad configs fail naming the field, before anything is declared", () => {
    const cases: [() => unknown, RegExp][] = [
      [
        () => synFlood({ perSourceRate: 0 }),
        /synFlood: perSourceRate must be a whole number from 1 to 1000000, got 0/,
      ],
      [() => synFlood({ burst: 1.5 }), /synFlood: burst must be a whole number/],
      [
        () => synFlood({ ports: [80, 70000] }),
        /synFlood: ports\[1\] must be a whole number from 1 to 65535/,
      ],
      [() => synFlood({ ports: [80, 80] }), /synFlood: ports lists port 80 twice/],
      [
        () => synFlood({ ports: Array.from({ length: 65 }, (_, i) => i + 1) }),
        /holds at most 64 ports, got 65/,
      ],
      [() => synFlood({ totalBurst: 5 }), /synFlood: totalBurst needs totalRate/],
      [
        () => synFlood({ rate: 5 } as never),
        /synFlood: rate is not a field \(fields: perSourceRate/,
      ],
      [() => dropPorts({}), /dropPorts: tcp or udp must list at least one port/],
      [() => allowList({ sources: [] }), /allowList: sources must list at least one/],
      [
        () => allowList({ sources: ["198.18.1.5/15"] }),
        /sources\[0\] 198\.18\.1\.5\/15 has bits set past its \/15 prefix: did you mean 198\.18\.0\.0\/15\?/,
      ],
      [
        () => allowList({ sources: ["10.0.0.0/33"] }),
        /sources\[0\] \/33 is longer than an IPv4 address/,
      ],
      [
        () => allowList({ sources: ["example.com"] }),
        /sources\[0\] "example.com" is not an IPv4 or IPv6 address/,
      ],
      [
        () => allowList({ sources: ["10.0.0.1"], ports: {} }),
        /allowList: ports must list at least one TCP or UDP port/,
      ],
      [
        () => allowList({ sources: ["10.0.0.1"], ports: { sctp: [1] } as never }),
        /allowList: sctp is not a field/,
      ],
    ];
    for (const [fn, re] of cases) expect(fn).toThrow(re);
  });

  test("prefixes: IPv6 forms, host bits", () => {
    expect(parsePrefix("::1")).toEqual({
      family: 6,
      words: [0, 0, 0, 1],
      masks: [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
    });
    expect(parsePrefix("fe80::/10")).toEqual({
      family: 6,
      words: [0xfe800000, 0, 0, 0],
      masks: [0xffc00000, 0, 0, 0],
    });
    expect(parsePrefix("0.0.0.0/0")).toEqual({ family: 4, words: [0], masks: [0] });
    expect(parsePrefix("2001:db8::1/64")).toMatch(/did you mean 2001:db8:0:0:0:0:0:0\/64/);
  });

  test("nettune.xdp is the library, spreadable into XdpProgram's args", () => {
    expect(nettune.xdp.synFlood).toBe(synFlood);
    const args: Omit<nettune.XdpProgramArgs, "connection" | "interface"> = nettune.xdp.allowList({
      sources: ["198.18.0.0/15"],
    });
    expect(args.programName).toBe("xdp_allow_list");
  });
});

const CONNECTION = {
  host: "198.18.9.9",
  privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
};
const OBJ = Buffer.from("\x7fELF pretend");
const SHA = createHash("sha256").update(OBJ).digest("hex");
const UNIT = "nettune-xdpprogram-t.service";
const inputs = (extra: Record<string, unknown> = {}) =>
  xdpProgramSchema.parse({
    connection: CONNECTION,
    interface: "eth0",
    programName: "xdp_syn_flood",
    unitName: UNIT,
    objectSha256: SHA,
    objectBase64: OBJ.toString("base64"),
    ...extra,
  });

describe("constants through the provider", () => {
  test("the schema takes integers, booleans, digit strings and (2-D) lists; names are C identifiers", () => {
    expect(inputs().constants).toEqual({});
    expect(
      inputs({ constants: { a: 1, b: true, c: "18446744073709551615", d: [1, 2], e: [[1, 2]] } })
        .constants,
    ).toMatchObject({ c: "18446744073709551615" });
    for (const bad of [{ "a-b": 1 }, { a: 1.5 }, { a: "x" }, { a: { b: 1 } }, { a: [[[1]]] }]) {
      const r = xdpProgramSchema.safeParse({ ...inputs(), constants: bad });
      expect(r.success, JSON.stringify(bad)).toBe(false);
      expect(JSON.stringify(r.error?.issues.map((i) => i.path))).toContain("constants");
    }
  });

  test("the loader's attach, the boot unit's attach and an update's rollback carry them, in base64", () => {
    const c = synFlood({ ports: [443] }).constants;
    const argv = renderAttach({
      dev: "eth0",
      obj: "/o",
      prog: "xdp_syn_flood",
      mode: "native",
      pinDir: "/p",
      constants: c,
    });
    expect(decodeConsts(argv)).toEqual(c);
    expect(argv.every((a) => /^[A-Za-z0-9+/=_./-]+$/.test(a))).toBe(true);
    expect(
      decodeConsts(
        renderBootAttach({
          dev: "eth0",
          object: "/o",
          prog: "p",
          mode: "native",
          pinDir: "/p",
          constants: c,
        }),
      ),
    ).toEqual(c);
    expect(constantsArgv({})).toEqual([]);
    expect(
      renderAttach({ dev: "eth0", obj: "/o", prog: "p", mode: "native", pinDir: "/p" }),
    ).not.toContain("--consts-base64");
    const rb = renderXdpRollback({
      dev: "eth0",
      mode: "native",
      unitName: UNIT,
      previousProgram: "xdp_syn_flood",
      previousConstants: { cfg_rate: 7 },
    });
    const b64 = Buffer.from(canonicalJson({ cfg_rate: 7 })).toString("base64");
    expect(rb).toContain(
      `--obj ${xdpPaths(UNIT).object}.prev --prog xdp_syn_flood --mode native --pin-dir ${xdpPaths(UNIT).pinDir} --consts-base64 ${b64}`,
    );
    // The same constants in another key order: the same command line.
    expect(canonicalJson({ b: 1, a: [1] })).toBe(canonicalJson({ a: [1], b: 1 }));
  });

  test("a change of constants alone is an update of constants", () => {
    const state = {
      ...inputs({ constants: { cfg_rate: 100 } }),
      objectBase64: "",
    } as unknown as XdpProgramOutputs;
    const d = specDiff(xdpProgramSpec, state, inputs({ constants: { cfg_rate: 50 } }));
    expect(d.changes).toBe(true);
    expect(d.replaces).toEqual([]);
    expect(d.detailedDiff).toEqual({ constants: { kind: "update", inputDiff: true } });
    expect(specDiff(xdpProgramSpec, state, inputs({ constants: { cfg_rate: 100 } })).changes).toBe(
      false,
    );
  });

  test("counters: the loader's JSON", () => {
    expect(parseCounters('{"map":"syn_stats","values":[5,3,2,0]}\n')).toEqual([5, 3, 2, 0]);
    expect(() => parseCounters('{"error":"no map pinned at /x","code":"no-such-map"}')).toThrow(
      /no map pinned.*no-such-map/,
    );
    expect(() => parseCounters('{"values":"x"}')).toThrow(/list of numbers/);
  });
});
