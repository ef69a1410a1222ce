/**
 * RssQueues: the channel (queue) counts of one interface (`ethtool -L`) and, where the driver
 * has one, its RSS indirection table (`ethtool -X`). Counts are checked at preview against the
 * driver's pre-set maximums and its kind (combined channels, or separate rx and tx ones).
 *
 * Counts and the table are keyed settings under `combined`, `rx`, `tx` and `indirection`, set
 * in one round trip in the order the driver accepts, read back and verified. The table's
 * original is the driver's default (`ethtool -X IF default`): `ethtool -x` cannot tell a default
 * table from one set to the same buckets, and a set table stops the kernel from spreading it
 * over the queues after a later channel change.
 */
import { rssQueuesSchema, type Indirection, type RssQueuesInputs } from "../schemas/rssQueues";
import type { Count } from "../schemas/link";
import {
  parseEthtoolChannels,
  parseEthtoolRss,
  renderEthtoolChannels,
  renderEthtoolRssEqual,
  renderEthtoolRssWeights,
  renderEthtoolShow,
  type EthtoolChannelCounts,
  type EthtoolChannels,
  type EthtoolRss,
} from "../host/ethtool";
import { ParseError } from "../host/errors";
import { renderCommand } from "../transport/quote";
import { stableJson, type Failure } from "../engine/lifecycle";
import { handlerOf, type Spec } from "../engine/spec";
import { missingTool, outputOf, type StepResult } from "../engine/batch";
import * as link from "./link";

/** Channel counts; null where the driver has no such channel type. */
export interface ChannelCounts {
  rx: number | null;
  tx: number | null;
  combined: number | null;
}

type Field = "combined" | "rx" | "tx";
const FIELDS: readonly Field[] = ["combined", "rx", "tx"];

export interface RssQueuesOutputs extends RssQueuesInputs {
  /** The counts before nettune first set them; put back on delete. */
  originals: ChannelCounts;
  /** The counts nettune set, "max" resolved to the driver's maximum. */
  applied: Partial<Record<Field, number>>;
  /** The driver's pre-set maximums. */
  maximums: ChannelCounts;
  /** nettune set the indirection table; delete puts the driver's default back. */
  indirectionSet: boolean;
  /** The interface's driver, as `ethtool -i` names it. */
  driver: string;
  /** The systemd unit that re-applies the counts at boot, or null with `persist: false`. */
  unitPath: string | null;
  /** Messages from the last operation the user should read. */
  warnings: string[];
}

/** An indirection table as set: declared, or the driver's default. */
type Table = Indirection | "default";

/** A keyed value: a count under `combined`, `rx` or `tx`, the table under `indirection`. */
type Value = number | null | Table;

const NO_COUNTS: ChannelCounts = { rx: null, tx: null, combined: null };

// ---------------------------------------------------------------------------------------------
// Reading

const countsOf = (c: EthtoolChannelCounts): ChannelCounts => ({
  rx: c.rx,
  tx: c.tx,
  combined: c.combined,
});

/** Buckets per queue of an indirection table. */
export function bucketCounts(table: readonly number[]): number[] {
  const counts: number[] = [];
  for (const q of table) counts[q] = (counts[q] ?? 0) + 1;
  return Array.from(counts, (c) => c ?? 0);
}

/**
 * Whether a live table is what `ethtool -X equal N` or `weight …` would have written: each
 * queue holds its exact share of the buckets within less than one (ethtool rounds each
 * boundary up), and no bucket points past the last queue declared.
 */
export function tableMatches(table: readonly number[], spec: Indirection): boolean {
  const weights = spec.weights ?? Array.from({ length: spec.equal ?? 0 }, () => 1);
  const sum = weights.reduce((a, b) => a + b, 0);
  if (table.length === 0 || sum === 0) return false;
  const counts = bucketCounts(table);
  for (let q = 0; q < Math.max(counts.length, weights.length); q++) {
    const want = (table.length * (weights[q] ?? 0)) / sum;
    if (Math.abs((counts[q] ?? 0) - want) >= 1) return false;
  }
  return true;
}

/** The live table as declared when it is what `declared` writes, else as equal N or weights. */
function liveIndirection(rss: EthtoolRss, declared: Indirection | undefined): Indirection {
  if (declared && tableMatches(rss.indirection, declared)) return declared;
  const counts = bucketCounts(rss.indirection);
  const n = counts.length;
  return counts.every((c) => c > 0) && tableMatches(rss.indirection, { equal: n })
    ? { equal: n }
    : { weights: counts };
}

