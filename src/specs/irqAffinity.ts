/**
 * IrqAffinity: the CPUs that serve each queue interrupt of one NIC (`smp_affinity_list`),
 * placed by a policy, kept from irqbalance, re-applied by queue at boot and whenever the
 * interface's queues change, and put back on delete.
 *
 * The queue IRQs are found by the names their driver gives them (src/host/interrupts.ts), on
 * the devices under the interface (itself, a bond's slaves, a VLAN's parent). Everything that
 * changes the host is one script (src/host/irqs.ts): it pins by name, all-or-nothing, does what
 * the `irqbalance` input says, and reads back.
 */
import { irqAffinitySchema, type IrqAffinityInputs } from "../schemas/irqAffinity";
import { normalizeCpuList, parseCpuList, renderCpuList } from "../host/cpus";
import { parseProcInterrupts, queueIrqs, type ProcInterrupts } from "../host/interrupts";
import {
  parsePinResult,
  renderIrqProbe,
  renderPinScript,
  renderIrqPersist,
  renderIrqUnpersist,
  type IrqbalanceAction,
  type IrqProbe,
  type PinEntry,
  type PinResult,
} from "../host/irqs";
import { parseIrqProbe } from "../host/irqs";
import { ParseError } from "../host/errors";
import type { Transport } from "../transport/types";
import { messageOf, outputOf, runBatch } from "../engine/batch";
import type { Failure } from "../engine/lifecycle";
import { changedOutside } from "../engine/restore";
import { handlerOf, type Spec, type SpecContext } from "../engine/spec";
import * as link from "./link";
import { parseJournal, renderJournal, renderJournalRemove } from "../host/steps";

/** One queue IRQ as pinned. */
export interface IrqPin {
  /** The network device whose queue it is (the interface, or a device below it). */
  device: string;
  queue: number;
  /** `rxtx` (a queue pair, a completion vector), `rx` or `tx`. */
  role: string;
  irq: number;
  /** The IRQ's action name (`virtio3-input.0`): how it is found again when its number changes. */
  action: string;
  /** The CPUs set, as a cpulist. */
  cpus: string;
  /** Where the kernel delivers it now (`effective_affinity_list`); it follows at the next interrupt. */
  effective: string | null;
}

export interface IrqAffinityOutputs extends IrqAffinityInputs {
  /** The queue IRQs nettune pinned, by queue. */
  applied: IrqPin[];
  /** Each pinned IRQ's CPUs before nettune first set them, by action name; put back on delete. */
  originals: Record<string, string>;
  /** The devices below the interface whose queues are pinned, with their driver and NUMA node. */
  devices: { ifname: string; driver: string; numaNode: number | null }[];
  /** irqbalance when nettune first applied: installed, running, enabled. */
  irqbalanceBefore: { installed: boolean; active: boolean; enabled: string };
  /** The systemd unit that re-applies the pins at boot and when the queues change, or null. */
  unitPath: string | null;
  warnings: string[];
}

interface Own {
  readonly probe: IrqProbe;
  readonly interrupts: ProcInterrupts;
}
type Facts = link.LinkFacts<Own>;

const baseOf = (unitName: string) => unitName.replace(/\.service$/, "");

/**
 * The journal of originals' kind (./link.ts): `irq-<interface>-<unit name>`, one row per IRQ
 * action name with the CPUs it had before nettune, and irqbalance's state as {@link IB_KEY}.
 * Written by create ahead of its first pin, in the same script; read by a create that finds it
 * (one run again after its answer or its state was lost); removed by delete.
 */
export const IRQ_JOURNAL = "irq";
const JOURNAL = IRQ_JOURNAL;
const IB_KEY = "@irqbalance";

// ---------------------------------------------------------------------------------------------
// Placing queues on CPUs

/**
 * The order "spread" hands CPUs out in: one thread of every core (the NIC's NUMA node first, then
 * the other nodes), then the hyperthread siblings (the NIC's node first again).
 */
