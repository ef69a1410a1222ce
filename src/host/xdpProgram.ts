/**
 * What the XdpProgram resource reads and writes on a host besides the loader's own command lines
 * (src/host/xdpLoader.ts): the `xdp` member of `ip -d -j link show`, the MTU limits of
 * single-buffer XDP by driver, where a resource keeps its files, and the scripts that put them
 * there and take them away. No I/O.
 */
import { ParseError } from "./errors";
import { isObject } from "./json";
import {
  constantsArgv,
  LOADER_HOST_PATH,
  parseCounters,
  PIN_ROOT,
  renderCounters,
  renderDetach,
  renderRestore,
  type XdpMode,
} from "./xdpLoader";
import type { Transport } from "../transport/types";
import { renderUnitRemove } from "./systemd";
import { renderCommand, shellQuote } from "../transport/quote";

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
    /** The object attached before an update, kept until the update is confirmed (rollback). */
    previous: `${OBJECT_DIR}/${id}.o.prev`,
    /** Present while an attach waits for its confirmation: the rollback acts only then. */
    pending: `/run/nettune-xdp-${id}.pending`,
    /** Left by a rollback that ran: the change was undone on the host. */
    rolledBack: `/run/nettune-xdp-${id}.rolledback`,
    /**
     * The rollback script, written by the apply: the host's timer runs `/bin/sh <file>`, since
     * systemd keeps a transient unit's command in a file that a `daemon-reload` (the boot
     * unit's install) reads again, and a script there loses its newlines and `;`.
     */
    rollbackScript: `/run/nettune-xdp-${id}.rollback`,
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

/** `sizeof(struct padded_vnet_hdr)`: virtio_net's header room on kernels before 6.3. */
const PADDED_VNET_HDR = 32;

/** `[major, minor]` of a uname release (`6.1.0-57-cloud-amd64`), or undefined. */
export function kernelVersion(release: string | undefined): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(release ?? "");
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

const atLeast = (v: [number, number], major: number, minor: number) =>
  v[0] > major || (v[0] === major && v[1] >= minor);

/**
 * The MTU limit of single-buffer XDP in native mode for the drivers nettune knows, on pages of
 * `pageSize` bytes and the kernel `release` (uname -r); undefined for other drivers and where
 * the program may use fragments (the loader's `mtu-too-large` at apply is the last word
 * everywhere):
 * - veth (veth_xdp_set): the PEER's MTU ≤ PAGE_SIZE - 256 - SKB_DATA_ALIGN(shinfo) - ETH_HLEN
 *   (3506 on 4 KiB pages; measured on 6.18);
 * - virtio_net (virtnet_xdp_set): before 6.3, the MTU ≤ PAGE_SIZE - sizeof(struct
 *   padded_vnet_hdr) = 4064 (measured on Debian's 6.1: 4064 attaches, 4065 is refused, though
 *   dmesg says "XDP requires MTU less than 4064"); from 6.3 (multi-buffer XDP), a program
 *   without `xdp.frags` needs the MTU ≤ PAGE_SIZE - SKB_DATA_ALIGN(256 + shinfo) - ETH_HLEN =
 *   3506 and one with frags has no such limit. An unknown kernel gets the larger;
 * - ena: the MTU ≤ PAGE_SIZE - ETH_HLEN - FCS - VLAN - 256 - shinfo (3498).
 */
export function xdpMtuLimit(
  driver: string,
  pageSize: number,
  release?: string,
  frags = false,
): MtuLimit | undefined {
  switch (driver) {
    case "veth":
      if (frags) return undefined;
      return {
        max: pageSize - HEADROOM - align64(SHINFO) - ETH_HLEN,
        of: "peer",
        formula: `page size ${pageSize} - 256 headroom - ${align64(SHINFO)} skb_shared_info - 14 Ethernet header`,
      };
    case "virtio_net": {
      const v = kernelVersion(release);
      if (v === undefined || !atLeast(v, 6, 3)) {
        return {
          max: pageSize - PADDED_VNET_HDR,
          of: "self",
          formula: `page size ${pageSize} - ${PADDED_VNET_HDR} virtio header, on kernels before 6.3${release ? ` (this one is ${release})` : ""}`,
        };
      }
      if (frags) return undefined;
      return {
        max: pageSize - align64(HEADROOM + SHINFO) - ETH_HLEN,
        of: "self",
        formula: `page size ${pageSize} - ${align64(HEADROOM + SHINFO)} (256 headroom + skb_shared_info) - 14 Ethernet header, on kernels 6.3 and later (this one is ${release}); a program in SEC("xdp.frags") has no such limit`,
      };
    }
    case "ena":
      return {
        max: pageSize - ETH_HLEN - 4 - 4 - HEADROOM - align64(SHINFO),
        of: "self",
        formula: `page size ${pageSize} - 14 Ethernet - 4 FCS - 4 VLAN - 256 headroom - ${align64(SHINFO)} skb_shared_info`,
      };
  }
  return undefined;
}