/** Runs a parser on a step: a missing tool is an error, a driver without the feature "unsupported". */
function readStep<T>(
  step: StepResult | undefined,
  target: string,
  parse: (text: string) => T,
): T | "unsupported" {
  if (!step) throw new Error("rssQueues: a read step is missing");
  const missing = missingTool(step, target);
  if (missing) throw new Error(missing);
  try {
    return parse(outputOf(step));
  } catch (err) {
    if (err instanceof ParseError && err.unsupported) return "unsupported";
    throw err;
  }
}

/**
 * The table from `ethtool -x`; undefined where the driver has none. Read strictly only when
 * one is declared: otherwise it serves giving a table back, and an odd answer must not fail a
 * resource that only sets counts.
 */
function readTable(
  step: StepResult | undefined,
  target: string,
  strict: boolean,
): EthtoolRss | undefined {
  try {
    const r = readStep(step, target, parseEthtoolRss);
    return r === "unsupported" ? undefined : r;
  } catch (err) {
    if (strict) throw err;
    return undefined;
  }
}

interface Own {
  readonly channels: EthtoolChannels | "unsupported";
  /** The live RSS table; undefined where the driver has none. */
  readonly rss: EthtoolRss | undefined;
}

type Facts = link.LinkFacts<Own>;

const declaredFields = (inputs: RssQueuesInputs): Field[] =>
  FIELDS.filter((f) => inputs[f] !== undefined);

/** The declared counts with "max" resolved, and what the host cannot take. */
function plan(
  inputs: RssQueuesInputs,
  facts: Facts,
): { failures: Failure[]; counts: Partial<Record<Field, number>> } {
  const { info } = facts;
  const counts: Partial<Record<Field, number>> = {};
  const where = link.describeLink(info);
  const failures: Failure[] = [];
  const fields = declaredFields(inputs);
  const channels = facts.own.channels === "unsupported" ? undefined : facts.own.channels;
  if (!channels && fields.length > 0) {
    failures.push({
      property: fields[0]!,
      reason: `channel counts are not supported by driver ${info.driver} on ${info.ifname}`,
    });
  }
  if (channels) {
    const has = (f: Field) => (channels.max[f] ?? 0) > 0;
    for (const f of fields) {
      const want = inputs[f] as Count;
      const max = channels.max[f] ?? 0;
      if (!has(f)) {
        const reason =
          f === "combined" && (has("rx") || has("tx"))
            ? `${where} has separate rx/tx channels, not combined ones: set rx and tx instead`
            : f !== "combined" && has("combined")
              ? `${where} has combined channels only, no separate ${f} ones: set combined instead`
              : `${where} has no ${f} channels to set (its maximum is ${channels.max[f] ?? "n/a"})`;
        failures.push({ property: f, reason });
      } else if (want !== "max" && want > max) {
        failures.push({
          property: f,
          reason: `${want} is more than the maximum of ${max} ${f} channels on ${where}`,
        });
      } else {
        counts[f] = want === "max" ? max : want;
      }
    }
  }
  const spec = inputs.indirection;
  const rss = facts.own.rss;
  if (spec && !rss) {
    failures.push({
      property: "indirection",
      reason: `RSS indirection is not supported by driver ${info.driver} on ${info.ifname}`,
    });
  } else if (spec && rss) {
    // The rx queues the table may point to once the counts are applied.
    const rx =
      channels === undefined
        ? rss.ringCount
        : (counts.combined ?? channels.current.combined ?? 0) +
          (counts.rx ?? channels.current.rx ?? 0);
    const used = spec.equal ?? spec.weights?.length ?? 0;
    if (rx > 0 && used > rx) {
      failures.push({
        property: spec.equal !== undefined ? "indirection.equal" : "indirection.weights",
        reason: `${spec.equal !== undefined ? `equal ${used}` : `${used} weights`} but ${where} will have ${rx} rx queues`,
      });
    }
  }
  return { failures, counts };
}

/** The live counts and table as keyed values. */
function liveValues(
  own: Own,
  declared: Indirection | undefined,
): Record<string, Value | undefined> {
  const counts = own.channels === "unsupported" ? NO_COUNTS : countsOf(own.channels.current);
  return { ...counts, indirection: own.rss && liveIndirection(own.rss, declared) };
}

// ---------------------------------------------------------------------------------------------
// Applying

export function indirectionCommand(ifname: string, spec: Indirection): string[] {
  return spec.weights
    ? renderEthtoolRssWeights(ifname, spec.weights)
    : renderEthtoolRssEqual(ifname, spec.equal ?? 1);
}

const defaultTableCommand = (ifname: string) => ["ethtool", "-X", ifname, "default"];

const queues = (v: Value | undefined): number => (typeof v === "number" ? v : 0);

