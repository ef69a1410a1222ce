/**
 * `nettune/provider`: what the serialized dynamic provider calls. It finds the handler of a
 * resource kind and runs one lifecycle method with a pooled transport to the resource's host.
 * Everything here runs in the engine's dynamic-provider process.
 */
import { connectionSchema, connectionSecrets, type Connection } from "../schemas/connection";
import { redact } from "../transport/errors";
import { defaultPool, transportFor } from "../transport/pool";
import type { Transport } from "../transport/types";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  containsUnknown,
  checkError,
  failuresError,
  type DiffResult,
  userInputs,
  validate,
  type Failure,
  type HandlerContext,
  type ResourceHandler,
  ownerIdentityOf,
  type OwnerOf,
} from "./lifecycle";
import { ownedSettings } from "../specs/owned";
import { migrateState } from "./migrate";
import { noteAbout, urnOf, warnAbout } from "./log";
import { keepDeployedNames } from "../schemas/names";
import { sysctlSetHandler } from "../specs/sysctlSet";
import { mtuHandler } from "../specs/mtu";
import { nicOffloadsHandler } from "../specs/nicOffloads";
import { nicRingsHandler } from "../specs/nicRings";
import { rssQueuesHandler } from "../specs/rssQueues";
import { congestionControlHandler } from "../specs/congestionControl";
import { irqAffinityHandler } from "../specs/irqAffinity";
import { packetSteeringHandler } from "../specs/packetSteering";
import { xdpProgramHandler } from "../specs/xdpProgram";

interface BaseInputs {
  connection: Connection;
}
/** Any resource's handler, seen through what every handler shares. */
type AnyHandler = ResourceHandler<BaseInputs, BaseInputs>;
/**
 * State as the engine hands it back: validated when it was written, and brought to this
 * version's output names and types if an older nettune wrote it (./migrate.ts).
 */
const asState = (kind: string, props: Record<string, unknown>) =>
  migrateState(kind, userInputs(props)) as unknown as BaseInputs;

const HANDLERS: Record<string, AnyHandler> = {
  SysctlSet: sysctlSetHandler,
  Mtu: mtuHandler,
  NicOffloads: nicOffloadsHandler,
  RssQueues: rssQueuesHandler,
  NicRings: nicRingsHandler,
  CongestionControl: congestionControlHandler,
  IrqAffinity: irqAffinityHandler,
  PacketSteering: packetSteeringHandler,
  XdpProgram: xdpProgramHandler,
};

/** Lets tests run handlers against another transport (a recording fake, a local one). */
let transportOverride: ((conn: Connection) => Transport) | undefined;
export function setTransportFactory(factory: ((conn: Connection) => Transport) | undefined): void {
  transportOverride = factory;
}

/** Connection attempts of a preview check: a host that refuses or is down is reported now. */
const PREVIEW_DIAL_ATTEMPTS = 2;

/** The context of a preview check: its commands connect with at most two attempts. */
function previewContext(ctx: HandlerContext): HandlerContext {
  const t = ctx.transport;
  const transport: Transport = {
    target: t.target,
    stats: t.stats,
    exec: (command, options) =>
      t.exec(command, { ...options, dialErrorLimit: PREVIEW_DIAL_ATTEMPTS }),
    close: () => t.close(),
  };
  return { ...ctx, transport };
}

/** The owner side of an operation's context, when the resource has an identity. */
function ownerOf(
  kind: string,
  identity: string | undefined,
  inputs: unknown,
  previous?: string,
): OwnerOf | undefined {
  if (identity === undefined) return undefined;
  return {
    identity,
    settings: ownedSettings(kind, inputs),
    ...(previous !== undefined && previous !== identity ? { previous } : {}),
  };
}

/** Outputs with the owner identity kept, so a later delete has it. */
function withOwner<T>(outs: T, identity: string | undefined): T {
  return identity === undefined ? outs : { ...outs, __nettuneOwner: identity };
}

