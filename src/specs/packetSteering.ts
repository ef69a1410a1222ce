/**
 * PacketSteering: RPS (`queues/rx-N/rps_cpus`), RFS (`net.core.rps_sock_flow_entries` and each
 * rx queue's `rps_flow_cnt`) and XPS (`queues/tx-N/xps_cpus`, or `xps_rxqs`) of one interface.
 *
 * Users write cpulists; the files take the kernel's hex masks, rendered here at the host's width
 * (nr_cpu_ids, from /sys/devices/system/cpu/possible; the rx queue count for `xps_rxqs`) and read
 * back as sets of CPUs: a kernel may print a mask wider than nr_cpu_ids (3.x kernels printed
 * `rps_cpus` at NR_CPUS), so values are compared as CPU sets, never as text. Every file is a
 * keyed setting (`rx-0/rps_cpus`, `tx-1/xps_cpus`, …) set, read back and verified in one round
 * trip with `link.applyKeyed`, and given back with `link.releaseKeyed`.
 *
 * `net.core.rps_sock_flow_entries` exists only in the initial network namespace: a container in
 * its own network namespace (a sandbox host, a Kubernetes pod) has no such file, and `rfs` fails
 * at preview there.
 */
import {
  packetSteeringSchema,
  type PacketSteeringInputs,
  type QueueCpus,
  type XpsInputs,
} from "../schemas/packetSteering";
import {
  normalizeCpuList,
  parseCpuList,
  parseCpuMask,
  renderCpuList,
  renderCpuMask,
} from "../host/cpus";
import { shellQuote } from "../transport/quote";
import type { Failure } from "../engine/lifecycle";
import { handlerOf, type Spec } from "../engine/spec";
import type { StepResult } from "../engine/batch";
import * as link from "./link";

export const SYS_CPU = "/sys/devices/system/cpu";
export const SOCK_FLOW_KEY = "net.core.rps_sock_flow_entries";
export const SOCK_FLOW_PATH = "/proc/sys/net/core/rps_sock_flow_entries";

type QueueFile = "rps_cpus" | "rps_flow_cnt" | "xps_cpus" | "xps_rxqs";
const QUEUE_FILES: readonly QueueFile[] = ["rps_cpus", "rps_flow_cnt", "xps_cpus", "xps_rxqs"];

export interface PacketSteeringOutputs extends PacketSteeringInputs {
  /**
   * Each file nettune set, as the kernel printed it before nettune first set it (`rx-0/rps_cpus`
   * → `"0"`, `net.core.rps_sock_flow_entries` → `"0"`); put back on delete.
   */
  originals: Record<string, string>;
  /** What nettune set per file: CPU and queue lists as cpulists, counts as numbers (text). */
  applied: Record<string, string>;
  /** The `rps_flow_cnt` each rx queue got from `rfs.flowEntries`, or null without `rfs`. */
  rpsFlowCnt: number | null;
  /** The interface's driver, as `ethtool -i` names it. */
  driver: string;
  /** The systemd unit that writes the files at boot, or null with `persist: false`. */
  unitPath: string | null;
  /** Messages from the last operation the user should read. */
  warnings: string[];
}

// ---------------------------------------------------------------------------------------------
// Reading

/** What {@link renderSteeringRead} found on the host. */
export interface SteeringRead {
  /** `/sys/devices/system/cpu/possible` and `online` as printed (cpulists), or why not. */
  readonly possible: string;
  readonly online: string;
  readonly rxQueues: readonly number[];
  readonly txQueues: readonly number[];
  /** `rx-0/rps_cpus` → the file's text, trimmed. */
  readonly files: Readonly<Record<string, string>>;
  /** Files that exist but cannot be read (`xps_cpus` of a single-queue device), with why. */
  readonly unreadable: Readonly<Record<string, string>>;
  /** `net.core.rps_sock_flow_entries`, or undefined where it does not exist (own netns). */
  readonly sockFlowEntries: string | undefined;
}