/**
 * Counts and the table as keyed settings: `ethtool -L` with the counts, `-X` in the order the
 * driver accepts, verified by `ethtool -l` and `-x`. `declared` is the table this operation
 * sets, against which the read-back is compared.
 */
function keyed(
  ifname: string,
  target: string,
  declared: Indirection | undefined,
): link.KeyedSettings<Value> {
  const putDefault = renderCommand(defaultTableCommand(ifname));
  return {
    set(changes, from) {
      const counts = Object.fromEntries(
        FIELDS.filter((f) => typeof changes[f] === "number").map((f) => [f, changes[f] as number]),
      );
      const set = Object.keys(counts).length > 0 ? [renderEthtoolChannels(ifname, counts)] : [];
      const table = changes.indirection as Table | undefined;
      if (table === undefined) return set;
      // The driver's default spreads over the queues there are when it is set, and a driver
      // need not spread it again when the queues change (virtio_net does not): set it before
      // the counts (an unconfigured table lets them shrink) and again after them.
      if (table === "default")
        return set.length > 0
          ? [defaultTableCommand(ifname), ...set, defaultTableCommand(ifname)]
          : [defaultTableCommand(ifname)];
      // A table may not point past the last queue: shrink after it moved, grow before it moves.
      const rxOf = (c: Readonly<Record<string, Value | undefined>>) =>
        queues(c.combined) + queues(c.rx);
      const shrinking = rxOf({ ...from, ...counts }) < rxOf(from);
      const x = indirectionCommand(ifname, table);
      return shrinking ? [x, ...set] : [...set, x];
    },
    readBack: [renderEthtoolShow("channels", ifname), renderEthtoolShow("rss", ifname)],
    after([chStep, rssStep], setSteps) {
      const ch = readStep(chStep, target, parseEthtoolChannels);
      const counts = ch === "unsupported" ? NO_COUNTS : countsOf(ch.current);
      // `ethtool -x` shows no sign of a default table: the command's success is the answer.
      const x = setSteps.filter((s) => s.command === putDefault);
      if (x.length > 0 && x.every((s) => s.exitCode === 0))
        return { ...counts, indirection: "default" };
      const rss = readTable(rssStep, target, declared !== undefined);
      return { ...counts, indirection: rss && liveIndirection(rss, declared) };
    },
    property: (key) => key,
    show(v) {
      if (v === null || v === undefined) return v === null ? "n/a" : "no table";
      if (typeof v === "number" || v === "default") return String(v);
      return v.weights ? `weight ${v.weights.join(" ")}` : `equal ${v.equal}`;
    },
  };
}

/** The journal of originals: `/var/lib/nettune/originals/rss-<interface>-<unit>`. */
export const JOURNAL = "rss";

function unitOf(inputs: RssQueuesInputs, counts: Partial<Record<Field, number>>) {
  const commands: string[][] = [];
  if (Object.keys(counts).length > 0)
    commands.push(renderEthtoolChannels(inputs.interface, counts));
  if (inputs.indirection) commands.push(indirectionCommand(inputs.interface, inputs.indirection));
  return link.linkUnit(inputs, `nettune RssQueues on ${inputs.interface}`, commands);
}

/** What nettune set, as keyed values. */
const appliedOf = (olds: RssQueuesOutputs): Record<string, Value | undefined> => ({
  ...olds.applied,
  indirection: olds.indirectionSet ? olds.indirection : undefined,
});

/**
 * The originals to give back: a count of 0 never (an interface without a queue cuts the host
 * off), the table always to the driver's default.
 */
const originalsOf = (olds: RssQueuesOutputs): Record<string, Value | undefined> => ({
  ...Object.fromEntries(
    FIELDS.map((f) => {
      const orig = olds.originals[f];
      return [f, orig !== null && orig >= 1 ? orig : undefined];
    }),
  ),
  indirection: "default",
});

/** What the inputs set: the planned counts, and the table where one is declared. */
function declaredValues(
  inputs: RssQueuesInputs,
  counts: Record<string, Value | undefined>,
): Record<string, Value | undefined> {
  return inputs.indirection ? { ...counts, indirection: inputs.indirection } : { ...counts };
}