/**
 * Where one call's messages go: under the resource in the engine's events (./log.ts). Each
 * send is awaited before the call returns, so the engine has them before the step ends.
 */
interface Say {
  (message: string): void;
  /** A note (info, not a warning). */
  note(message: string): void;
  /** Every message sent so far, delivered (or written to stderr). */
  flush(): Promise<void>;
}

function sayFor(kind: string, urn: string | undefined, id?: string): Say {
  const pending: Promise<void>[] = [];
  const say = (message: string) => void pending.push(warnAbout(kind, urn, id, message));
  say.note = (message: string) => void pending.push(noteAbout(kind, urn, id, message));
  say.flush = async () => {
    await Promise.all(pending);
  };
  return say;
}

function contextFor(conn: Connection, warnings: string[], say: Say): HandlerContext {
  const transport = transportOverride ? transportOverride(conn) : transportFor(conn);
  return {
    transport,
    warn(message) {
      warnings.push(message);
      say(message);
    },
    note: (message) => say.note(message),
  };
}

/** Outputs (and read's inputs) with the resource's URN kept, for later reads and deletes. */
function withUrn<T>(outs: T, urn: string | undefined): T {
  return urn === undefined ? outs : { ...outs, __nettuneUrn: urn };
}

/** Errors leave the provider without any secret of the connection in them. */
function scrub(err: unknown, conn: Connection | undefined): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  if (!conn) return e;
  const secrets = connectionSecrets(conn);
  const clean = new Error(redact(e.message, secrets));
  clean.name = e.name;
  return clean;
}

/**
 * How long preview waits for a host before it goes on without its facts (and says so): an
 * unreachable host must not hold a preview for the connection's whole retry budget.
 */
export const PREVIEW_HOST_BUDGET_MS = 10_000;

/**
 * Read-only checks of `inputs` against the host, bounded by {@link PREVIEW_HOST_BUDGET_MS}.
 * A host that cannot be read is not a failure here (create and update check again), but the
 * user is told, naming the host and the reason.
 */