export function spreadOrder(
  cpus: readonly number[],
  nicNode: number | null,
  nodes: ReadonlyMap<number, readonly number[]>,
  siblings: ReadonlyMap<number, readonly number[]>,
): number[] {
  const allowed = new Set(cpus);
  const nodeOf = new Map<number, number>();
  for (const [n, list] of nodes) for (const c of list) nodeOf.set(c, n);
  const rank = (c: number) => {
    const n = nodeOf.get(c);
    if (n === undefined) return Number.MAX_SAFE_INTEGER;
    return n === nicNode ? -1 : n;
  };
  // A CPU is a core's first thread when no sibling below it is allowed.
  const first = (c: number) =>
    !(siblings.get(c) ?? [c]).some((s) => s < c && allowed.has(s) && s !== c);
  const sorted = [...allowed].sort((a, b) => rank(a) - rank(b) || a - b);
  return [...sorted.filter(first), ...sorted.filter((c) => !first(c))];
}

/** A planned pin, before it is applied. */
type Planned = Omit<IrqPin, "effective">;

interface Plan {
  readonly pins: Planned[];
  readonly failures: Failure[];
  /** What the plan chose that the user should know (no NUMA information, shared CPUs). */
  readonly notes: string[];
}

const showQueues = (qs: readonly number[]) => renderCpuList(qs) || "none";

/** The pins `inputs` ask for on the host `facts` describe, and what the host cannot take. */
export function planPins(inputs: IrqAffinityInputs, facts: Facts): Plan {
  const { probe, interrupts } = facts.own;
  const failures: Failure[] = [];
  const notes: string[] = [];
  const pins: Planned[] = [];
  const where = link.describeLink(facts.info);
  if (probe.devices.length === 0) {
    failures.push({
      property: "interface",
      reason:
        `${where} has no device with queue interrupts (a veth, bridge or loopback has none): ` +
        "name the NIC, or a bond or VLAN above one",
    });
    return { pins, failures, notes };
  }
  const online = new Set(probe.online);
  const excluded = new Set(inputs.exclude ? parseCpuList(inputs.exclude) : []);
  const candidates = probe.online.filter((c) => !excluded.has(c));
  const offline = (list: string) => parseCpuList(list).filter((c) => !online.has(c));
  const onlineText = renderCpuList(probe.online);

  const policy = inputs.policy;
  if (typeof policy === "string" && candidates.length === 0) {
    failures.push({
      property: "exclude",
      reason: `excludes every online CPU of ${facts.info.ifname}'s host (online: ${onlineText})`,
    });
  }
  if (typeof policy === "object" && "cpus" in policy) {
    const bad = offline(policy.cpus);
    if (bad.length > 0) {
      failures.push({
        property: "policy.cpus",
        reason: `CPU ${renderCpuList(bad)} ${bad.length > 1 ? "are" : "is"} not online (online: ${onlineText})`,
      });
    }
  }

  for (const dev of probe.devices) {
    const found = queueIrqs(
      interrupts,
      dev.ifname,
      dev.driver,
      dev.msiIrqs ?? undefined,
      dev.busInfo,
    );
    const devWhere = `${dev.ifname} (driver ${dev.driver})`;
    if (found.irqs.length === 0) {
      const why = found.skipped.map((s) => `${s.irq} ${s.action}: ${s.reason}`).join("; ");
      failures.push({
        property: "interface",
        reason: `no queue interrupts found for ${devWhere}${why ? ` (${why})` : ""}`,
      });
      continue;
    }
    const queues = [...new Set(found.irqs.map((q) => q.queue))].sort((a, b) => a - b);
    let cpusOf: (queue: number, position: number) => string | undefined;
    if (policy === "spread") {
      const order = spreadOrder(candidates, dev.numaNode, probe.nodes, probe.siblings);
      if (dev.numaNode === null && probe.nodes.size > 1)
        notes.push(`${devWhere} has no NUMA node: spread over every node`);
      if (order.length > 0 && queues.length > order.length)
        notes.push(
          `${devWhere} has ${queues.length} queues and ${order.length} CPUs to spread them over: some CPUs serve several queues`,
        );
      cpusOf = (_q, i) => (order.length > 0 ? String(order[i % order.length]) : undefined);
    } else if (policy === "numa-local") {
      const node = dev.numaNode === null ? undefined : probe.nodes.get(dev.numaNode);
      let local = candidates;
      if (node === undefined) {
        notes.push(`${devWhere} has no NUMA node: its IRQs go to every allowed CPU`);
      } else {
        local = node.filter((c) => online.has(c) && !excluded.has(c));
        if (local.length === 0) {
          failures.push({
            property: inputs.exclude ? "exclude" : "policy",
            reason: `no CPU of NUMA node ${dev.numaNode} (${devWhere}) is left to use`,
          });
        }
      }
      const list = renderCpuList(local);
      cpusOf = () => (list === "" ? undefined : list);
    } else if ("cpus" in policy) {
      cpusOf = () => policy.cpus;
    } else {
      const have = new Set(queues);
      for (const [key, list] of Object.entries(policy.map)) {
        if (!have.has(Number(key))) {
          failures.push({
            property: `policy.map["${key}"]`,
            reason: `${devWhere} has no queue ${key} with an interrupt (its queues: ${showQueues(queues)})`,
          });
        }
        const bad = offline(list);
        if (bad.length > 0) {
          failures.push({
            property: `policy.map["${key}"]`,
            reason: `CPU ${renderCpuList(bad)} ${bad.length > 1 ? "are" : "is"} not online (online: ${onlineText})`,
          });
        }
      }
      cpusOf = (q) => policy.map[String(q)];
    }
    for (const q of found.irqs) {
      const cpus = cpusOf(q.queue, queues.indexOf(q.queue));
      if (cpus === undefined) continue;
      if (probe.managed.has(q.irq)) {
        failures.push({
          property: "interface",
          reason: `IRQ ${q.irq} (${q.action}) of ${devWhere} is managed by the kernel: its affinity cannot be set`,
        });
      }
      if (/[\t\n/]/.test(q.action)) {
        failures.push({
          property: "interface",
          reason: `IRQ ${q.irq} of ${devWhere} has a name nettune cannot find it by again (${JSON.stringify(q.action)})`,
        });
      }
      pins.push({
        device: dev.ifname,
        queue: q.queue,
        role: q.role,
        irq: q.irq,
        action: q.action,
        cpus,
      });
    }
  }
  return { pins, failures, notes };
}

