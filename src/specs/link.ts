/**
 * What the interface resources (NicOffloads, RssQueues, NicRings) share (their input schemas
 * are in src/schemas/link.ts): running several read-only or apply commands in one SSH round
 * trip, the interface check (`ethtool -i` plus `ip -d -j link show` in that same trip), the
 * replace rule, and persistence through one systemd unit per resource (src/host/systemd.ts says
 * why a unit).
 */
import { parseEthtoolDriverInfo, renderEthtoolShow } from "../host/ethtool";
import { ParseError } from "../host/errors";
import { parseIpLink, renderIpLinkShow, type IpLink } from "../host/ip";
import { UNIT_DIR, renderUnitInstall, renderUnitRemove, type LinkUnit } from "../host/systemd";
import { JOURNAL_DIR, parseJournal, renderJournal, renderJournalRemove } from "../host/steps";
import type { Command, Transport } from "../transport/types";
import { isScript, renderCommand, shellQuote } from "../transport/quote";
import {
  execOnceMoreIfLost,
  messageOf,
  missingTool,
  outputOf,
  parseBatch,
  renderBatch,
  runBatch,
  type StepResult,
} from "../engine/batch";
import type { Connection } from "../schemas/connection";
import { stableJson, type Failure, type HandlerContext } from "../engine/lifecycle";
import { restoreOrWarn } from "../engine/restore";
import type { Probed } from "../engine/spec";

// ---------------------------------------------------------------------------------------------
// The interface

/** The interface as found on the host. */
export interface LinkInfo {
  readonly ifname: string;
  /** `ethtool -i`'s driver (`veth`, `virtio_net`, `mlx5_core`); the link kind where it has none. */
  readonly driver: string;
  readonly link: IpLink;
}

/** `eth0 (driver veth)`: how messages name an interface. */
export function describeLink(info: Pick<LinkInfo, "ifname" | "driver">): string {
  return `${info.ifname} (driver ${info.driver})`;
}

/** The two read-only commands of the interface check; put them first in a batch. */
export function linkCommands(ifname: string): Command[] {
  return [renderEthtoolShow("driverInfo", ifname), renderIpLinkShow(ifname)];
}

/** Reads the interface check's two steps: the interface, or why it cannot be used. */
export function readLink(
  ifname: string,
  target: string,
  [driverStep, ipStep]: readonly StepResult[],
): { info: LinkInfo } | { failure: string } {
  if (!driverStep || !ipStep) throw new Error("readLink: the interface check's steps are missing");
  const missing = missingTool(ipStep, target) ?? missingTool(driverStep, target);
  if (missing) return { failure: missing };
  if (ipStep.exitCode !== 0) {
    return /does not exist|Cannot find device/.test(ipStep.stderr)
      ? { failure: `no interface ${ifname} on ${target}` }
      : { failure: `cannot read interface ${ifname} on ${target}: ${messageOf(ipStep)}` };
  }
  const link = parseIpLink(ipStep.stdout).find((l) => l.ifname === ifname);
  if (!link) return { failure: `no interface ${ifname} on ${target}` };
  let driver: string;
  try {
    driver = parseEthtoolDriverInfo(outputOf(driverStep)).driver;
  } catch (err) {
    // lo and a few virtual devices have no driver information: name them by their kind.
    if (!(err instanceof ParseError && err.unsupported)) throw err;
    driver = link.kind ?? (link.linkType === "loopback" ? "loopback" : "unknown");
  }
  return { info: { ifname, driver, link } };
}

// ---------------------------------------------------------------------------------------------
// What every interface spec shares

/** What every interface resource has. */
export interface LinkInputs {
  connection: Connection;
  interface: string;
  persist: boolean;
  unitName: string;
}

/**
 * The replace rule: another host or another interface is another resource (the old one is
 * restored first, `deleteBeforeReplace`). `persist` and the unit name are updated in place.
 */
export const LINK_REPLACE_ON = ["connection", "interface"] as const;

