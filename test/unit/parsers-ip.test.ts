/**
 * The `ip -d -j link` parser and the `ip link` renderers, on real captures of eight kinds of
 * link (test/fixtures/ip, see test/fixtures/SOURCES.md).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";

import { ParseError } from "../../src/host/errors";
import {
  isValidInterfaceName,
  parseIpLink,
  renderIpLinkSet,
  renderIpLinkShow,
  type IpLink,
} from "../../src/host/ip";
import { parsers } from "../../src/parsers";

const DIR = path.join(__dirname, "..", "fixtures", "ip");
const FILES = fs
  .readdirSync(DIR)
  .filter((f) => f.endsWith(".json"))
  .sort();

function fixture(name: string): string {
  return fs.readFileSync(path.join(DIR, name), "utf8");
}

/** The one link of a `show dev IF` capture. */
function only(name: string): IpLink {
  const links = parseIpLink(fixture(name));
  expect(links).toHaveLength(1);
  return links[0] as IpLink;
}

describe("parseIpLink on every capture", () => {
  it.each(FILES)("%s", (file) => {
    const links = parseIpLink(fixture(file));
    const raw = JSON.parse(fixture(file)) as { ifname: string; mtu: number }[];
    expect(links.map((l) => l.ifname)).toEqual(raw.map((r) => r.ifname));
    expect(links.map((l) => l.mtu)).toEqual(raw.map((r) => r.mtu));
    for (const l of links) {
      // -d output of this kernel has all of these for every link.
      expect(typeof l.numTxQueues, `${file} ${l.ifname}`).toBe("number");
      expect(typeof l.gsoMaxSize).toBe("number");
      expect(typeof l.groMaxSize).toBe("number");
      expect(typeof l.txqlen).toBe("number");
    }
  });
});

describe("parseIpLink: facts from the captures", () => {
  it("virtio_net eth0", () => {
    expect(only("virtio_net-eth0.json")).toEqual({
      ifname: "eth0",
      ifindex: 4,
      mtu: 1400,
      minMtu: 68,
      maxMtu: 65535,
      txqlen: 1000,
      qdisc: "pfifo_fast",
      operstate: "UP",
      flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
      address: "02:fc:00:00:00:01",
      linkType: "ether",
      numTxQueues: 1,
      numRxQueues: 1,
      gsoMaxSize: 65536,
      groMaxSize: 65536,
      parentBus: "virtio",
      parentDev: "virtio2",
    });
  });

  it("lo: mtu 65536, no kind, no MTU limits", () => {
    const lo = only("loopback-lo.json");
    expect(lo.mtu).toBe(65536);
    expect(lo.kind).toBeUndefined();
    expect("kind" in lo).toBe(false);
    expect(lo.linkType).toBe("loopback");
    expect(lo.minMtu).toBe(0);
    expect(lo.maxMtu).toBe(0);
    expect(lo.qdisc).toBe("noqueue");
    expect(lo.operstate).toBe("UNKNOWN");
    expect(lo.parentDev).toBeUndefined();
  });

  it("ifb0: down, kind ifb, txqlen 32", () => {
    const ifb = only("ifb-ifb0.json");
    expect(ifb).toMatchObject({ kind: "ifb", operstate: "DOWN", txqlen: 32, qdisc: "noop" });
    expect(ifb.flags).not.toContain("UP");
  });

  it("veth with 4 queues, peer named in link", () => {
    const a = only("veth-a.json");
    expect(a).toMatchObject({ ifname: "a", kind: "veth", link: "b" });
    expect(a.numTxQueues).toBe(4);
    expect(a.numRxQueues).toBe(4);
    expect(a.maxMtu).toBe(65535);
    // ethtool -L changes the active queues, not the allocated ones ip shows.
    expect(only("veth-b-after-L.json")).toMatchObject({ numTxQueues: 4, numRxQueues: 4 });
  });

  it("bridge, tun, macvlan, vxlan", () => {
    expect(only("bridge-br0.json")).toMatchObject({ kind: "bridge", mtu: 1500, numRxQueues: 1 });
    const tun = only("tun-tun0.json");
    expect(tun).toMatchObject({ kind: "tun", linkType: "none", operstate: "DOWN", txqlen: 500 });
    expect(tun.address).toBeUndefined();
    expect(tun.flags).toContain("NO-CARRIER");
    expect(only("macvlan-mv0.json")).toMatchObject({ kind: "macvlan", link: "br0" });
    // vxlan takes 50 bytes of headers off the lower device's 1500.
    expect(only("vxlan-vx0.json")).toMatchObject({ kind: "vxlan", mtu: 1450 });
  });

  it("the whole namespace in one call, in ip's order", () => {
    const links = parseIpLink(fixture("netns-all.json"));
    expect(links.map((l) => [l.ifname, l.kind ?? null])).toEqual([
      ["lo", null],
      ["b", "veth"],
      ["a", "veth"],
      ["br0", "bridge"],
      ["tun0", "tun"],
      ["mv0", "macvlan"],
      ["vx0", "vxlan"],
    ]);
  });

  it("is public as parsers.ipLink", () => {
    expect(parsers.ipLink).toBe(parseIpLink);
  });
});

