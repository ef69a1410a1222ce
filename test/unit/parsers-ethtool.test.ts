/**
 * The ethtool parsers and renderers. Every fixture in test/fixtures/ethtool is real output (see
 * test/fixtures/SOURCES.md); the facts asserted here are read from those captures, so a parser
 * that misreads a line fails a concrete expectation, not only a "does not throw".
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";

import { ParseError } from "../../src/host/errors";
import {
  FEATURE_ALIASES,
  parseEthtoolChannels,
  parseEthtoolDriverInfo,
  parseEthtoolFeatures,
  parseEthtoolFeaturesJson,
  parseEthtoolRings,
  parseEthtoolRss,
  renderEthtoolChannels,
  renderEthtoolFeatures,
  renderEthtoolRings,
  renderEthtoolRssEqual,
  renderEthtoolRssWeights,
  renderEthtoolShow,
  resolveFeatureName,
} from "../../src/host/ethtool";
import { parsers } from "../../src/parsers";

const DIR = path.join(__dirname, "..", "fixtures", "ethtool");

function fixture(name: string): string {
  return fs.readFileSync(path.join(DIR, name), "utf8");
}

/** stdout, then stderr when ethtool printed any (that is how a failure's reason arrives). */
function output(name: string): string {
  const err = path.join(DIR, name.replace(/\.txt$/, ".stderr.txt"));
  return fixture(name) + (fs.existsSync(err) ? fs.readFileSync(err, "utf8") : "");
}

function hasStderr(name: string): boolean {
  return fs.existsSync(path.join(DIR, name.replace(/\.txt$/, ".stderr.txt")));
}

const FILES = fs.readdirSync(DIR).sort();
const bySuffix = (suffix: string) =>
  FILES.filter((f) => f.endsWith(suffix) && !f.endsWith(".stderr.txt"));

/** `veth-b-after-L.l.txt` → `b`: fixtures are named DRIVER-IFNAME[-STATE].OPTION.txt. */
function ifnameOf(file: string): string {
  const stem = file.split(".")[0] ?? "";
  return stem.split("-")[1] ?? "";
}

/** Calls `fn` and returns what it threw, failing the test when nothing was thrown. */
function thrown(fn: () => unknown): ParseError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ParseError);
    return e as ParseError;
  }
  throw new Error("expected a ParseError");
}

describe("fixtures", () => {
  it("cover at least six drivers, as ethtool -i names them", () => {
    const drivers = new Set(
      bySuffix(".i.txt")
        .filter((f) => !hasStderr(f))
        .map((f) => parseEthtoolDriverInfo(fixture(f)).driver),
    );
    expect([...drivers].sort()).toEqual([
      "bridge",
      "ifb",
      "macvlan",
      "tun",
      "veth",
      "virtio_net",
      "vxlan",
    ]);
  });

  it("name the driver ethtool -i reports", () => {
    for (const f of bySuffix(".i.txt").filter((f) => !hasStderr(f))) {
      expect(parseEthtoolDriverInfo(fixture(f)).driver, f).toBe(f.split("-")[0]);
    }
  });
});

describe("parseEthtoolFeatures on every capture", () => {
  const files = bySuffix(".k.txt");

  it.each(files)("%s: reads every line, for the interface it names", (file) => {
    const text = fixture(file);
    const parsed = parseEthtoolFeatures(text);
    expect(parsed.interface).toBe(ifnameOf(file));
    // One feature per line after the header: nothing skipped silently.
    const lines = text.split("\n").filter((l) => l.trim() !== "");
    expect(Object.keys(parsed.features)).toHaveLength(lines.length - 1);
  });

  it.each(bySuffix(".k.json"))("%s: the JSON form gives the same result as the text", (file) => {
    const fromJson = parseEthtoolFeaturesJson(fixture(file));
    const fromText = parseEthtoolFeatures(fixture(file.replace(/\.json$/, ".txt")));
    expect(fromJson).toEqual(fromText);
  });
});

