/**
 * NicOffloads: offload features of one interface (`ethtool -K`), checked against the driver at
 * preview, applied in one command, read back and verified, persisted in a systemd unit, and
 * restored on delete.
 *
 * Features are compared by the long name `ethtool -k` prints; users may write either that or
 * ethtool's short name (`gro`). Outputs keep originals and applied values by long name, so a
 * switch from `gro` to `generic-receive-offload` is no change.
 */
import {
  parseEthtoolFeatures,
  renderEthtoolFeatures,
  renderEthtoolShow,
  resolveFeatureName,
  type EthtoolFeature,
  type EthtoolFeatures,
} from "../host/ethtool";
import type { Command, Transport } from "../transport/types";
import { renderCommand } from "../transport/quote";
import { applyConfirmed } from "./confirm";
import { DEFAULT_ROLLBACK_AFTER } from "../schemas/link";
import { nicOffloadsSchema, type NicOffloadsInputs } from "../schemas/nicOffloads";

/** Seconds after which a host puts unconfirmed offload changes of its SSH interface back. */
import {
  diffResult,
  propertyPath,
  type DiffResult,
  type Failure,
  type HandlerContext,
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
import {
  messageOf,
  missingTool,
  parseBatch,
  renderBatch,
  runBatch,
  type StepResult,
} from "../engine/batch";

/**
 * ethtool's groups: `ethtool -k` shows the group on when any member is on, so a group is read
 * through its members (TSO asked on while checksumming is off leaves its members
 * `off [requested on]` under a group line that still says on).
 */
const GROUP_MEMBERS: Readonly<Record<string, RegExp>> = {
  "tx-checksumming": /^tx-checksum-/,
  "scatter-gather": /^tx-scatter-gather/,
  "tcp-segmentation-offload": /^tx-tcp[a-z0-9-]*-segmentation$/,
};

export interface NicOffloadsOutputs extends NicOffloadsInputs {
  /** Each declared feature's state before nettune first set it, by long name. */
  originals: Record<string, boolean>;
  /** What nettune set, by long name. */
  applied: Record<string, boolean>;
  /** The interface's driver, as `ethtool -i` names it. */
  driver: string;
  /** The systemd unit that re-applies the features at boot, or null with `persist: false`. */
  unitPath: string | null;
  /** Messages from the last operation the user should read. */
  warnings: string[];
}

// ---------------------------------------------------------------------------------------------
// Reading features

/** A feature as it acts: a group through its members, a pending request as what is active. */
export interface FeatureState {
  readonly on: boolean;
  /** The driver does not let it change (for a group: none of its members can). */
  readonly fixed: boolean;
  /** A member (or the feature) asked for one state that reports the other, e.g. `tx-tcp-segmentation off [requested on]`. */
  readonly pending?: string;
}

function membersOf(features: EthtoolFeatures, long: string): [string, EthtoolFeature][] {
  const re = GROUP_MEMBERS[long];
  return re ? Object.entries(features.features).filter(([name]) => re.test(name)) : [];
}

const word = (on: boolean) => (on ? "on" : "off");

/** The state of one feature by long name, or undefined when the kernel has no such feature. */
export function featureState(features: EthtoolFeatures, long: string): FeatureState | undefined {
  const f = Object.hasOwn(features.features, long) ? features.features[long] : undefined;
  if (!f) return undefined;
  const members = membersOf(features, long);
  const pending = [[long, f] as [string, EthtoolFeature], ...members].find(
    ([, m]) => !m.fixed && m.requested !== undefined && m.requested !== m.on,
  );
  const fixed = f.fixed || (members.length > 0 && members.every(([, m]) => m.fixed));
  if (!pending) return { on: f.on, fixed };
  const [name, m] = pending;
  return { on: m.on, fixed, pending: `${name} is ${word(m.on)} [requested ${word(!m.on)}]` };
}

/** Why `long` cannot be set to `want` on this driver, or undefined when it can. */
export function fixedReason(
  features: EthtoolFeatures,
  long: string,
  want: boolean,
  info: Pick<LinkInfo, "ifname" | "driver">,
): string | undefined {
  const f = features.features[long];
  if (!f) return undefined;
  const where = `on ${describeLink(info)}`;
  if (f.fixed && f.on !== want) return `${long} is fixed ${word(f.on)} ${where}`;
  const members = membersOf(features, long);
  if (members.length === 0) return undefined;
  if (want) {
    // The group is on when any member is: it cannot be turned on only when none can.
    if (members.every(([, m]) => m.fixed && !m.on))
      return `${long} is fixed off ${where} (every member is)`;
    return undefined;
  }
  const stuck = members.find(([, m]) => m.fixed && m.on);
  return stuck ? `${long} cannot be turned off ${where}: ${stuck[0]} is fixed on` : undefined;
}

/** Reads `ethtool -k`; a missing tool or an unreadable answer is an error. */
function readFeatures(step: StepResult, target: string): EthtoolFeatures {
  const missing = missingTool(step, target);
  if (missing) throw new Error(missing);
  if (step.exitCode !== 0)
    throw new Error(`${step.command} failed on ${target}: ${messageOf(step)}`);
  return parseEthtoolFeatures(step.stdout);
}

/** Declared features by long name. */
function byLong(features: Readonly<Record<string, boolean>>): Map<string, boolean> {
  return new Map(Object.entries(features).map(([name, on]) => [resolveFeatureName(name), on]));
}

/** The user's name for a long name, for messages and property paths. */
function nameOf(features: Readonly<Record<string, boolean>>, long: string): string {
  return Object.keys(features).find((n) => resolveFeatureName(n) === long) ?? long;
}

const featurePath = (name: string) => propertyPath(["features", name]);

/** Host checks shared by preview, create and update: the interface, each feature, fixed ones. */
function checkFeatures(
  inputs: NicOffloadsInputs,
  target: string,
  steps: readonly StepResult[],
): { failures: Failure[]; info?: LinkInfo; features?: EthtoolFeatures } {
  const link = readLink(inputs.interface, target, steps);
  if ("failure" in link) return { failures: [{ property: "interface", reason: link.failure }] };
  const info = link.info;
  const features = readFeatures(steps[2]!, target);
  const failures: Failure[] = [];
  for (const [name, want] of Object.entries(inputs.features)) {
    const long = resolveFeatureName(name);
    if (!Object.hasOwn(features.features, long)) {
      failures.push({
        property: featurePath(name),
        reason: `${describeLink(info)} has no feature ${long} on ${target} (its kernel does not know it)`,
      });
      continue;
    }
    const fixed = fixedReason(features, long, want, info);
    if (fixed) failures.push({ property: featurePath(name), reason: fixed });
  }
  return { failures, info, features };
}

function probeCommands(ifname: string): Command[] {
  return [...linkCommands(ifname), renderEthtoolShow("features", ifname)];
}

async function probe(t: Transport, inputs: NicOffloadsInputs) {
  const steps = await runBatch(t, probeCommands(inputs.interface));
  return checkFeatures(inputs, t.target, steps);
}

// ---------------------------------------------------------------------------------------------
// Applying

function unitOf(inputs: NicOffloadsInputs) {
  return linkUnit(inputs, `nettune NicOffloads on ${inputs.interface}`, [
    renderEthtoolFeatures(inputs.interface, inputs.features),
  ]);
}

interface Change {
  /** The long name. */
  readonly long: string;
  /** The user's name for it (for `ethtool -K` and messages). */
  readonly name: string;
  readonly want: boolean;
  /** The state before this step (put back when a later check fails). */
  readonly before: boolean;
}

/**
 * One round trip: `ethtool -K` with every change, `ethtool -k` to read back, then the unit.
 * Each change is verified by the read-back, not by ethtool's exit code: drivers print
 * "Could not change any device features" with exit 0 or 1, and `-K` can leave a feature
 * unchanged without failing. On any failure the features this step changed are put back and
 * `undoUnit` restores the units as they were; the error names the feature and says so.
 */
async function applyChanges(
  t: Transport,
  inputs: NicOffloadsInputs,
  info: LinkInfo,
  changes: readonly Change[],
  persist: Command[],
  undoUnit: Command[],
): Promise<{ warnings: string[] }> {
  const ifname = inputs.interface;
  const set =
    changes.length > 0
      ? [renderEthtoolFeatures(ifname, Object.fromEntries(changes.map((c) => [c.name, c.want])))]
      : [];
  const read = changes.length > 0 ? [renderEthtoolShow("features", ifname)] : [];
  const batch = [...set, ...read, ...persist];
  // Offloads of the interface SSH runs over are changed commit-confirmed, as the MTU is: the
  // same round trip arms a host-side rollback when SSH arrives on this interface, and the
  // change is kept only once a new SSH connection carries data.
  let steps: StepResult[];
  if (changes.length > 0) {
    const before = Object.fromEntries(changes.map((c) => [c.name, c.before]));
    const res = await applyConfirmed(
      t,
      inputs.connection,
      {
        rollbackAfter: inputs.rollbackAfter,
        token: `offloads-${inputs.unitName.replace(/\.service$/, "")}`,
        rollback: renderCommand(renderEthtoolFeatures(ifname, before)),
        apply: renderBatch(batch),
      },
      `Offload changes on ${ifname}`,
      { onlyIfSshOver: ifname },
    );
    if (!res || res.exitCode !== 0) {
      throw new Error(
        `features: the answer to the offload changes on ${t.target} was lost; they were put back`,
      );
    }
    steps = parseBatch(res.stdout, batch);
  } else {
    steps = await runBatch(t, batch);
  }
  const warnings: string[] = [];
  const problems: Failure[] = [];
  let after: EthtoolFeatures | undefined;
  if (changes.length > 0) {
    const setStep = steps[0]!;
    try {
      after = readFeatures(steps[1]!, t.target);
    } catch (err) {
      const why = missingTool(setStep, t.target) ?? (err as Error).message;
      problems.push({ property: featurePath(changes[0]!.name), reason: why });
    }
    for (const c of after ? changes : []) {
      const now = featureState(after!, c.long);
      if (now?.on === c.want) continue;
      const reports = now ? word(now.on) : "no such feature";
      const detail = now?.pending ? ` (${now.pending})` : "";
      const said = setStep.exitCode !== 0 ? `; ethtool said: ${messageOf(setStep)}` : "";
      problems.push({
        property: featurePath(c.name),
        reason: `requested ${word(c.want)}, driver reports ${reports} on ${describeLink(info)}${detail}${said}`,
      });
    }
    if (problems.length === 0 && setStep.exitCode !== 0) {
      warnings.push(
        `${setStep.command} exited with ${setStep.exitCode} on ${t.target} (${messageOf(setStep)}), ` +
          "but every feature reads back as declared",
      );
    }
  }
  const persistSteps = steps.slice(set.length + read.length);
  const persistFailed = persistSteps.find((s) => s.exitCode !== 0);
  if (problems.length === 0 && !persistFailed) return { warnings };

  // Put back what this step changed, whatever the reason it failed.
  const changed = after
    ? changes.filter((c) => featureState(after, c.long)?.on !== c.before)
    : changes;
  const undo: Command[] =
    changed.length > 0
      ? [renderEthtoolFeatures(ifname, Object.fromEntries(changed.map((c) => [c.name, c.before])))]
      : [];
  const undoSteps = await runBatch(t, [...undo, ...undoUnit]);
  const undoFailed = undoSteps.find((s) => s.exitCode !== 0);
  const undone =
    changed.length === 0
      ? "nothing was changed"
      : undoFailed
        ? `putting back ${changed.map((c) => c.name).join(", ")} failed: ${messageOf(undoFailed)}`
        : `${changed.map((c) => c.name).join(", ")} ${changed.length === 1 ? "was" : "were"} put back`;
  if (problems.length > 0) {
    throw new Error(
      `${problems.map((p) => `${p.property}: ${p.reason}`).join("\n")}\n` +
        `on ${t.target}; ${undone}`,
    );
  }
  checkPersist(persistSteps, t.target, undone);
  return { warnings };
}

// ---------------------------------------------------------------------------------------------
// The handler

export const nicOffloadsHandler: ResourceHandler<NicOffloadsInputs, NicOffloadsOutputs> = {
  kind: "NicOffloads",
  schema: nicOffloadsSchema,
  replaceOn: ["connection", "interface"],

  async hostCheck(inputs, ctx) {
    return (await probe(ctx.transport, inputs)).failures;
  },

  diff(_id, olds, news): DiffResult {
    const replaces = linkReplaces(olds, news);
    const detailedDiff: NonNullable<DiffResult["detailedDiff"]> = {};
    const oldLong = byLong(olds.features);
    const newLong = byLong(news.features);
    for (const [name, want] of Object.entries(news.features)) {
      const was = oldLong.get(resolveFeatureName(name));
      if (was === undefined) detailedDiff[featurePath(name)] = { kind: "add", inputDiff: true };
      else if (was !== want) detailedDiff[featurePath(name)] = { kind: "update", inputDiff: true };
    }
    for (const name of Object.keys(olds.features)) {
      if (!newLong.has(resolveFeatureName(name)))
        detailedDiff[featurePath(name)] = { kind: "delete", inputDiff: true };
    }
    for (const key of linkOtherChanges(olds, news))
      detailedDiff[key] = { kind: "update", inputDiff: true };
    // State written before rollbackAfter existed holds none: it had the default.
    const oldRollbackAfter =
      (olds as { rollbackAfter?: number }).rollbackAfter ?? DEFAULT_ROLLBACK_AFTER;
    if (oldRollbackAfter !== news.rollbackAfter)
      detailedDiff.rollbackAfter = { kind: "update", inputDiff: true };
    // Renaming gro to generic-receive-offload changes no host, but the state must follow.
    const renamed =
      Object.keys(olds.features).sort().join() !== Object.keys(news.features).sort().join();
    return diffResult(detailedDiff, replaces, olds, news, renamed);
  },

  async create(inputs, ctx) {
    const t = ctx.transport;
    const { failures, info, features } = await probe(t, inputs);
    if (failures.length > 0 || !info || !features) throw failuresError(failures);
    const originals: Record<string, boolean> = {};
    const changes: Change[] = [];
    for (const [long, want] of byLong(inputs.features)) {
      const before = featureState(features, long)!.on;
      originals[long] = before;
      if (before !== want)
        changes.push({ long, name: nameOf(inputs.features, long), want, before });
    }
    const unit = inputs.persist ? unitOf(inputs) : undefined;
    const persist = persistCommands(unit, []);
    const undoUnit = persistCommands(undefined, unit ? [unit.name] : []);
    const { warnings } = await applyChanges(t, inputs, info, changes, persist, undoUnit);
    for (const w of warnings) ctx.warn(w);
    return {
      id: linkId("offloads", inputs),
      outs: {
        ...inputs,
        originals,
        applied: Object.fromEntries(byLong(inputs.features)),
        driver: info.driver,
        unitPath: unit ? unitPathOf(unit.name) : null,
        warnings,
      },
    };
  },

  async read(_id, olds, ctx) {
    const t = ctx.transport;
    const steps = await runBatch(t, probeCommands(olds.interface));
    const link = readLink(olds.interface, t.target, steps);
    const warnings: string[] = [];
    const features: Record<string, boolean> = {};
    if ("failure" in link) {
      // Every feature shows as drift; the next update says why it cannot apply.
      warnings.push(link.failure);
    } else {
      const live = readFeatures(steps[2]!, t.target);
      for (const name of Object.keys(olds.features)) {
        const s = featureState(live, resolveFeatureName(name));
        if (s) features[name] = s.on;
      }
    }
    for (const w of warnings) ctx.warn(w);
    const props: NicOffloadsOutputs = { ...olds, features, warnings };
    const { originals: _o, applied: _a, driver: _d, unitPath: _u, warnings: _w, ...inputs } = props;
    return { props, inputs };
  },

  async update(_id, olds, news, ctx) {
    const t = ctx.transport;
    const { failures, info, features } = await probe(t, news);
    if (failures.length > 0 || !info || !features) throw failuresError(failures);
    const warnings: string[] = [];
    const originals: Record<string, boolean> = {};
    const applied = byLong(news.features);
    const changes: Change[] = [];
    for (const [long, want] of applied) {
      const now = featureState(features, long)!.on;
      originals[long] = Object.hasOwn(olds.originals, long) ? olds.originals[long]! : now;
      if (now !== want)
        changes.push({ long, name: nameOf(news.features, long), want, before: now });
    }
    // A feature no longer declared gets its original back, if it is still what we set.
    for (const [long, set] of Object.entries(olds.applied)) {
      if (applied.has(long)) continue;
      const now = featureState(features, long);
      const orig = olds.originals[long];
      if (!now || orig === undefined || now.on === orig) continue;
      if (now.on === set) changes.push({ long, name: long, want: orig, before: now.on });
      else
        warnings.push(
          `${long}: left ${word(now.on)} on ${describeLink(info)}: it was changed outside nettune after it was set ${word(set)}`,
        );
    }
    const unit = news.persist ? unitOf(news) : undefined;
    const oldUnit = olds.persist ? unitOf(olds) : undefined;
    const persist = persistCommands(unit, oldUnit ? [oldUnit.name] : []);
    const undoUnit = persistCommands(oldUnit, unit ? [unit.name] : []);
    const res = await applyChanges(t, news, info, changes, persist, undoUnit);
    warnings.push(...res.warnings);
    for (const w of warnings) ctx.warn(w);
    return {
      ...news,
      originals,
      applied: Object.fromEntries(applied),
      driver: info.driver,
      unitPath: unit ? unitPathOf(unit.name) : null,
      warnings,
    };
  },

  async delete(_id, olds, ctx) {
    await deleteOffloads(olds, ctx);
  },
};

/**
 * Puts back each original whose live state is still the one nettune set, warns about the
 * others, and removes the unit. A driver that refuses to go back is a warning, not a failure:
 * the resource would otherwise never leave the state.
 */
async function deleteOffloads(olds: NicOffloadsOutputs, ctx: HandlerContext): Promise<void> {
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
  const live = readFeatures(steps[2]!, t.target);
  const restore: Change[] = [];
  for (const [long, set] of Object.entries(olds.applied)) {
    const now = featureState(live, long);
    const orig = olds.originals[long];
    if (!now) {
      ctx.warn(`${long}: no longer reported by ${describeLink(info)}; nothing to restore`);
    } else if (orig === undefined || now.on === orig) {
      continue;
    } else if (now.on === set) {
      restore.push({ long, name: nameOf(olds.features, long), want: orig, before: now.on });
    } else {
      ctx.warn(
        `${long}: left ${word(now.on)} on ${describeLink(info)}: it was changed outside nettune after it was set ${word(set)}`,
      );
    }
  }
  const set =
    restore.length > 0
      ? [
          renderEthtoolFeatures(
            olds.interface,
            Object.fromEntries(restore.map((c) => [c.name, c.want])),
          ),
          renderEthtoolShow("features", olds.interface),
        ]
      : [];
  const res = await runBatch(t, [...set, ...removeUnit]);
  if (restore.length > 0) {
    let after: EthtoolFeatures | undefined;
    try {
      after = readFeatures(res[1]!, t.target);
    } catch (err) {
      ctx.warn(`could not read back the restored features: ${(err as Error).message}`);
    }
    for (const c of after ? restore : []) {
      const now = featureState(after!, c.long);
      if (now?.on !== c.want) {
        ctx.warn(
          `${c.long}: could not be put back ${word(c.want)} on ${describeLink(info)}: ` +
            `driver reports ${now ? word(now.on) : "no such feature"} (${messageOf(res[0]!)})`,
        );
      }
    }
  }
  checkPersist(res.slice(set.length), t.target, "");
}
