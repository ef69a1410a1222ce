/**
 * RssQueues: the channel (queue) counts of one interface (`ethtool -L`) and, where the driver
 * has one, its RSS indirection table (`ethtool -X`). Counts are checked at preview against the
 * driver's pre-set maximums and its kind (combined channels, or separate rx and tx ones).
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
import type { Command, Transport } from "../transport/types";
import {
  diffResult,
  stableJson,
  type DiffResult,
  type Failure,
  type ResourceHandler,
  failuresError,
} from "../engine/lifecycle";
import {
  checkPersist,
  describeLink,
  linkCommands,
  linkId,
  linkOtherChanges,
  linkReplaces,
  linkUnit,
  persistCommands,
  readLink,
  unitPathOf,
  type LinkInfo,
} from "./link";
import { messageOf, missingTool, outputOf, runBatch, type StepResult } from "../engine/batch";

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

/** The table as declared (equal over N queues, or weights) when it is not what was declared. */
function liveIndirection(rss: EthtoolRss, declared: Indirection): Indirection {
  if (tableMatches(rss.indirection, declared)) return declared;
  const counts = bucketCounts(rss.indirection);
  const n = counts.length;
  return counts.every((c) => c > 0) && tableMatches(rss.indirection, { equal: n })
    ? { equal: n }
    : { weights: counts };
}

function readChannels(step: StepResult, target: string): EthtoolChannels | "unsupported" {
  const missing = missingTool(step, target);
  if (missing) throw new Error(missing);
  try {
    return parseEthtoolChannels(outputOf(step));
  } catch (err) {
    if (err instanceof ParseError && err.unsupported) return "unsupported";
    throw err;
  }
}

function readRss(step: StepResult, target: string): EthtoolRss | "unsupported" {
  const missing = missingTool(step, target);
  if (missing) throw new Error(missing);
  try {
    return parseEthtoolRss(outputOf(step));
  } catch (err) {
    if (err instanceof ParseError && err.unsupported) return "unsupported";
    throw err;
  }
}

function probeCommands(ifname: string, withRss: boolean): Command[] {
  return [
    ...linkCommands(ifname),
    renderEthtoolShow("channels", ifname),
    ...(withRss ? [renderEthtoolShow("rss", ifname)] : []),
  ];
}

const declaredFields = (inputs: RssQueuesInputs): Field[] =>
  FIELDS.filter((f) => inputs[f] !== undefined);

interface Checked {
  failures: Failure[];
  info?: LinkInfo;
  channels?: EthtoolChannels;
  /** The live RSS table, read when `indirection` is declared and the driver has one. */
  rss?: EthtoolRss;
  /** The declared counts with "max" resolved. */
  plan: Partial<Record<Field, number>>;
}

/** Host checks of preview, create and update: interface, channel kind, maximums, RSS table. */
function checkQueues(
  inputs: RssQueuesInputs,
  target: string,
  steps: readonly StepResult[],
): Checked {
  const plan: Partial<Record<Field, number>> = {};
  const link = readLink(inputs.interface, target, steps);
  if ("failure" in link)
    return { failures: [{ property: "interface", reason: link.failure }], plan };
  const info = link.info;
  const where = describeLink(info);
  const failures: Failure[] = [];
  const fields = declaredFields(inputs);
  const read = readChannels(steps[2]!, target);
  const channels = read === "unsupported" ? undefined : read;
  if (read === "unsupported" && fields.length > 0) {
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
        plan[f] = want === "max" ? max : want;
      }
    }
  }
  let rss: EthtoolRss | undefined;
  if (inputs.indirection) {
    const got = readRss(steps[3]!, target);
    rss = got === "unsupported" ? undefined : got;
    if (!rss) {
      failures.push({
        property: "indirection",
        reason: `RSS indirection is not supported by driver ${info.driver} on ${info.ifname}`,
      });
    } else {
      // The rx queues the table may point to once the counts are applied.
      const rx =
        channels === undefined
          ? rss.ringCount
          : (plan.combined ?? channels.current.combined ?? 0) +
            (plan.rx ?? channels.current.rx ?? 0);
      const spec = inputs.indirection;
      const used = spec.equal ?? spec.weights?.length ?? 0;
      if (rx > 0 && used > rx) {
        failures.push({
          property: spec.equal !== undefined ? "indirection.equal" : "indirection.weights",
          reason: `${spec.equal !== undefined ? `equal ${used}` : `${used} weights`} but ${where} will have ${rx} rx queues`,
        });
      }
    }
  }
  return { failures, info, channels, rss, plan };
}