describe("parseEthtoolFeatures: facts from the captures", () => {
  it("virtio_net eth0", () => {
    const { interface: ifname, features: f } = parseEthtoolFeatures(
      fixture("virtio_net-eth0.k.txt"),
    );
    expect(ifname).toBe("eth0");
    expect(f["rx-checksumming"]).toEqual({ on: true, fixed: true });
    expect(f["tx-checksumming"]).toEqual({ on: true, fixed: false });
    expect(f["tx-checksum-ipv4"]).toEqual({ on: false, fixed: true });
    expect(f["tcp-segmentation-offload"]).toEqual({ on: true, fixed: false });
    expect(f["generic-receive-offload"]).toEqual({ on: true, fixed: false });
    expect(f["large-receive-offload"]).toEqual({ on: false, fixed: true });
    expect(f["receive-hashing"]).toEqual({ on: false, fixed: true });
    expect(f["rx-gro-hw"]).toEqual({ on: true, fixed: true });
    expect(f["hsr-dup-offload"]).toEqual({ on: false, fixed: true });
    expect(Object.keys(f)).toHaveLength(63);
  });

  it("veth: GRO off by default, on after -K gro on, off again with TSO after -K gro off tso off", () => {
    const before = parseEthtoolFeatures(fixture("veth-b.k.txt")).features;
    const groOn = parseEthtoolFeatures(fixture("veth-b-gro-on.k.txt")).features;
    const after = parseEthtoolFeatures(fixture("veth-b-after-K.k.txt")).features;
    expect(before["generic-receive-offload"]).toEqual({ on: false, fixed: false });
    expect(before["tcp-segmentation-offload"]).toEqual({ on: true, fixed: false });
    expect(groOn["generic-receive-offload"]).toEqual({ on: true, fixed: false });
    expect(after["generic-receive-offload"]).toEqual({ on: false, fixed: false });
    expect(after["tcp-segmentation-offload"]).toEqual({ on: false, fixed: false });
    // Sub-features follow the group they are indented under.
    expect(after["tx-tcp-segmentation"]).toEqual({ on: false, fixed: false });
    expect(after["tx-tcp6-segmentation"]).toEqual({ on: false, fixed: false });
    expect(after["generic-segmentation-offload"]).toEqual({ on: true, fixed: false });
    expect(after["large-receive-offload"]).toEqual({ on: false, fixed: true });
  });

  it("veth: with scatter-gather off, GSO shows [requested on]", () => {
    const { features: f } = parseEthtoolFeatures(fixture("veth-b-sg-off.k.txt"));
    expect(f["scatter-gather"]).toEqual({ on: false, fixed: false });
    expect(f["tx-scatter-gather"]).toEqual({ on: false, fixed: false });
    expect(f["generic-segmentation-offload"]).toEqual({
      on: false,
      fixed: false,
      requested: true,
    });
  });

  it("tun: offloads asked for but not active are [requested on]", () => {
    const { features: f } = parseEthtoolFeatures(fixture("tun-tun0.k.txt"));
    expect(f["tx-tcp-segmentation"]).toEqual({ on: false, fixed: false, requested: true });
    expect(f["tx-checksum-ip-generic"]).toEqual({ on: false, fixed: false, requested: true });
    expect(f["tx-udp-segmentation"]).toEqual({ on: false, fixed: false, requested: true });
    expect(f["rx-checksumming"]).toEqual({ on: false, fixed: true });
    expect(f["generic-receive-offload"]).toEqual({ on: true, fixed: false });
    const requested = Object.entries(f).filter(([, v]) => v.requested !== undefined);
    expect(requested.map(([k]) => k).sort()).toEqual([
      "tx-checksum-ip-generic",
      "tx-tcp-ecn-segmentation",
      "tx-tcp-segmentation",
      "tx-tcp6-segmentation",
      "tx-udp-segmentation",
      "tx-udp_tnl-csum-segmentation",
      "tx-udp_tnl-segmentation",
    ]);
  });

  it("lo, bridge, ifb, macvlan, vxlan", () => {
    const f = (file: string) => parseEthtoolFeatures(fixture(file)).features;
    expect(f("loopback-lo.k.txt")["loopback"]).toEqual({ on: true, fixed: true });
    expect(f("loopback-lo.k.txt")["highdma"]).toEqual({ on: true, fixed: true });
    expect(f("bridge-br0.k.txt")["rx-checksumming"]).toEqual({ on: false, fixed: true });
    expect(f("bridge-br0.k.txt")["highdma"]).toEqual({ on: true, fixed: false });
    expect(f("ifb-ifb0.k.txt")["generic-receive-offload"]?.on).toBe(true);
    expect(f("macvlan-mv0.k.txt")["generic-receive-offload"]?.on).toBe(true);
    expect(f("vxlan-vx0.k.txt")["large-receive-offload"]).toEqual({ on: false, fixed: true });
  });

  it("the JSON capture after -K keeps the same facts", () => {
    const { interface: ifname, features: f } = parseEthtoolFeaturesJson(
      fixture("veth-b-after-K.k.json"),
    );
    expect(ifname).toBe("b");
    expect(f["generic-receive-offload"]).toEqual({ on: false, fixed: false });
    expect(f["tcp-segmentation-offload"]).toEqual({ on: false, fixed: false });
    expect(f["tx-checksum-ipv4"]).toEqual({ on: false, fixed: true });
  });
});