/**
 * Whether an object holds a program in an `xdp.frags` section (multi-buffer XDP, which
 * drivers let run at any MTU): the section name is in the ELF's string table.
 */
export function hasFragsSection(object: Buffer): boolean {
  return object.includes("xdp.frags\0", 0, "latin1");
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
  constants?: Readonly<Record<string, unknown>>;
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
    ...constantsArgv(a.constants),
  ];
}

/**
 * Takes a base64 object on stdin to `<path>.new`, checks its sha256 and prints `ok`; the apply
 * moves it over `<path>` once the attach succeeded. The object there now is copied to
 * `<path>.prev` (or a stale copy removed): a rollback attaches it again.
 */
export function renderObjectUpload(path: string, sha256: string): string {
  const tmp = shellQuote(`${path}.new`);
  const obj = shellQuote(path);
  const prev = shellQuote(`${path}.prev`);
  return [
    `mkdir -p ${shellQuote(OBJECT_DIR)}`,
    `umask 077 && base64 -d > ${tmp} || exit 3`,
    `got=$(sha256sum ${tmp} | cut -c1-64)`,
    `if [ "$got" != ${shellQuote(sha256)} ]; then rm -f ${tmp}; echo "object arrived with sha256 $got, expected ${sha256}" >&2; exit 4; fi`,
    `if [ -f ${obj} ]; then cp -f ${obj} ${prev} || exit 5; else rm -f ${prev}; fi`,
    "echo ok",
  ].join("\n");
}

/** Exit codes of {@link renderXdpApply}. */
export const APPLY_EXIT = { attach: 10, move: 11, persist: 12, rollback: 13 } as const;

/**
 * The command that runs the rollback {@link renderXdpApply} wrote: no `;`, quote or newline,
 * which systemd escapes in the transient unit's file and a `daemon-reload` then hands to the
 * shell as written (`\\;`: seen in the tests, the rollback failed with status 2).
 */
export function renderRunRollback(unitName: string): string {
  return `/bin/sh ${shellQuote(xdpPaths(unitName).rollbackScript)}`;
}

/**
 * The apply of an attach, one script (commit-confirmed: the rollback is armed before it in the
 * same script, to run {@link renderRunRollback}): the rollback script in its file, the
 * loader's attach (its JSON on stdout), then the pending mark the rollback acts on, the
 * object in place and the boot unit. Exits {@link APPLY_EXIT} at the first failure.
 */
export function renderXdpApply(a: {
  unitName: string;
  attach: readonly string[];
  persist: readonly string[];
  rollback: string;
}): string {
  const p = xdpPaths(a.unitName);
  return [
    `rm -f ${shellQuote(p.pending)} ${shellQuote(p.rolledBack)}`,
    `printf '%s\\n' ${shellQuote(a.rollback)} > ${shellQuote(p.rollbackScript)} || exit ${APPLY_EXIT.rollback}`,
    `out=$(${renderCommand(a.attach)}); r=$?`,
    `printf '%s\\n' "$out"`,
    `[ "$r" -eq 0 ] || exit ${APPLY_EXIT.attach}`,
    `: > ${shellQuote(p.pending)}`,
    `mv -f ${shellQuote(`${p.object}.new`)} ${shellQuote(p.object)} || exit ${APPLY_EXIT.move}`,
    ...a.persist.map((script) => `(\n${script}\n) || exit ${APPLY_EXIT.persist}`),
    "echo applied",
  ].join("\n");
}

/** What the host had before an attach, for its rollback. */
export interface XdpBefore {
  readonly dev: string;
  readonly mode: XdpMode;
  readonly unitName: string;
  /** nettune's program was attached: the rollback attaches the previous object again. */
  readonly previousProgram?: string;
  /** The previous program's constants. */
  readonly previousConstants?: Readonly<Record<string, unknown>>;
  /** The attach replaced a taken-over program: the rollback puts it back. */
  readonly tookOver?: boolean;
  /** The boot unit as it was (installed again), or undefined (the unit is removed). */
  readonly unitInstall?: string;
}