async function hostFailures(
  handler: AnyHandler,
  inputs: BaseInputs,
  owner: string | undefined,
  warnNow: Say,
): Promise<Failure[]> {
  if (!handler.hostCheck) return [];
  const ctx = {
    ...previewContext(contextFor(inputs.connection, [], warnNow)),
    owner: ownerOf(handler.kind, owner, inputs),
  };
  let timer: NodeJS.Timeout | undefined;
  const budget = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), PREVIEW_HOST_BUDGET_MS);
    timer.unref();
  });
  try {
    const res = await Promise.race([handler.hostCheck(inputs, ctx), budget]);
    if (res === "timeout") {
      warnNow(
        `${handler.kind}: ${ctx.transport.target} did not answer within ${PREVIEW_HOST_BUDGET_MS / 1000} s; ` +
          "preview could not check this resource against the host (apply checks it again)",
      );
      return [];
    }
    return res;
  } catch (err) {
    const why = scrub(err, inputs.connection).message.split("\n")[0];
    warnNow(
      `${handler.kind}: could not read ${ctx.transport.target} to check this resource at preview: ${why}`,
    );
    return [];
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Which resources Check reads the host for: `all` (default) checks a new resource against its
 * host at preview; `changed` reads no host in Check at all, so the engine's serial Check phase
 * costs no round trip (new resources are checked by create, before anything is applied). Set
 * with NETTUNE_PREVIEW_HOST_CHECKS.
 */
export function previewHostChecks(env: NodeJS.ProcessEnv = process.env): "all" | "changed" {
  const v = env.NETTUNE_PREVIEW_HOST_CHECKS;
  if (v === undefined || v === "" || v === "all") return "all";
  if (v === "changed") return "changed";
  throw new Error(
    `NETTUNE_PREVIEW_HOST_CHECKS must be "all" or "changed" (got ${JSON.stringify(v)})`,
  );
}

/**
 * Check: zod validation of every field and no host I/O, except for a resource that does not
 * exist yet. The engine calls Check for one resource after another, so a round trip here is paid
 * once per resource in sequence. A new resource has no other step in preview that reaches the
 * provider, so it is checked against its host here (unless NETTUNE_PREVIEW_HOST_CHECKS is
 * `changed`); a resource that exists is checked against its host in diff, which the engine runs
 * in parallel (PULUMI_PARALLEL_DIFF=true), and only when its inputs changed.
 */
async function check(
  kind: string,
  handler: AnyHandler,
  olds: Record<string, unknown>,
  news: Record<string, unknown>,
  say: Say,
) {
  const raw = userInputs(news);
  // The resource's URN goes on to create and update, which log under it (./log.ts).
  const urn = urnOf(news);
  // Values not known yet (preview of a resource that depends on another) are checked at apply.
  if (containsUnknown(raw)) return { inputs: withUrn(raw, urn) };
  const { value: checked, failures } = validate(handler.schema, raw);
  if (!checked) throw checkError(kind, news.__nettuneName, failures);
  // A deployed resource keeps the file and unit names it has (src/schemas/names.ts).
  const name = typeof news.__nettuneName === "string" ? news.__nettuneName : undefined;
  const value = keepDeployedNames(kind, name, urn, olds, checked);
  const owner = ownerIdentityOf(news);
  const isNew = Object.keys(userInputs(olds ?? {})).length === 0;
  if (isNew && previewHostChecks() === "all") {
    const onHost = await hostFailures(handler, value, owner, say);
    if (onHost.length > 0) throw checkError(kind, news.__nettuneName, onHost);
  }
  // The owner identity goes on to create and update, which keep it in the outputs.
  return { inputs: withUrn(withOwner(value, owner), urn) };
}

/**
 * Diff: the handler's per-key diff of checked inputs; while some input is unknown (preview of a
 * resource fed by another's outputs), a diff by top-level field. When the host would change, the
 * new inputs are checked against it here, in the engine's parallel phase: a change the host
 * cannot take fails preview, naming the field.
 */
async function diff(
  handler: AnyHandler,
  id: string,
  olds: BaseInputs,
  rawNews: Record<string, unknown>,
  say: Say,
): Promise<DiffResult> {
  const news = userInputs(rawNews);
  if (containsUnknown(news)) return unknownDiff(handler, id, olds, news);
  const inputs = handler.schema.parse(news);
  const result = handler.diff(id, olds, inputs);
  const touchesHost =
    (result.replaces ?? []).length > 0 ||
    Object.keys(result.detailedDiff ?? {}).some((k) => k !== "connection");
  if (result.changes && touchesHost) {
    const failures = await hostFailures(handler, inputs, ownerIdentityOf(rawNews), say);
    if (failures.length > 0) throw failuresError(failures);
  }
  return result;
}

/**
 * The diff of inputs some of whose fields are unknown (preview of a resource fed by another
 * resource's outputs): the known fields as the handler diffs them, every unknown one as a
 * change, and a replacement where an unknown field may name another host, interface or file.
 */
function unknownDiff(
  handler: AnyHandler,
  id: string,
  olds: BaseInputs,
  news: Record<string, unknown>,
): DiffResult {
  const old = olds as unknown as Record<string, unknown>;
  const unknown = Object.keys(news).filter((k) => containsUnknown(news[k]));
  // The known fields, validated with the unknown ones held at their old values.
  const filled = { ...news, ...Object.fromEntries(unknown.map((k) => [k, old[k]])) };
  const parsed = handler.schema.safeParse(filled);
  const base: DiffResult = parsed.success
    ? handler.diff(id, olds, parsed.data)
    : { changes: true, replaces: [], detailedDiff: {} };
  const detailedDiff = { ...base.detailedDiff };
  const replaces = [...(base.replaces ?? [])];
  for (const k of unknown) {
    if (handler.replaceOn.includes(k) && !replaces.includes(k)) replaces.push(k);
    detailedDiff[k] = {
      kind: replaces.includes(k) ? "update-replace" : old[k] === undefined ? "add" : "update",
      inputDiff: true,
    };
  }
  return { changes: true, replaces, deleteBeforeReplace: true, detailedDiff };
}

/** Entry point of the serialized provider: `handle(kind, method, ...args)`. */
export async function handle(kind: string, method: string, ...args: unknown[]): Promise<unknown> {
  const handler = HANDLERS[kind];
  if (!handler) {
    throw new Error(
      `nettune: this version has no resource kind ${kind}; install the version that created it`,
    );
  }
  const warnings: string[] = [];
  let conn: Connection | undefined;
  // The resource's URN: in the new inputs (check, diff, create, update), else in the state.
  const props = (
    method === "create" ? args[0] : method === "check" ? args[1] : (args[2] ?? args[1])
  ) as Record<string, unknown> | undefined;
  const urn = urnOf(props);
  const say = sayFor(kind, urn, typeof args[0] === "string" ? args[0] : undefined);
  try {
    switch (method) {
      case "check":
        return await check(
          kind,
          handler,
          args[0] as Record<string, unknown>,
          args[1] as Record<string, unknown>,
          say,
        );
      case "diff": {
        const [id, olds, news] = args as [string, Record<string, unknown>, Record<string, unknown>];
        return await diff(handler, id, asState(kind, olds), news, say);
      }
      case "create": {
        const raw = args[0] as Record<string, unknown>;
        const inputs = handler.schema.parse(userInputs(raw));
        conn = inputs.connection;
        const owner = ownerIdentityOf(raw);
        const ctx = {
          ...contextFor(inputs.connection, warnings, say),
          owner: ownerOf(kind, owner, inputs),
        };
        const res = await handler.create(inputs, ctx);
        return { ...res, outs: withUrn(withOwner(res.outs, owner), urn) };
      }
      case "read": {
        const [id, props] = args as [string, Record<string, unknown>];
        const olds = asState(kind, props);
        conn = connectionSchema.parse(olds.connection);
        const res = await handler.read(id, olds, contextFor(conn, warnings, say));
        const owner = ownerIdentityOf(props);
        return {
          id,
          props: withUrn(withOwner(res.props, owner), urn),
          inputs: withUrn(withOwner(res.inputs, owner), urn),
        };
      }
      case "update": {
        const [id, olds, news] = args as [string, Record<string, unknown>, Record<string, unknown>];
        const inputs = handler.schema.parse(userInputs(news));
        conn = inputs.connection;
        const owner = ownerIdentityOf(news);
        const ctx = {
          ...contextFor(inputs.connection, warnings, say),
          owner: ownerOf(kind, owner, inputs, ownerIdentityOf(olds)),
        };
        const outs = await handler.update(id, asState(kind, olds), inputs, ctx);
        return { outs: withUrn(withOwner(outs, owner), urn) };
      }
      case "delete": {
        const [id, props] = args as [string, Record<string, unknown>];
        const olds = asState(kind, props);
        conn = connectionSchema.parse(olds.connection);
        const ctx = {
          ...contextFor(conn, warnings, say),
          owner: ownerOf(kind, ownerIdentityOf(props), olds),
        };
        await handler.delete(id, olds, ctx);
        return undefined;
      }
      default:
        throw new Error(`nettune: unknown provider method ${method}`);
    }
  } catch (err) {
    throw scrub(err, conn);
  } finally {
    await say.flush();
    writeStats();
  }
}

/**
 * With NETTUNE_STATS_DIR set, each provider process keeps a file of its SSH cost per host
 * (handshakes, commands), rewritten after every call: `npm run bench` reads them.
 */
function writeStats(): void {
  const dir = process.env.NETTUNE_STATS_DIR;
  if (!dir) return;
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(
      path.join(dir, `provider-${process.pid}.json`),
      JSON.stringify(defaultPool.stats()),
    );
  } catch {
    /* statistics never fail an operation */
  }
}
