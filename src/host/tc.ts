/**
 * tc (iproute2) on the host: parse `tc -j qdisc show`, render `tc qdisc replace/del` as argument
 * lists, and decide from a host's kernel configuration and module lists which qdiscs and TCP
 * congestion control algorithms it offers. No I/O here: `specs/` runs these through a
 * transport.
 */
import { fieldReader, isObject, parseJsonArray } from "./json";
import { assertInterfaceName } from "./ip";

const TOOL = "tc -j qdisc show";

/** One qdisc as `tc -j qdisc show` describes it. */
export interface TcQdisc {
  /** `pfifo_fast`, `noqueue`, `mq`, `tbf`, `fq`, … */
  readonly kind: string;
  /** `8001:`, `1:`; `0:` for a qdisc the kernel attached by itself (the device's default). */
  readonly handle: string;
  /** The device; absent in the output of `tc -j qdisc show dev IF`, which names none. */
  readonly dev?: string;
  /** True for the device's root (egress) qdisc. */
  readonly root: boolean;
  /** The parent of a qdisc that is not the root: a class such as `8005:1`, or `ffff:fff1` for ingress. */
  readonly parent?: string;
  readonly refcnt?: number;
  /** The kind's own settings as tc prints them, e.g. `{ limit: 500 }` for pfifo. */
  readonly options: Readonly<Record<string, unknown>>;
}

/**
 * Parses the JSON of `tc -j [-raw] qdisc show [dev IF]`, one entry per qdisc in tc's order. With `dev`
 * (the device the command was run for), entries without a `dev` field get it.
 *
 * @throws ParseError naming `tc -j qdisc show` when the text is empty, is not JSON, or an entry
 *   lacks `kind` or `handle` or has a field of the wrong type.
 * @example
 * const [root] = parseTcQdiscs(stdout, "eth0"); // stdout of `tc -j qdisc show dev eth0`
 * root?.kind; // "pfifo_fast"
 */
export function parseTcQdiscs(jsonText: string, dev?: string): TcQdisc[] {
  return parseJsonArray(TOOL, jsonText, "qdiscs").map((raw, i) => {
    const { entry, fail, str } = fieldReader(TOOL, raw, `qdisc ${i}`, jsonText);
    const kind = str("kind") ?? fail("kind", "a string");
    const handle = str("handle") ?? fail("handle", "a string");
    const root = entry["root"];
    if (root !== undefined && typeof root !== "boolean") fail("root", "true or false");
    const refcnt = entry["refcnt"];
    if (refcnt !== undefined && typeof refcnt !== "number") fail("refcnt", "a number");
    const options = entry["options"];
    if (options !== undefined && !isObject(options)) fail("options", "an object");
    const q: TcQdisc = {
      kind,
      handle,
      dev: str("dev") ?? dev,
      root: root === true,
      parent: str("parent"),
      refcnt: refcnt as number | undefined,
      options: isObject(options) ? options : {},
    };
    return Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined)) as TcQdisc;
  });
}

/** The root qdisc of `dev` among parsed qdiscs (entries without `dev` count as `dev`'s). */
export function rootQdisc(qdiscs: readonly TcQdisc[], dev: string): TcQdisc | undefined {
  return qdiscs.find((q) => q.root && (q.dev === undefined || q.dev === dev));
}

/**
 * The root of a device that has never been up (a new bridge without ports, a veth left down):
 * the kernel's built-in `noop`, which `ip link` shows as `qdisc noop` but `tc qdisc show` never
 * lists. A root qdisc can still be set on such a device; deleting it gives the device `noop`
 * back, and bringing it up then attaches the kernel's default.
 */
export function noopRoot(dev: string): TcQdisc {
  return { kind: "noop", handle: "0:", dev, root: true, options: {} };
}

/**
 * The qdiscs of one device as `tc -j qdisc show dev IF` printed them, with {@link noopRoot} added
 * when tc listed no root: the device exists, so it has one.
 */
export function withRoot(qdiscs: readonly TcQdisc[], dev: string): TcQdisc[] {
  return rootQdisc(qdiscs, dev) ? [...qdiscs] : [noopRoot(dev), ...qdiscs];
}

/** True for the qdisc the kernel attached by itself (handle `0:`); `tc qdisc del` cannot remove it. */
export function isKernelDefault(q: Pick<TcQdisc, "handle">): boolean {
  return q.handle === "0:";
}

/** Qdiscs that give a device more than the root: per-queue children of mq, or a hierarchy. */
export function childQdiscs(qdiscs: readonly TcQdisc[], dev: string): TcQdisc[] {
  return qdiscs.filter(
    (q) => !q.root && (q.dev === undefined || q.dev === dev) && q.parent !== "ffff:fff1",
  );
}

