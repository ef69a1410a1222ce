/**
 * nettune's XDP program library: programs shipped with the package (their C in `xdp/`, compiled
 * into `dist/xdp/*.o`), each configured by a typed object that becomes the program's constants.
 * Spread the result into an XdpProgram:
 *
 * ```ts
 * new nettune.XdpProgram("syn", { connection, interface: "eth0",
 *   ...nettune.xdp.synFlood({ perSourceRate: 100, burst: 200, ports: [443] }) });
 * ```
 *
 * The config is checked here, when the program is declared: a wrong field fails naming it.
 */
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import type { XdpConstants, XdpProgramSource } from "./xdpProgram";

/** What a library function returns: the inputs of an XdpProgram besides the host's. */
export interface XdpLibraryProgram {
  /** The shipped object (`dist/xdp/<name>.o`). */
  readonly program: XdpProgramSource;
  readonly programName: string;
  /** The config, as the program's constants. */
  readonly constants: XdpConstants;
}

/** At most this many ports or prefixes in one list (the programs' arrays). */
export const XDP_LIST_MAX = 64;

export interface SynFloodConfig {
  /** SYNs per second one source address may send to the protected ports. 1 to 1000000; default 100. */
  readonly perSourceRate?: number;
  /** SYNs one source may send at once on top of the rate. 0 to 1000000; default 200. */
  readonly burst?: number;
  /**
   * SYNs per second from all sources together (a flood from many addresses); beyond it SYNs
   * are dropped whatever their source. 1 to 100000000; default: no total limit.
   */
  readonly totalRate?: number;
  /** SYNs all sources may send at once on top of totalRate. Default: one second's worth. */
  readonly totalBurst?: number;
  /** The protected destination ports (at most 64); default every port. */
  readonly ports?: readonly number[];
}

export interface DropPortsConfig {
  /** TCP destination ports whose packets are dropped (at most 64). */
  readonly tcp?: readonly number[];
  /** UDP destination ports whose packets are dropped (at most 64). */
  readonly udp?: readonly number[];
}

export interface AllowListConfig {
  /**
   * The source addresses or prefixes whose packets pass: `"198.18.0.0/15"`, `"10.0.0.7"`,
   * `"2001:db8::/32"` (at most 64 IPv4 and 64 IPv6). Remember the address your SSH session
   * comes from: commit-confirmed puts the host back if you cut it, but only then.
   */
  readonly sources: readonly string[];
  /**
   * Check only packets to these ports (the rest pass): `{ tcp: [22] }` keeps SSH to the list.
   * Without it every IPv4 and IPv6 packet is checked. Non-IP frames (ARP) always pass.
   */
  readonly ports?: { readonly tcp?: readonly number[]; readonly udp?: readonly number[] };
}

/** synFlood's counters (map `syn_stats`), in the map's order. */
export interface SynFloodCounters {
  /** SYNs to the protected ports the program examined. */
  seen: number;
  passed: number;
  droppedPerSource: number;
  droppedTotal: number;
}

/** The counters map of each program and what its entries count, in order. */
export const XDP_COUNTERS = {
  xdp_syn_flood: {
    map: "syn_stats",
    names: ["seen", "passed", "droppedPerSource", "droppedTotal"],
  },
  xdp_drop_ports: { map: "drop_stats", names: ["droppedTcp", "droppedUdp"] },
  xdp_allow_list: { map: "allow_stats", names: ["checked", "passed", "dropped"] },
} as const;

function fail(fn: string, field: string, message: string): never {
  throw new Error(`nettune.xdp.${fn}: ${field} ${message}`);
}

