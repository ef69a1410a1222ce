/**
 * What the XdpProgram resource reads and writes on a host besides the loader's own command lines
 * (src/host/xdpLoader.ts): the `xdp` member of `ip -d -j link show`, the MTU limits of
 * single-buffer XDP by driver, where a resource keeps its files, and the scripts that put them
 * there and take them away. No I/O.
 */
import { ParseError } from "./errors";
import { isObject } from "./json";
import { LOADER_HOST_PATH, PIN_ROOT, type XdpMode } from "./xdpLoader";
import { shellQuote } from "../transport/quote";

/** Where each resource's object lives on the host: `<dir>/<pin id>.o`. */
export const OBJECT_DIR = "/usr/local/lib/nettune/xdp";

/** The pin id (a bpffs folder name) of a resource, from its unit name: letters, digits, _ and -. */
export function pinIdOf(unitName: string): string {
  return unitName
    .replace(/\.service$/, "")
    .replace(/[^A-Za-z0-9_-]/g, "_")
    .slice(0, 200);
}

/** The paths of a resource on its host. */
export function xdpPaths(unitName: string) {
  const id = pinIdOf(unitName);
  return {
    pinDir: `${PIN_ROOT}/${id}`,
    /** Where a taken-over program waits to be put back (not under the pin dir: detach removes that). */
    saveDir: `${PIN_ROOT}/${id}-saved`,
    object: `${OBJECT_DIR}/${id}.o`,
  };
}

// ---------------------------------------------------------------------------------------------
// `ip -d -j link show`: what is attached, and a veth's peer

const IP_MODES: Record<number, XdpMode> = { 1: "native", 2: "generic", 3: "hw" };

/** A program the kernel reports attached, as `ip` shows it. */
export interface IpXdpProgram {
  readonly progId: number;
  readonly name: string;
  readonly tag: string;
  readonly mode: XdpMode;
}

export interface IpXdp {
  /** Every attached program (two when an offloaded one sits beside a native or generic one). */
  readonly programs: readonly IpXdpProgram[];
  /** A veth's peer when it is in the same namespace: its name and MTU. */
  readonly peer?: { readonly ifname: string; readonly mtu: number };
}

function ipProgram(mode: XdpMode, prog: unknown): IpXdpProgram | undefined {
  if (!isObject(prog) || typeof prog.id !== "number") return undefined;
  return {
    progId: prog.id,
    name: typeof prog.name === "string" ? prog.name : "",
    tag: typeof prog.tag === "string" ? prog.tag : "",
    mode,
  };
}

/**
 * The XDP programs on `ifname` and its veth peer, from `ip -d -j link show` (every link of the
 * namespace). ip prints `"xdp": {"mode": 1, "prog": {...}}` for one program and
 * `"xdp": {"mode": 4, "attached": [{"mode": 1, "prog": {...}}, ...]}` for several.
 *
 * @throws ParseError when the text is not ip's JSON or has no link `ifname`
 */
export function parseIpXdp(jsonText: string, ifname: string): IpXdp {
  const tool = "ip -d -j link show";
  let data: unknown;
  try {
    data = JSON.parse(jsonText);
  } catch (cause) {
    throw new ParseError(tool, `invalid JSON: ${(cause as Error).message}`, jsonText, { cause });
  }
  if (!Array.isArray(data)) throw new ParseError(tool, "expected a JSON array", jsonText);
  const links = data.filter(isObject);
  const me = links.find((l) => l.ifname === ifname);
  if (!me) throw new ParseError(tool, `no link ${ifname}`, jsonText);
  const programs: IpXdpProgram[] = [];
  const xdp = me.xdp;
  if (isObject(xdp) && typeof xdp.mode === "number") {
    const list = Array.isArray(xdp.attached) ? xdp.attached : [xdp];
    for (const a of list) {
      if (!isObject(a) || typeof a.mode !== "number") continue;
      const mode = IP_MODES[a.mode];
      const p = mode && ipProgram(mode, a.prog);
      if (p) programs.push(p);
    }
  }
  const info = me.linkinfo;
  const isVeth = isObject(info) && info.info_kind === "veth";
  // A peer in the same namespace is named in `link`; one in another namespace has link_netnsid.
  const peerName = isVeth && me.link_netnsid === undefined ? me.link : undefined;
  const peer = typeof peerName === "string" ? links.find((l) => l.ifname === peerName) : undefined;
  return peer && typeof peer.mtu === "number"
    ? { programs, peer: { ifname: peerName as string, mtu: peer.mtu } }
    : { programs };
}

// ---------------------------------------------------------------------------------------------
// MTU limits of single-buffer XDP (native mode; generic mode has none)

/** `sizeof(struct skb_shared_info)` on 64-bit kernels with MAX_SKB_FRAGS 17 (5.x and 6.x). */
const SHINFO = 320;
/** XDP_PACKET_HEADROOM. */
const HEADROOM = 256;
const ETH_HLEN = 14;
const align64 = (n: number) => Math.ceil(n / 64) * 64;

