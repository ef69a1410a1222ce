/**
 * NetworkTuning: the resources of one host's interface, created from one plain model (a profile
 * and overrides) in a safe order, each a child that depends on the ones before it.
 *
 * The work lives in exported functions that take and return plain data, so the same model can
 * be merged, checked and rendered elsewhere: `mergeTuning` (profile + overrides),
 * `checkTuning` (every problem, by field, before anything is created) and `TUNING_ORDER` (the
 * steps in order, as data).
 */
import * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";
import { propertyPath, userInputs } from "../engine/lifecycle";
import { congestionControlSchema } from "../schemas/congestionControl";
import { irqAffinitySchema } from "../schemas/irqAffinity";
import { defaultSysctlFileName, defaultUnitName, deployName } from "../schemas/names";
import { mtuSchema } from "../schemas/mtu";
import { nicOffloadsSchema } from "../schemas/nicOffloads";
import { nicRingsSchema } from "../schemas/nicRings";
import { packetSteeringSchema } from "../schemas/packetSteering";
import type { SysctlValue } from "../schemas/publicTypes";
import { rssQueuesSchema } from "../schemas/rssQueues";
import { sysctlSetSchema } from "../schemas/sysctlSet";
import { xdpProgramSchema } from "../schemas/xdpProgram";
import type { ConnectionArgs } from "./connection";
import { CongestionControl, type CongestionControlArgs } from "./congestionControl";
import { IrqAffinity, type IrqAffinityArgs, type IrqPin } from "./irqAffinity";
import { Mtu, type MtuArgs } from "./mtu";
import { NicOffloads, type NicOffloadsArgs } from "./nicOffloads";
import { NicRings, type NicRingsArgs } from "./nicRings";
import { PacketSteering, type PacketSteeringArgs } from "./packetSteering";
import { RssQueues, type RssQueuesArgs } from "./rssQueues";
import { SysctlSet, type SysctlSetArgs, type SysctlValues } from "./sysctlSet";
import { XdpProgram, xdpObjectOf, type XdpAttached, type XdpProgramArgs } from "./xdpProgram";

/** A resource's inputs without the two NetworkTuning gives every child: the host and the interface. */
export type TuningPart<T> = Omit<T, "connection" | "interface">;

/**
 * What to tune on one host's interface: each field is the inputs of one resource (without
 * `connection` and `interface`), and only the fields set create a resource. A plain object:
 * spread and override it, keep it in a file, render it elsewhere.
 *
 * ```ts
 * const model: nettune.TuningModel = { ...nettune.profiles.apiGateway, mtu: { mtu: 9000 } };
 * ```
 *
 * `sysctls` and `congestion` are host-wide (not per interface): on a host with two tuned
 * interfaces, give them to one NetworkTuning only.
 */
export interface TuningModel {
  /** Channel counts (RssQueues' `combined`, or `rx`/`tx`; a count or `"max"`) and `persist`. */
  readonly queues?: TuningPart<Omit<RssQueuesArgs, "indirection">>;
  /** The RSS indirection table (RssQueues' `indirection`): `{ equal: N }` or `{ weights: [...] }`. */
  readonly rss?: RssQueuesArgs["indirection"];
  /** Where the queue interrupts go (IrqAffinity: `policy`, `exclude`, `irqbalance`, `persist`). */
  readonly irq?: TuningPart<IrqAffinityArgs>;
  /** RPS, RFS and XPS (PacketSteering: `rps`, `rfs`, `xps`, `persist`). */
  readonly steering?: TuningPart<PacketSteeringArgs>;
  /** Ring sizes (NicRings: `rx`, `tx`, a size or `"max"`). */
  readonly rings?: TuningPart<NicRingsArgs>;
  /** Offload features (NicOffloads: `features`, `persist`, `rollbackAfter`). */
  readonly offloads?: TuningPart<NicOffloadsArgs>;
  /** The MTU (Mtu's inputs), or just the number: `mtu: 9000` is `mtu: { mtu: 9000 }`. */
  readonly mtu?: number | TuningPart<MtuArgs>;
  /** The congestion control algorithm and its qdisc (CongestionControl's inputs). Host-wide. */
  readonly congestion?: Omit<CongestionControlArgs, "connection">;
  /**
   * Kernel parameters (SysctlSet's `values`). Host-wide. Overrides merge key by key. A key owned
   * by another part (`net.ipv4.tcp_congestion_control` with `congestion`) is refused.
   */
  readonly sysctls?: SysctlValues;
  /** SysctlSet's other inputs (`persist`, `fileName`, `behindNat`) for `sysctls`. */
  readonly sysctlOptions?: Omit<SysctlSetArgs, "connection" | "values">;
  /** An XDP program (XdpProgram's inputs), e.g. `nettune.xdp.synFlood({ ports: [443] })`. */
  readonly xdp?: TuningPart<XdpProgramArgs>;
}