/** A unit name is a diff line only where a unit exists before or after. */
export function linkShows(field: string, olds: LinkInputs, news: LinkInputs): boolean {
  return field !== "unitName" || olds.persist || news.persist;
}

/** The id's tail: `rings/eth0/nettune-nicrings-x.service`. */
export function linkPath(kind: string, inputs: LinkInputs): string {
  return `${kind}/${inputs.interface}/${inputs.unitName}`;
}

/**
 * Where a resource's journal of originals lives on the host (src/host/steps.ts): written by
 * create before its first change, read by a create that finds it (one run again after an answer
 * that never arrived), removed by delete, so the originals survive a lost connection.
 */
export function journalPathOf(kind: string, inputs: LinkInputs): string {
  return `${JOURNAL_DIR}/${kind}-${inputs.interface}-${inputs.unitName.replace(/\.service$/, "")}`;
}

/**
 * The journal an apply keeps: `path`, written (or read) by a create; on an update that renames
 * the unit, `from` is the journal's old path, moved along so delete finds it.
 */
export interface Journal {
  readonly path: string;
  readonly create: boolean;
  readonly from?: string;
}

/** The journal of a create (`olds` undefined) or an update of the resource `kind`. */
export function journalOf(kind: string, olds: LinkInputs | undefined, news: LinkInputs): Journal {
  const path = journalPathOf(kind, news);
  const from = olds && journalPathOf(kind, olds);
  return { path, create: !olds, ...(from && from !== path ? { from } : {}) };
}

/** Shell that moves a journal from `from` to `path` (an update renamed the unit); none: nothing. */
export function renderJournalMove(journal: Journal): string {
  if (!journal.from) return ":";
  const from = shellQuote(journal.from);
  return `if [ -f ${from} ]; then mv -f ${from} ${shellQuote(journal.path)}; fi`;
}

/** Values as a journal holds them: JSON, one line each. */
function journalValues<V>(values: Readonly<Record<string, V | undefined>>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(values)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k, JSON.stringify(v)]),
  );
}

/** The facts of an interface probe: the interface, and what the resource's own commands said. */
export interface LinkFacts<F> {
  readonly info: LinkInfo;
  readonly own: F;
}

/**
 * One round trip: the interface check and the resource's own read-only `commands`, whose
 * results `read` turns into facts. A missing interface is reported as a failure of `interface`.
 */
export async function probeLink<F>(
  t: Transport,
  ifname: string,
  commands: readonly Command[],
  read: (steps: readonly StepResult[], info: LinkInfo) => F,
): Promise<Probed<LinkFacts<F>>> {
  const steps = await runBatch(t, [...linkCommands(ifname), ...commands]);
  const link = readLink(ifname, t.target, steps);
  if ("failure" in link) return { missing: { property: "interface", reason: link.failure } };
  return { facts: { info: link.info, own: read(steps.slice(2), link.info) } };
}

// ---------------------------------------------------------------------------------------------
// Applying and giving back keyed settings (ring sizes, channel counts, features)

/** How a resource sets, reads back and shows its keyed settings. */
export interface KeyedSettings<V> {
  /**
   * Commands that set `changes`, starting from the live values `from` (an order that depends on
   * the direction: an RSS table moves before its queues shrink); verified by reading back, not
   * by their exit codes.
   */
  set(
    changes: Readonly<Record<string, V>>,
    from: Readonly<Record<string, V | undefined>>,
  ): Command[];
  /** Read-only commands run right after `set`, in the same round trip. */
  readonly readBack: readonly Command[];
  /** The live values after, from the read-back steps (and the set steps, for messages). */
  after(readBack: readonly StepResult[], set: readonly StepResult[]): Record<string, V | undefined>;
  /** The input a key belongs to, for errors: `rx`, `features.gro`. */
  property(key: string): string;
  show(value: V | undefined): string;
  /** Why a key is not what was asked beyond its value (`tx-tcp-segmentation is off [requested on]`). */
  detail?(key: string, readBack: readonly StepResult[]): string;
  /**
   * What a failed apply's error says was put back (`failure`: why putting back failed); by
   * default `rx 256, tx 512 put back`.
   */
  putBack?(values: Readonly<Record<string, V>>, failure: string | undefined): string;
  /**
   * Runs the apply script itself instead of one plain batch (commit-confirmed on the SSH
   * interface): `undo` is a script that puts `before` back, removes what the apply persisted
   * and the journal it wrote; the answer is the script's output.
   */
  run?(t: Transport, script: string, undo: string): Promise<string>;
}