describe("parseEthtoolFeatures: edge cases", () => {
  const header = "Features for eth9:\n";

  it("takes tabs turned into spaces, [requested off], CRLF and trailing blank lines", () => {
    const text =
      header +
      "tcp-segmentation-offload: on\n" +
      "        tx-tcp-segmentation: on\n" +
      "  tx-tcp6-segmentation:   off [requested on]\r\n" +
      "rx-vlan-filter: on [requested off]\n" +
      "\n\n   \n";
    expect(parseEthtoolFeatures(text)).toEqual({
      interface: "eth9",
      features: {
        "tcp-segmentation-offload": { on: true, fixed: false },
        "tx-tcp-segmentation": { on: true, fixed: false },
        "tx-tcp6-segmentation": { on: false, fixed: false, requested: true },
        "rx-vlan-filter": { on: true, fixed: false, requested: false },
      },
    });
  });

  it("keeps missing features missing", () => {
    const { features } = parseEthtoolFeatures(header + "generic-receive-offload: off [fixed]\n");
    expect(features["large-receive-offload"]).toBeUndefined();
    expect(Object.keys(features)).toEqual(["generic-receive-offload"]);
  });

  it("reads the capture with all tabs replaced by spaces", () => {
    const text = fixture("virtio_net-eth0.k.txt");
    expect(parseEthtoolFeatures(text.replace(/\t/g, "    "))).toEqual(parseEthtoolFeatures(text));
  });

  it("rejects garbage with the tool and the line", () => {
    const e = thrown(() => parseEthtoolFeatures(header + "gro: on\nthis is not a feature\n"));
    expect(e.tool).toBe("ethtool -k");
    expect(e.message).toMatch(/^ethtool -k: cannot read line 3: "this is not a feature"/);
    expect(e.unsupported).toBe(false);
    expect(e.name).toBe("ParseError");
  });

  it("rejects a value other than on/off, an unknown bracket and a repeated feature", () => {
    expect(() => parseEthtoolFeatures(header + "gro: maybe\n")).toThrow(/line 2/);
    expect(() => parseEthtoolFeatures(header + "gro: on [broken]\n")).toThrow(/line 2/);
    expect(() => parseEthtoolFeatures(header + "gro: on\ngro: off\n")).toThrow(/gro repeated/);
  });

  it("rejects empty output, a missing header and another command's output", () => {
    expect(thrown(() => parseEthtoolFeatures("")).message).toBe("ethtool -k: no output");
    expect(() => parseEthtoolFeatures("gro: on\n")).toThrow(/line 1.*Features for IF/);
    expect(() => parseEthtoolFeatures(fixture("virtio_net-eth0.l.txt"))).toThrow(ParseError);
  });

  it("reports a missing device in the message", () => {
    const e = thrown(() =>
      parseEthtoolFeatures("netlink error: no device matches name (offset 24)\n"),
    );
    expect(e.message).toContain("no device matches name");
    expect(e.output).toContain("offset 24");
  });

  it("keeps the whole text in .output but at most 2 KB of it in the message", () => {
    const long = header + "junk ".repeat(2000);
    const e = thrown(() => parseEthtoolFeatures(long));
    expect(e.output).toBe(long);
    const line = long.split("\n")[1] ?? "";
    expect(e.message).toBe(
      `ethtool -k: cannot read line 2: "${line.slice(0, 200)}…"\n${long.slice(0, 2048)}…`,
    );
  });
});