/**
 * One read-only script: the possible and online CPUs, every rx and tx queue of `ifname` with
 * its steering files, and `net.core.rps_sock_flow_entries`. Output, one line each:
 *   cpus <TAB> possible|online <TAB> text
 *   queue <TAB> rx-0
 *   file <TAB> rx-0/rps_cpus <TAB> text          unreadable <TAB> tx-0/xps_cpus <TAB> reason
 *   sysctl <TAB> value                           nosysctl
 */
export function renderSteeringRead(ifname: string): string {
  const d = shellQuote(`/sys/class/net/${ifname}/queues`);
  return [
    `for c in possible online; do printf 'cpus\\t%s\\t%s\\n' "$c" "$(cat ${SYS_CPU}/$c 2>&1)"; done`,
    `for q in ${d}/rx-* ${d}/tx-*; do`,
    `  [ -d "$q" ] || continue`,
    `  n=\${q##*/}; printf 'queue\\t%s\\n' "$n"`,
    `  for f in ${QUEUE_FILES.join(" ")}; do`,
    `    [ -e "$q/$f" ] || continue`,
    `    if v=$(cat "$q/$f" 2>&1); then printf 'file\\t%s/%s\\t%s\\n' "$n" "$f" "$(echo $v)"; ` +
      `else printf 'unreadable\\t%s/%s\\t%s\\n' "$n" "$f" "$(echo $v | sed 's/^cat: //')"; fi`,
    "  done",
    "done",
    `if [ -e ${SOCK_FLOW_PATH} ]; then printf 'sysctl\\t%s\\n' "$(cat ${SOCK_FLOW_PATH} 2>&1)"; else echo nosysctl; fi`,
  ].join("\n");
}

/** Reads what {@link renderSteeringRead} printed. */
export function parseSteeringRead(text: string): SteeringRead {
  let possible = "";
  let online = "";
  const rx: number[] = [];
  const tx: number[] = [];
  const files: Record<string, string> = {};
  const unreadable: Record<string, string> = {};
  let sockFlowEntries: string | undefined;
  let ended = false;
  for (const line of text.split("\n")) {
    const [tag, a = "", ...rest] = line.split("\t");
    const b = rest.join("\t").trim();
    if (tag === "cpus" && a === "possible") possible = b;
    else if (tag === "cpus" && a === "online") online = b;
    else if (tag === "queue") {
      const m = /^(rx|tx)-(\d+)$/.exec(a);
      if (m) (m[1] === "rx" ? rx : tx).push(Number(m[2]));
    } else if (tag === "file") files[a] = b;
    else if (tag === "unreadable") unreadable[a] = b;
    else if (tag === "sysctl") {
      sockFlowEntries = a.trim();
      ended = true;
    } else if (tag === "nosysctl") ended = true;
  }
  if (!ended) throw new Error(`packet steering: the read of the host ended early:\n${text}`);
  const byNumber = (x: number, y: number) => x - y;
  return {
    possible,
    online,
    rxQueues: rx.sort(byNumber),
    txQueues: tx.sort(byNumber),
    files,
    unreadable,
    sockFlowEntries,
  };
}

type Facts = link.LinkFacts<SteeringRead>;

/** nr_cpu_ids: the last possible CPU + 1, or undefined when `possible` cannot be read. */
export function nrCpuIdsOf(possible: string): number | undefined {
  try {
    const cpus = parseCpuList(possible);
    return cpus.length > 0 ? cpus[cpus.length - 1]! + 1 : undefined;
  } catch {
    return undefined;
  }
}

function onlineOf(read: SteeringRead): number[] | undefined {
  try {
    const cpus = parseCpuList(read.online);
    return cpus.length > 0 ? cpus : undefined;
  } catch {
    return undefined;
  }
}

const isList = (file: string) => !file.endsWith("rps_flow_cnt");

/** A file's text as a keyed value: masks as cpulists (`f` → `0-3`), counts as they are. */
function valueOf(key: string, text: string): string {
  if (key === SOCK_FLOW_KEY || !isList(key)) return text.trim();
  return renderCpuList(parseCpuMask(text));
}

