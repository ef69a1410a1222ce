/**
 * NicOffloads: offload features of one interface (`ethtool -K`), checked against the driver at
 * preview, applied in one command (commit-confirmed when SSH runs over the interface), read
 * back and verified, persisted in a systemd unit, and restored on delete.
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
import { AnswerLost, applyConfirmed } from "./confirm";
import { DEFAULT_ROLLBACK_AFTER } from "../schemas/link";
import { nicOffloadsSchema, type NicOffloadsInputs } from "../schemas/nicOffloads";
import { propertyPath, type Failure } from "../engine/lifecycle";
import { handlerOf, type Spec } from "../engine/spec";
import { messageOf, missingTool, type StepResult } from "../engine/batch";
import * as link from "./link";

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
  info: Pick<link.LinkInfo, "ifname" | "driver">,
): string | undefined {
  const f = features.features[long];
  if (!f) return undefined;
  const where = `on ${link.describeLink(info)}`;
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
function readFeatures(step: StepResult | undefined, target: string): EthtoolFeatures {
  if (!step) throw new Error("readFeatures: the ethtool -k step is missing");
  const missing = missingTool(step, target);
  if (missing) throw new Error(missing);
  if (step.exitCode !== 0)
    throw new Error(`${step.command} failed on ${target}: ${messageOf(step)}`);
  return parseEthtoolFeatures(step.stdout);
}

/** Declared features by long name. */
function byLong(features: Readonly<Record<string, boolean>>): Record<string, boolean> {
  return Object.fromEntries(
    Object.entries(features).map(([name, on]) => [resolveFeatureName(name), on]),
  );
}

/** The user's name for a long name, for `ethtool -K`, messages and property paths. */
function nameOf(features: Readonly<Record<string, boolean>>, long: string): string {
  return Object.keys(features).find((n) => resolveFeatureName(n) === long) ?? long;
}

const featurePath = (name: string) => propertyPath(["features", name]);

/** The state of each of `longs`, undefined where the kernel does not report it. */
function statesOf(
  features: EthtoolFeatures,
  longs: readonly string[],
): Record<string, boolean | undefined> {
  return Object.fromEntries(longs.map((long) => [long, featureState(features, long)?.on]));
}

type Facts = link.LinkFacts<EthtoolFeatures>;

/** Each declared feature must exist on this kernel and not be fixed the other way. */
function checkFeatures(inputs: NicOffloadsInputs, facts: Facts, target: string): Failure[] {
  const { info, own: features } = facts;
  const failures: Failure[] = [];
  for (const [name, want] of Object.entries(inputs.features)) {
    const long = resolveFeatureName(name);
    if (!Object.hasOwn(features.features, long)) {
      failures.push({
        property: featurePath(name),
        reason: `${link.describeLink(info)} has no feature ${long} on ${target} (its kernel does not know it)`,
      });
      continue;
    }
    const fixed = fixedReason(features, long, want, info);
    if (fixed) failures.push({ property: featurePath(name), reason: fixed });
  }
  return failures;
}

// ---------------------------------------------------------------------------------------------
// Applying

/** The journal of originals: `/var/lib/nettune/originals/offloads-<interface>-<unit>`. */
export const JOURNAL = "offloads";

export function unitOf(inputs: NicOffloadsInputs) {
  return link.linkUnit(inputs, `nettune NicOffloads on ${inputs.interface}`, [
    renderEthtoolFeatures(inputs.interface, inputs.features),
  ]);
}

/**
 * Features as keyed settings by long name: one `ethtool -K` in the user's words (`names`),
 * verified by `ethtool -k`, never by its exit code: drivers print "Could not change any device
 * features" with exit 0 or 1, and `-K` can leave a feature unchanged without failing. With
 * `confirmed`, the change is made commit-confirmed (see `run`).
 */
function keyed(
  ifname: string,
  target: string,
  names: Readonly<Record<string, boolean>>,
  confirmed?: NicOffloadsInputs,
): link.KeyedSettings<boolean> {
  const name = (long: string) => nameOf(names, long);
  return {
    set: (c) => [
      renderEthtoolFeatures(
        ifname,
        Object.fromEntries(Object.entries(c).map(([long, on]) => [name(long), on])),
      ),
    ],
    readBack: [renderEthtoolShow("features", ifname)],
    after([read]) {
      const f = readFeatures(read, target);
      return statesOf(f, Object.keys(f.features));
    },
    property: (long) => featurePath(name(long)),
    show: (on) => (on === undefined ? "no such feature" : word(on)),
    detail: (long, [read]) => featureState(readFeatures(read, target), long)?.pending ?? "",
    putBack(values, failure) {
      const listed = Object.keys(values).map(name);
      if (failure) return `putting back ${listed.join(", ")} failed: ${failure}`;
      return `${listed.join(", ")} ${listed.length === 1 ? "was" : "were"} put back`;
    },
    // Offloads of the interface SSH runs over are changed commit-confirmed, as the MTU is: the
    // same round trip arms a host-side rollback when SSH arrives on this interface, and the
    // change is kept only once a new SSH connection carries data.
    run: confirmed
      ? async (t, script, undo) => {
          const res = await applyConfirmed(
            t,
            confirmed.connection,
            {
              rollbackAfter: confirmed.rollbackAfter,
              token: `offloads-${confirmed.unitName.replace(/\.service$/, "")}`,
              rollback: undo,
              apply: script,
            },
            `Offload changes on ${ifname}`,
            { onlyIfSshOver: ifname },
          );
          if (res instanceof AnswerLost) {
            throw new Error(
              `features: the answer to the offload changes on ${t.target} was lost (${res.reason}); they were put back`,
            );
          }
          const journal = link.journalFailure(res.stdout, t.target);
          if (journal) throw new Error(journal);
          if (res.exitCode !== 0 && !/^armed /m.test(res.stdout)) {
            // Not armed (another interface) and cut short, a session killed mid-apply: nothing
            // was put back yet. Over a new connection, as the host's rollback would.
            try {
              await t.exec({ script: undo }, { allowFailure: true });
            } catch (err) {
              throw new Error(
                `features: the answer to the offload changes on ${t.target} was lost, and putting them back failed: ${(err as Error).message}`,
              );
            }
          }
          // A script that ran to its end and said why failed; one cut short has no answer.
          const code = res.exitCode ?? 0;
          const why = code > 0 ? res.stderr.trim().split("\n").slice(-3).join("; ") : "";
          if (why) {
            throw new Error(
              `features: the offload changes on ${t.target} failed (exit ${code}): ${why}; they were put back`,
            );
          }
          if (res.exitCode !== 0) {
            throw new Error(
              res.signal
                ? `features: the offload changes on ${t.target} were cut short (${res.signal}); they were put back`
                : `features: the answer to the offload changes on ${t.target} was lost; they were put back`,
            );
          }
          return res.stdout;
        }
      : undefined,
  };
}

