/**
 * The lifecycle every nettune resource follows (DESIGN.md, "Lifecycle"):
 *
 *   check   zod validation, one failure per bad field; a new resource is also checked against
 *           its host (does the key exist, is the algorithm available), so preview fails before
 *           anything is applied (provider.ts says when and why not)
 *   diff    per-key, host change replaces; a changed resource is checked against its host here,
 *           in the engine's parallel phase
 *   create  read current, apply all-or-nothing, read back, verify, record originals
 *   read    live values, so refresh shows drift
 *   update  apply only what changed, restore what was removed
 *   delete  restore originals where the live value is still ours, say so where it is not
 */
import type * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";
import type { Transport } from "../transport/types";
import { connectionSchema, type Connection } from "../schemas/connection";
import type { OwnedSetting } from "../host/owners";

/** A check failure as Pulumi shows it: the property path and the reason. */
export interface Failure {
  readonly property: string;
  readonly reason: string;
}

export interface HandlerContext {
  readonly transport: Transport;
  /** A message the user should see (printed by the provider, kept in the resource's outputs). */
  warn(message: string): void;
  /** What preview found that is no problem (shown as info under the resource, not kept). */
  note?(message: string): void;
  /**
   * Who owns what the operation sets, for the ownership record on the host (engine/ownership.ts);
   * absent for state written before records existed.
   */
  readonly owner?: OwnerOf;
}

/** The resource's identity (`project/stack/Kind name`) and what it owns on its host. */
export interface OwnerOf {
  readonly identity: string;
  readonly settings: readonly OwnedSetting[];
  /** The identity the state had, when it differs (a renamed stack): its record is removed. */
  readonly previous?: string;
}

export interface ResourceHandler<Inputs extends { connection: Connection }, Outs extends Inputs> {
  readonly kind: string;
  readonly schema: z.ZodType<Inputs>;
  /**
   * Top-level inputs whose change makes it another resource (another host, interface or file):
   * used while some input is unknown at preview, when the handler's own diff cannot run.
   */
  readonly replaceOn: readonly string[];
  /** Read-only checks against the host; run at preview when the host answers. */
  hostCheck?(inputs: Inputs, ctx: HandlerContext): Promise<Failure[]>;
  diff(id: string, olds: Outs, news: Inputs): DiffResult;
  create(inputs: Inputs, ctx: HandlerContext): Promise<{ id: string; outs: Outs }>;
  read(id: string, olds: Outs, ctx: HandlerContext): Promise<{ props: Outs; inputs: Inputs }>;
  update(id: string, olds: Outs, news: Inputs, ctx: HandlerContext): Promise<Outs>;
  delete(id: string, olds: Outs, ctx: HandlerContext): Promise<void>;
}

/** What diff returns; `detailedDiff` is passed on where the engine's dynamic provider takes it. */
export type DiffResult = pulumi.dynamic.DiffResult & {
  readonly detailedDiff?: Record<
    string,
    { kind: "add" | "update" | "delete" | "update-replace"; inputDiff: boolean }
  >;
};

/** Pulumi's marker for a value not known during preview. */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

export function containsUnknown(value: unknown): boolean {
  if (value === UNKNOWN) return true;
  if (Array.isArray(value)) return value.some(containsUnknown);
  if (value && typeof value === "object") return Object.values(value).some(containsUnknown);
  return false;
}

/** `values["net.core.somaxconn"]`, `connection.port`, `features.gro`: a path users can read. */
export function propertyPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (typeof seg === "string" && /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(seg))
      out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out || "(input)";
}

/** Runs a zod schema and turns every issue into a failure naming its field. */
export function validate<T>(
  schema: z.ZodType<T>,
  input: unknown,
): { value?: T; failures: Failure[] } {
  const res = schema.safeParse(input);
  if (res.success) return { value: res.data, failures: [] };
  const failures = res.error.issues.flatMap((issue) =>
    // A misspelled field is named itself, not its parent object.
    issue.code === "unrecognized_keys"
      ? issue.keys.map((k) => ({
          property: propertyPath([...issue.path, k]),
          reason: `unknown field ${JSON.stringify(k)}`,
        }))
      : [{ property: propertyPath(issue.path), reason: issue.message }],
  );
  return { failures };
}