/** The fields of a tuning model ({@link TUNING_ORDER} says which step takes each). */
export type TuningField = keyof TuningModel;

/** A `sysctls` override: a value replaces the profile's, `null` drops the key. */
export type SysctlOverrides = {
  readonly [K in keyof SysctlValues]?: SysctlValues[K] | null;
};

/**
 * Overrides of a profile: a field given replaces the profile's field whole, `null` drops it, and
 * a field left out (or `undefined`) keeps the profile's. `sysctls` merges key by key instead:
 * a key given replaces the profile's value, `null` drops the key.
 */
export type TuningOverrides = {
  readonly [K in TuningField]?: (K extends "sysctls" ? SysctlOverrides : TuningModel[K]) | null;
};

export interface NetworkTuningArgs extends TuningOverrides {
  /**
   * How to reach the host over SSH: the fields of `@pulumi/command`'s `remote.ConnectionArgs`
   * plus `sudo` and `commandTimeout`, each a `pulumi.Input`. Given to every child; stored as a
   * secret.
   */
  readonly connection: pulumi.Input<ConnectionArgs>;
  /** The interface the per-interface parts tune, e.g. `eth0`. */
  readonly interface: pulumi.Input<string>;
  /**
   * The model to start from, e.g. `nettune.profiles.apiGateway`; the other fields of these args
   * override it (see {@link TuningOverrides}). Default: nothing, only the fields given.
   */
  readonly profile?: TuningModel;
}

/** The resource classes NetworkTuning creates. */
export type TuningKind =
  | "RssQueues"
  | "IrqAffinity"
  | "PacketSteering"
  | "NicRings"
  | "NicOffloads"
  | "Mtu"
  | "CongestionControl"
  | "SysctlSet"
  | "XdpProgram";

/** One step of {@link TUNING_ORDER}. */
export interface TuningStep {
  /** The child's name is `<component name>-<child>`. */
  readonly child: string;
  readonly kind: TuningKind;
  /** The model fields the step takes; the step exists when one of them is set. */
  readonly fields: readonly TuningField[];
  /** Why it comes here. */
  readonly why: string;
}

/**
 * The steps in the order NetworkTuning creates them; each child depends on every child before
 * it, so `pulumi up` applies them in this order and `pulumi destroy` restores them in reverse.
 */
export const TUNING_ORDER: readonly TuningStep[] = Object.freeze(
  [
    {
      child: "queues",
      kind: "RssQueues",
      fields: ["queues", "rss"],
      why:
        "changing the channel count re-creates the queues and their interrupts, so everything per " +
        "queue comes after it; the RSS table belongs to the same resource, which orders count and " +
        "table itself (a table pointing past the last queue blocks a smaller count)",
    },
    {
      child: "irqs",
      kind: "IrqAffinity",
      fields: ["irq"],
      why: "pins the queue interrupts that exist once the count is final, and keeps irqbalance off them",
    },
    {
      child: "steering",
      kind: "PacketSteering",
      fields: ["steering"],
      why: "RPS/XPS files exist per queue: written for the final queues, next to the interrupts' CPUs",
    },
    {
      child: "rings",
      kind: "NicRings",
      fields: ["rings"],
      why: "ring sizes keep the queue layout; many drivers reset the link to resize, so it happens once the layout is set",
    },
    {
      child: "offloads",
      kind: "NicOffloads",
      fields: ["offloads"],
      why: "NIC features keep the queue layout; set before the MTU and XDP, whose limits depend on them (LRO off for XDP)",
    },
    {
      child: "mtu",
      kind: "Mtu",
      fields: ["mtu"],
      why: "the last link change: fq sizes its quantum from the MTU when the qdisc is created, and XDP checks its MTU limit",
    },
    {
      child: "congestion",
      kind: "CongestionControl",
      fields: ["congestion"],
      why: "the qdisc is created on the final link; the algorithm is for new connections",
    },
    {
      child: "sysctls",
      kind: "SysctlSet",
      fields: ["sysctls", "sysctlOptions"],
      why: "host-wide TCP and socket parameters, independent of the link: applied once the link is settled",
    },
    {
      child: "xdp",
      kind: "XdpProgram",
      fields: ["xdp"],
      why: "last: a program sees the final MTU and offloads, and one that cuts the host off is rolled back before anything else depends on it",
    },
  ].map((s) => Object.freeze({ ...s, fields: Object.freeze(s.fields) })) as TuningStep[],
);