describe("parseEthtoolFeaturesJson: edge cases", () => {
  it("rejects invalid JSON, naming ethtool --json -k", () => {
    const e = thrown(() => parseEthtoolFeaturesJson("[ {"));
    expect(e.tool).toBe("ethtool --json -k");
    expect(e.message).toMatch(/^ethtool --json -k: invalid JSON/);
    expect(e.cause).toBeInstanceOf(SyntaxError);
  });

  it("rejects an older ethtool's refusal of --json -k", () => {
    expect(() =>
      parseEthtoolFeaturesJson("ethtool: bad command line argument(s)\nFor more information"),
    ).toThrow(/invalid JSON/);
  });

  it("rejects a feature without a boolean 'active'", () => {
    expect(() =>
      parseEthtoolFeaturesJson('[{"ifname":"x","gro":{"active":"yes","fixed":false}}]'),
    ).toThrow(/feature "gro"/);
    expect(() => parseEthtoolFeaturesJson('[{"gro":{"active":true}}]')).toThrow(/ifname/);
    expect(() => parseEthtoolFeaturesJson("[]")).toThrow(/one device/);
  });
});

describe("parseEthtoolChannels", () => {
  it("virtio_net eth0: one combined channel, no separate rx/tx", () => {
    expect(parseEthtoolChannels(fixture("virtio_net-eth0.l.txt"))).toEqual({
      interface: "eth0",
      max: { rx: null, tx: null, other: null, combined: 1 },
      current: { rx: null, tx: null, other: null, combined: 1 },
    });
  });

  it("veth with 4 queues: separate rx/tx, combined n/a", () => {
    const ch = parseEthtoolChannels(fixture("veth-a.l.txt"));
    expect(ch.interface).toBe("a");
    expect(ch.max).toEqual({ rx: 4, tx: 4, other: null, combined: null });
    expect(ch.current).toEqual({ rx: 4, tx: 4, other: null, combined: null });
  });

  it("veth after ethtool -L b rx 2 tx 2: current below max", () => {
    const ch = parseEthtoolChannels(fixture("veth-b-after-L.l.txt"));
    expect(ch.max).toEqual({ rx: 4, tx: 4, other: null, combined: null });
    expect(ch.current).toEqual({ rx: 2, tx: 2, other: null, combined: null });
  });

  it("tun: combined max 1, current 0", () => {
    const ch = parseEthtoolChannels(fixture("tun-tun0.l.txt"));
    expect(ch.max.combined).toBe(1);
    expect(ch.current.combined).toBe(0);
    expect(ch.current.rx).toBeNull();
  });

  const unsupported = bySuffix(".l.txt").filter(hasStderr);
  it("has captures of drivers without channels", () => {
    expect(unsupported.map((f) => f.split(".")[0])).toEqual([
      "bridge-br0",
      "ifb-ifb0",
      "loopback-lo",
      "macvlan-mv0",
      "vxlan-vx0",
    ]);
  });

  it.each(unsupported)("%s: Operation not supported → ParseError, unsupported", (file) => {
    expect(fixture(file)).toBe(""); // ethtool printed nothing on stdout
    const e = thrown(() => parseEthtoolChannels(output(file)));
    expect(e.tool).toBe("ethtool -l");
    expect(e.unsupported).toBe(true);
    expect(e.message).toBe(
      "ethtool -l: not supported by this device (netlink error: Operation not supported)\n" +
        "netlink error: Operation not supported",
    );
  });

  it("without stderr, empty stdout is 'no output'", () => {
    const e = thrown(() => parseEthtoolChannels(fixture("loopback-lo.l.txt")));
    expect(e.message).toBe("ethtool -l: no output");
    expect(e.unsupported).toBe(false);
  });

  const veth = fixture("veth-b-after-L.l.txt");
  it("reads the capture with tabs turned into spaces and trailing blank lines", () => {
    const spaced = veth.replace(/\t/g, " ") + "\n\n";
    expect(parseEthtoolChannels(spaced)).toEqual(parseEthtoolChannels(veth));
  });

  it("keeps rx and tx apart", () => {
    const lopsided = veth.replace(/TX:\t\t2/, "TX:\t\t1");
    expect(parseEthtoolChannels(lopsided).current).toEqual({
      rx: 2,
      tx: 1,
      other: null,
      combined: null,
    });
  });

  it("rejects a bad count, an unknown key, a lost line and a lost section", () => {
    expect(() => parseEthtoolChannels(veth.replace("RX:\t\t2", "RX:\t\ttwo"))).toThrow(
      /ethtool -l: cannot read line 8: "RX:\\t\\ttwo" \(expected a number or n\/a\)/,
    );
    expect(() => parseEthtoolChannels(veth.replace("Other:", "Others:"))).toThrow(/line 5/);
    expect(() => parseEthtoolChannels(veth.replace("TX:\t\t2\n", ""))).toThrow(
      /no "TX" under "Current hardware settings:"/,
    );
    expect(() => parseEthtoolChannels(veth.replace("Pre-set maximums:\n", ""))).toThrow(
      /cannot read line 2/,
    );
    const truncated = veth.slice(0, veth.indexOf("Current"));
    expect(() => parseEthtoolChannels(truncated)).toThrow(/no "Current hardware settings:"/);
  });
});