/** Why the journal of originals could not be written, when that stopped a script (exit 7). */
export function journalFailure(stdout: string, target: string): string | undefined {
  const why = /^failed\t-1\t7\t(.*)$/m.exec(stdout)?.[1];
  return why && `${why} on ${target}; nothing was changed`;
}

/**
 * Runs `prefix` (the journal) and the batch in one round trip, once more on a new connection
 * when the link reset under it (as {@link runBatch}); returns what it printed.
 */
async function runWith(t: Transport, prefix: string, batch: readonly Command[]): Promise<string> {
  const res = await execOnceMoreIfLost(t, `${prefix}${renderBatch(batch)}`);
  if (res.exitCode === 0) return res.stdout;
  const journal = journalFailure(res.stdout, t.target);
  if (journal) throw new Error(journal);
  throw new Error(
    `nettune: could not run commands on ${t.target} (exit code ${res.exitCode ?? res.signal}): ` +
      `${res.stderr.trim() || res.stdout.trim()}`,
  );
}

/**
 * One round trip: `set` with every value of `target` that differs from `before`, the read-back,
 * then `persist`. Each value is verified by the read-back; if one is not what was asked or a
 * persistence step fails, what changed is put back and `undoPersist` restores the units as they
 * were, in a second round trip, and the error names each field and says what was undone. A set
 * command that fails while every value reads back as asked is told to `warn`.
 *
 * A create's `journal` is written with `before` ahead of the first change, or read where an
 * earlier create left it; returned are its values where it was found (the host's values before
 * nettune first changed it), none otherwise. A failed apply removes the journal it wrote.
 */