/** Failures as one error, for diff, create and update (check shows them one per field). */
export function failuresError(failures: readonly Failure[]): Error {
  return new Error(failures.map((f) => `${f.property}: ${f.reason}`).join("\n"));
}

/**
 * Drops Pulumi's bookkeeping (`__provider`), the resource's name (`__nettuneName`, which the
 * resource classes pass for check's messages), its owner identity (`__nettuneOwner`, see
 * {@link ownerIdentityOf}) and its URN (`__nettuneUrn`, for the provider's log, engine/log.ts)
 * before validation.
 */
export function userInputs(props: Record<string, unknown>): Record<string, unknown> {
  const {
    __provider: _p,
    __nettuneName: _n,
    __nettuneOwner: _o,
    __nettuneUrn: _u,
    ...rest
  } = props;
  return rest;
}

/**
 * `project/stack/Kind name`, passed by the resource classes as `__nettuneOwner`: check keeps it
 * in the inputs and every operation in the outputs, so delete has it. Undefined for state
 * written before ownership records existed.
 */
export function ownerIdentityOf(props: Record<string, unknown> | undefined): string | undefined {
  const o = props?.__nettuneOwner;
  return typeof o === "string" && o !== "" ? o : undefined;
}

/**
 * The error for inputs that fail validation or the host's check: one line per field, after the
 * resource's kind and name (`SysctlSet web: values["net.ipv4.tcp_rmem"]: ...`). Thrown from
 * Check, it reaches the user as written; Pulumi renders returned failures as
 * `property X value {<nil>} has a problem`.
 */
export function checkError(kind: string, name: unknown, failures: readonly Failure[]): Error {
  const who = typeof name === "string" && name !== "" ? `${kind} ${name}` : kind;
  const lines = failures.map((f) => `${f.property}: ${f.reason}`);
  return new Error(
    lines.length === 1
      ? `${who}: ${lines[0]}`
      : `${who}:\n${lines.map((l) => `  ${l}`).join("\n")}`,
  );
}

/**
 * Two connections as the current schema reads them: a state written before a field existed
 * (`waitForCloudInit`) gets its default, and is the same connection.
 */
export function sameConnection(a: unknown, b: unknown): boolean {
  const norm = (c: unknown) => {
    const r = connectionSchema.safeParse(c);
    return stableJson(r.success ? r.data : c);
  };
  return norm(a) === norm(b);
}

/** Connection fields whose change means another host: the resource is replaced. */
export function sameHost(a: Connection, b: Connection): boolean {
  return a.host === b.host && a.port === b.port;
}

/** JSON with object keys sorted, to compare values that went through the engine. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) =>
            a < b ? -1 : a > b ? 1 : 0,
          ),
        )
      : v,
  );
}

/**
 * The end of every resource's diff: replacing fields are marked in `detailedDiff`, and there
 * are changes when anything differs, the connection included (a rotated key changes no host,
 * but the state must hold it for later deletes). Replacement deletes first: two owners of the
 * same setting on one host must never exist side by side.
 */
export function diffResult(
  detailedDiff: NonNullable<DiffResult["detailedDiff"]>,
  replaces: string[],
  olds: { connection: unknown },
  news: { connection: unknown },
  otherChange = false,
): DiffResult {
  for (const r of replaces) detailedDiff[r] = { kind: "update-replace", inputDiff: true };
  // Another key, user or option on the same host: an update that marks `connection` (shown as
  // `~ connection: [secret]`), so the state holds what later operations log in with.
  if (!replaces.includes("connection") && !sameConnection(olds.connection, news.connection))
    detailedDiff.connection = { kind: "update", inputDiff: true };
  const changes = replaces.length > 0 || Object.keys(detailedDiff).length > 0 || otherChange;
  return { changes, replaces, deleteBeforeReplace: true, detailedDiff };
}