export const rssQueuesSpec: Spec<RssQueuesInputs, RssQueuesOutputs, Facts> = {
  kind: "RssQueues",
  schema: rssQueuesSchema,
  replaceOn: link.LINK_REPLACE_ON,
  shows: link.linkShows,
  outputs: ["originals", "applied", "maximums", "indirectionSet", "driver", "unitPath"],
  id: (inputs) => link.linkPath("rss", inputs),

  // The table is read even when none is declared: an update that stops declaring one gives
  // it back only where it is still the one nettune set.
  probe: (t, inputs) =>
    link.probeLink(
      t,
      inputs.interface,
      [renderEthtoolShow("channels", inputs.interface), renderEthtoolShow("rss", inputs.interface)],
      ([ch, rss]) => ({
        channels: readStep(ch, t.target, parseEthtoolChannels),
        rss: readTable(rss, t.target, inputs.indirection !== undefined),
      }),
    ),

  check: (inputs, facts) => plan(inputs, facts).failures,

  asDeclared(inputs, facts) {
    const { counts, failures } = plan(inputs, facts);
    const live = liveValues(facts.own, inputs.indirection);
    const target = declaredValues(inputs, counts);
    return (
      failures.length === 0 &&
      Object.entries(target).every(([k, v]) => stableJson(live[k]) === stableJson(v))
    );
  },

  async apply(ctx, facts, olds, news) {
    const t = ctx.transport;
    const { info, own } = facts;
    const { counts } = plan(news, facts);
    const live = liveValues(own, news.indirection ?? olds?.indirection);
    const k = keyed(info.ifname, t.target, news.indirection);
    const target = declaredValues(news, counts);
    // Counts and a table no longer declared go back to their originals, where still ours.
    if (olds) {
      Object.assign(
        target,
        link.giveBackUndeclared(ctx, info, k, live, target, appliedOf(olds), originalsOf(olds)),
      );
    }
    // A live table other than the one declared counts as the driver's default: what a failed
    // apply puts back, as delete does.
    const before = { ...live };
    if (news.indirection && stableJson(live.indirection) !== stableJson(news.indirection))
      before.indirection = "default";
    const unit = news.persist ? unitOf(news, counts) : undefined;
    const oldUnit = olds?.persist ? unitOf(olds, olds.applied) : undefined;
    const journaled = await link.applyKeyed(
      t,
      info,
      k,
      before,
      target,
      link.persistCommands(unit, oldUnit ? [oldUnit.name] : []),
      link.persistCommands(oldUnit, unit ? [unit.name] : []),
      (m) => ctx.warn(m),
      link.journalOf(JOURNAL, olds, news),
    );
    const channels = own.channels === "unsupported" ? undefined : own.channels;
    // A journal an earlier create left knows the counts from before nettune.
    const fromJournal = (c: ChannelCounts): ChannelCounts => {
      const out = { ...c };
      for (const f of FIELDS)
        if (Object.hasOwn(journaled, f)) out[f] = journaled[f] as number | null;
      return out;
    };
    return {
      originals:
        olds?.originals ?? (channels ? fromJournal(countsOf(channels.current)) : NO_COUNTS),
      applied: counts,
      maximums: channels ? countsOf(channels.max) : (olds?.maximums ?? NO_COUNTS),
      indirectionSet: news.indirection !== undefined,
      driver: info.driver,
      unitPath: unit ? link.unitPathOf(unit.name) : null,
      warnings: [],
    };
  },

  async release(ctx, facts, olds) {
    const live = facts ? liveValues(facts.own, olds.indirection) : {};
    const channels = facts?.own.channels;
    const now = channels && channels !== "unsupported" ? countsOf(channels.current) : undefined;
    for (const f of now ? FIELDS : []) {
      const orig = olds.originals[f];
      if (olds.applied[f] === undefined || orig === null || orig >= 1 || now![f] === orig) continue;
      ctx.warn(
        `${f}: left at ${now![f] ?? "n/a"}: its original count was ${orig}, which would leave no queue`,
      );
    }
    await link.releaseKeyed(
      ctx,
      facts?.info,
      keyed(olds.interface, ctx.transport.target, undefined),
      live,
      appliedOf(olds),
      originalsOf(olds),
      olds.persist ? [olds.unitName] : [],
      link.journalPathOf(JOURNAL, olds),
    );
  },

  live(olds, facts) {
    const out: Partial<Pick<RssQueuesInputs, Field | "indirection">> = {
      combined: undefined,
      rx: undefined,
      tx: undefined,
      indirection: undefined,
    };
    if (!facts) return out;
    const { channels, rss } = facts.own;
    if (channels !== "unsupported") {
      for (const f of declaredFields(olds)) {
        const now = channels.current[f];
        if (now === null) continue;
        out[f] = olds[f] === "max" && now === channels.max[f] ? "max" : now;
      }
    }
    if (olds.indirection && rss) out.indirection = liveIndirection(rss, olds.indirection);
    return out;
  },
};

export const rssQueuesHandler = handlerOf(rssQueuesSpec);