const MODEL_FIELDS: readonly TuningField[] = TUNING_ORDER.flatMap((s) => s.fields);
const ARGS_FIELDS: readonly string[] = ["connection", "interface", "profile", ...MODEL_FIELDS];

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** Whether a value holds something only known at deployment: an Output or a promise. */
function holdsDeferred(v: unknown): boolean {
  if (pulumi.Output.isInstance(v)) return true;
  if (v instanceof Promise) return true;
  if (Array.isArray(v)) return v.some(holdsDeferred);
  if (isObject(v)) return Object.values(v).some(holdsDeferred);
  return false;
}

/**
 * A profile with overrides applied. A field given replaces the profile's field whole; `null`
 * drops it; left out or `undefined`, the profile's stays. `sysctls` merges key by key (a value
 * replaces, `null` drops the key; `sysctls: null` drops them all); a `sysctls` left empty is no
 * field. `mtu: 9000` becomes `mtu: { mtu: 9000 }`. Neither argument is changed.
 */
export function mergeTuning(
  profile: TuningModel | undefined,
  overrides: TuningOverrides = {},
): TuningModel {
  const base = (profile ?? {}) as Record<string, unknown>;
  const over = overrides as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const field of MODEL_FIELDS) {
    const o = over[field];
    if (o === null) continue; // dropped: the profile's part is not even read
    const b = base[field];
    let v: unknown;
    if (field === "sysctls" && isObject(o)) {
      const merged: Record<string, unknown> = isObject(b) ? { ...b } : {};
      for (const [k, x] of Object.entries(o)) {
        if (x === null) delete merged[k];
        else if (x !== undefined) merged[k] = x;
      }
      v = merged;
    } else {
      v = o === undefined ? b : o;
    }
    if (v === undefined || v === null) continue;
    if (field === "sysctls" && isObject(v) && Object.keys(v).length === 0) continue;
    if (field === "mtu" && typeof v === "number") v = { mtu: v };
    out[field] = v;
  }
  return out;
}

/** One problem with a model or the args, named by field. */
export interface TuningProblem {
  /** `mtu.mtu`, `sysctls["net.core.somaxconn"]`, `profile.queuez`. */
  readonly field: string;
  readonly reason: string;
}

/** A placeholder host for checking the parts: the connection is checked by each child. */
const PLACEHOLDER_CONNECTION = { host: "192.0.2.1", user: "root", password: "placeholder" };

/** The setting a model field claims on the host, for the one-owner rule. */
function claimsOf(model: TuningModel): { setting: string; field: string }[] {
  const claims: { setting: string; field: string }[] = [];
  for (const key of Object.keys(model.sysctls ?? {}))
    claims.push({ setting: key, field: propertyPath(["sysctls", key]) });
  if (model.congestion) {
    claims.push({
      setting: "net.ipv4.tcp_congestion_control",
      field: "congestion.algorithm",
    });
    if (model.congestion.qdisc !== undefined)
      claims.push({ setting: "net.core.default_qdisc", field: "congestion.qdisc" });
  }
  if (isObject(model.steering) && model.steering.rfs !== undefined)
    claims.push({
      setting: "net.core.rps_sock_flow_entries",
      field: "steering.rfs.flowEntries",
    });
  return claims;
}