describe("parseEthtoolRings", () => {
  it("virtio_net eth0: 256 descriptors each way, the extra lines kept", () => {
    expect(parseEthtoolRings(fixture("virtio_net-eth0.g.txt"))).toEqual({
      interface: "eth0",
      max: { rx: 256, rxMini: null, rxJumbo: null, tx: 256 },
      current: { rx: 256, rxMini: null, rxJumbo: null, tx: 256 },
      extra: { "RX Buf Len": null, "CQE Size": null, "TX Push": "off", "TCP data split": null },
      extraMax: {},
    });
  });

  const unsupported = bySuffix(".g.txt").filter(hasStderr);
  it("every other driver here has no rings", () => {
    expect(unsupported).toHaveLength(bySuffix(".g.txt").length - 1);
    expect(unsupported).toContain("veth-a.g.txt");
  });

  it.each(unsupported)("%s: ParseError, unsupported, naming ethtool -g", (file) => {
    const e = thrown(() => parseEthtoolRings(output(file)));
    expect(e.tool).toBe("ethtool -g");
    expect(e.unsupported).toBe(true);
  });

  it("keeps numeric extra lines as numbers and extra lines under the maximums apart", () => {
    const text =
      "Ring parameters for eth9:\nPre-set maximums:\nRX:\t\t8192\nRX Mini:\tn/a\n" +
      "RX Jumbo:\tn/a\nTX:\t\t8192\nTX push buff len:\t256\nCurrent hardware settings:\n" +
      "RX:\t\t1024\nRX Mini:\tn/a\nRX Jumbo:\tn/a\nTX:\t\t4096\nRX Buf Len:\t\t2048\n" +
      "TX push buff len:\t128\nTCP data split:\ton\n";
    const rings = parseEthtoolRings(text);
    expect(rings.max.rx).toBe(8192);
    expect(rings.current).toEqual({ rx: 1024, rxMini: null, rxJumbo: null, tx: 4096 });
    expect(rings.extra).toEqual({
      "RX Buf Len": 2048,
      "TX push buff len": 128,
      "TCP data split": "on",
    });
    expect(rings.extraMax).toEqual({ "TX push buff len": 256 });
  });

  it("rejects channels output and a garbled size", () => {
    expect(() => parseEthtoolRings(fixture("virtio_net-eth0.l.txt"))).toThrow(
      /ethtool -g: cannot read line 1: "Channel parameters for eth0:"/,
    );
    const text = fixture("virtio_net-eth0.g.txt").replace("TX:\t\t256", "TX:\t\t-1");
    expect(() => parseEthtoolRings(text)).toThrow(/line 6/);
  });
});

