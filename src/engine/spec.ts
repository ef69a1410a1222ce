/**
 * A resource kind as data and a few functions (a spec), and the one lifecycle that runs every
 * spec (DESIGN.md, "Lifecycle"). A spec says what it declares, how it reads its host in one
 * round trip, what the host must offer, and how to go from what is live to what is declared;
 * the engine owns the order of things: validation, ids, the diff, probing before every change,
 * refusing what the host cannot take, warnings, and the shape refresh reports.
 */
import type { z } from "zod";
import type { Connection } from "../schemas/connection";
import type { Transport } from "../transport/types";
import {
  diffResult,
  failuresError,
  propertyPath,
  sameHost,
  stableJson,
  type DiffResult,
  type Failure,
  type HandlerContext,
  type ResourceHandler,
} from "./lifecycle";
import { Ownership } from "./ownership";

/** What every resource's inputs have. */
export interface BaseInputs {
  connection: Connection;
}

/** What a probe found: the facts, or why the resource's object (an interface) is not there. */
export type Probed<F> = { readonly facts: F } | { readonly missing: Failure };

/**
 * What a probe is for: the operation, and the state an update, refresh or delete starts from.
 * A spec whose apply reads what it needs in its own script returns facts without I/O on
 * create (its check then runs only at preview); an update's probe also reads what the state
 * set and the update may give back (a key or an interface no longer declared).
 */
export type ProbeFor<O> =
  | { readonly op: "check" | "create" }
  | { readonly op: "update" | "read" | "delete"; readonly olds: O };

/** The context a spec's apply and release run in. */
export interface SpecContext extends HandlerContext {
  /** Messages for the user, also kept in the resource's `warnings` output. */
  readonly warnings: string[];
}

export interface Spec<I extends BaseInputs, O extends I, F> {
  readonly kind: string;
  readonly schema: z.ZodType<I>;
  /**
   * Inputs whose change makes it another resource (`connection`: another host or port; an
   * interface; a file): it is replaced, the old one given back first.
   */
  readonly replaceOn: readonly string[];
  /** Inputs diffed key by key (`values`, `features`), each with how its keys compare. */
  readonly keyed?: Readonly<Record<string, Keyed>>;
  /**
   * Inputs whose change reaches the state but no diff line, or only under a condition (a unit
   * name without persistence): returns whether this change counts as a diff line.
   */
  shows?(field: string, olds: O, news: I): boolean;
  /**
   * The new inputs as the diff sees them, given the state: a difference that changes nothing on
   * the host (a file name where no file is written, the order of a set) takes the state's form,
   * so it is no change and no replacement.
   */
  normalize?(olds: O, news: I): I;
  /** Outputs that are not inputs: refresh leaves them out of the inputs it reports. */
  readonly outputs: readonly string[];
  /**
   * State written by an older version, brought to this version's shape (a field added since
   * gets the default it had then) before diff, update, refresh and delete see it.
   */
  migrate?(state: O): O;
  /** The id after `user@host:port/`: what this resource is on its host. */
  id(inputs: I): string;
  /** Reads what checks and changes need from the host, in one round trip; `why` says what for. */
  probe(t: Transport, inputs: I, why: ProbeFor<O>): Promise<Probed<F>>;
  /** What the host cannot take, by field: fails preview, and apply before anything changes. */
  check?(inputs: I, facts: F, target: string): Failure[];
  /**
   * What the host makes of the inputs that the user should know at preview (a choice made for
   * them, such as a fallback): shown as warnings when a new resource is checked.
   */
  notes?(inputs: I, facts: F, target: string): string[];
  /**
   * Whether the host already has every setting the inputs declare (what a create would write is
   * all there: a host booted with the same model by `nettune.cloudInit`, or tuned by hand), from
   * the facts a preview check read; shown as a note when a new resource is checked.
   */
  asDeclared?(inputs: I, facts: F): boolean;
  /**
   * Makes the host what `news` declares, all-or-nothing, and returns the outputs beyond the
   * inputs. `olds` is the state for an update, undefined for a create.
   */
  apply(ctx: SpecContext, facts: F, olds: O | undefined, news: I): Promise<Omit<O, keyof I>>;
  /** Gives back what `olds` set (delete). `facts` is undefined when the probe found nothing. */
  release(ctx: SpecContext, facts: F | undefined, olds: O): Promise<void>;
  /** The live values, in the inputs' shape, for refresh; `facts` undefined when missing. */
  live(olds: O, facts: F | undefined): Partial<I>;
}