// ---------------------------------------------------------------------------------------------
// Reading

async function probe(t: Transport, inputs: IrqAffinityInputs) {
  return link.probeLink(
    t,
    inputs.interface,
    [{ script: renderIrqProbe(inputs.interface) }, ["cat", "/proc/interrupts"]],
    ([p, i]): Own => {
      if (!p || !i) throw new Error("irqAffinity: a read step is missing");
      if (p.exitCode !== 0) throw new Error(`cannot read IRQs on ${t.target}: ${messageOf(p)}`);
      if (i.exitCode !== 0)
        throw new Error(`cannot read /proc/interrupts on ${t.target}: ${messageOf(i)}`);
      return { probe: parseIrqProbe(outputOf(p)), interrupts: parseProcInterrupts(outputOf(i)) };
    },
  );
}

/** The IRQ that carries `action` now, and its CPUs. */
function liveByAction(own: Own): Map<string, { irq: number; smp: string | undefined }> {
  const out = new Map<string, { irq: number; smp: string | undefined }>();
  for (const l of own.interrupts.lines) {
    if (l.irq === null) continue;
    for (const a of l.actions) {
      if (!out.has(a)) out.set(a, { irq: l.irq, smp: own.probe.affinity.get(l.irq)?.smp });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Applying

const stateName = (inputs: Pick<IrqAffinityInputs, "unitName">) => baseOf(inputs.unitName);

function ibAction(
  mode: IrqAffinityInputs["irqbalance"] | "release",
  probe: IrqProbe,
  olds: Pick<IrqAffinityInputs, "irqbalance"> | undefined,
): IrqbalanceAction {
  const file = probe.irqbalance.optionsFile;
  if (mode === "release" && olds)
    return olds.irqbalance === "stop"
      ? { mode: "unstop" }
      : file
        ? { mode: "unban", optionsFile: file }
        : { mode: "none" };
  if (mode === "stop") return probe.irqbalance.installed ? { mode: "stop" } : { mode: "none" };
  if (mode === "ban" && probe.irqbalance.installed && file)
    return { mode: "ban", optionsFile: file };
  return { mode: "none" };
}

/** Runs a pin script; the result, or an error that says what happened and what was put back. */
async function pin(
  t: Transport,
  entries: readonly PinEntry[],
  owner: string,
  irqbalance: IrqbalanceAction,
  missing: "fail" | "skip",
  prefix = "",
): Promise<{ result: PinResult; exitCode: number | null; stderr: string; stdout: string }> {
  const script = renderPinScript(entries, { owner, irqbalance, waitSeconds: 0, missing });
  const r = await t.exec({ script: `${prefix}${script}` });
  return {
    result: parsePinResult(r.stdout),
    exitCode: r.exitCode,
    stderr: r.stderr,
    stdout: r.stdout,
  };
}

function describePin(p: Pick<IrqPin, "device" | "queue" | "role" | "irq" | "action">): string {
  return `queue ${p.queue} ${p.role} IRQ ${p.irq} (${p.action}) of ${p.device}`;
}

function pinFailure(
  t: Transport,
  res: { result: PinResult; exitCode: number | null; stderr: string },
  pins: readonly Planned[],
): Error {
  const { result } = res;
  if (result.failed) {
    const p = pins.find((x) => x.action === result.failed!.action);
    const eio = /I\/O error|Input\/output/i.test(result.failed.reason);
    const why = eio
      ? "the kernel manages this IRQ's affinity (the driver asked for managed interrupts): it cannot be set"
      : result.failed.reason;
    return new Error(
      `${p ? describePin(p) : `IRQ ${result.failed.irq} (${result.failed.action})`} on ${t.target}: ${why}; ` +
        "every IRQ written before it and irqbalance were put back",
    );
  }
  if (result.ibFailed)
    return new Error(`irqbalance on ${t.target}: ${result.ibFailed}; no IRQ was changed`);
  if (result.missing.length > 0)
    return new Error(
      `on ${t.target}: no IRQ named ${result.missing.join(", ")} any more (the driver re-created its queues?); nothing was changed: run again`,
    );
  return new Error(
    `pinning IRQs on ${t.target} failed (exit ${res.exitCode}): ${res.stderr.trim() || "no message"}`,
  );
}

async function applyPins(
  ctx: SpecContext,
  facts: Facts,
  olds: IrqAffinityOutputs | undefined,
  news: IrqAffinityInputs,
) {
  const t = ctx.transport;
  const { probe: p } = facts.own;
  const plan = planPins(news, facts);
  for (const n of plan.notes) ctx.warn(n);
  const live = liveByAction(facts.own);
  const owner = stateName(news);

  // Pins no longer declared go back to their originals, where still ours; a changed irqbalance
  // choice is undone first.
  if (olds) {
    const keep = new Set(plan.pins.map((x) => x.action));
    const back = restoresOf(ctx, olds, facts, (pin) => !keep.has(pin.action));
    const ibBack =
      olds.irqbalance !== news.irqbalance
        ? ibAction("release", p, olds)
        : ({ mode: "none" } as const);
    if (back.length > 0 || ibBack.mode !== "none") {
      const res = await pin(t, back, owner, ibBack, "skip");
      if (res.exitCode !== 0) throw pinFailure(t, res, []);
    }
  }

  const ib = ibAction(news.irqbalance, p, undefined);
  if (news.irqbalance === "ban" && p.irqbalance.installed && !p.irqbalance.optionsFile) {
    ctx.warn(
      `irqbalance is installed on ${t.target} but none of ${["/etc/default/irqbalance", "/etc/sysconfig/irqbalance"].join(", ")} exists: its bans cannot be kept; use irqbalance: "stop"`,
    );
  }
  const entries = plan.pins.map((x) => ({ action: x.action, cpus: x.cpus }));
  // A create journals the CPUs each IRQ has now, and irqbalance's state, before its first pin.
  const journal = link.journalOf(JOURNAL, olds, news);
  const ibNow = {
    installed: p.irqbalance.installed,
    active: p.irqbalance.active,
    enabled: p.irqbalance.enabled,
  };
  const written: Record<string, string> | undefined =
    journal.create && entries.length > 0
      ? {
          ...Object.fromEntries(
            plan.pins
              .map((x) => [x.action, live.get(x.action)?.smp ?? ""] as const)
              .filter(([, v]) => v !== ""),
          ),
          [IB_KEY]: JSON.stringify(ibNow),
        }
      : undefined;
  const dropJournal = async () => {
    if (written)
      await t.exec({ script: renderJournalRemove(journal.path, written) }, { allowFailure: true });
  };
  const res = await pin(
    t,
    entries,
    owner,
    ib,
    "fail",
    written ? `${renderJournal(journal.path, written)}\n` : "",
  );
  const unjournaled = link.journalFailure(res.stdout, t.target);
  if (unjournaled) throw new Error(unjournaled);
  if (res.exitCode !== 0) {
    await dropJournal();
    throw pinFailure(t, res, plan.pins);
  }
  for (const w of res.result.ibWarnings) ctx.warn(w);
  // What an earlier create journaled (the journal was there, so it was printed, not written).
  const journaled = written ? parseJournal(res.stdout) : {};

  // The kernel keeps what it was asked for, unless it cannot (an offline CPU): verify.
  const got = new Map(res.result.pinned.map((x) => [x.action, x]));
  const wrong = plan.pins.filter((x) => got.get(x.action)?.smp !== x.cpus);
  const undo = async () => {
    const back = res.result.pinned.map((x) => ({ action: x.action, cpus: x.original }));
    await pin(t, back, owner, ibAction("release", p, news), "skip");
    await dropJournal();
  };
  if (wrong.length > 0) {
    await undo();
    throw new Error(
      wrong
        .map(
          (x) =>
            `${describePin(x)}: requested CPUs ${x.cpus}, the kernel reports ${got.get(x.action)?.smp ?? "nothing"}`,
        )
        .join("\n") + `\non ${t.target}; every IRQ and irqbalance were put back`,
    );
  }

  const oldUnit = olds?.persist ? [olds.unitName] : [];
  const steps = [
    // An update that renames the unit moves the journal along, so delete finds it.
    ...(journal.from ? [{ script: link.renderJournalMove(journal) }] : []),
    ...oldUnit
      .filter((u) => !news.persist || u !== news.unitName)
      .map((u) => ({ script: renderIrqUnpersist(u) })),
    ...(news.persist
      ? [{ script: renderIrqPersist(news, plan.pins, ib.mode === "ban" ? ib : { mode: "none" }) }]
      : []),
  ];
  if (steps.length > 0) {
    const out = await runBatch(t, steps);
    const failed = out.find((s) => s.exitCode !== 0);
    if (failed) {
      await undo();
      throw new Error(
        `persist: could not install the boot unit on ${t.target}: ${messageOf(failed)}; every IRQ and irqbalance were put back`,
      );
    }
  }

  // Originals: those recorded before (in the state, or journaled by an earlier create), and
  // the live CPUs of IRQs pinned for the first time.
  const originals: Record<string, string> = {};
  for (const x of plan.pins) {
    originals[x.action] =
      olds?.originals[x.action] ??
      journaled[x.action] ??
      got.get(x.action)?.original ??
      live.get(x.action)?.smp ??
      "";
  }
  let ibJournaled: IrqAffinityOutputs["irqbalanceBefore"] | undefined;
  try {
    const v =
      journaled[IB_KEY] === undefined ? undefined : (JSON.parse(journaled[IB_KEY]) as unknown);
    if (
      typeof v === "object" &&
      v !== null &&
      typeof (v as { installed?: unknown }).installed === "boolean" &&
      typeof (v as { active?: unknown }).active === "boolean" &&
      typeof (v as { enabled?: unknown }).enabled === "string"
    )
      ibJournaled = v as IrqAffinityOutputs["irqbalanceBefore"];
  } catch {
    // Not what this resource wrote: the probe's state is the best knowledge left.
  }
  return {
    applied: plan.pins.map((x) => ({ ...x, effective: got.get(x.action)?.effective ?? null })),
    originals,
    devices: p.devices.map((d) => ({ ifname: d.ifname, driver: d.driver, numaNode: d.numaNode })),
    irqbalanceBefore: olds?.irqbalanceBefore ?? ibJournaled ?? ibNow,
    unitPath: news.persist ? link.unitPathOf(news.unitName) : null,
    warnings: [],
  };
}

/**
 * The pins of `olds` chosen by `which` that go back to their originals: where the IRQ still
 * carries what nettune set; elsewhere a warning. IRQs that no longer exist are skipped.
 */
function restoresOf(
  ctx: SpecContext,
  olds: IrqAffinityOutputs,
  facts: Facts | undefined,
  which: (p: IrqPin) => boolean,
): PinEntry[] {
  const live = facts
    ? liveByAction(facts.own)
    : new Map<string, { irq: number; smp: string | undefined }>();
  const out: PinEntry[] = [];
  for (const p of olds.applied.filter(which)) {
    const original = olds.originals[p.action];
    const now = live.get(p.action);
    if (!now || now.smp === undefined || original === undefined || original === "") continue;
    if (now.smp === original) continue;
    if (now.smp === p.cpus) out.push({ action: p.action, cpus: original });
    else
      ctx.warn(
        changedOutside(
          `queue ${p.queue} ${p.role} (${p.action}, IRQ ${now.irq})`,
          now.smp,
          p.cpus,
          `${p.device} on ${ctx.transport.target}`,
        ),
      );
  }
  return out;
}

export const irqAffinitySpec: Spec<IrqAffinityInputs, IrqAffinityOutputs, Facts> = {
  kind: "IrqAffinity",
  schema: irqAffinitySchema,
  replaceOn: link.LINK_REPLACE_ON,
  shows: link.linkShows,
  outputs: ["applied", "originals", "devices", "irqbalanceBefore", "unitPath"],
  id: (inputs) => link.linkPath("irq", inputs),
  probe: (t, inputs) => probe(t, inputs),

  check(inputs, facts) {
    try {
      return planPins(inputs, facts).failures;
    } catch (err) {
      if (err instanceof ParseError || err instanceof RangeError)
        return [{ property: "interface", reason: err.message }];
      throw err;
    }
  },

  // Every planned IRQ on its CPUs already, and irqbalance as the apply would leave it: stopped,
  // or (where installed) banned from exactly those IRQs under this resource's name.
  asDeclared(inputs, facts) {
    let plan: Plan;
    try {
      plan = planPins(inputs, facts);
    } catch {
      return false;
    }
    if (plan.failures.length > 0 || plan.pins.length === 0) return false;
    const live = liveByAction(facts.own);
    const same = (a: string | undefined, b: string) =>
      a !== undefined && normalizeCpuList(a) === normalizeCpuList(b);
    if (!plan.pins.every((x) => same(live.get(x.action)?.smp, x.cpus))) return false;
    const ib = facts.own.probe.irqbalance;
    if (inputs.irqbalance === "stop") return !ib.active;
    if (!ib.installed) return true;
    const banned = [...(ib.owned[stateName(inputs)] ?? [])].sort((a, b) => a - b);
    const planned = [...new Set(plan.pins.map((x) => x.irq))].sort((a, b) => a - b);
    return banned.join(",") === planned.join(",");
  },

  apply: (ctx, facts, olds, news) => applyPins(ctx, facts, olds, news),

  async release(ctx, facts, olds) {
    const t = ctx.transport;
    const back = restoresOf(ctx, olds, facts, () => true);
    const ib: IrqbalanceAction =
      olds.irqbalance === "stop"
        ? { mode: "unstop" }
        : facts?.own.probe.irqbalance.optionsFile
          ? { mode: "unban", optionsFile: facts.own.probe.irqbalance.optionsFile }
          : { mode: "none" };
    const res = await pin(t, back, stateName(olds), ib, "skip");
    if (res.exitCode !== 0) {
      ctx.warn(`could not put the IRQs back: ${pinFailure(t, res, []).message}`);
    }
    for (const w of res.result.ibWarnings) ctx.warn(w);
    const out = await runBatch(t, [
      { script: renderIrqUnpersist(olds.unitName) },
      { script: renderJournalRemove(link.journalPathOf(JOURNAL, olds)) },
    ]);
    const failed = out.find((s) => s.exitCode !== 0);
    if (failed)
      throw new Error(
        `persist: could not remove the boot unit on ${t.target}: ${messageOf(failed)}`,
      );
  },

  live(olds, facts) {
    if (!facts) return { policy: undefined };
    let plan: Plan;
    try {
      plan = planPins(olds, facts);
    } catch {
      return { policy: undefined };
    }
    const live = liveByAction(facts.own);
    const drifted =
      plan.failures.length > 0 || plan.pins.some((p) => live.get(p.action)?.smp !== p.cpus);
    if (!drifted) return {};
    // What the queues are on now, as a map (the first IRQ of each queue says).
    const map: Record<string, string> = {};
    for (const p of olds.applied) {
      const now = live.get(p.action)?.smp;
      if (now !== undefined && map[String(p.queue)] === undefined) map[String(p.queue)] = now;
    }
    return { policy: Object.keys(map).length > 0 ? { map } : undefined };
  },
};

export const irqAffinityHandler = handlerOf(irqAffinitySpec);