describe("parseEthtoolRss", () => {
  it("virtio_net with one queue has no indirection table: ParseError naming ethtool -x", () => {
    const e = thrown(() => parseEthtoolRss(fixture("virtio_net-eth0.x.txt")));
    expect(e.tool).toBe("ethtool -x");
    expect(e.unsupported).toBe(true);
    expect(e.message).toMatch(
      /^ethtool -x: eth0 has no RSS indirection table \(Operation not supported\)\nRX flow/,
    );
  });

  const unsupported = bySuffix(".x.txt").filter(hasStderr);
  it.each(unsupported)("%s: Cannot get RX ring count → ParseError, unsupported", (file) => {
    const e = thrown(() => parseEthtoolRss(output(file)));
    expect(e.tool).toBe("ethtool -x");
    expect(e.unsupported).toBe(true);
    expect(e.message).toContain("Cannot get RX ring count: Operation not supported");
  });

  // The layout ethtool prints for a NIC with a table (print_indir_table and print_rss_hkey in
  // ethtool's common.c): none of the devices available for capture here has one.
  const table = [
    "RX flow hash indirection table for ens5 with 2 RX ring(s):",
    "    0:      0     1     0     1     0     1     0     1",
    "    8:      0     1     0     1     0     1     0     1",
    "   16:      1     1",
    "RSS hash key:",
    "0d:1f:cb:76:88:82:dd:ea:70:c9:ef:53:3e:f3:bf:60:5c:79:60:09",
    "RSS hash function:",
    "    toeplitz: on",
    "    xor: off",
    "    crc32: off",
    "",
  ].join("\n");

  it("reads the table in bucket order, the key and the hash functions", () => {
    expect(parseEthtoolRss(table)).toEqual({
      interface: "ens5",
      ringCount: 2,
      indirection: [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1],
      hashKey: "0d:1f:cb:76:88:82:dd:ea:70:c9:ef:53:3e:f3:bf:60:5c:79:60:09",
      hashFunctions: { toeplitz: true, xor: false, crc32: false },
    });
  });

  it("takes a context, no hash key, and the input transformation of newer ethtool", () => {
    const text = table
      .replace("ring(s):", "ring(s), context 3:")
      .replace(/RSS hash key:\n.*\n/, "RSS hash key:\nOperation not supported\n")
      .concat("RSS input transformation:\n    symmetric-xor: on\n");
    const rss = parseEthtoolRss(text);
    expect(rss.context).toBe(3);
    expect(rss.hashKey).toBeUndefined();
    expect(rss.inputTransformation).toEqual({ "symmetric-xor": true });
    expect(rss.indirection).toHaveLength(18);
  });

  it("rejects a lost row of the table and garbage", () => {
    expect(() => parseEthtoolRss(table.replace(/ {4}8:.*\n/, ""))).toThrow(
      /ethtool -x: cannot read line 3: ".*" \(expected bucket 8\)/,
    );
    expect(() => parseEthtoolRss(table.replace("xor: off", "xor: perhaps"))).toThrow(/line 9/);
    expect(() => parseEthtoolRss("garbage\n")).toThrow(/^ethtool -x: cannot read line 1/);
  });
});

describe("parseEthtoolDriverInfo", () => {
  it("virtio_net eth0", () => {
    const info = parseEthtoolDriverInfo(fixture("virtio_net-eth0.i.txt"));
    expect(info).toMatchObject({ driver: "virtio_net", version: "1.0.0", busInfo: "0000:00:03.0" });
    expect(info.firmwareVersion).toBeUndefined();
    expect(info.fields["supports-statistics"]).toBe("yes");
  });

  it("lo has no driver information", () => {
    const e = thrown(() => parseEthtoolDriverInfo(output("loopback-lo.i.txt")));
    expect(e.unsupported).toBe(true);
    expect(e.tool).toBe("ethtool -i");
  });
});

describe("the public parsers namespace", () => {
  it("exposes the same functions", () => {
    expect(parsers.ethtoolFeatures).toBe(parseEthtoolFeatures);
    expect(parsers.ethtoolFeaturesJson).toBe(parseEthtoolFeaturesJson);
    expect(parsers.ethtoolChannels).toBe(parseEthtoolChannels);
    expect(parsers.ethtoolRings).toBe(parseEthtoolRings);
    expect(parsers.ethtoolRss).toBe(parseEthtoolRss);
    expect(parsers.ethtoolDriverInfo).toBe(parseEthtoolDriverInfo);
  });
});