/** bigint constants as the XdpProgram class sends them (a string of digits). */
function wireConstants(c: unknown): unknown {
  const one = (v: unknown): unknown =>
    typeof v === "bigint" ? v.toString() : Array.isArray(v) ? v.map(one) : v;
  return isObject(c) ? Object.fromEntries(Object.entries(c).map(([k, v]) => [k, one(v)])) : c;
}

/**
 * The inputs a step's resource class sends to the provider, with a placeholder connection, and
 * how a path in them maps back to the model's field. Undefined when the step is not in the model.
 * `tag` is the stack tag the default file and unit names carry (../schemas/names.ts).
 */
function stepInputs(
  step: TuningStep,
  model: TuningModel,
  childName: string,
  ifname: string,
  tag: string | undefined,
):
  { inputs: Record<string, unknown>; field: (path: readonly PropertyKey[]) => string } | undefined {
  const connection = PLACEHOLDER_CONNECTION;
  const iface = { connection, interface: ifname };
  const under = (field: string) => (path: readonly PropertyKey[]) => propertyPath([field, ...path]);
  switch (step.child) {
    case "queues": {
      if (model.queues === undefined && model.rss === undefined) return undefined;
      return {
        inputs: {
          ...model.queues,
          indirection: model.rss,
          ...iface,
          unitName: defaultUnitName("RssQueues", childName, tag),
        },
        field: ([head, ...rest]) =>
          head === "indirection"
            ? propertyPath(["rss", ...rest])
            : head === undefined
              ? "queues"
              : propertyPath(["queues", head, ...rest]),
      };
    }
    case "irqs":
      return model.irq === undefined
        ? undefined
        : {
            inputs: {
              ...model.irq,
              ...iface,
              unitName: defaultUnitName("IrqAffinity", childName, tag),
            },
            field: under("irq"),
          };
    case "steering":
      return model.steering === undefined
        ? undefined
        : {
            inputs: {
              ...model.steering,
              ...iface,
              unitName: defaultUnitName("PacketSteering", childName, tag),
            },
            field: under("steering"),
          };
    case "rings":
      return model.rings === undefined
        ? undefined
        : {
            inputs: {
              ...model.rings,
              ...iface,
              unitName: defaultUnitName("NicRings", childName, tag),
            },
            field: under("rings"),
          };
    case "offloads":
      return model.offloads === undefined
        ? undefined
        : {
            inputs: {
              ...model.offloads,
              ...iface,
              unitName: defaultUnitName("NicOffloads", childName, tag),
            },
            field: under("offloads"),
          };
    case "mtu":
      return model.mtu === undefined
        ? undefined
        : {
            inputs: {
              ...(model.mtu as object),
              ...iface,
              resourceName: deployName(childName, tag),
            },
            field: under("mtu"),
          };
    case "congestion":
      return model.congestion === undefined
        ? undefined
        : {
            inputs: { ...model.congestion, connection, resourceName: deployName(childName, tag) },
            field: under("congestion"),
          };
    case "sysctls":
      return model.sysctls === undefined
        ? undefined
        : {
            inputs: {
              ...model.sysctlOptions,
              fileName: model.sysctlOptions?.fileName ?? defaultSysctlFileName(childName, tag),
              values: model.sysctls,
              connection,
            },
            field: ([head, ...rest]) =>
              head === "values"
                ? propertyPath(["sysctls", ...rest])
                : propertyPath(["sysctlOptions", ...(head === undefined ? [] : [head]), ...rest]),
          };
    case "xdp": {
      if (model.xdp === undefined) return undefined;
      // The object is read (or compiled) by the class; the schema sees its hash and bytes.
      const { program: _program, constants, ...rest } = model.xdp;
      return {
        inputs: {
          ...rest,
          ...(constants === undefined ? {} : { constants: wireConstants(constants) }),
          ...iface,
          unitName: defaultUnitName("XdpProgram", childName, tag),
          objectSha256: "0".repeat(64),
          objectBase64: "",
        },
        field: under("xdp"),
      };
    }
    default:
      return undefined;
  }
}

/** Each child kind's schema: what its provider accepts. */
const TUNING_SCHEMAS: Readonly<Record<TuningKind, z.ZodType>> = {
  RssQueues: rssQueuesSchema,
  IrqAffinity: irqAffinitySchema,
  PacketSteering: packetSteeringSchema,
  NicRings: nicRingsSchema,
  NicOffloads: nicOffloadsSchema,
  Mtu: mtuSchema,
  CongestionControl: congestionControlSchema,
  SysctlSet: sysctlSetSchema,
  XdpProgram: xdpProgramSchema,
};