/** Every readable file and the sysctl as keyed values. */
export function liveValues(read: SteeringRead): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, text] of Object.entries(read.files)) {
    try {
      out[key] = valueOf(key, text);
    } catch (err) {
      throw new Error(
        `packet steering: ${key} reads ${JSON.stringify(text)}: ${(err as Error).message}`,
      );
    }
  }
  if (read.sockFlowEntries !== undefined) out[SOCK_FLOW_KEY] = read.sockFlowEntries;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Planning

/** Smallest power of two ≥ n (n ≥ 1). */
function roundUpPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * The `rps_flow_cnt` of each rx queue for `flowEntries` spread over `rxQueues` queues, as the
 * kernel's scaling.rst suggests (rps_sock_flow_entries / N), rounded up to a power of two (the
 * kernel rounds it up itself; writing the rounded number lets it read back as written).
 */
export function flowCntPerQueue(flowEntries: number, rxQueues: number): number {
  return roundUpPow2(Math.max(1, Math.ceil(flowEntries / Math.max(1, rxQueues))));
}

/** The queues a declaration names: every queue for one list, else the record's keys. */
function queuesOf(declared: QueueCpus, all: readonly number[]): Array<[number, string]> {
  if (typeof declared === "string") return all.map((q) => [q, declared]);
  return Object.entries(declared).map(([q, list]) => [Number(q), list]);
}

const fieldOf = (base: string, declared: QueueCpus | undefined, q: number) =>
  typeof declared === "string" || declared === undefined ? base : `${base}.${q}`;