describe("renderers", () => {
  it("renderEthtoolFeatures keeps the order and the names as given", () => {
    expect(renderEthtoolFeatures("eth0", { tso: true, gso: true, gro: true, lro: false })).toEqual([
      "ethtool",
      "-K",
      "eth0",
      "tso",
      "on",
      "gso",
      "on",
      "gro",
      "on",
      "lro",
      "off",
    ]);
    expect(renderEthtoolFeatures("b", { "generic-receive-offload": false })).toEqual([
      "ethtool",
      "-K",
      "b",
      "generic-receive-offload",
      "off",
    ]);
  });

  it("renderEthtoolFeatures refuses nothing, bad names and one feature under two names", () => {
    expect(() => renderEthtoolFeatures("eth0", {})).toThrow(RangeError);
    expect(() => renderEthtoolFeatures("eth0", { "-s": true })).toThrow(/invalid feature name/);
    expect(() => renderEthtoolFeatures("eth0", { "gro on": true })).toThrow(RangeError);
    expect(() =>
      renderEthtoolFeatures("eth0", { tso: true, "tcp-segmentation-offload": false }),
    ).toThrow(/tcp-segmentation-offload given twice \(also as tso\)/);
    expect(() => renderEthtoolFeatures("-x", { gro: true })).toThrow(/invalid interface name/);
    expect(() => renderEthtoolFeatures("a-very-long-name0", { gro: true })).toThrow(RangeError);
  });

  it("renderEthtoolChannels in rx, tx, other, combined order", () => {
    expect(renderEthtoolChannels("b", { tx: 2, rx: 2 })).toEqual([
      "ethtool",
      "-L",
      "b",
      "rx",
      "2",
      "tx",
      "2",
    ]);
    expect(renderEthtoolChannels("eth0", { combined: 8 })).toEqual([
      "ethtool",
      "-L",
      "eth0",
      "combined",
      "8",
    ]);
    expect(() => renderEthtoolChannels("eth0", {})).toThrow(/nothing to set/);
    expect(() => renderEthtoolChannels("eth0", { combined: 1.5 })).toThrow(RangeError);
    expect(() => renderEthtoolChannels("eth0", { rx: -1 })).toThrow(RangeError);
  });

  it("renderEthtoolRings uses ethtool's option names", () => {
    expect(renderEthtoolRings("eth0", { rx: 4096, rxMini: 64, rxJumbo: 128, tx: 1024 })).toEqual([
      "ethtool",
      "-G",
      "eth0",
      "rx",
      "4096",
      "rx-mini",
      "64",
      "rx-jumbo",
      "128",
      "tx",
      "1024",
    ]);
    expect(() => renderEthtoolRings("eth0", { rx: 0 })).toThrow(RangeError);
    expect(() => renderEthtoolRings("eth0", {})).toThrow(/nothing to set/);
  });

  it("renderEthtoolRssEqual and renderEthtoolRssWeights", () => {
    expect(renderEthtoolRssEqual("eth0", 4)).toEqual(["ethtool", "-X", "eth0", "equal", "4"]);
    expect(renderEthtoolRssWeights("eth0", [6, 2, 0])).toEqual([
      "ethtool",
      "-X",
      "eth0",
      "weight",
      "6",
      "2",
      "0",
    ]);
    expect(() => renderEthtoolRssEqual("eth0", 0)).toThrow(RangeError);
    expect(() => renderEthtoolRssWeights("eth0", [])).toThrow(/none given/);
    expect(() => renderEthtoolRssWeights("eth0", [0, 0])).toThrow(/all are 0/);
    expect(() => renderEthtoolRssWeights("eth0", [1, NaN])).toThrow(RangeError);
  });

  it("renderEthtoolShow gives the read command of each parser", () => {
    expect(renderEthtoolShow("features", "eth0")).toEqual(["ethtool", "-k", "eth0"]);
    expect(renderEthtoolShow("featuresJson", "eth0")).toEqual(["ethtool", "--json", "-k", "eth0"]);
    expect(renderEthtoolShow("channels", "eth0")).toEqual(["ethtool", "-l", "eth0"]);
    expect(renderEthtoolShow("rings", "eth0")).toEqual(["ethtool", "-g", "eth0"]);
    expect(renderEthtoolShow("rss", "eth0")).toEqual(["ethtool", "-x", "eth0"]);
    expect(renderEthtoolShow("driverInfo", "eth0")).toEqual(["ethtool", "-i", "eth0"]);
  });
});

describe("feature names", () => {
  it("FEATURE_ALIASES maps ethtool's short names to the names ethtool -k prints", () => {
    expect(FEATURE_ALIASES).toEqual({
      rx: "rx-checksumming",
      tx: "tx-checksumming",
      sg: "scatter-gather",
      tso: "tcp-segmentation-offload",
      gso: "generic-segmentation-offload",
      gro: "generic-receive-offload",
      lro: "large-receive-offload",
      rxvlan: "rx-vlan-offload",
      txvlan: "tx-vlan-offload",
      ntuple: "ntuple-filters",
      rxhash: "receive-hashing",
    });
    // Every long name is one a real NIC prints.
    const { features } = parseEthtoolFeatures(fixture("virtio_net-eth0.k.txt"));
    for (const long of Object.values(FEATURE_ALIASES)) expect(features[long], long).toBeDefined();
  });

  it("resolveFeatureName", () => {
    expect(resolveFeatureName("tso")).toBe("tcp-segmentation-offload");
    expect(resolveFeatureName("rxhash")).toBe("receive-hashing");
    expect(resolveFeatureName("rx-gro-list")).toBe("rx-gro-list");
    expect(resolveFeatureName("constructor")).toBe("constructor");
  });
});