const KIND = /^[a-z][a-z0-9_]{0,14}$/;

function assertKind(kind: string): void {
  if (!KIND.test(kind)) throw new RangeError(`invalid qdisc kind ${JSON.stringify(kind)}`);
}

/** A tc parameter word: letters, digits and the few characters tc's units and handles use. */
const PARAM = /^[A-Za-z0-9_.:/%-]{1,64}$/;

/**
 * `tc -j -raw qdisc show [dev IF]` as an argument list; its output is read by
 * {@link parseTcQdiscs}. `-raw` adds what recreating a qdisc needs (tbf's limit in bytes).
 */
export function renderTcQdiscShow(dev?: string): string[] {
  const argv = ["tc", "-j", "-raw", "qdisc", "show"];
  if (dev === undefined) return argv;
  assertInterfaceName(dev);
  return [...argv, "dev", dev];
}

/**
 * `tc qdisc replace dev IF root [handle H] KIND [params]` as an argument list.
 *
 * @example
 * renderTcQdiscReplace("eth0", "fq"); // ["tc", "qdisc", "replace", "dev", "eth0", "root", "fq"]
 * renderTcQdiscReplace("eth1", "pfifo", ["limit", "500"], "1:");
 */
export function renderTcQdiscReplace(
  dev: string,
  kind: string,
  params: readonly string[] = [],
  handle?: string,
): string[] {
  assertInterfaceName(dev);
  assertKind(kind);
  for (const p of params) {
    if (!PARAM.test(p)) throw new RangeError(`invalid tc parameter ${JSON.stringify(p)}`);
  }
  const argv = ["tc", "qdisc", "replace", "dev", dev, "root"];
  if (handle !== undefined) {
    if (!/^[0-9a-f]{1,4}:$/.test(handle)) {
      throw new RangeError(`invalid qdisc handle ${JSON.stringify(handle)}`);
    }
    argv.push("handle", handle);
  }
  return [...argv, kind, ...params];
}

/** `tc qdisc del dev IF root`: removes the root qdisc, and the kernel attaches its default. */
export function renderTcQdiscDelete(dev: string): string[] {
  assertInterfaceName(dev);
  return ["tc", "qdisc", "del", "dev", dev, "root"];
}

const num = (v: unknown): string | undefined =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? String(v) : undefined;

/**
 * The tc parameters that recreate a qdisc with the settings `tc -j qdisc show` reported, for the
 * kinds whose settings tc prints in a form it also takes. `complete` is false when some settings
 * could not be carried over (an unknown kind, or a field in an unexpected form): the qdisc can
 * then only be recreated with its defaults.
 *
 * @example
 * qdiscParameters({ kind: "pfifo", options: { limit: 500 } }); // { params: ["limit", "500"], complete: true }
 */
export function qdiscParameters(q: Pick<TcQdisc, "kind" | "options">): {
  params: string[];
  complete: boolean;
} {
  const o = q.options;
  const params: string[] = [];
  let complete = true;
  const add = (name: string, value: string | undefined, unit = "") => {
    if (value === undefined) complete = false;
    else params.push(name, `${value}${unit}`);
  };
  const optional = (field: string, name: string, unit = "") => {
    if (o[field] !== undefined) add(name, num(o[field]), unit);
  };
  switch (q.kind) {
    // pfifo_fast's bands and priomap are fixed: tc takes no parameters for it, nor for these.
    case "noqueue":
    case "mq":
    case "pfifo_fast":
      break;
    case "pfifo":
    case "bfifo":
    case "pfifo_head_drop":
      optional("limit", "limit");
      break;
    case "tbf":
      // tc prints rate in bytes per second (tc's unit "bps"), burst in bytes, lat in µs; limit
      // (bytes, exact) only with -raw. tc recomputes burst through whole microseconds, so a
      // recreated tbf may differ from the original by a fraction of a percent.
      add("rate", num(o["rate"]), "bps");
      add("burst", num(o["burst"]));
      if (o["limit"] !== undefined) add("limit", num(o["limit"]));
      else add("latency", num(o["lat"]), "us");
      optional("peakrate", "peakrate", "bps");
      optional("mtu", "mtu");
      break;
    case "htb": {
      optional("r2q", "r2q");
      const def = o["default"];
      if (def !== undefined) {
        add("default", typeof def === "string" && /^(0x)?[0-9a-f]+$/.test(def) ? def : num(def));
      }
      optional("direct_qlen", "direct_qlen");
      break;
    }
    default:
      complete = Object.keys(o).length === 0;
  }
  return { params, complete };
}

// ---------------------------------------------------------------------------------------------
// What a host offers