function intIn(fn: string, field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
    fail(fn, field, `must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v;
}

function portList(fn: string, field: string, v: unknown): number[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) fail(fn, field, "must be a list of ports");
  if (v.length > XDP_LIST_MAX)
    fail(fn, field, `holds at most ${XDP_LIST_MAX} ports, got ${v.length}`);
  const ports = v.map((p, i) => intIn(fn, `${field}[${i}]`, p, 1, 65535));
  const dup = ports.find((p, i) => ports.indexOf(p) !== i);
  if (dup !== undefined) fail(fn, field, `lists port ${dup} twice`);
  return ports;
}

function known(fn: string, config: object, fields: readonly string[]): void {
  if (config === null || typeof config !== "object" || Array.isArray(config))
    throw new Error(`nettune.xdp.${fn}: the config must be an object`);
  for (const k of Object.keys(config))
    if (!fields.includes(k)) fail(fn, k, `is not a field (fields: ${fields.join(", ")})`);
}

/** The package folder (the one with nettune's package.json), from this file's place in it. */
function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = path.join(dir, "package.json");
    if (fs.existsSync(pkg)) {
      try {
        if ((JSON.parse(fs.readFileSync(pkg, "utf8")) as { name?: string }).name === "nettune")
          return dir;
      } catch {
        // not ours
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error("nettune.xdp: cannot find nettune's package folder");
    dir = up;
  }
}

/** The shipped object of a program of the library. */
export function libraryObject(name: string): string {
  const file = path.join(packageRoot(), "dist", "xdp", `${name}.o`);
  if (!fs.existsSync(file))
    throw new Error(
      `nettune.xdp: the program object ${file} is missing (in a clone of nettune, \`npm run setup\` compiles xdp/*.c)`,
    );
  return file;
}

/**
 * Drops TCP SYNs beyond a per-source rate (and, optionally, a total rate) to the protected
 * ports; every other packet passes. Counters in `syn_stats` (see {@link XDP_COUNTERS}).
 */
export function synFlood(config: SynFloodConfig = {}): XdpLibraryProgram {
  const fn = "synFlood";
  known(fn, config, ["perSourceRate", "burst", "totalRate", "totalBurst", "ports"]);
  const rate = intIn(fn, "perSourceRate", config.perSourceRate ?? 100, 1, 1_000_000);
  const burst = intIn(fn, "burst", config.burst ?? 200, 0, 1_000_000);
  const total =
    config.totalRate === undefined ? 0 : intIn(fn, "totalRate", config.totalRate, 1, 100_000_000);
  if (config.totalBurst !== undefined && config.totalRate === undefined)
    fail(fn, "totalBurst", "needs totalRate");
  const totalBurst =
    config.totalBurst === undefined
      ? total
      : intIn(fn, "totalBurst", config.totalBurst, 0, 100_000_000);
  const ports = portList(fn, "ports", config.ports);
  return {
    program: { objectPath: libraryObject("syn_flood") },
    programName: "xdp_syn_flood",
    constants: {
      cfg_rate: rate,
      cfg_burst: burst,
      cfg_total_rate: total,
      cfg_total_burst: totalBurst,
      cfg_port_count: ports.length,
      cfg_ports: ports,
    },
  };
}

/** Drops TCP and UDP packets to the listed destination ports. Counters in `drop_stats`. */
export function dropPorts(config: DropPortsConfig): XdpLibraryProgram {
  const fn = "dropPorts";
  known(fn, config, ["tcp", "udp"]);
  const tcp = portList(fn, "tcp", config.tcp);
  const udp = portList(fn, "udp", config.udp);
  if (tcp.length + udp.length === 0) fail(fn, "tcp", "or udp must list at least one port");
  return {
    program: { objectPath: libraryObject("drop_ports") },
    programName: "xdp_drop_ports",
    constants: {
      cfg_tcp_count: tcp.length,
      cfg_tcp_ports: tcp,
      cfg_udp_count: udp.length,
      cfg_udp_ports: udp,
    },
  };
}

/** An address prefix as host-order 32-bit words and masks (IPv4: one word; IPv6: four). */
export interface ParsedPrefix {
  family: 4 | 6;
  words: number[];
  masks: number[];
}

function ipv6Words(addr: string): number[] {
  let text = addr;
  // An embedded IPv4 tail (::ffff:198.18.0.1) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split(".").map(Number);
    text = `${text.slice(0, v4.index)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const h = head ? head.split(":") : [];
  const t = tail === undefined ? [] : tail ? tail.split(":") : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t].map((g) =>
    parseInt(g, 16),
  );
  return [0, 1, 2, 3].map((i) => ((groups[2 * i]! << 16) | groups[2 * i + 1]!) >>> 0);
}

/** Parses `"198.18.0.0/15"`, `"10.0.0.7"`, `"2001:db8::/32"`; host bits must be clear. */
export function parsePrefix(text: unknown): ParsedPrefix | string {
  if (typeof text !== "string") return "must be an address or prefix in a string";
  const m = /^([^/\s]+)(?:\/(\d{1,3}))?$/.exec(text);
  if (!m)
    return `${JSON.stringify(text)} is not an address or prefix (198.18.0.0/15, 2001:db8::/32)`;
  const addr = m[1]!;
  const family = net.isIPv4(addr) ? 4 : net.isIPv6(addr) ? 6 : 0;
  if (family === 0) return `${JSON.stringify(addr)} is not an IPv4 or IPv6 address`;
  const bits = family === 4 ? 32 : 128;
  const len = m[2] === undefined ? bits : Number(m[2]);
  if (len > bits) return `/${len} is longer than an IPv${family} address (${bits} bits)`;
  const words =
    family === 4
      ? [addr.split(".").reduce((acc, o) => ((acc << 8) | Number(o)) >>> 0, 0)]
      : ipv6Words(addr);
  const masks = words.map((_, i) => {
    const n = Math.max(0, Math.min(32, len - 32 * i));
    return n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
  });
  if (words.some((w, i) => (w & ~masks[i]!) >>> 0 !== 0)) {
    const clean = words.map((w, i) => (w & masks[i]!) >>> 0);
    const shown =
      family === 4
        ? [24, 16, 8, 0].map((s) => (clean[0]! >>> s) & 255).join(".")
        : clean.flatMap((w) => [(w >>> 16).toString(16), (w & 0xffff).toString(16)]).join(":");
    return `${text} has bits set past its /${len} prefix: did you mean ${shown}/${len}?`;
  }
  return { family, words, masks };
}

/**
 * Lets IPv4/IPv6 packets through only from the listed sources (optionally only for the listed
 * ports). Counters in `allow_stats`.
 */
export function allowList(config: AllowListConfig): XdpLibraryProgram {
  const fn = "allowList";
  known(fn, config, ["sources", "ports"]);
  const sources: readonly unknown[] = Array.isArray(config.sources) ? config.sources : [];
  if (sources.length === 0) fail(fn, "sources", "must list at least one address or prefix");
  const v4: ParsedPrefix[] = [];
  const v6: ParsedPrefix[] = [];
  sources.forEach((s, i) => {
    const p = parsePrefix(s);
    if (typeof p === "string") fail(fn, `sources[${i}]`, p);
    (p.family === 4 ? v4 : v6).push(p);
  });
  if (v4.length > XDP_LIST_MAX || v6.length > XDP_LIST_MAX)
    fail(fn, "sources", `holds at most ${XDP_LIST_MAX} IPv4 and ${XDP_LIST_MAX} IPv6 prefixes`);
  if (config.ports !== undefined) known(fn, config.ports, ["tcp", "udp"]);
  const tcp = portList(fn, "ports.tcp", config.ports?.tcp);
  const udp = portList(fn, "ports.udp", config.ports?.udp);
  if (config.ports !== undefined && tcp.length + udp.length === 0)
    fail(fn, "ports", "must list at least one TCP or UDP port (or leave ports out)");
  return {
    program: { objectPath: libraryObject("allow_list") },
    programName: "xdp_allow_list",
    constants: {
      cfg_v4_count: v4.length,
      cfg_v4_addr: v4.map((p) => p.words[0]!),
      cfg_v4_mask: v4.map((p) => p.masks[0]!),
      cfg_v6_count: v6.length,
      cfg_v6_addr: v6.map((p) => p.words),
      cfg_v6_mask: v6.map((p) => p.masks),
      cfg_tcp_count: tcp.length,
      cfg_tcp_ports: tcp,
      cfg_udp_count: udp.length,
      cfg_udp_ports: udp,
    },
  };
}

/** Names synFlood's counters: `synFloodCounters(await readXdpCounters(...))`. */
export function synFloodCounters(values: readonly number[]): SynFloodCounters {
  return {
    seen: values[0] ?? 0,
    passed: values[1] ?? 0,
    droppedPerSource: values[2] ?? 0,
    droppedTotal: values[3] ?? 0,
  };
}