/**
 * The inputs a step's resource sends its provider once checked (defaults filled in), with a
 * placeholder connection; undefined when the model has no part for the step. For renderings of
 * the model other than the resources (`nettune.cloudInit`). Throws when a part is invalid:
 * {@link checkTuning} first.
 */
export function stepProviderInputs(
  step: TuningStep,
  model: TuningModel,
  childName: string,
  ifname: string,
  tag: string | undefined,
): unknown {
  const built = stepInputs(step, model, childName, ifname, tag);
  return built === undefined
    ? undefined
    : TUNING_SCHEMAS[step.kind].parse(userInputs(built.inputs));
}

/** What a part of the model must look like, for errors about its shape. */
const SHAPES: Readonly<Record<TuningField, string>> = {
  queues: 'an object such as { combined: "max" }',
  rss: "an object such as { equal: 4 }",
  irq: 'an object such as { policy: "spread" }',
  steering: "an object such as { rfs: { flowEntries: 32768 } }",
  rings: 'an object such as { rx: "max" }',
  offloads: "an object such as { features: { gro: true, lro: false } }",
  mtu: "a number or an object such as { mtu: 9000 }",
  congestion: 'an object such as { algorithm: "bbr", qdisc: "fq" }',
  sysctls: 'an object of sysctl keys and values such as { "net.core.somaxconn": 16384 }',
  sysctlOptions: 'an object such as { persist: "both" }',
  xdp: "an object such as nettune.xdp.synFlood({ ports: [443] })",
};

function shapeProblems(
  where: string,
  model: unknown,
  what: string,
  dropped: ReadonlySet<string> = new Set(),
): TuningProblem[] {
  if (model === undefined) return [];
  if (!isObject(model)) return [{ field: where || "(args)", reason: `must be ${what}` }];
  const problems: TuningProblem[] = [];
  const prefix = where ? `${where}.` : "";
  const known = where === "profile" ? MODEL_FIELDS : ARGS_FIELDS;
  for (const k of Object.keys(model)) {
    if (dropped.has(k)) continue;
    let v: unknown;
    try {
      v = model[k]; // a profile may make a part when it is first read (apiGateway's XDP object)
    } catch (e) {
      problems.push({ field: `${prefix}${k}`, reason: e instanceof Error ? e.message : String(e) });
      continue;
    }
    if (!known.includes(k)) {
      problems.push({
        field: `${prefix}${k}`,
        reason: `unknown field; the fields are ${known.join(", ")}`,
      });
      continue;
    }
    const field = k as TuningField;
    if (!(MODEL_FIELDS as readonly string[]).includes(k) || v === undefined) continue;
    if (v === null && where !== "profile") continue; // an override dropping the field
    const ok =
      field === "mtu"
        ? typeof v === "number" || isObject(v)
        : field === "rss"
          ? isObject(v) || holdsDeferred(v)
          : isObject(v);
    if (!ok) problems.push({ field: `${prefix}${k}`, reason: `must be ${SHAPES[field]}` });
  }
  return problems;
}

/**
 * Every problem of NetworkTuning's args, by field, without touching a host: unknown fields
 * (of the args and of the profile), parts of the wrong shape, a setting two parts own, and
 * whatever each child's own validation refuses (the resources' schemas, run here on the parts
 * that hold no Output; the others are checked by their resource at preview). Also returns the
 * merged model.
 */