async function probe(t: Transport, inputs: RssQueuesInputs): Promise<Checked> {
  const steps = await runBatch(t, probeCommands(inputs.interface, !!inputs.indirection));
  return checkQueues(inputs, t.target, steps);
}

// ---------------------------------------------------------------------------------------------
// Applying

function indirectionCommand(ifname: string, spec: Indirection): string[] {
  return spec.weights
    ? renderEthtoolRssWeights(ifname, spec.weights)
    : renderEthtoolRssEqual(ifname, spec.equal ?? 1);
}

/** `ethtool -L` with the changed counts, and `-X` in the order the driver accepts. */
function channelCommands(
  ifname: string,
  target: Partial<Record<Field, number>>,
  from: ChannelCounts,
  indirection: Indirection | "default" | undefined,
): string[][] {
  const diff = Object.fromEntries(
    FIELDS.filter((f) => target[f] !== undefined && target[f] !== from[f]).map((f) => [
      f,
      target[f]!,
    ]),
  );
  const set = Object.keys(diff).length > 0 ? [renderEthtoolChannels(ifname, diff)] : [];
  if (indirection === undefined) return set;
  const x =
    indirection === "default"
      ? ["ethtool", "-X", ifname, "default"]
      : indirectionCommand(ifname, indirection);
  // A table may not point past the last queue: shrink after it moved, grow before it moves.
  const rxOf = (c: Partial<ChannelCounts>) => (c.combined ?? 0) + (c.rx ?? 0);
  const shrinking = rxOf({ ...from, ...diff }) < rxOf(from);
  return shrinking || indirection === "default" ? [x, ...set] : [...set, x];
}

function unitOf(inputs: RssQueuesInputs, plan: Partial<Record<Field, number>>) {
  const commands: string[][] = [];
  if (Object.keys(plan).length > 0) commands.push(renderEthtoolChannels(inputs.interface, plan));
  if (inputs.indirection) commands.push(indirectionCommand(inputs.interface, inputs.indirection));
  return linkUnit(inputs, `nettune RssQueues on ${inputs.interface}`, commands);
}

const summary = (c: Partial<Record<Field, number | null>>) =>
  FIELDS.filter((f) => c[f] !== undefined && c[f] !== null)
    .map((f) => `${f} ${c[f]}`)
    .join(" ");

/**
 * One round trip: set, read back, persist. On any failure the counts this step changed and
 * the table are put back, the units restored (`undoUnit`), and the error names the field.
 */
async function applyQueues(
  t: Transport,
  inputs: RssQueuesInputs,
  info: LinkInfo,
  before: ChannelCounts,
  plan: Partial<Record<Field, number>>,
  indirection: Indirection | "default" | undefined,
  persist: Command[],
  undoUnit: Command[],
): Promise<void> {
  const ifname = inputs.interface;
  const set = channelCommands(ifname, plan, before, indirection);
  const read =
    set.length > 0
      ? [
          renderEthtoolShow("channels", ifname),
          ...(indirection && indirection !== "default" ? [renderEthtoolShow("rss", ifname)] : []),
        ]
      : [];
  const steps = await runBatch(t, [...set, ...read, ...persist]);
  const setSteps = steps.slice(0, set.length);
  const said = setSteps.find((s) => s.exitCode !== 0);
  const ethtoolSaid = said ? `; ${said.command} said: ${messageOf(said)}` : "";
  const problems: Failure[] = [];
  let after: ChannelCounts | undefined;
  if (set.length > 0) {
    const ch = readChannels(steps[set.length]!, t.target);
    if (ch === "unsupported")
      throw new Error(`ethtool -l stopped working on ${describeLink(info)}`);
    after = countsOf(ch.current);
    for (const f of FIELDS) {
      const want = plan[f];
      if (want === undefined || after[f] === want) continue;
      problems.push({
        property: f,
        reason: `requested ${want}, driver reports ${after[f] ?? "n/a"} on ${describeLink(info)}${ethtoolSaid}`,
      });
    }
    if (indirection && indirection !== "default") {
      const rss = readRss(steps[set.length + 1]!, t.target);
      if (rss === "unsupported" || !tableMatches(rss.indirection, indirection)) {
        const got =
          rss === "unsupported"
            ? "no table"
            : `buckets per queue ${bucketCounts(rss.indirection).join(" ")}`;
        problems.push({
          property: "indirection",
          reason: `the table on ${describeLink(info)} is not the one declared (${got})${ethtoolSaid}`,
        });
      }
    }
  }
  const persistSteps = steps.slice(set.length + read.length);
  if (problems.length === 0 && !persistSteps.some((s) => s.exitCode !== 0)) return;

  const changedBack = Object.fromEntries(
    FIELDS.filter((f) => before[f] !== null && (after?.[f] ?? plan[f]) !== before[f]).map((f) => [
      f,
      before[f]!,
    ]),
  );
  const undo: Command[] = [];
  if (indirection) undo.push(["ethtool", "-X", ifname, "default"]);
  if (Object.keys(changedBack).length > 0) undo.push(renderEthtoolChannels(ifname, changedBack));
  const undoSteps = await runBatch(t, [...undo, ...undoUnit]);
  const undoFailed = undoSteps.find((s) => s.exitCode !== 0);
  const what = [summary(changedBack), indirection ? "the default indirection table" : ""]
    .filter(Boolean)
    .join(" and ");
  const undone = !what
    ? "nothing was changed"
    : undoFailed
      ? `putting back ${what} failed: ${messageOf(undoFailed)}`
      : `${what} put back`;
  if (problems.length > 0) {
    throw new Error(
      `${problems.map((p) => `${p.property}: ${p.reason}`).join("\n")}\non ${t.target}; ${undone}`,
    );
  }
  checkPersist(persistSteps, t.target, undone);
}