/** Qdiscs every Linux kernel with tc has: they are part of the scheduler core, not options. */
export const ALWAYS_QDISCS: readonly string[] = [
  "bfifo",
  "mq",
  "noqueue",
  "pfifo",
  "pfifo_fast",
  "pfifo_head_drop",
];

/** CONFIG_NET_SCH_<X> -> the qdisc kinds it provides (module sch_<x>). */
const SCH_CONFIG: Readonly<Record<string, readonly string[]>> = {
  ATM: ["atm"],
  CAKE: ["cake"],
  CBQ: ["cbq"],
  CBS: ["cbs"],
  CHOKE: ["choke"],
  CODEL: ["codel"],
  DRR: ["drr"],
  DSMARK: ["dsmark"],
  DUALPI2: ["dualpi2"],
  ETF: ["etf"],
  ETS: ["ets"],
  FQ: ["fq"],
  FQ_CODEL: ["fq_codel"],
  FQ_PIE: ["fq_pie"],
  GRED: ["gred"],
  HFSC: ["hfsc"],
  HHF: ["hhf"],
  HTB: ["htb"],
  INGRESS: ["ingress", "clsact"],
  MQPRIO: ["mqprio"],
  MULTIQ: ["multiq"],
  NETEM: ["netem"],
  PIE: ["pie"],
  PLUG: ["plug"],
  PRIO: ["prio"],
  QFQ: ["qfq"],
  RED: ["red"],
  SFB: ["sfb"],
  SFQ: ["sfq"],
  SKBPRIO: ["skbprio"],
  TAPRIO: ["taprio"],
  TBF: ["tbf"],
};

/** CONFIG_TCP_CONG_<X> -> the algorithm's name (module tcp_<name>). */
const CONG_CONFIG: Readonly<Record<string, string>> = {
  BBR: "bbr",
  BIC: "bic",
  CDG: "cdg",
  CUBIC: "cubic",
  DCTCP: "dctcp",
  HSTCP: "highspeed",
  HTCP: "htcp",
  HYBLA: "hybla",
  ILLINOIS: "illinois",
  LP: "lp",
  NV: "nv",
  SCALABLE: "scalable",
  VEGAS: "vegas",
  VENO: "veno",
  WESTWOOD: "westwood",
  YEAH: "yeah",
};

/** tcp_* modules in net/ipv4 that are not congestion control algorithms. */
const NOT_CONGESTION = new Set(["tcp_diag", "tcp_probe"]);

/** `kernel/net/sched/sch_fq.ko.zst`, `sch_fq.ko` or `sch_fq` -> `sch_fq`. */
export function moduleName(entry: string): string {
  const base = entry.trim().split("/").pop() ?? "";
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, "").replace(/-/g, "_");
}

/** `CONFIG_X=y|m` lines of a kernel configuration (comments and other values are skipped). */
function configValues(config: string): Map<string, "y" | "m"> {
  const out = new Map<string, "y" | "m">();
  for (const line of config.split("\n")) {
    const m = /^CONFIG_([A-Z0-9_]+)=([ym])\s*$/.exec(line.trim());
    if (m) out.set(m[1]!, m[2] as "y" | "m");
  }
  return out;
}

/** What a host offers, and which of it comes as a loadable module. */
export interface Offer {
  /** The names the host offers, sorted. */
  readonly names: string[];
  /** Names provided by a kernel module rather than built in: name -> module (`tcp_bbr`, `sch_fq`). */
  readonly modules: Readonly<Record<string, string>>;
  /**
   * False when the host gave neither its kernel configuration nor its list of built-in modules:
   * `names` then holds only what is certainly there, and something missing from it may still exist.
   */
  readonly complete: boolean;
}

function offer(names: Set<string>, modules: Map<string, string>, complete: boolean): Offer {
  return {
    names: [...names].sort(),
    modules: Object.fromEntries([...modules].sort(([a], [b]) => (a < b ? -1 : 1))),
    complete,
  };
}

/**
 * The qdisc kinds a host offers: those every kernel has (pfifo_fast, noqueue, mq, pfifo, bfifo,
 * pfifo_head_drop), those in use, those its configuration builds in (`CONFIG_NET_SCH_<X>=y`) or
 * as a module (`=m`, counted when the module is installed), and those its module lists name.
 *
 * @param config the kernel configuration (`/proc/config.gz` or `/boot/config-$(uname -r)`), if any
 * @param builtin entries of `modules.builtin` (paths or names), if the host has the file
 * @param loadable modules installed for the running kernel (`modules.dep` entries); `[]` when the
 *   host has no modules directory, undefined when that is unknown
 * @param inUse kinds `tc qdisc show` printed
 */