export function checkTuning(
  name: string,
  args: NetworkTuningArgs,
): { model: TuningModel; problems: TuningProblem[] } {
  // Fields the overrides drop are not read from the profile at all.
  const dropped = new Set(
    isObject(args)
      ? Object.keys(args).filter((k) => (args as Record<string, unknown>)[k] === null)
      : [],
  );
  const problems = [
    ...shapeProblems("", args, "an object of NetworkTuning's inputs"),
    ...shapeProblems(
      "profile",
      args?.profile,
      "a tuning model, e.g. nettune.profiles.apiGateway",
      dropped,
    ),
  ];
  if (problems.length > 0) return { model: {}, problems };
  const { connection: _c, interface: _i, profile, ...overrides } = args;
  const model = mergeTuning(profile, overrides);

  // One owner per setting: two children setting one key would undo each other.
  const owners = new Map<string, string>();
  for (const { setting, field } of claimsOf(model)) {
    const other = owners.get(setting);
    if (other !== undefined) {
      problems.push({
        field,
        reason:
          `${setting} is also set by ${other}; a setting has one owner: ` +
          `drop one of them (null in the overrides)`,
      });
    } else owners.set(setting, field);
  }
  if (model.sysctlOptions !== undefined && model.sysctls === undefined)
    problems.push({ field: "sysctlOptions", reason: "set without sysctls: nothing to apply" });

  const ifname = typeof args.interface === "string" ? args.interface : "eth0";
  const seen = new Set<string>();
  const add = (field: string, reason: string) => {
    const key = `${field}: ${reason}`;
    if (!seen.has(key)) problems.push({ field, reason });
    seen.add(key);
  };
  for (const step of TUNING_ORDER) {
    const childName = `${name}-${step.child}`;
    if (step.child === "xdp" && model.xdp) {
      // What XdpProgram reads (or compiles) when it is declared.
      try {
        xdpObjectOf(childName, model.xdp.program);
      } catch (e) {
        const m = /^XdpProgram [^:]+: (?:(program(?:\.\w+)?): )?([\s\S]*)$/.exec(
          e instanceof Error ? e.message : String(e),
        );
        add(`xdp.${m?.[1] ?? "program"}`, m?.[2] ?? String(e));
      }
    }
    // Names do not matter to the shape check: no stack tag.
    const built = stepInputs(step, model, childName, ifname, undefined);
    if (!built || holdsDeferred(built.inputs)) continue;
    const res = TUNING_SCHEMAS[step.kind].safeParse(built.inputs);
    if (res.success) continue;
    for (const issue of res.error.issues) {
      // A misspelled field is named itself, not its parent object.
      const paths =
        issue.code === "unrecognized_keys"
          ? issue.keys.map((k) => [...issue.path, k])
          : [issue.path];
      const reason = issue.code === "unrecognized_keys" ? "unknown field" : issue.message;
      for (const path of paths)
        add(path[0] === "interface" ? "interface" : built.field(path), reason);
    }
  }
  return { model, problems };
}

/** What the host decided where the model leaves it to the host, once applied. */
export interface TuningChoices {
  /** Channel counts, `"max"` resolved to the driver's maximum (RssQueues' `applied`). */
  readonly queues?: { rx?: number; tx?: number; combined?: number };
  /** Where each queue interrupt went, `"spread"` or `"numa-local"` resolved to CPUs. */
  readonly irqs?: IrqPin[];
  /** Ring sizes, `"max"` resolved (NicRings' `applied`). */
  readonly rings?: { rx?: number; tx?: number };
  /**
   * The algorithm a new connection got, the kernel modules loaded for it and the qdisc, and
   * what was set (`applied`: the qdisc, or its fallback where the host has no `qdisc`).
   */
  readonly congestion?: {
    observedAlgorithm: string | null;
    modules: string[];
    applied: { algorithm: string; defaultQdisc: string | null; qdisc: string | null };
  };
  /** The sysctls as applied. */
  readonly sysctls?: Record<string, SysctlValue>;
  /** The XDP program attached. */
  readonly xdp?: XdpAttached;
}

/**
 * The tuning of one host's interface from one model: a profile (`nettune.profiles.*`) and
 * overrides, created as child resources in the order of {@link TUNING_ORDER}, each depending on
 * the ones before it. Only the parts the model sets are created. The args are checked before
 * anything is created: an unknown field, a part of the wrong shape, a value a child would refuse
 * or a setting two parts own fails naming the field.
 *
 * ```ts
 * new nettune.NetworkTuning("edge-1", {
 *   connection,
 *   interface: "eth0",
 *   profile: nettune.profiles.apiGateway,
 *   sysctls: { "net.core.somaxconn": 32768 }, // merged key by key into the profile's
 *   xdp: null,                                // drop a part of the profile
 * });
 * ```
 */