/** The largest MTU a driver takes a native XDP program at, and what the number is of. */
export interface MtuLimit {
  readonly max: number;
  /** `the peer's MTU` (veth) or `the MTU`. */
  readonly of: "peer" | "self";
  /** The kernel's formula, for the message. */
  readonly formula: string;
}

/**
 * The MTU limit of single-buffer XDP in native mode for the drivers nettune knows, on pages of
 * `pageSize` bytes; undefined for other drivers (the loader's `mtu-too-large` at apply is the
 * last word everywhere):
 * - veth (veth_xdp_set): the PEER's MTU ≤ PAGE_SIZE - 256 - SKB_DATA_ALIGN(shinfo) - ETH_HLEN
 *   (3506 on 4 KiB pages);
 * - virtio_net (virtnet_xdp_set): the MTU ≤ PAGE_SIZE - SKB_DATA_ALIGN(256 + shinfo) (3520;
 *   kernels with multi-buffer XDP also take off ETH_HLEN, 3506; the larger is checked so
 *   preview never refuses what the kernel takes);
 * - ena: the MTU ≤ PAGE_SIZE - ETH_HLEN - FCS - VLAN - 256 - shinfo (3498).
 */
export function xdpMtuLimit(driver: string, pageSize: number): MtuLimit | undefined {
  switch (driver) {
    case "veth":
      return {
        max: pageSize - HEADROOM - align64(SHINFO) - ETH_HLEN,
        of: "peer",
        formula: `page size ${pageSize} - 256 headroom - ${align64(SHINFO)} skb_shared_info - 14 Ethernet header`,
      };
    case "virtio_net":
      return {
        max: pageSize - align64(HEADROOM + SHINFO),
        of: "self",
        formula: `page size ${pageSize} - ${align64(HEADROOM + SHINFO)} (256 headroom + skb_shared_info)`,
      };
    case "ena":
      return {
        max: pageSize - ETH_HLEN - 4 - 4 - HEADROOM - align64(SHINFO),
        of: "self",
        formula: `page size ${pageSize} - 14 Ethernet - 4 FCS - 4 VLAN - 256 headroom - ${align64(SHINFO)} skb_shared_info`,
      };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Files on the host

/** The boot command: attach the kept object again (bpffs is empty after a reboot). */
export function renderBootAttach(a: {
  dev: string;
  object: string;
  prog: string;
  mode: XdpMode;
  pinDir: string;
}): string[] {
  return [
    LOADER_HOST_PATH,
    "attach",
    "--dev",
    a.dev,
    "--obj",
    a.object,
    "--prog",
    a.prog,
    "--mode",
    a.mode,
    "--pin-dir",
    a.pinDir,
  ];
}

/**
 * Takes a base64 object on stdin to `<path>.new`, checks its sha256 and prints `ok`; the apply
 * moves it over `<path>` once the attach succeeded.
 */
export function renderObjectUpload(path: string, sha256: string): string {
  const tmp = shellQuote(`${path}.new`);
  return [
    `mkdir -p ${shellQuote(OBJECT_DIR)}`,
    `umask 077 && base64 -d > ${tmp} || exit 3`,
    `got=$(sha256sum ${tmp} | cut -c1-64)`,
    `if [ "$got" != ${shellQuote(sha256)} ]; then rm -f ${tmp}; echo "object arrived with sha256 $got, expected ${sha256}" >&2; exit 4; fi`,
    "echo ok",
  ].join("\n");
}

/** Takes the loader binary (base64 on stdin) to its place, atomically, and prints its sha256. */
export function renderLoaderUpload(sha256: string): string {
  const tmp = shellQuote(`${LOADER_HOST_PATH}.new`);
  return [
    `mkdir -p ${shellQuote(LOADER_HOST_PATH.replace(/\/[^/]+$/, ""))}`,
    `umask 022 && base64 -d > ${tmp} || exit 3`,
    `got=$(sha256sum ${tmp} | cut -c1-64)`,
    `if [ "$got" != ${shellQuote(sha256)} ]; then rm -f ${tmp}; echo "xdp-loader arrived with sha256 $got, expected ${sha256}" >&2; exit 4; fi`,
    `chmod 755 ${tmp} && mv -f ${tmp} ${shellQuote(LOADER_HOST_PATH)}`,
    "echo ok",
  ].join("\n");
}

/**
 * Removes a resource's object and pins, then the shared loader and folders once no XdpProgram
 * is left on the host (no object in {@link OBJECT_DIR}).
 */
export function renderCleanup(unitName: string): string {
  const p = xdpPaths(unitName);
  const lib = LOADER_HOST_PATH.replace(/\/[^/]+$/, "");
  return [
    `rm -f ${shellQuote(p.object)} ${shellQuote(`${p.object}.new`)}`,
    `rm -rf ${shellQuote(p.pinDir)}`,
    `rmdir ${shellQuote(PIN_ROOT)} 2>/dev/null || true`,
    `if rmdir ${shellQuote(OBJECT_DIR)} 2>/dev/null || [ ! -d ${shellQuote(OBJECT_DIR)} ]; then rm -f ${shellQuote(LOADER_HOST_PATH)}; rmdir ${shellQuote(lib)} 2>/dev/null || true; fi`,
  ].join("\n");
}