export async function applyKeyed<V>(
  t: Transport,
  info: LinkInfo,
  k: KeyedSettings<V>,
  before: Readonly<Record<string, V | undefined>>,
  target: Readonly<Record<string, V | undefined>>,
  persist: readonly Command[],
  undoPersist: readonly Command[],
  warn?: (message: string) => void,
  journal?: Journal,
): Promise<Readonly<Record<string, V>>> {
  const changes: Record<string, V> = {};
  for (const [key, want] of Object.entries(target)) {
    if (want !== undefined && stableJson(want) !== stableJson(before[key])) changes[key] = want;
  }
  const keys = Object.keys(changes);
  const set = keys.length > 0 ? k.set(changes, before) : [];
  const read = keys.length > 0 ? k.readBack : [];
  const moveJournal: Command[] = journal?.from ? [{ script: renderJournalMove(journal) }] : [];
  const batch = [...set, ...read, ...persist, ...moveJournal];
  // Nothing to change, nothing to journal.
  const written = journal?.create && batch.length > 0 ? journalValues(before) : undefined;
  const prefix = written ? `${renderJournal(journal!.path, written)}\n` : "";
  const removeJournal = written ? renderJournalRemove(journal!.path, written) : undefined;
  const back = (now: Readonly<Record<string, V | undefined>>) =>
    Object.fromEntries(
      keys
        .filter(
          (key) => before[key] !== undefined && stableJson(now[key]) !== stableJson(before[key]),
        )
        .map((key) => [key, before[key]!]),
    );
  let out: string;
  if (k.run && keys.length > 0) {
    // Everything the apply wrote: the host runs this by itself when the path was cut.
    const undo = [
      renderCommands(k.set(back({}), { ...before, ...changes })),
      ...undoPersist.map((c) => `(\n${isScript(c) ? c.script : renderCommand(c)}\n)`),
      ...(removeJournal ? [removeJournal] : []),
    ].join("\n");
    out = await k.run(t, `${prefix}${renderBatch(batch)}`, undo);
  } else {
    out = batch.length > 0 ? await runWith(t, prefix, batch) : "";
  }
  const steps = parseBatch(out, batch);
  const found = parseJournal(out.split("\n@@nettune-batch")[0]!);
  const journaled: Record<string, V> = {};
  for (const [key, text] of Object.entries(found)) {
    try {
      journaled[key] = JSON.parse(text) as V;
    } catch {
      // Not a value this resource wrote: the live value is the best knowledge left.
    }
  }
  const problems: Failure[] = [];
  let after: Record<string, V | undefined> | undefined;
  if (keys.length > 0) {
    const setSteps = steps.slice(0, set.length);
    const readSteps = steps.slice(set.length, set.length + read.length);
    const failed = setSteps.find((s) => s.exitCode !== 0);
    const said = failed ? `; ${failed.command.split(" ")[0]} said: ${messageOf(failed)}` : "";
    try {
      after = k.after(readSteps, setSteps);
    } catch (err) {
      const why = (setSteps[0] && missingTool(setSteps[0], t.target)) ?? (err as Error).message;
      problems.push({ property: k.property(keys[0]!), reason: why });
    }
    for (const key of after ? keys : []) {
      if (stableJson(after![key]) === stableJson(changes[key])) continue;
      const detail = k.detail?.(key, readSteps) ?? "";
      problems.push({
        property: k.property(key),
        reason: `requested ${k.show(changes[key])}, driver reports ${k.show(after![key])} on ${describeLink(info)}${detail ? ` (${detail})` : ""}${said}`,
      });
    }
    if (failed && after && problems.length === 0) {
      warn?.(
        `${failed.command} exited with ${failed.exitCode} on ${t.target} (${messageOf(failed)}), ` +
          "but everything reads back as declared",
      );
    }
  }
  const persistSteps = steps.slice(set.length + read.length);
  if (problems.length === 0 && !persistSteps.some((s) => s.exitCode !== 0)) return journaled;
  const undo = back(after ?? changes);
  const undoSet =
    Object.keys(undo).length > 0 ? k.set(undo, { ...before, ...(after ?? changes) }) : [];
  const undoFailed = (
    await runBatch(t, [
      ...undoSet,
      ...undoPersist,
      ...(removeJournal ? [{ script: removeJournal }] : []),
    ])
  ).find((s) => s.exitCode !== 0);
  const summary = Object.entries(undo)
    .map(([key, v]) => `${k.property(key)} ${k.show(v)}`)
    .join(", ");
  const failure = undoFailed && messageOf(undoFailed);
  const undone =
    undoSet.length === 0
      ? "nothing was changed"
      : k.putBack
        ? k.putBack(undo, failure)
        : failure
          ? `putting back ${summary} failed: ${failure}`
          : `${summary} put back`;
  if (problems.length > 0) {
    throw new Error(
      `${problems.map((p) => `${p.property}: ${p.reason}`).join("\n")}\non ${t.target}; ${undone}`,
    );
  }
  checkPersist(persistSteps, t.target, undone);
  return journaled;
}

/**
 * Delete: each key of `applied` goes back to its original where it is still what nettune set
 * (else a warning), in one round trip with the read-back, the removal of `units` and of the
 * `journal` of originals. A driver
 * that refuses to go back is a warning, not a failure: the resource would never leave the state.
 */