export class NetworkTuning extends pulumi.ComponentResource {
  /** The model after overrides: what the children were created from. */
  declare public readonly model: TuningModel;
  /** The children in the order they are applied. */
  declare public readonly resources: readonly pulumi.CustomResource[];
  declare public readonly queues: RssQueues | undefined;
  declare public readonly irqs: IrqAffinity | undefined;
  declare public readonly steering: PacketSteering | undefined;
  declare public readonly rings: NicRings | undefined;
  declare public readonly offloads: NicOffloads | undefined;
  declare public readonly mtu: Mtu | undefined;
  declare public readonly congestion: CongestionControl | undefined;
  declare public readonly sysctls: SysctlSet | undefined;
  declare public readonly xdp: XdpProgram | undefined;
  /** What the host chose where the model leaves it to the host (`"max"`, `"spread"`, modules). */
  declare public readonly chosen: pulumi.Output<TuningChoices>;

  constructor(name: string, args: NetworkTuningArgs, opts?: pulumi.ComponentResourceOptions) {
    // Checked before anything is registered: a bad field creates nothing.
    const { model, problems } = checkTuning(name, args);
    if (problems.length > 0) {
      const lines = problems.map((p) => `${p.field}: ${p.reason}`);
      throw new Error(
        lines.length === 1
          ? `NetworkTuning ${name}: ${lines[0]}`
          : `NetworkTuning ${name}: ${lines.length} problems; nothing was created:\n${lines.join("\n")}`,
      );
    }
    super("nettune:index:NetworkTuning", name, {}, opts);
    this.model = model;
    const created: pulumi.CustomResource[] = [];
    const child = <R extends pulumi.CustomResource>(
      make: (childName: string, o: pulumi.CustomResourceOptions) => R,
      suffix: string,
    ): R => {
      const r = make(`${name}-${suffix}`, { parent: this, dependsOn: [...created] });
      created.push(r);
      return r;
    };
    const connection = args.connection;
    const iface = { connection, interface: args.interface };
    const { queues, rss, irq, steering, rings, offloads, congestion, sysctls, xdp } = model;
    const mtu = model.mtu as TuningPart<MtuArgs> | undefined; // mergeTuning made it an object

    if (queues !== undefined || rss !== undefined)
      this.queues = child(
        (n, o) => new RssQueues(n, { ...queues, indirection: rss, ...iface }, o),
        "queues",
      );
    if (irq) this.irqs = child((n, o) => new IrqAffinity(n, { ...irq, ...iface }, o), "irqs");
    if (steering)
      this.steering = child(
        (n, o) => new PacketSteering(n, { ...steering, ...iface }, o),
        "steering",
      );
    if (rings) this.rings = child((n, o) => new NicRings(n, { ...rings, ...iface }, o), "rings");
    if (offloads)
      this.offloads = child((n, o) => new NicOffloads(n, { ...offloads, ...iface }, o), "offloads");
    if (mtu) {
      this.mtu = child((n, o) => new Mtu(n, { ...mtu, ...iface }, o), "mtu");
      if (typeof mtu.mtu === "number" && mtu.mtu > 1500 && mtu.verifyPeers === undefined) {
        void pulumi.log.warn(
          `mtu ${mtu.mtu} without verifyPeers: every device on the path must take it, and ` +
            `nothing checks that they do; list peers to ping with "don't fragment" at the new size`,
          this,
        );
      }
    }
    if (congestion)
      this.congestion = child(
        (n, o) => new CongestionControl(n, { ...congestion, connection }, o),
        "congestion",
      );
    if (sysctls)
      this.sysctls = child(
        (n, o) => new SysctlSet(n, { ...model.sysctlOptions, values: sysctls, connection }, o),
        "sysctls",
      );
    if (xdp) this.xdp = child((n, o) => new XdpProgram(n, { ...xdp, ...iface }, o), "xdp");

    this.resources = created;
    this.chosen = pulumi.output({
      queues: this.queues?.applied,
      irqs: this.irqs?.applied,
      rings: this.rings?.applied,
      congestion: this.congestion
        ? {
            observedAlgorithm: this.congestion.observedAlgorithm,
            modules: this.congestion.modules,
            applied: this.congestion.applied,
          }
        : undefined,
      sysctls: this.sysctls?.applied,
      xdp: this.xdp?.attached,
    });
    this.registerOutputs({ chosen: this.chosen });
  }
}
