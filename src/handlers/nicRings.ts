/**
 * NicRings: the rx and tx ring (descriptor queue) sizes of one interface (`ethtool -G`),
 * checked at preview against the driver's pre-set maximums, read back and verified (drivers
 * round some sizes), persisted in a systemd unit, and restored on delete.
 */
import { nicRingsSchema, type NicRingsInputs } from "../schemas/nicRings";
import type { Count } from "../schemas/link";
import {
  parseEthtoolRings,
  renderEthtoolRings,
  renderEthtoolShow,
  type EthtoolRings,
} from "../host/ethtool";
import { ParseError } from "../host/errors";
import type { Command, Transport } from "../transport/types";
import {
  diffResult,
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

type Field = "rx" | "tx";
const FIELDS: readonly Field[] = ["rx", "tx"];

/** Ring sizes; null where the driver has no such ring. */
export interface RingSizes {
  rx: number | null;
  tx: number | null;
}

export interface NicRingsOutputs extends NicRingsInputs {
  /** The sizes before nettune first set them; put back on delete. */
  originals: RingSizes;
  /** The sizes nettune set, "max" resolved to the driver's maximum. */
  applied: Partial<Record<Field, number>>;
  /** The driver's pre-set maximums. */
  maximums: RingSizes;
  /** The interface's driver, as `ethtool -i` names it. */
  driver: string;
  /** The systemd unit that re-applies the sizes at boot, or null with `persist: false`. */
  unitPath: string | null;
  /** Messages from the last operation the user should read. */
  warnings: string[];
}

const sizesOf = (r: EthtoolRings["current"]): RingSizes => ({ rx: r.rx, tx: r.tx });

function readRings(step: StepResult, target: string): EthtoolRings | "unsupported" {
  const missing = missingTool(step, target);
  if (missing) throw new Error(missing);
  try {
    return parseEthtoolRings(outputOf(step));
  } catch (err) {
    if (err instanceof ParseError && err.unsupported) return "unsupported";
    throw err;
  }
}

function probeCommands(ifname: string): Command[] {
  return [...linkCommands(ifname), renderEthtoolShow("rings", ifname)];
}

interface Checked {
  failures: Failure[];
  info?: LinkInfo;
  rings?: EthtoolRings;
  plan: Partial<Record<Field, number>>;
}

function checkRings(inputs: NicRingsInputs, target: string, steps: readonly StepResult[]): Checked {
  const plan: Partial<Record<Field, number>> = {};
  const link = readLink(inputs.interface, target, steps);
  if ("failure" in link)
    return { failures: [{ property: "interface", reason: link.failure }], plan };
  const info = link.info;
  const fields = FIELDS.filter((f) => inputs[f] !== undefined);
  const read = readRings(steps[2]!, target);
  if (read === "unsupported") {
    return {
      failures: [
        {
          property: fields[0] ?? "rx",
          reason: `ring sizes are not supported by driver ${info.driver} on ${info.ifname}`,
        },
      ],
      info,
      plan,
    };
  }
  const failures: Failure[] = [];
  for (const f of fields) {
    const want = inputs[f] as Count;
    const max = read.max[f];
    if (max === null || max < 1) {
      failures.push({ property: f, reason: `${describeLink(info)} has no ${f} ring to size` });
    } else if (want !== "max" && want > max) {
      failures.push({
        property: f,
        reason: `${want} is more than the maximum ${f} ring size of ${max} on ${describeLink(info)}`,
      });
    } else {
      plan[f] = want === "max" ? max : want;
    }
  }
  return { failures, info, rings: read, plan };
}

async function probe(t: Transport, inputs: NicRingsInputs): Promise<Checked> {
  return checkRings(inputs, t.target, await runBatch(t, probeCommands(inputs.interface)));
}

function unitOf(inputs: NicRingsInputs, plan: Partial<Record<Field, number>>) {
  return linkUnit(inputs, `nettune NicRings on ${inputs.interface}`, [
    renderEthtoolRings(inputs.interface, plan),
  ]);
}

const summary = (c: Partial<Record<Field, number>>) =>
  FIELDS.filter((f) => c[f] !== undefined)
    .map((f) => `${f} ${c[f]}`)
    .join(" ");

/**
 * One round trip: `ethtool -G` with the sizes that differ, `ethtool -g` to read back, the
 * unit. A size the driver rounds (asked 1000, got 1024) is a failure; what changed is put back.
 */
async function applyRings(
  t: Transport,
  inputs: NicRingsInputs,
  info: LinkInfo,
  before: RingSizes,
  target: Partial<Record<Field, number>>,
  persist: Command[],
  undoUnit: Command[],
): Promise<void> {
  const ifname = inputs.interface;
  const diff = Object.fromEntries(
    FIELDS.filter((f) => target[f] !== undefined && target[f] !== before[f]).map((f) => [
      f,
      target[f]!,
    ]),
  );
  const set = Object.keys(diff).length > 0 ? [renderEthtoolRings(ifname, diff)] : [];
  const read = set.length > 0 ? [renderEthtoolShow("rings", ifname)] : [];
  const steps = await runBatch(t, [...set, ...read, ...persist]);
  const problems: Failure[] = [];
  let after: RingSizes | undefined;
  if (set.length > 0) {
    const said = steps[0]!.exitCode !== 0 ? `; ethtool said: ${messageOf(steps[0]!)}` : "";
    const r = readRings(steps[1]!, t.target);
    if (r === "unsupported") throw new Error(`ethtool -g stopped working on ${describeLink(info)}`);
    after = sizesOf(r.current);
    for (const f of FIELDS) {
      if (diff[f] === undefined || after[f] === diff[f]) continue;
      problems.push({
        property: f,
        reason: `requested ${diff[f]}, driver reports ${after[f] ?? "n/a"} on ${describeLink(info)}${said}`,
      });
    }
  }
  const persistSteps = steps.slice(set.length + read.length);
  if (problems.length === 0 && !persistSteps.some((s) => s.exitCode !== 0)) return;
  const back = Object.fromEntries(
    FIELDS.filter((f) => before[f] !== null && (after?.[f] ?? before[f]) !== before[f]).map((f) => [
      f,
      before[f]!,
    ]),
  );
  const undo = Object.keys(back).length > 0 ? [renderEthtoolRings(ifname, back)] : [];
  const undoFailed = (await runBatch(t, [...undo, ...undoUnit])).find((s) => s.exitCode !== 0);
  const undone =
    undo.length === 0
      ? "nothing was changed"
      : undoFailed
        ? `putting back ${summary(back)} failed: ${messageOf(undoFailed)}`
        : `${summary(back)} put back`;
  if (problems.length > 0) {
    throw new Error(
      `${problems.map((p) => `${p.property}: ${p.reason}`).join("\n")}\non ${t.target}; ${undone}`,
    );
  }
  checkPersist(persistSteps, t.target, undone);
}

export const nicRingsHandler: ResourceHandler<NicRingsInputs, NicRingsOutputs> = {
  kind: "NicRings",
  schema: nicRingsSchema,
  replaceOn: ["connection", "interface"],

  async hostCheck(inputs, ctx) {
    return (await probe(ctx.transport, inputs)).failures;
  },

  diff(_id, olds, news): DiffResult {
    const replaces = linkReplaces(olds, news);
    const detailedDiff: NonNullable<DiffResult["detailedDiff"]> = {};
    for (const f of FIELDS) {
      const a = olds[f];
      const b = news[f];
      if (a === b) continue;
      detailedDiff[f] = {
        kind: a === undefined ? "add" : b === undefined ? "delete" : "update",
        inputDiff: true,
      };
    }
    for (const key of linkOtherChanges(olds, news))
      detailedDiff[key] = { kind: "update", inputDiff: true };
    return diffResult(detailedDiff, replaces, olds, news);
  },

  async create(inputs, ctx) {
    const t = ctx.transport;
    const { failures, info, rings, plan } = await probe(t, inputs);
    if (failures.length > 0 || !info || !rings) throw failuresError(failures);
    const before = sizesOf(rings.current);
    const unit = inputs.persist ? unitOf(inputs, plan) : undefined;
    await applyRings(
      t,
      inputs,
      info,
      before,
      plan,
      persistCommands(unit, []),
      persistCommands(undefined, unit ? [unit.name] : []),
    );
    return {
      id: linkId("rings", inputs),
      outs: {
        ...inputs,
        originals: before,
        applied: plan,
        maximums: sizesOf(rings.max),
        driver: info.driver,
        unitPath: unit ? unitPathOf(unit.name) : null,
        warnings: [],
      },
    };
  },

  async read(_id, olds, ctx) {
    const t = ctx.transport;
    const steps = await runBatch(t, probeCommands(olds.interface));
    const link = readLink(olds.interface, t.target, steps);
    const warnings: string[] = [];
    const live: Partial<Record<Field, Count>> = {};
    if ("failure" in link) {
      warnings.push(link.failure);
    } else {
      const r = readRings(steps[2]!, t.target);
      if (r !== "unsupported") {
        for (const f of FIELDS) {
          const now = r.current[f];
          if (olds[f] === undefined || now === null) continue;
          live[f] = olds[f] === "max" && now === r.max[f] ? "max" : now;
        }
      }
    }
    for (const w of warnings) ctx.warn(w);
    const { rx: _r, tx: _t, ...rest } = olds;
    const props: NicRingsOutputs = { ...rest, ...live, warnings };
    const {
      originals: _o,
      applied: _a,
      maximums: _m,
      driver: _d,
      unitPath: _u,
      warnings: _w,
      ...inputs
    } = props;
    return { props, inputs };
  },

  async update(_id, olds, news, ctx) {
    const t = ctx.transport;
    const { failures, info, rings, plan } = await probe(t, news);
    if (failures.length > 0 || !info || !rings) throw failuresError(failures);
    const warnings: string[] = [];
    const before = sizesOf(rings.current);
    const target = { ...plan };
    for (const f of FIELDS) {
      const set = olds.applied[f];
      const orig = olds.originals[f];
      if (plan[f] !== undefined || set === undefined || orig === null) continue;
      if (before[f] === set) target[f] = orig;
      else if (before[f] !== orig)
        warnings.push(
          `${f}: left at ${before[f] ?? "n/a"} on ${describeLink(info)}: it was changed outside nettune after it was set to ${set}`,
        );
    }
    const unit = news.persist ? unitOf(news, plan) : undefined;
    const oldUnit = olds.persist ? unitOf(olds, olds.applied) : undefined;
    await applyRings(
      t,
      news,
      info,
      before,
      target,
      persistCommands(unit, oldUnit ? [oldUnit.name] : []),
      persistCommands(oldUnit, unit ? [unit.name] : []),
    );
    for (const w of warnings) ctx.warn(w);
    return {
      ...news,
      originals: olds.originals,
      applied: plan,
      maximums: sizesOf(rings.max),
      driver: info.driver,
      unitPath: unit ? unitPathOf(unit.name) : null,
      warnings,
    };
  },

  async delete(_id, olds, ctx) {
    const t = ctx.transport;
    const removeUnit = persistCommands(undefined, olds.persist ? [olds.unitName] : []);
    const steps = await runBatch(t, probeCommands(olds.interface));
    const link = readLink(olds.interface, t.target, steps);
    if ("failure" in link) {
      ctx.warn(`${link.failure}; nothing to restore`);
      checkPersist(await runBatch(t, removeUnit), t.target, "");
      return;
    }
    const info = link.info;
    const r = readRings(steps[2]!, t.target);
    const restore: Partial<Record<Field, number>> = {};
    if (r !== "unsupported") {
      for (const f of FIELDS) {
        const set = olds.applied[f];
        const orig = olds.originals[f];
        const now = r.current[f];
        if (set === undefined || orig === null || now === orig) continue;
        if (now === set) restore[f] = orig;
        else
          ctx.warn(
            `${f}: left at ${now ?? "n/a"} on ${describeLink(info)}: it was changed outside nettune after it was set to ${set}`,
          );
      }
    }
    const set: Command[] =
      Object.keys(restore).length > 0
        ? [renderEthtoolRings(olds.interface, restore), renderEthtoolShow("rings", olds.interface)]
        : [];
    const res = await runBatch(t, [...set, ...removeUnit]);
    if (set.length > 0) {
      const back = readRings(res[1]!, t.target);
      for (const f of FIELDS) {
        if (restore[f] === undefined) continue;
        const now = back === "unsupported" ? null : back.current[f];
        if (now !== restore[f])
          ctx.warn(
            `${f}: could not be put back to ${restore[f]} on ${describeLink(info)}: driver reports ${now ?? "n/a"} (${messageOf(res[0]!)})`,
          );
      }
    }
    checkPersist(res.slice(set.length), t.target, "");
  },
};