/** The keyed values `inputs` declares, and what the host cannot take, by field. */
export function plan(
  inputs: PacketSteeringInputs,
  facts: Facts,
  target: string,
): { failures: Failure[]; values: Record<string, string>; flowCnt: number | null } {
  const { info, own: read } = facts;
  const where = link.describeLink(info);
  const failures: Failure[] = [];
  const values: Record<string, string> = {};
  const nrCpuIds = nrCpuIdsOf(read.possible);
  const online = onlineOf(read);
  const fail = (property: string, reason: string) => failures.push({ property, reason });

  /** CPUs of `list` the host cannot take, as one failure of `property`. */
  const checkCpus = (property: string, list: string): boolean => {
    if (nrCpuIds === undefined || online === undefined) {
      fail(
        property,
        `cannot read the CPUs of ${target} (${SYS_CPU}/possible: ${read.possible || "empty"}, online: ${read.online || "empty"})`,
      );
      return false;
    }
    const cpus = parseCpuList(list);
    const above = cpus.filter((c) => c >= nrCpuIds);
    if (above.length > 0) {
      fail(
        property,
        `CPU ${renderCpuList(above)} is above the highest CPU of ${target} (${nrCpuIds - 1}; possible CPUs: ${read.possible})`,
      );
      return false;
    }
    const offline = cpus.filter((c) => !online.includes(c));
    if (offline.length > 0) {
      fail(
        property,
        `CPU ${renderCpuList(offline)} is offline on ${target} (online CPUs: ${read.online}); the kernel would drop it`,
      );
      return false;
    }
    return true;
  };

  /** A queue's file, or a failure saying why it cannot be set. */
  const fileOf = (property: string, dir: "rx" | "tx", q: number, file: QueueFile): boolean => {
    const all = dir === "rx" ? read.rxQueues : read.txQueues;
    if (!all.includes(q)) {
      fail(
        property,
        `${where} has no ${dir} queue ${q}: its ${dir} queues are ${renderCpuList(all) || "none"}`,
      );
      return false;
    }
    const key = `${dir}-${q}/${file}`;
    if (read.unreadable[key] !== undefined) {
      const why =
        file === "xps_cpus" && read.txQueues.length <= 1
          ? `${where} has a single tx queue; XPS needs a multi-queue device`
          : `${key} cannot be read on ${where}`;
      fail(property, `${why} (${read.unreadable[key]})`);
      return false;
    }
    if (read.files[key] === undefined) {
      const config = file.startsWith("rps") ? "CONFIG_RPS" : "CONFIG_XPS";
      fail(
        property,
        `the kernel of ${target} has no ${key} on ${info.ifname} (built without ${config}?)`,
      );
      return false;
    }
    return true;
  };

  const cpusFor = (
    field: string,
    declared: QueueCpus,
    dir: "rx" | "tx",
    file: "rps_cpus" | "xps_cpus",
  ) => {
    const all = dir === "rx" ? read.rxQueues : read.txQueues;
    // One list for every queue is checked once; a list per queue, queue by queue.
    const cpusOk = new Map<string, boolean>();
    for (const [q, list] of queuesOf(declared, all)) {
      const property = fieldOf(field, declared, q);
      if (!fileOf(property, dir, q, file)) continue;
      let ok = cpusOk.get(property);
      if (ok === undefined) cpusOk.set(property, (ok = checkCpus(property, list)));
      if (ok) values[`${dir}-${q}/${file}`] = normalizeCpuList(list);
    }
  };

  if (inputs.rps !== undefined) cpusFor("rps", inputs.rps, "rx", "rps_cpus");

  let flowCnt: number | null = null;
  if (inputs.rfs) {
    const property = "rfs.flowEntries";
    if (read.sockFlowEntries === undefined) {
      fail(
        property,
        `${SOCK_FLOW_KEY} does not exist on ${target}: it exists only in the initial network namespace, ` +
          "and this host is a container in its own network namespace, which cannot set it (set it on the machine that runs the container)",
      );
    } else {
      flowCnt = flowCntPerQueue(inputs.rfs.flowEntries, read.rxQueues.length);
      const ok = read.rxQueues.every((q) => fileOf(property, "rx", q, "rps_flow_cnt"));
      if (ok) {
        for (const q of read.rxQueues) values[`rx-${q}/rps_flow_cnt`] = String(flowCnt);
        values[SOCK_FLOW_KEY] = String(inputs.rfs.flowEntries);
      }
    }
  }

  const xps = inputs.xps;
  if (xps && "cpus" in xps) cpusFor("xps.cpus", xps.cpus, "tx", "xps_cpus");
  if (xps && "rxqs" in xps) {
    for (const [key, list] of Object.entries(xps.rxqs)) {
      const q = Number(key);
      const property = `xps.rxqs.${key}`;
      if (!fileOf(property, "tx", q, "xps_rxqs")) continue;
      const missing = parseCpuList(list).filter((r) => !read.rxQueues.includes(r));
      if (missing.length > 0) {
        fail(
          property,
          `${where} has no rx queue ${renderCpuList(missing)}: its rx queues are ${renderCpuList(read.rxQueues)}`,
        );
        continue;
      }
      values[`tx-${q}/xps_rxqs`] = normalizeCpuList(list);
    }
  }
  // One failure per field and reason (one list for every queue fails the same way on each).
  const seen = new Set<string>();
  const unique = failures.filter((f) => {
    const id = `${f.property}\n${f.reason}`;
    return !seen.has(id) && seen.add(id);
  });
  return { failures: unique, values: sortedKeys(values), flowCnt };
}

/** Keys in a stable order: rx queues, tx queues (by number), then the sysctl. */
function sortedKeys<T>(values: Record<string, T>): Record<string, T> {
  const rank = (k: string) => {
    const m = /^(rx|tx)-(\d+)\/(.*)$/.exec(k);
    if (!m) return [2, 0, k] as const;
    return [m[1] === "rx" ? 0 : 1, Number(m[2]), m[3]!] as const;
  };
  const keys = Object.keys(values).sort((a, b) => {
    const [a0, a1, a2] = rank(a);
    const [b0, b1, b2] = rank(b);
    return a0 - b0 || a1 - b1 || a2.localeCompare(b2);
  });
  return Object.fromEntries(keys.map((k) => [k, values[k]!]));
}

// ---------------------------------------------------------------------------------------------
// Writing