/**
 * How a keyed input compares: the equality of two values, and optionally the name a key is
 * known by (`gro` and `generic-receive-offload` are one feature): keys under another name are
 * the same setting, a change of the state with no diff line.
 */
export type Keyed =
  | ((a: unknown, b: unknown) => boolean)
  | { readonly same: (a: unknown, b: unknown) => boolean; readonly key: (k: string) => string };

/** `user@host:port/<what>`: where and what, never a secret. */
export function resourceId(conn: Connection, what: string): string {
  return `${conn.user}@${conn.host}:${conn.port}/${what}`;
}

/**
 * The diff every spec gets: replacing inputs first, keyed inputs key by key, other inputs as a
 * whole. The engine prints the per-key lines from the inputs themselves; `changes` and
 * `replaces` decide what happens.
 */
export function specDiff<I extends BaseInputs, O extends I>(
  spec: Pick<Spec<I, O, unknown>, "replaceOn" | "keyed" | "shows" | "normalize" | "outputs">,
  olds: O,
  declared: I,
): DiffResult {
  const news = spec.normalize?.(olds, declared) ?? declared;
  const old = olds as unknown as Record<string, unknown>;
  const neu = news as unknown as Record<string, unknown>;
  const replaces = spec.replaceOn.filter((f) =>
    f === "connection"
      ? !sameHost(olds.connection, news.connection)
      : stableJson(old[f]) !== stableJson(neu[f]),
  );
  const skip = new Set(["connection", "warnings", ...spec.replaceOn, ...spec.outputs]);
  const fields = new Set([...Object.keys(neu), ...Object.keys(old)].filter((f) => !skip.has(f)));
  const detailedDiff: NonNullable<DiffResult["detailedDiff"]> = {};
  let other = false;
  for (const field of fields) {
    const a = old[field];
    const b = neu[field];
    const keyed = spec.keyed?.[field];
    if (keyed && isRecord(a) && isRecord(b)) {
      const same = typeof keyed === "function" ? keyed : keyed.same;
      const name = typeof keyed === "function" ? (k: string) => k : keyed.key;
      // Old keys under the names the new inputs use.
      const newName = new Map(Object.keys(b).map((k) => [name(k), k]));
      const olds = Object.fromEntries(
        Object.entries(a).map(([k, v]) => [newName.get(name(k)) ?? k, v]),
      );
      for (const key of new Set([...Object.keys(olds), ...Object.keys(b)])) {
        const path = propertyPath([field, key]);
        if (!Object.hasOwn(olds, key)) detailedDiff[path] = { kind: "add", inputDiff: true };
        else if (!Object.hasOwn(b, key)) detailedDiff[path] = { kind: "delete", inputDiff: true };
        else if (!same(olds[key], b[key])) detailedDiff[path] = { kind: "update", inputDiff: true };
      }
      // Same settings under other names (gro for generic-receive-offload): the state follows.
      if (stableJson(Object.keys(a).sort()) !== stableJson(Object.keys(b).sort())) other = true;
      continue;
    }
    if (stableJson(a) === stableJson(b)) continue;
    if (spec.shows && !spec.shows(field, olds, news)) {
      other = true;
      continue;
    }
    detailedDiff[field] = {
      kind: a === undefined ? "add" : b === undefined ? "delete" : "update",
      inputDiff: true,
    };
  }
  return diffResult(detailedDiff, replaces, olds, news, other);
}

/** An object without its undefined values. */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Probes, and fails with the fields the host cannot take or another stack owns (the probe's
 * round trip also reads the ownership records).
 */
async function probeChecked<I extends BaseInputs, O extends I, F>(
  spec: Spec<I, O, F>,
  t: Transport,
  inputs: I,
  why: ProbeFor<O>,
  own: Ownership | undefined,
): Promise<F> {
  const p = await spec.probe(own?.reading() ?? t, inputs, why);
  if ("missing" in p) throw failuresError([p.missing]);
  const failures = [
    ...(spec.check?.(inputs, p.facts, t.target) ?? []),
    ...(await ownFailures(own)),
  ];
  if (failures.length > 0) throw failuresError(failures);
  return p.facts;
}