export function availableQdiscs(
  config: string | undefined,
  builtin: readonly string[] | undefined,
  loadable: readonly string[] | undefined,
  inUse: readonly string[] = [],
): Offer {
  const names = new Set<string>([...ALWAYS_QDISCS, ...inUse]);
  const modules = new Map<string, string>();
  const installed = loadable ? new Set(loadable.map(moduleName)) : undefined;
  const kindsOfModule = (mod: string): readonly string[] => {
    const entry = Object.entries(SCH_CONFIG).find(([x]) => `sch_${x.toLowerCase()}` === mod);
    return entry ? entry[1] : [mod.slice(4)];
  };
  if (config !== undefined) {
    for (const [key, value] of configValues(config)) {
      if (!key.startsWith("NET_SCH_")) continue;
      const kinds = SCH_CONFIG[key.slice(8)];
      if (!kinds) continue;
      const mod = `sch_${key.slice(8).toLowerCase()}`;
      if (value === "m" && installed && !installed.has(mod)) continue;
      for (const k of kinds) {
        names.add(k);
        if (value === "m") modules.set(k, mod);
      }
    }
  }
  const isSch = (m: string) => m.startsWith("sch_") && !m.endsWith("_lib") && m !== "sch_teql";
  for (const mod of (builtin ?? []).map(moduleName).filter(isSch)) {
    for (const k of kindsOfModule(mod)) {
      names.add(k);
      modules.delete(k);
    }
  }
  const builtinSet = new Set((builtin ?? []).map(moduleName));
  for (const mod of [...(installed ?? [])].filter(isSch)) {
    if (builtinSet.has(mod)) continue;
    for (const k of kindsOfModule(mod)) {
      names.add(k);
      modules.set(k, mod);
    }
  }
  return offer(names, modules, config !== undefined || builtin !== undefined);
}

/**
 * The TCP congestion control algorithms a host offers: `tcp_available_congestion_control` (built
 * in or loaded), plus those its configuration has as a module (`CONFIG_TCP_CONG_<X>=m`, counted
 * when installed) and the installed `tcp_<name>` modules not loaded yet.
 *
 * @param tcpAvailable the text of net.ipv4.tcp_available_congestion_control
 * @param config the kernel configuration, if any
 * @param builtin entries of `modules.builtin`, if the host has the file
 * @param loadable installed modules (`modules.dep` entries); `[]` when there is no modules
 *   directory, undefined when unknown
 * @param loaded loaded modules (`/proc/modules` names), if known: an algorithm listed as
 *   available that is a loaded module still needs its module loaded at boot
 */
export function availableCongestionControl(
  tcpAvailable: string,
  config: string | undefined,
  builtin: readonly string[] | undefined,
  loadable: readonly string[] | undefined,
  loaded: readonly string[] = [],
): Offer {
  const names = new Set<string>(["reno", ...tcpAvailable.split(/\s+/).filter(Boolean)]);
  const modules = new Map<string, string>();
  const installed = loadable ? new Set(loadable.map(moduleName)) : undefined;
  const builtinSet = new Set((builtin ?? []).map(moduleName));
  if (config !== undefined) {
    for (const [key, value] of configValues(config)) {
      if (!key.startsWith("TCP_CONG_")) continue;
      const name = CONG_CONFIG[key.slice(9)];
      if (!name) continue;
      const mod = `tcp_${name}`;
      if (value === "m" && installed && !installed.has(mod) && !names.has(name)) continue;
      names.add(name);
      if (value === "m") modules.set(name, mod);
    }
  }
  const isCong = (m: string) => m.startsWith("tcp_") && !NOT_CONGESTION.has(m);
  for (const mod of [...(installed ?? []), ...loaded.map(moduleName)].filter(isCong)) {
    if (builtinSet.has(mod)) continue;
    names.add(mod.slice(4));
    modules.set(mod.slice(4), mod);
  }
  for (const mod of [...builtinSet].filter(isCong)) modules.delete(mod.slice(4));
  return offer(names, modules, config !== undefined || builtin !== undefined);
}

/**
 * Why a qdisc kind cannot be given by name alone as the root of interfaces and as
 * net.core.default_qdisc, or undefined when it can.
 */
export function unfitRootQdisc(kind: string): string | undefined {
  switch (kind) {
    case "tbf":
    case "cbs":
    case "etf":
    case "red":
    case "gred":
    case "choke":
    case "atm":
    case "dsmark":
    case "taprio":
    case "mqprio":
      return `${kind} needs parameters that CongestionControl does not set; configure it with tc itself`;
    case "ingress":
    case "clsact":
      return `${kind} is not a transmit (root) qdisc`;
    case "mq":
    case "multiq":
      return `${kind} only works as the root of a multi-queue device: as net.core.default_qdisc it would leave new interfaces without a working qdisc`;
    case "plug":
      return "plug holds every packet until it is told to release them: as a root qdisc it stops all traffic";
    default:
      return undefined;
  }
}
