/**
 * XdpProgram without a host: its inputs, the compile on this machine (clang), the diff of the
 * object's sha256, the preview checks (foreign program, MTU, takeOver, virtio_net offloads) on
 * facts as a sandbox host reported them, and the live values refresh reports.
 *
 * test/fixtures/xdp/ip-link-nspawn-veth-xdpdrv.json: `ip -d -j link show` inside an nspawn
 * sandbox host (kernel 6.18) with a veth pair xt0/xt1 created in the host and
 * foreign_pass.c attached to xt0 with `ip link set dev xt0 xdpdrv obj foreign.o sec xdp`; the
 * entries of lo, eth0 and xt0 are as printed, xt1's is xt0's with its own name, index and MTU.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, test } from "vitest";
import { xdpProgramSchema } from "../../src/schemas/xdpProgram";
import { checkXdp, xdpProgramSpec, type XdpProgramOutputs } from "../../src/specs/xdpProgram";
import { specDiff } from "../../src/engine/spec";
import { validate } from "../../src/engine/lifecycle";
import { parseIpXdp, pinIdOf, xdpMtuLimit, xdpPaths } from "../../src/host/xdpProgram";
import { parseIpLink } from "../../src/host/ip";
import { parseShow } from "../../src/host/xdpLoader";
import { compileXdp, xdpObjectOf } from "../../src/resources/xdpProgram";
import type { LinkFacts } from "../../src/specs/link";

const FIX = path.join(__dirname, "../fixtures/xdp");
const IP_JSON = fs.readFileSync(path.join(FIX, "ip-link-nspawn-veth-xdpdrv.json"), "utf8");

const CONNECTION = {
  host: "198.18.9.9",
  privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
};
const UNIT = "nettune-xdpprogram-t.service";
const OBJ = Buffer.from("\x7fELF pretend object");
const SHA = createHash("sha256").update(OBJ).digest("hex");

function raw(extra: Record<string, unknown> = {}) {
  return {
    connection: CONNECTION,
    interface: "eth0",
    programName: "xdp_pass_count",
    unitName: UNIT,
    objectSha256: SHA,
    objectBase64: OBJ.toString("base64"),
    ...extra,
  };
}
const inputs = (extra: Record<string, unknown> = {}) => xdpProgramSchema.parse(raw(extra));

function state(extra: Partial<XdpProgramOutputs> = {}): XdpProgramOutputs {
  return {
    ...inputs(),
    objectBase64: "",
    attached: {
      progId: 40,
      linkId: 7,
      tag: "aaaaaaaaaaaaaaaa",
      name: "xdp_pass_count",
      mode: "native",
      via: "link",
    },
    maps: ["pkt_count"],
    pinDir: xdpPaths(UNIT).pinDir,
    objectPath: xdpPaths(UNIT).object,
    unitPath: `/etc/systemd/system/${UNIT}`,
    takenOver: null,
    warnings: [],
    ...extra,
  };
}

type Own = Parameters<typeof checkXdp>[1]["own"];

/** Facts of eth0 (or xt0) as the probe reads them. */
function facts(
  opts: {
    ifname?: string;
    driver?: string;
    show?: unknown;
    mtu?: number;
    features?: Own["features"];
  } = {},
): LinkFacts<Own> {
  const ifname = opts.ifname ?? "eth0";
  const link = parseIpLink(IP_JSON).find((l) => l.ifname === ifname)!;
  return {
    info: {
      ifname,
      driver: opts.driver ?? "veth",
      link: opts.mtu ? { ...link, mtu: opts.mtu } : link,
    },
    own: {
      loaderSha: opts.show ? "f".repeat(64) : null,
      show: opts.show ? parseShow(JSON.stringify(opts.show)) : null,
      ip: parseIpXdp(IP_JSON, ifname),
      features: opts.features,
      pageSize: 4096,
    },
  };
}

function showOf(programs: Record<string, unknown>[]) {
  return {
    attached: programs[0] ?? null,
    programs,
    multi: false,
    ifindex: 2,
    mtu: 1500,
    driver: "veth",
    bpffs: true,
  };
}
const OURS = {
  progId: 41,
  name: "xdp_pass_count",
  tag: "aaaaaaaaaaaaaaaa",
  mode: "native",
  linkId: 7,
  pinned: `${xdpPaths(UNIT).pinDir}/link`,
};