describe("parseIpLink: edge cases", () => {
  function error(text: string): ParseError {
    try {
      parseIpLink(text);
    } catch (e) {
      expect(e).toBeInstanceOf(ParseError);
      return e as ParseError;
    }
    throw new Error("expected a ParseError");
  }

  it("invalid JSON → ParseError naming ip -d -j link, with the cause", () => {
    const e = error('[{"ifname": "eth0",');
    expect(e.tool).toBe("ip -d -j link");
    expect(e.message).toMatch(/^ip -d -j link: invalid JSON/);
    expect(e.cause).toBeInstanceOf(SyntaxError);
    expect(e.output).toBe('[{"ifname": "eth0",');
  });

  it("empty output (ip printed its error on stderr)", () => {
    expect(error("").message).toBe("ip -d -j link: no output");
  });

  it("not an array, a link that is not an object, missing or mistyped fields", () => {
    expect(error('{"ifname":"x"}').message).toMatch(/expected a JSON array/);
    expect(error("[1]").message).toMatch(/link 0 is not an object/);
    const good = JSON.parse(fixture("veth-a.json")) as Record<string, unknown>[];
    const without = (field: string) =>
      JSON.stringify(good.map((l) => ({ ...l, [field]: undefined })));
    expect(error(without("mtu")).message).toMatch(/link 0: "mtu" is not a number/);
    expect(error(without("flags")).message).toMatch(/"flags" is not an array of strings/);
    const mistyped = JSON.stringify(good.map((l) => ({ ...l, txqlen: "1000" })));
    expect(error(mistyped).message).toMatch(/"txqlen" is not a number/);
  });

  it("keeps tx and rx queue counts apart", () => {
    const good = JSON.parse(fixture("veth-a.json")) as Record<string, unknown>[];
    const [link] = parseIpLink(JSON.stringify(good.map((l) => ({ ...l, num_rx_queues: 2 }))));
    expect(link).toMatchObject({ numTxQueues: 4, numRxQueues: 2 });
  });

  it("an empty list, and null for a peer in another namespace", () => {
    expect(parseIpLink("[]")).toEqual([]);
    const good = JSON.parse(fixture("veth-a.json")) as Record<string, unknown>[];
    const [link] = parseIpLink(JSON.stringify(good.map((l) => ({ ...l, link: null }))));
    expect(link?.link).toBeUndefined();
  });

  it("links from an older iproute2 without gro_max_size and parent fields", () => {
    const [link] = parseIpLink(
      '[{"ifindex":2,"ifname":"ens3","flags":["UP"],"mtu":9001,"qdisc":"mq","txqlen":1000}]',
    );
    expect(link).toEqual({
      ifname: "ens3",
      ifindex: 2,
      mtu: 9001,
      flags: ["UP"],
      qdisc: "mq",
      txqlen: 1000,
    });
  });
});

describe("renderers", () => {
  it("renderIpLinkSet always names the device with dev", () => {
    expect(renderIpLinkSet("eth0", { mtu: 9000 })).toEqual([
      "ip",
      "link",
      "set",
      "dev",
      "eth0",
      "mtu",
      "9000",
    ]);
    expect(renderIpLinkSet("a", { mtu: 1500, txqlen: 10000 })).toEqual([
      "ip",
      "link",
      "set",
      "dev",
      "a",
      "mtu",
      "1500",
      "txqueuelen",
      "10000",
    ]);
    expect(renderIpLinkSet("eth0", { txqlen: 0 })).toEqual([
      "ip",
      "link",
      "set",
      "dev",
      "eth0",
      "txqueuelen",
      "0",
    ]);
  });

  it("renderIpLinkSet refuses nothing to set, bad numbers and bad names", () => {
    expect(() => renderIpLinkSet("eth0", {})).toThrow(/nothing to set/);
    expect(() => renderIpLinkSet("eth0", { mtu: 1500.5 })).toThrow(RangeError);
    expect(() => renderIpLinkSet("eth0", { mtu: -1 })).toThrow(RangeError);
    expect(() => renderIpLinkSet("eth0; reboot", { mtu: 1500 })).toThrow(/invalid interface/);
  });

  it("renderIpLinkShow", () => {
    expect(renderIpLinkShow()).toEqual(["ip", "-d", "-j", "link", "show"]);
    expect(renderIpLinkShow("vx0")).toEqual(["ip", "-d", "-j", "link", "show", "dev", "vx0"]);
  });

  it("isValidInterfaceName follows the kernel's rules", () => {
    for (const ok of ["eth0", "a", "enp0s31f6", "veth-x_1.2", "123456789012345"]) {
      expect(isValidInterfaceName(ok), ok).toBe(true);
    }
    for (const bad of ["", ".", "..", "a/b", "a:1", "a b", "-x", "1234567890123456"]) {
      expect(isValidInterfaceName(bad), bad).toBe(false);
    }
  });
});