export const nicOffloadsSpec: Spec<NicOffloadsInputs, NicOffloadsOutputs, Facts> = {
  kind: "NicOffloads",
  schema: nicOffloadsSchema,
  replaceOn: link.LINK_REPLACE_ON,
  keyed: { features: { same: (a, b) => a === b, key: resolveFeatureName } },
  shows: link.linkShows,
  outputs: ["originals", "applied", "driver", "unitPath"],
  // State written before rollbackAfter existed holds none: it had the default.
  migrate: (state) => ({
    ...state,
    rollbackAfter: (state as Partial<NicOffloadsOutputs>).rollbackAfter ?? DEFAULT_ROLLBACK_AFTER,
  }),
  id: (inputs) => link.linkPath("offloads", inputs),

  probe: (t, inputs) =>
    link.probeLink(t, inputs.interface, [renderEthtoolShow("features", inputs.interface)], ([s]) =>
      readFeatures(s, t.target),
    ),

  check: checkFeatures,

  asDeclared(inputs, facts) {
    const declared = byLong(inputs.features);
    const live = statesOf(facts.own, Object.keys(declared));
    return Object.entries(declared).every(([long, on]) => live[long] === on);
  },

  async apply(ctx, facts, olds, news) {
    const t = ctx.transport;
    const { info, own: features } = facts;
    const declared = byLong(news.features);
    const before = statesOf(features, [
      ...Object.keys(declared),
      ...Object.keys(olds?.applied ?? {}),
    ]);
    const k = keyed(info.ifname, t.target, news.features, news);
    // Features no longer declared go back to their originals, where still ours; messages name
    // them as the state did.
    const giveBack = olds
      ? link.giveBackUndeclared(
          ctx,
          info,
          { ...k, property: (long) => featurePath(nameOf(olds.features, long)) },
          before,
          declared,
          olds.applied,
          olds.originals,
        )
      : {};
    const unit = news.persist ? unitOf(news) : undefined;
    const oldUnit = olds?.persist ? unitOf(olds) : undefined;
    const journaled = await link.applyKeyed(
      t,
      info,
      k,
      before,
      { ...declared, ...giveBack },
      link.persistCommands(unit, oldUnit ? [oldUnit.name] : []),
      link.persistCommands(oldUnit, unit ? [unit.name] : []),
      (m) => ctx.warn(m),
      link.journalOf(JOURNAL, olds, news),
    );
    const originals: Record<string, boolean> = {};
    for (const long of Object.keys(declared)) {
      originals[long] =
        olds && Object.hasOwn(olds.originals, long)
          ? olds.originals[long]!
          : (journaled[long] ?? before[long]!);
    }
    return {
      originals,
      applied: declared,
      driver: info.driver,
      unitPath: unit ? link.unitPathOf(unit.name) : null,
      warnings: [],
    };
  },

  async release(ctx, facts, olds) {
    const t = ctx.transport;
    const k = keyed(olds.interface, t.target, olds.features);
    const live = facts ? statesOf(facts.own, Object.keys(olds.applied)) : {};
    for (const long of facts ? Object.keys(olds.applied) : []) {
      if (live[long] === undefined)
        ctx.warn(
          `${k.property(long)}: no longer reported by ${link.describeLink(facts!.info)}; nothing to restore`,
        );
    }
    await link.releaseKeyed(
      ctx,
      facts?.info,
      k,
      live,
      olds.applied,
      olds.originals,
      olds.persist ? [olds.unitName] : [],
      link.journalPathOf(JOURNAL, olds),
    );
  },

  live(olds, facts) {
    // With the interface gone every feature shows as drift; the next update says why.
    const features: Record<string, boolean> = {};
    for (const name of facts ? Object.keys(olds.features) : []) {
      const s = featureState(facts!.own, resolveFeatureName(name));
      if (s) features[name] = s.on;
    }
    return { features };
  },
};

export const nicOffloadsHandler = handlerOf(nicOffloadsSpec);