describe("inputs", () => {
  test("defaults: native, no takeover, persisted", () => {
    expect(inputs()).toMatchObject({ mode: "native", takeOver: false, persist: true });
  });

  test("bad inputs name their field", () => {
    const { failures } = validate(
      xdpProgramSchema,
      raw({
        programName: "xdp-bad name",
        mode: "fast",
        objectSha256: "abc",
        takeOver: "yes",
        extra: 1,
        interface: "eth0;x",
      }),
    );
    const by = Object.fromEntries(failures.map((f) => [f.property, f.reason]));
    expect(by.programName).toMatch(/C identifier/);
    expect(by.mode).toMatch(/"native", "generic" or "hw"/);
    expect(by.objectSha256).toMatch(/64 lower-case hex/);
    expect(by.takeOver).toMatch(/true or false/);
    expect(by.extra).toMatch(/unknown field/);
    expect(by.interface).toMatch(/interface name/);
  });

  test("pin ids keep to bpffs names", () => {
    expect(pinIdOf("nettune-xdpprogram-web.edge:1.service")).toBe("nettune-xdpprogram-web_edge_1");
    expect(xdpPaths(UNIT)).toEqual({
      pinDir: "/sys/fs/bpf/nettune/nettune-xdpprogram-t",
      saveDir: "/sys/fs/bpf/nettune/nettune-xdpprogram-t-saved",
      object: "/usr/local/lib/nettune/xdp/nettune-xdpprogram-t.o",
    });
  });
});

describe("compile on this machine", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-xdp-unit-"));
  process.env.XDG_CACHE_HOME = path.join(tmp, "cache");

  test("an object with BTF; the same source in another folder gives the same bytes", () => {
    const a = path.join(tmp, "a");
    const b = path.join(tmp, "b");
    for (const d of [a, b]) {
      fs.mkdirSync(d);
      fs.copyFileSync(path.join(FIX, "pass_count.c"), path.join(d, "p.c"));
    }
    const oa = compileXdp("r", path.join(a, "p.c"));
    expect(oa.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
    expect(oa.includes(Buffer.from(".BTF"))).toBe(true);
    const ob = compileXdp("r", path.join(b, "p.c"));
    expect(ob.equals(oa)).toBe(true);
    // Another flag, another object.
    expect(compileXdp("r", path.join(a, "p.c"), ["-DSTEP=2"]).equals(oa)).toBe(false);
  });

  test("a changed header recompiles", () => {
    const d = path.join(tmp, "h");
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, "step.h"), "#define STEP 1\n");
    fs.writeFileSync(
      path.join(d, "p.c"),
      '#include "step.h"\n' + fs.readFileSync(path.join(FIX, "pass_count.c"), "utf8"),
    );
    const one = compileXdp("r", path.join(d, "p.c"));
    fs.writeFileSync(path.join(d, "step.h"), "#define STEP 3\n");
    expect(compileXdp("r", path.join(d, "p.c")).equals(one)).toBe(false);
  });

  test("a compile error names the resource and shows clang's message", () => {
    const bad = path.join(tmp, "bad.c");
    fs.writeFileSync(bad, "int f(void) { return nope; }\n");
    expect(() => compileXdp("edge", bad)).toThrow(
      /XdpProgram edge: clang could not compile .*bad\.c:\n.*use of undeclared identifier 'nope'/s,
    );
  });

  test("missing files and non-objects are named", () => {
    expect(() => xdpObjectOf("r", { source: path.join(tmp, "none.c") })).toThrow(
      /program\.source: no file/,
    );
    fs.writeFileSync(path.join(tmp, "x.o"), "not elf");
    expect(() => xdpObjectOf("r", { objectPath: path.join(tmp, "x.o") })).toThrow(
      /not an ELF object/,
    );
  });
});

describe("diff", () => {
  test("another object is an update of objectSha256, never a line of the blob", () => {
    const other = Buffer.from("\x7fELF another");
    const news = inputs({
      objectSha256: createHash("sha256").update(other).digest("hex"),
      objectBase64: other.toString("base64"),
    });
    const d = specDiff(xdpProgramSpec, state(), news);
    expect(d.changes).toBe(true);
    expect(d.replaces).toEqual([]);
    expect(d.detailedDiff).toEqual({ objectSha256: { kind: "update", inputDiff: true } });
  });

  test("the same object is no change, though the state holds no blob", () => {
    expect(specDiff(xdpProgramSpec, state(), inputs()).changes).toBe(false);
  });

  test("another mode or interface replaces", () => {
    expect(specDiff(xdpProgramSpec, state(), inputs({ mode: "generic" })).replaces).toEqual([
      "mode",
    ]);
    expect(specDiff(xdpProgramSpec, state(), inputs({ interface: "eth1" })).replaces).toEqual([
      "interface",
    ]);
  });

  test("a refreshed state that found nothing attached is an update", () => {
    const d = specDiff(
      xdpProgramSpec,
      state({ objectSha256: "none", attached: undefined }),
      inputs(),
    );
    expect(d.detailedDiff).toEqual({ objectSha256: { kind: "update", inputDiff: true } });
  });
});