/** What masks are rendered at: nr_cpu_ids for CPU masks, the rx queue count for `xps_rxqs`. */
interface Widths {
  readonly nrCpuIds: number;
  readonly rxqBits: number;
}

function widthsOf(facts: Facts): Widths | undefined {
  const nrCpuIds = nrCpuIdsOf(facts.own.possible);
  if (nrCpuIds === undefined) return undefined;
  // xps_rxqs masks are dev->num_rx_queues wide (the queues allocated), which ip reports.
  const rxqBits = Math.max(facts.info.link.numRxQueues ?? 0, facts.own.rxQueues.length, 1);
  return { nrCpuIds, rxqBits };
}

/** The journal of originals' kind (./link.ts): `steering-<interface>-<unit name>`. */
export const JOURNAL = "steering";

/** A keyed value as the file takes it: a mask for lists, the number for counts. */
function fileText(key: string, value: string, w: Widths): string {
  if (key === SOCK_FLOW_KEY || !isList(key)) return value;
  return renderCpuMask(parseCpuList(value), key.endsWith("xps_rxqs") ? w.rxqBits : w.nrCpuIds);
}

function pathOf(ifname: string, key: string): string {
  return key === SOCK_FLOW_KEY ? SOCK_FLOW_PATH : `/sys/class/net/${ifname}/queues/${key}`;
}

/** Writes one file with tee (whose error is the kernel's errno text: "Invalid argument"). */
export function renderSteeringWrite(ifname: string, key: string, text: string): string {
  return `tee ${shellQuote(pathOf(ifname, key))} >/dev/null <<'NETTUNE'\n${text}\nNETTUNE`;
}

/** How an input names a key in messages: `rps.2`, `rps (rx-2)`, `rfs.flowEntries (…)`. */
function propertyOf(inputs: PacketSteeringInputs, key: string): string {
  if (key === SOCK_FLOW_KEY) return `rfs.flowEntries (${SOCK_FLOW_KEY})`;
  const m = /^(rx|tx)-(\d+)\/(.*)$/.exec(key);
  if (!m) return key;
  const [, dir, q, file] = m;
  const named = (base: string, declared: QueueCpus | undefined) =>
    typeof declared === "object" ? `${base}.${q}` : `${base} (${dir}-${q})`;
  if (file === "rps_cpus") return named("rps", inputs.rps);
  if (file === "rps_flow_cnt") return `rfs.flowEntries (${key})`;
  if (file === "xps_cpus") {
    const x = inputs.xps;
    return named("xps.cpus", x && "cpus" in x ? x.cpus : undefined);
  }
  return `xps.rxqs.${q}`;
}

function keyed(
  inputs: PacketSteeringInputs,
  widths: Widths | undefined,
): link.KeyedSettings<string> {
  const ifname = inputs.interface;
  return {
    set(changes) {
      if (!widths) throw new Error("packet steering: the host's CPUs were not read");
      return Object.keys(sortedKeys(changes)).map((key) => ({
        script: renderSteeringWrite(ifname, key, fileText(key, changes[key]!, widths)),
      }));
    },
    readBack: [{ script: renderSteeringRead(ifname) }],
    after([step]: readonly StepResult[]) {
      if (!step) throw new Error("packet steering: the read-back step is missing");
      return liveValues(parseSteeringRead(step.stdout));
    },
    property: (key) => propertyOf(inputs, key),
    show: (v) => (v === undefined ? "absent" : v === "" ? "none" : v),
  };
}

/** The unit that writes the files at boot (one `sh -c`, each write stopping the rest on failure). */
function unitOf(inputs: PacketSteeringInputs, values: Record<string, string>, w: Widths) {
  const writes = Object.entries(sortedKeys(values)).map(
    ([key, v]) =>
      `echo ${shellQuote(fileText(key, v, w))} > ${shellQuote(pathOf(inputs.interface, key))}`,
  );
  const commands = writes.length > 0 ? [["sh", "-c", writes.join(" && ")]] : [];
  return link.linkUnit(inputs, `nettune PacketSteering on ${inputs.interface}`, commands);
}