// ---------------------------------------------------------------------------------------------
// The handler

export const rssQueuesHandler: ResourceHandler<RssQueuesInputs, RssQueuesOutputs> = {
  kind: "RssQueues",
  schema: rssQueuesSchema,
  replaceOn: ["connection", "interface"],

  async hostCheck(inputs, ctx) {
    return (await probe(ctx.transport, inputs)).failures;
  },

  diff(_id, olds, news): DiffResult {
    const replaces = linkReplaces(olds, news);
    const detailedDiff: NonNullable<DiffResult["detailedDiff"]> = {};
    for (const key of [...FIELDS, "indirection"] as const) {
      const a = olds[key];
      const b = news[key];
      if (a === undefined && b === undefined) continue;
      if (a === undefined) detailedDiff[key] = { kind: "add", inputDiff: true };
      else if (b === undefined) detailedDiff[key] = { kind: "delete", inputDiff: true };
      else if (stableJson(a) !== stableJson(b))
        detailedDiff[key] = { kind: "update", inputDiff: true };
    }
    for (const key of linkOtherChanges(olds, news))
      detailedDiff[key] = { kind: "update", inputDiff: true };
    return diffResult(detailedDiff, replaces, olds, news);
  },

  async create(inputs, ctx) {
    const t = ctx.transport;
    const { failures, info, channels, plan } = await probe(t, inputs);
    if (failures.length > 0 || !info) throw failuresError(failures);
    const before: ChannelCounts = channels
      ? countsOf(channels.current)
      : { rx: null, tx: null, combined: null };
    const unit = inputs.persist ? unitOf(inputs, plan) : undefined;
    await applyQueues(
      t,
      inputs,
      info,
      before,
      plan,
      inputs.indirection,
      persistCommands(unit, []),
      persistCommands(undefined, unit ? [unit.name] : []),
    );
    return {
      id: linkId("rss", inputs),
      outs: {
        ...inputs,
        originals: before,
        applied: plan,
        maximums: channels ? countsOf(channels.max) : { rx: null, tx: null, combined: null },
        indirectionSet: inputs.indirection !== undefined,
        driver: info.driver,
        unitPath: unit ? unitPathOf(unit.name) : null,
        warnings: [],
      },
    };
  },

  async read(_id, olds, ctx) {
    const t = ctx.transport;
    const steps = await runBatch(t, probeCommands(olds.interface, !!olds.indirection));
    const link = readLink(olds.interface, t.target, steps);
    const warnings: string[] = [];
    const live: Partial<Pick<RssQueuesInputs, Field | "indirection">> = {};
    if ("failure" in link) {
      warnings.push(link.failure);
    } else {
      const ch = readChannels(steps[2]!, t.target);
      if (ch !== "unsupported") {
        for (const f of declaredFields(olds)) {
          const now = ch.current[f];
          if (now === null) continue;
          live[f] = olds[f] === "max" && now === ch.max[f] ? "max" : now;
        }
      }
      if (olds.indirection) {
        const rss = readRss(steps[3]!, t.target);
        if (rss !== "unsupported") live.indirection = liveIndirection(rss, olds.indirection);
      }
    }
    for (const w of warnings) ctx.warn(w);
    const { combined: _c, rx: _r, tx: _t, indirection: _i, ...rest } = olds;
    const props: RssQueuesOutputs = { ...rest, ...live, warnings };
    const {
      originals: _o,
      applied: _a,
      maximums: _m,
      indirectionSet: _s,
      driver: _d,
      unitPath: _u,
      warnings: _w,
      ...inputs
    } = props;
    return { props, inputs };
  },

  async update(_id, olds, news, ctx) {
    const t = ctx.transport;
    const { failures, info, channels, rss: table, plan } = await probe(t, news);
    if (failures.length > 0 || !info) throw failuresError(failures);
    const warnings: string[] = [];
    const before: ChannelCounts = channels
      ? countsOf(channels.current)
      : { rx: null, tx: null, combined: null };
    // A count no longer declared gets its original back, if it is still what we set.
    const target = { ...plan };
    for (const f of FIELDS) {
      const set = olds.applied[f];
      const orig = olds.originals[f];
      if (plan[f] !== undefined || set === undefined || orig === null || orig < 1) continue;
      if (before[f] === set) target[f] = orig;
      else if (before[f] !== orig)
        warnings.push(
          `${f}: left at ${before[f] ?? "n/a"} on ${describeLink(info)}: it was changed outside nettune after it was set to ${set}`,
        );
    }
    // The table is written again only when it is not what is declared (or no longer declared).
    const tableInPlace =
      news.indirection !== undefined &&
      table !== undefined &&
      tableMatches(table.indirection, news.indirection);
    const indirection = tableInPlace
      ? undefined
      : (news.indirection ?? (olds.indirectionSet ? "default" : undefined));
    const unit = news.persist ? unitOf(news, plan) : undefined;
    const oldUnit = olds.persist ? unitOf(olds, olds.applied) : undefined;
    await applyQueues(
      t,
      news,
      info,
      before,
      target,
      indirection,
      persistCommands(unit, oldUnit ? [oldUnit.name] : []),
      persistCommands(oldUnit, unit ? [unit.name] : []),
    );
    for (const w of warnings) ctx.warn(w);
    return {
      ...news,
      originals: olds.originals,
      applied: plan,
      maximums: channels ? countsOf(channels.max) : olds.maximums,
      indirectionSet: news.indirection !== undefined,
      driver: info.driver,
      unitPath: unit ? unitPathOf(unit.name) : null,
      warnings,
    };
  },

  async delete(_id, olds, ctx) {
    const t = ctx.transport;
    const removeUnit = persistCommands(undefined, olds.persist ? [olds.unitName] : []);
    const steps = await runBatch(t, probeCommands(olds.interface, false));
    const link = readLink(olds.interface, t.target, steps);
    if ("failure" in link) {
      ctx.warn(`${link.failure}; nothing to restore`);
      checkPersist(await runBatch(t, removeUnit), t.target, "");
      return;
    }
    const info = link.info;
    const ch = readChannels(steps[2]!, t.target);
    const restore: Partial<Record<Field, number>> = {};
    if (ch !== "unsupported") {
      for (const f of FIELDS) {
        const set = olds.applied[f];
        const orig = olds.originals[f];
        const now = ch.current[f];
        if (set === undefined || orig === null || now === orig) continue;
        if (orig < 1) {
          ctx.warn(
            `${f}: left at ${now ?? "n/a"}: its original count was ${orig}, which would leave no queue`,
          );
        } else if (now === set) {
          restore[f] = orig;
        } else {
          ctx.warn(
            `${f}: left at ${now ?? "n/a"} on ${describeLink(info)}: it was changed outside nettune after it was set to ${set}`,
          );
        }
      }
    }
    const set: Command[] = [];
    if (olds.indirectionSet) set.push(["ethtool", "-X", olds.interface, "default"]);
    if (Object.keys(restore).length > 0) {
      set.push(
        renderEthtoolChannels(olds.interface, restore),
        renderEthtoolShow("channels", olds.interface),
      );
    }
    const res = await runBatch(t, [...set, ...removeUnit]);
    if (olds.indirectionSet && res[0]!.exitCode !== 0) {
      ctx.warn(
        `the default indirection table could not be put back on ${describeLink(info)}: ${messageOf(res[0]!)}`,
      );
    }
    if (Object.keys(restore).length > 0) {
      const back = readChannels(res[set.length - 1]!, t.target);
      for (const f of FIELDS) {
        if (restore[f] === undefined) continue;
        const now = back === "unsupported" ? null : back.current[f];
        if (now !== restore[f]) {
          ctx.warn(
            `${f}: could not be put back to ${restore[f]} on ${describeLink(info)}: driver reports ${now ?? "n/a"} (${messageOf(res[set.length - 2]!)})`,
          );
        }
      }
    }
    checkPersist(res.slice(set.length), t.target, "");
  },
};