/** The ownership side of an operation, when the resource has an owner identity. */
function ownershipOf(ctx: HandlerContext): Ownership | undefined {
  return ctx.owner && new Ownership(ctx.transport, ctx.owner.identity, ctx.owner.settings);
}

async function ownFailures(own: Ownership | undefined): Promise<Failure[]> {
  return own ? own.failures() : [];
}

function specContext(ctx: HandlerContext): SpecContext {
  const warnings: string[] = [];
  return {
    ...ctx,
    warnings,
    warn(message) {
      warnings.push(message);
      ctx.warn(message);
    },
  };
}

/** The preview note of a new resource whose settings the host already has. */
export const asDeclaredNote = (target: string) =>
  `already as declared on ${target}: creating it changes no setting there ` +
  "(it records the values it finds as the originals and writes its own files and units)";

/** The lifecycle of a spec, as the provider calls it. */
export function handlerOf<I extends BaseInputs, O extends I, F>(
  spec: Spec<I, O, F>,
): ResourceHandler<I, O> {
  const withWarnings = (outs: Omit<O, keyof I>, news: I, warnings: string[]): O =>
    ({ ...news, ...outs, warnings }) as unknown as O;
  const current = (state: O): O => (spec.migrate ? spec.migrate(state) : state);
  return {
    kind: spec.kind,
    schema: spec.schema,
    replaceOn: spec.replaceOn,

    async hostCheck(inputs, ctx) {
      const own = ownershipOf(ctx);
      const p = await spec.probe(own?.reading() ?? ctx.transport, inputs, { op: "check" });
      if ("missing" in p) return [p.missing];
      const failures = [
        ...(spec.check?.(inputs, p.facts, ctx.transport.target) ?? []),
        ...(await ownFailures(own)),
      ];
      if (failures.length === 0) {
        for (const note of spec.notes?.(inputs, p.facts, ctx.transport.target) ?? [])
          ctx.warn(note);
        if (spec.asDeclared?.(inputs, p.facts)) ctx.note?.(asDeclaredNote(ctx.transport.target));
      }
      return failures;
    },

    diff: (_id, olds, news) => specDiff(spec, current(olds), news),

    async create(inputs, ctx) {
      const own = ownershipOf(ctx);
      const facts = await probeChecked(spec, ctx.transport, inputs, { op: "create" }, own);
      const sctx = specContext(ctx);
      const outs = own
        ? await own.writing((transport) =>
            spec.apply({ ...sctx, transport }, facts, undefined, inputs),
          )
        : await spec.apply(sctx, facts, undefined, inputs);
      return {
        id: resourceId(inputs.connection, spec.id(inputs)),
        outs: withWarnings(outs, inputs, sctx.warnings),
      };
    },

    async update(_id, state, news, ctx) {
      const olds = current(state);
      const own = ownershipOf(ctx);
      const facts = await probeChecked(spec, ctx.transport, news, { op: "update", olds }, own);
      const sctx = specContext(ctx);
      const outs = own
        ? await own.writing(
            (transport) => spec.apply({ ...sctx, transport }, facts, olds, news),
            ctx.owner?.previous,
          )
        : await spec.apply(sctx, facts, olds, news);
      return withWarnings(outs, news, sctx.warnings);
    },

    async delete(_id, state, ctx) {
      const olds = current(state);
      const sctx = specContext(ctx);
      const p = await spec.probe(ctx.transport, olds, { op: "delete", olds });
      if ("missing" in p) sctx.warn(`${p.missing.reason}; nothing to restore`);
      const facts = "missing" in p ? undefined : p.facts;
      const own = ownershipOf(ctx);
      if (own) await own.removing((transport) => spec.release({ ...sctx, transport }, facts, olds));
      else await spec.release(sctx, facts, olds);
    },

    async read(_id, state, ctx) {
      const olds = current(state);
      const sctx = specContext(ctx);
      const p = await spec.probe(ctx.transport, olds, { op: "read", olds });
      if ("missing" in p) sctx.warn(p.missing.reason);
      // A value that cannot be read is left out (drift), never undefined: the wire cannot carry it.
      const props = defined({
        ...olds,
        ...spec.live(olds, "missing" in p ? undefined : p.facts),
        warnings: sctx.warnings,
      }) as O;
      const inputs = { ...props } as Record<string, unknown>;
      for (const k of [...spec.outputs, "warnings"]) delete inputs[k];
      return { props, inputs: inputs as unknown as I };
    },
  };
}