/** The recorded originals as keyed values (masks as cpulists). */
function originalValues(originals: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, text] of Object.entries(originals)) {
    try {
      out[key] = valueOf(key, text);
    } catch {
      /* an unreadable original is not put back */
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Refresh: live values in the inputs' shape

function sameList(a: string, b: string): boolean {
  try {
    return normalizeCpuList(a) === normalizeCpuList(b);
  } catch {
    return a === b;
  }
}

/** Live lists of `file` on the declared queues, in the declaration's shape; declared text when equal. */
function liveQueueLists(
  declared: QueueCpus,
  values: Record<string, string>,
  dir: "rx" | "tx",
  file: QueueFile,
  all: readonly number[],
): QueueCpus {
  const at = (q: number | string) => values[`${dir}-${q}/${file}`];
  if (typeof declared === "string") {
    const lists = all.map((q) => at(q)).filter((v): v is string => v !== undefined);
    if (lists.length > 0 && lists.every((l) => l === lists[0])) {
      return sameList(lists[0]!, declared) ? declared : lists[0]!;
    }
    return Object.fromEntries(
      all.filter((q) => at(q) !== undefined).map((q) => [String(q), at(q)!]),
    );
  }
  const out: Record<string, string> = {};
  for (const [q, want] of Object.entries(declared)) {
    const now = at(q);
    if (now !== undefined) out[q] = sameList(now, want) ? want : now;
  }
  return out;
}

function sameQueueCpus(a: QueueCpus | undefined, b: QueueCpus | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (typeof a === "string" || typeof b === "string") {
    return typeof a === "string" && typeof b === "string" && sameList(a, b);
  }
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.join() === kb.join() && ka.every((k) => sameList(a[k]!, b[k]!));
}

function sameXps(a: XpsInputs | undefined, b: XpsInputs | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if ("cpus" in a && "cpus" in b) return sameQueueCpus(a.cpus, b.cpus);
  if ("rxqs" in a && "rxqs" in b) return sameQueueCpus(a.rxqs, b.rxqs);
  return false;
}

// ---------------------------------------------------------------------------------------------

export const packetSteeringSpec: Spec<PacketSteeringInputs, PacketSteeringOutputs, Facts> = {
  kind: "PacketSteering",
  schema: packetSteeringSchema,
  replaceOn: link.LINK_REPLACE_ON,
  shows: link.linkShows,
  outputs: ["originals", "applied", "rpsFlowCnt", "driver", "unitPath"],
  id: (inputs) => link.linkPath("steering", inputs),

  // The same CPUs written another way (`0-3` for `0,1,2,3`) change nothing on the host.
  normalize(olds, news) {
    const out = { ...news };
    if (sameQueueCpus(olds.rps, news.rps)) out.rps = olds.rps;
    if (sameXps(olds.xps, news.xps)) out.xps = olds.xps;
    return out;
  },

  probe: (t, inputs) =>
    link.probeLink(
      t,
      inputs.interface,
      [{ script: renderSteeringRead(inputs.interface) }],
      ([step]) => {
        if (!step) throw new Error("packet steering: the read step is missing");
        return parseSteeringRead(step.stdout);
      },
    ),

  check: (inputs, facts, target) => plan(inputs, facts, target).failures,

  asDeclared(inputs, facts) {
    const { values, failures } = plan(inputs, facts, "");
    const live = liveValues(facts.own);
    return failures.length === 0 && Object.entries(values).every(([k, v]) => live[k] === v);
  },

  async apply(ctx, facts, olds, news) {
    const t = ctx.transport;
    const { info, own } = facts;
    const { values, flowCnt, failures } = plan(news, facts, t.target);
    if (failures.length > 0)
      throw new Error(failures.map((f) => `${f.property}: ${f.reason}`).join("\n"));
    const widths = widthsOf(facts)!;
    const online = onlineOf(own) ?? [];
    if (news.rps !== undefined && own.rxQueues.length >= online.length) {
      ctx.warn(
        `rps: ${link.describeLink(info)} has ${own.rxQueues.length} rx queues for ${online.length} online CPUs: ` +
          "if each rx queue's IRQ is pinned to its own CPU, RSS already spreads the load and RPS only adds " +
          "inter-processor interrupts (nettune compares the counts only, not the IRQ pinning)",
      );
    }
    const live = liveValues(own);
    const k = keyed(news, widths);
    const target: Record<string, string | undefined> = { ...values };
    const oldOriginals = olds ? originalValues(olds.originals) : {};
    if (olds) {
      Object.assign(
        target,
        link.giveBackUndeclared(ctx, info, k, live, target, olds.applied, oldOriginals),
      );
    }
    const unit = news.persist ? unitOf(news, values, widths) : undefined;
    const oldUnit = olds?.persist ? unitOf(olds, olds.applied, widths) : undefined;
    const journaled = await link.applyKeyed(
      t,
      info,
      k,
      live,
      target,
      link.persistCommands(unit, oldUnit ? [oldUnit.name] : []),
      link.persistCommands(oldUnit, unit ? [unit.name] : []),
      (m) => ctx.warn(m),
      link.journalOf(JOURNAL, olds, news),
    );
    // Originals as first read: kept from the state for files set before, from the journal an
    // earlier create left (its values from before nettune), read now for the others.
    const originals: Record<string, string> = {};
    for (const key of Object.keys(values)) {
      const found = journaled[key];
      const before =
        olds?.originals[key] ??
        (found !== undefined
          ? fileText(key, found, widths)
          : key === SOCK_FLOW_KEY
            ? own.sockFlowEntries
            : own.files[key]);
      if (before !== undefined) originals[key] = before;
    }
    return {
      originals,
      applied: values,
      rpsFlowCnt: flowCnt,
      driver: info.driver,
      unitPath: unit ? link.unitPathOf(unit.name) : null,
      warnings: [],
    };
  },

  async release(ctx, facts, olds) {
    const live = facts ? liveValues(facts.own) : {};
    await link.releaseKeyed(
      ctx,
      facts?.info,
      keyed(olds, facts && widthsOf(facts)),
      live,
      olds.applied,
      originalValues(olds.originals),
      olds.persist ? [olds.unitName] : [],
      link.journalPathOf(JOURNAL, olds),
    );
  },

  live(olds, facts) {
    const out: Partial<PacketSteeringInputs> = { rps: undefined, rfs: undefined, xps: undefined };
    if (!facts) return out;
    const read = facts.own;
    const values = liveValues(read);
    if (olds.rps !== undefined)
      out.rps = liveQueueLists(olds.rps, values, "rx", "rps_cpus", read.rxQueues);
    if (olds.rfs && read.sockFlowEntries !== undefined) {
      const entries = Number(read.sockFlowEntries);
      const per = String(flowCntPerQueue(entries, read.rxQueues.length));
      const counts = Object.fromEntries(
        read.rxQueues.map((q) => [String(q), values[`rx-${q}/rps_flow_cnt`] ?? "absent"]),
      );
      // Per-queue counts other than the ones flowEntries gives show as drift of their own.
      out.rfs = Object.values(counts).every((c) => c === per)
        ? { flowEntries: entries }
        : ({ flowEntries: entries, rpsFlowCnt: counts } as unknown as { flowEntries: number });
    }
    const xps = olds.xps;
    if (xps && "cpus" in xps) {
      out.xps = { cpus: liveQueueLists(xps.cpus, values, "tx", "xps_cpus", read.txQueues) };
    } else if (xps && "rxqs" in xps) {
      const rxqs = liveQueueLists(xps.rxqs, values, "tx", "xps_rxqs", read.txQueues);
      out.xps = { rxqs: typeof rxqs === "string" ? {} : rxqs };
    }
    return out;
  },
};

export const packetSteeringHandler = handlerOf(packetSteeringSpec);