/**
 * Undoes an attach that is pending (does nothing otherwise): the previous object attached
 * again through the same link (an atomic update), or a taken-over program put back, or a
 * detach; the object as it was, the boot unit as it was (so a reboot cannot attach what was
 * undone), then the rolled-back mark. Run by the host's own timer when the change cut the SSH
 * path, or over SSH when the apply failed.
 */
export function renderXdpRollback(b: XdpBefore): string {
  const p = xdpPaths(b.unitName);
  const quiet = (argv: readonly string[]) => `${renderCommand(argv)} >/dev/null 2>&1`;
  const detach = `${quiet(renderDetach(b.dev, p.pinDir))} || rm -rf ${shellQuote(p.pinDir)}`;
  let program = detach;
  if (b.tookOver) {
    program = `${quiet(renderRestore(b.dev, p.saveDir, p.pinDir))} || { ${detach}; }`;
  } else if (b.previousProgram !== undefined) {
    const again = renderBootAttach({
      dev: b.dev,
      object: `${p.object}.prev`,
      prog: b.previousProgram,
      mode: b.mode,
      pinDir: p.pinDir,
      constants: b.previousConstants,
    });
    program = `{ [ -f ${shellQuote(`${p.object}.prev`)} ] && ${quiet(again)}; } || { ${detach}; }`;
  }
  const lib = LOADER_HOST_PATH.replace(/\/[^/]+$/, "");
  return [
    `[ -e ${shellQuote(p.pending)} ] || exit 0`,
    program,
    `if [ -f ${shellQuote(`${p.object}.prev`)} ]; then mv -f ${shellQuote(`${p.object}.prev`)} ${shellQuote(p.object)}; else rm -f ${shellQuote(p.object)}; fi`,
    `rm -f ${shellQuote(`${p.object}.new`)}`,
    b.unitInstall ?? renderUnitRemove(b.unitName),
    `rmdir ${shellQuote(PIN_ROOT)} 2>/dev/null`,
    `if rmdir ${shellQuote(OBJECT_DIR)} 2>/dev/null; then rm -f ${shellQuote(LOADER_HOST_PATH)}; rmdir ${shellQuote(lib)} 2>/dev/null; fi`,
    `rm -f ${shellQuote(p.pending)} ${shellQuote(p.rollbackScript)}; : > ${shellQuote(p.rolledBack)}`,
  ].join("\n");
}

/**
 * After the change was confirmed (or applied where no rollback was armed): waits for a
 * rollback that is still running, then prints `rolledback` when one ran (the answer that
 * confirmed arrived after the host's own rollback), else drops the pending mark and the
 * previous object and prints `kept`.
 */
export function renderXdpSettle(unitName: string, rollbackUnitName: string): string {
  const p = xdpPaths(unitName);
  return [
    `for i in $(seq 50); do systemctl is-active --quiet ${shellQuote(`${rollbackUnitName}.service`)} 2>/dev/null || break; sleep 0.2; done`,
    `if [ -e ${shellQuote(p.rolledBack)} ]; then rm -f ${shellQuote(p.rolledBack)}; echo rolledback; else rm -f ${shellQuote(p.pending)} ${shellQuote(`${p.object}.prev`)}; echo kept; fi`,
    `rm -f ${shellQuote(p.rollbackScript)}`,
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
    `rm -f ${shellQuote(p.object)} ${shellQuote(`${p.object}.new`)} ${shellQuote(`${p.object}.prev`)}`,
    `rm -f ${shellQuote(p.pending)} ${shellQuote(p.rolledBack)} ${shellQuote(p.rollbackScript)}`,
    `rm -rf ${shellQuote(p.pinDir)}`,
    `rmdir ${shellQuote(PIN_ROOT)} 2>/dev/null || true`,
    `if rmdir ${shellQuote(OBJECT_DIR)} 2>/dev/null || [ ! -d ${shellQuote(OBJECT_DIR)} ]; then rm -f ${shellQuote(LOADER_HOST_PATH)}; rmdir ${shellQuote(lib)} 2>/dev/null || true; fi`,
  ].join("\n");
}

/**
 * Reads a program's counters (a pinned array of u64, per-CPU values summed) through the
 * loader on the host: `readXdpCounters(t, xdp.pinDir, "syn_stats")`.
 */
export async function readXdpCounters(
  t: Transport,
  pinDir: string,
  map: string,
): Promise<number[]> {
  const r = await t.exec(renderCounters(pinDir, map), { allowFailure: true });
  return parseCounters(r.stdout);
}