export async function releaseKeyed<V>(
  ctx: HandlerContext,
  info: LinkInfo | undefined,
  k: KeyedSettings<V>,
  live: Readonly<Record<string, V | undefined>>,
  applied: Readonly<Record<string, V | undefined>>,
  originals: Readonly<Record<string, V | undefined>>,
  units: readonly string[],
  journal?: string,
): Promise<void> {
  const t = ctx.transport;
  const restore = info ? giveBackUndeclared(ctx, info, k, live, {}, applied, originals) : {};
  const keys = Object.keys(restore);
  const set = keys.length > 0 ? k.set(restore, live) : [];
  const read = keys.length > 0 ? k.readBack : [];
  const removeUnits = persistCommands(undefined, units);
  const removeJournal = journal ? [{ script: renderJournalRemove(journal) }] : [];
  const steps = await runBatch(t, [...set, ...read, ...removeUnits, ...removeJournal]);
  if (keys.length > 0 && info) {
    const setSteps = steps.slice(0, set.length);
    const readSteps = steps.slice(set.length, set.length + read.length);
    let after: Record<string, V | undefined> | undefined;
    try {
      after = k.after(readSteps, setSteps);
    } catch (err) {
      ctx.warn(`could not read back what was put back: ${(err as Error).message}`);
    }
    const failed = setSteps.find((s) => s.exitCode !== 0);
    for (const key of after ? keys : []) {
      if (stableJson(after![key]) === stableJson(restore[key])) continue;
      ctx.warn(
        `${k.property(key)}: could not be put back to ${k.show(restore[key])} on ${describeLink(info)}: ` +
          `driver reports ${k.show(after![key])}${failed ? ` (${messageOf(failed)})` : ""}`,
      );
    }
  }
  checkPersist(steps.slice(set.length + read.length), t.target, "");
}

/** Several argument vectors or scripts as one shell text, each stopping the rest on failure. */
function renderCommands(commands: readonly Command[]): string {
  return commands.map((c) => (isScript(c) ? c.script : renderCommand(c))).join("\n");
}

/**
 * What an update keeps aiming at for keys no longer declared: their originals, where the live
 * value is still what nettune set (else a warning).
 */
export function giveBackUndeclared<V>(
  ctx: HandlerContext,
  info: LinkInfo,
  k: Pick<KeyedSettings<V>, "property" | "show">,
  live: Readonly<Record<string, V | undefined>>,
  declared: Readonly<Record<string, V | undefined>>,
  applied: Readonly<Record<string, V | undefined>>,
  originals: Readonly<Record<string, V | undefined>>,
): Record<string, V> {
  const out: Record<string, V> = {};
  for (const [key, set] of Object.entries(applied)) {
    if (declared[key] !== undefined || set === undefined) continue;
    const r = restoreOrWarn<V | undefined>({
      what: k.property(key),
      live: live[key],
      applied: set,
      original: originals[key] ?? undefined,
      where: describeLink(info),
      same: (a, b) => stableJson(a) === stableJson(b),
      show: (v) => k.show(v),
    });
    if (r.action === "restore") out[key] = r.to!;
    else if (r.action === "warn") ctx.warn(r.message);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Persistence

/** The unit file's path on the host. */
export function unitPathOf(name: string): string {
  return `${UNIT_DIR}/${name}`;
}

/** The unit that re-applies `commands` to the interface at boot. */
export function linkUnit(
  inputs: LinkInputs,
  description: string,
  commands: readonly (readonly string[])[],
): LinkUnit {
  return { name: inputs.unitName, description, interface: inputs.interface, commands };
}

/**
 * The commands that bring the host's units in line: install `unit` (when given) and remove
 * every unit in `remove` that is not it.
 */
export function persistCommands(unit: LinkUnit | undefined, remove: readonly string[]): Command[] {
  const out: Command[] = [];
  for (const name of new Set(remove)) {
    if (name !== unit?.name) out.push({ script: renderUnitRemove(name) });
  }
  if (unit) out.push({ script: renderUnitInstall(unit) });
  return out;
}

/** Throws when a persistence step failed; `undone` says what was put back before. */
export function checkPersist(steps: readonly StepResult[], target: string, undone: string): void {
  for (const s of steps) {
    if (s.exitCode === 0) continue;
    throw new Error(
      `persist: could not write the systemd unit on ${target}: ${messageOf(s)}${undone ? `; ${undone}` : ""}`,
    );
  }
}
