/**
 * iproute2 `ip link` on the host: parse `ip -d -j link show` and render `ip link set` as
 * argument lists. No I/O here: `specs/` runs these through a transport.
 */
import { fieldReader, isObject, parseJsonArray } from "./json";

const TOOL = "ip -d -j link";

/** The longest interface name Linux accepts (IFNAMSIZ - 1). */
const MAX_IFNAME = 15;

/**
 * Whether `name` is an interface name the kernel accepts (1-15 characters, not `.` or `..`, no
 * `/`, `:` or white space) and that cannot be mistaken for an option (no leading `-`).
 */
export function isValidInterfaceName(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= MAX_IFNAME &&
    name !== "." &&
    name !== ".." &&
    !name.startsWith("-") &&
    !/[/:\s]/.test(name)
  );
}

/** Throws a RangeError naming `name` unless {@link isValidInterfaceName} accepts it. */
export function assertInterfaceName(name: string): void {
  if (!isValidInterfaceName(name)) {
    throw new RangeError(`invalid interface name ${JSON.stringify(name)}`);
  }
}

/** One link as `ip -d -j link show` describes it. Fields ip leaves out are undefined. */
export interface IpLink {
  readonly ifname: string;
  readonly ifindex: number;
  readonly mtu: number;
  /** Smallest MTU the driver accepts (0 with `maxMtu` 0 means no limit is enforced, as on lo). */
  readonly minMtu?: number;
  readonly maxMtu?: number;
  /** Transmit queue length (`txqueuelen`). */
  readonly txqlen?: number;
  /** Root qdisc name, e.g. `noqueue`, `pfifo_fast`, `fq`. */
  readonly qdisc?: string;
  /** `UP`, `DOWN`, `UNKNOWN`, … */
  readonly operstate?: string;
  /** Interface flags, e.g. `["BROADCAST", "MULTICAST", "UP", "LOWER_UP"]`. */
  readonly flags: readonly string[];
  /** Hardware address; absent on devices without one (tun). */
  readonly address?: string;
  /** `ether`, `loopback`, `none`, … */
  readonly linkType?: string;
  /** `linkinfo.info_kind`: `veth`, `bridge`, `tun`, `macvlan`, `vxlan`, …; absent for plain NICs and lo. */
  readonly kind?: string;
  readonly numTxQueues?: number;
  readonly numRxQueues?: number;
  readonly gsoMaxSize?: number;
  readonly groMaxSize?: number;
  /** The peer (veth) or lower device (macvlan) when it is in the same namespace. */
  readonly link?: string;
  /** The bridge or bond this link is a port of. */
  readonly master?: string;
  /** Device behind the link, e.g. `virtio2` or a PCI address. */
  readonly parentDev?: string;
  /** Bus of `parentDev`, e.g. `virtio` or `pci`. */
  readonly parentBus?: string;
}

/**
 * Parses the JSON of `ip -d -j link show [dev IF]` (one object per link, in ip's order).
 *
 * @throws ParseError naming `ip -d -j link` when the text is empty, is not JSON, or a link lacks
 *   a field every link has (ifname, ifindex, mtu, flags) or has a field of the wrong type.
 * @example
 * const [eth0] = parseIpLink(stdout); // stdout of `ip -d -j link show dev eth0`
 * eth0?.mtu; // 1500
 */
export function parseIpLink(jsonText: string): IpLink[] {
  return parseJsonArray(TOOL, jsonText, "links").map((entry, i) => readLink(entry, i, jsonText));
}

function readLink(raw: unknown, index: number, text: string): IpLink {
  // null is how ip says "none" for a few fields (a veth peer in another namespace): undefined.
  const { entry, fail, num, str } = fieldReader(TOOL, raw, `link ${index}`, text);
  const ifname = str("ifname") ?? fail("ifname", "a string");
  const ifindex = num("ifindex") ?? fail("ifindex", "a number");
  const mtu = num("mtu") ?? fail("mtu", "a number");
  const rawFlags = entry["flags"];
  if (!Array.isArray(rawFlags) || !rawFlags.every((f) => typeof f === "string")) {
    fail("flags", "an array of strings");
  }
  const linkinfo = entry["linkinfo"];
  if (linkinfo !== undefined && !isObject(linkinfo)) fail("linkinfo", "an object");

  const link: IpLink = {
    ifname,
    ifindex,
    mtu,
    minMtu: num("min_mtu"),
    maxMtu: num("max_mtu"),
    txqlen: num("txqlen"),
    qdisc: str("qdisc"),
    operstate: str("operstate"),
    flags: rawFlags as string[],
    address: str("address"),
    linkType: str("link_type"),
    kind: isObject(linkinfo) ? str("info_kind", linkinfo) : undefined,
    numTxQueues: num("num_tx_queues"),
    numRxQueues: num("num_rx_queues"),
    gsoMaxSize: num("gso_max_size"),
    groMaxSize: num("gro_max_size"),
    link: str("link"),
    master: str("master"),
    parentDev: str("parentdev"),
    parentBus: str("parentbus"),
  };
  return withoutUndefined(link);
}

/** Leaves absent fields out entirely, so results compare and print cleanly. */
function withoutUndefined<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}

/** What `ip link set` can change for nettune. */
export interface IpLinkSettings {
  readonly mtu?: number;
  /** Transmit queue length, written as `txqueuelen`. */
  readonly txqlen?: number;
}

function assertCount(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`${what} must be a non-negative integer, got ${n}`);
  }
}

/**
 * `ip link set dev IF mtu N txqueuelen N` as an argument list.
 *
 * `dev` is always written: without it ip reads a name such as `a` as an abbreviated keyword
 * (`address`).
 *
 * @example
 * renderIpLinkSet("eth0", { mtu: 9000 }); // ["ip", "link", "set", "dev", "eth0", "mtu", "9000"]
 */
export function renderIpLinkSet(ifname: string, settings: IpLinkSettings): string[] {
  assertInterfaceName(ifname);
  const argv = ["ip", "link", "set", "dev", ifname];
  if (settings.mtu !== undefined) {
    assertCount("mtu", settings.mtu);
    argv.push("mtu", String(settings.mtu));
  }
  if (settings.txqlen !== undefined) {
    assertCount("txqlen", settings.txqlen);
    argv.push("txqueuelen", String(settings.txqlen));
  }
  if (argv.length === 5) throw new RangeError("renderIpLinkSet: nothing to set");
  return argv;
}

/**
 * `ip -d -j link show [dev IF]` as an argument list; its output is read by {@link parseIpLink}.
 *
 * @example
 * renderIpLinkShow("eth0"); // ["ip", "-d", "-j", "link", "show", "dev", "eth0"]
 */
export function renderIpLinkShow(ifname?: string): string[] {
  const argv = ["ip", "-d", "-j", "link", "show"];
  if (ifname === undefined) return argv;
  assertInterfaceName(ifname);
  return [...argv, "dev", ifname];
}