describe("preview checks", () => {
  test("the ip fixture: xt0's program and its peer's MTU", () => {
    expect(parseIpXdp(IP_JSON, "xt0")).toEqual({
      programs: [{ progId: 3803, name: "xdp_foreign", tag: "614b434cd8324ecc", mode: "native" }],
      peer: { ifname: "xt1", mtu: 3506 },
    });
    // eth0's peer is in another namespace: unknown.
    expect(parseIpXdp(IP_JSON, "eth0")).toEqual({ programs: [] });
  });

  test("a foreign program is named with id, name, tag and mode, and the fix", () => {
    const f = checkXdp(inputs({ interface: "xt0" }), facts({ ifname: "xt0" }));
    expect(f).toEqual([
      {
        property: "interface",
        reason: expect.stringMatching(
          /^xt0 \(driver veth\) has program 3803 "xdp_foreign" \(tag 614b434cd8324ecc, native mode\) attached, which nettune did not attach.*ip link set dev xt0 xdpdrv off.*takeOver: true/,
        ) as unknown,
      },
    ]);
    // takeOver accepts a netlink-attached one, refuses one held by another bpf_link.
    expect(
      checkXdp(inputs({ interface: "xt0", takeOver: true }), facts({ ifname: "xt0" })),
    ).toEqual([]);
    const held = facts({
      ifname: "xt0",
      show: showOf([{ ...OURS, pinned: null, linkId: 99, progId: 3803, name: "xdp_foreign" }]),
    });
    expect(checkXdp(inputs({ interface: "xt0", takeOver: true }), held)[0]).toMatchObject({
      property: "takeOver",
      reason: expect.stringMatching(/held by bpf_link 99/) as unknown,
    });
  });

  test("nettune's own program is no obstacle", () => {
    expect(checkXdp(inputs(), facts({ show: showOf([OURS]) }))).toEqual([]);
  });

  test("veth: the peer's MTU against the single-buffer limit; generic mode has none", () => {
    expect(xdpMtuLimit("veth", 4096)?.max).toBe(3506); // measured: 3506 attaches, 3507 does not
    expect(xdpMtuLimit("virtio_net", 4096)?.max).toBe(3520);
    expect(xdpMtuLimit("ena", 4096)?.max).toBe(3498);
    const f = facts({ ifname: "xt0" });
    const big = {
      ...f,
      own: { ...f.own, ip: { programs: [], peer: { ifname: "xt1", mtu: 9000 } } },
    };
    expect(checkXdp(inputs({ interface: "xt0" }), big)).toEqual([
      {
        property: "interface",
        reason: expect.stringMatching(
          /^native XDP on xt0 \(driver veth\) needs its peer xt1's MTU of at most 3506 .*xt1 has MTU 9000: lower it \(ip link set dev xt1 mtu 3506/,
        ) as unknown,
      },
    ]);
    expect(checkXdp(inputs({ interface: "xt0", mode: "generic" }), big)).toEqual([]);
    const atLimit = {
      ...f,
      own: { ...f.own, ip: { programs: [], peer: { ifname: "xt1", mtu: 3506 } } },
    };
    expect(checkXdp(inputs({ interface: "xt0" }), atLimit)).toEqual([]);
  });

  test("virtio_net: its own MTU, and guest offloads it cannot turn off", () => {
    const v = facts({ driver: "virtio_net", mtu: 9000 });
    expect(checkXdp(inputs(), v)[0]?.reason).toMatch(
      /needs an MTU of at most 3520 .*eth0 has MTU 9000/,
    );
    const gro = facts({
      driver: "virtio_net",
      features: { interface: "eth0", features: { "rx-gro-hw": { on: true, fixed: true } } },
    });
    expect(checkXdp(inputs(), gro)).toEqual([
      {
        property: "mode",
        reason: expect.stringMatching(/rx-gro-hw: on \[fixed\].*guest_tso4/) as unknown,
      },
    ]);
  });

  test("hw mode only on offload NICs", () => {
    expect(checkXdp(inputs({ mode: "hw" }), facts())[0]?.property).toBe("mode");
  });
});

describe("live values for refresh", () => {
  test("nettune's program with the recorded tag: no drift, ids as now", () => {
    const live = xdpProgramSpec.live(state(), facts({ show: showOf([OURS]) }));
    expect(live).toEqual({
      objectSha256: SHA,
      attached: {
        progId: 41,
        linkId: 7,
        tag: "aaaaaaaaaaaaaaaa",
        name: "xdp_pass_count",
        mode: "native",
        via: "link",
      },
    });
  });

  test("nothing of nettune's attached, another program, or no interface: drift", () => {
    for (const f of [
      facts({ show: showOf([]) }),
      facts({ show: showOf([{ ...OURS, tag: "bbbbbbbbbbbbbbbb" }]) }),
      facts({ show: showOf([{ ...OURS, pinned: null }]) }),
      undefined,
    ]) {
      expect(xdpProgramSpec.live(state(), f)).toEqual({
        objectSha256: "none",
        attached: undefined,
      });
    }
  });
});
