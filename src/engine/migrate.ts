/**
 * State written by an older nettune, brought to this version's output names and types. The
 * provider runs it on every state the engine hands back (diff, update, refresh, delete), so the
 * specs only ever see the current shape. Each step recognises the old shape by its fields and
 * leaves a current state as it is.
 *
 * The scheme every kind follows: `originals` (what the host had before nettune) and `applied`
 * (what nettune set), typed like the inputs; `unitPath` for one systemd unit, `unitPaths` for
 * several (the unit files' paths); `filePath` / `modulesFilePath` for files; `warnings`.
 */
import { unitPathOf } from "../host/systemd";
import { typedOriginals } from "../specs/sysctlSet";

type State = Record<string, unknown>;

const has = (state: State, field: string) => Object.hasOwn(state, field);

/** `state` without `fields`. */
function without(state: State, ...fields: string[]): State {
  const out = { ...state };
  for (const f of fields) delete out[f];
  return out;
}

/** A unit's name as older state held it, as the path this version reports. */
const unitPath = (name: unknown) => (typeof name === "string" && name ? unitPathOf(name) : null);

const MIGRATIONS: Readonly<Record<string, (state: State) => State>> = {
  // `originalMtu`, `originalTxQueueLength` and `unit` (a unit name).
  Mtu(state) {
    if (!has(state, "originalMtu") && !has(state, "unit")) return state;
    return {
      ...without(state, "originalMtu", "originalTxQueueLength", "unit"),
      originals: state.originals ?? {
        mtu: state.originalMtu,
        txQueueLength: state.originalTxQueueLength ?? null,
      },
      unitPath: state.unitPath ?? unitPath(state.unit),
    };
  },

  // `original*` and `applied*` fields, `sysctlFile`, `modulesFile` and `units` (unit names).
  CongestionControl(state) {
    if (!has(state, "originalAlgorithm")) return state;
    const units = Array.isArray(state.units) ? (state.units as unknown[]) : [];
    return {
      ...without(
        state,
        "originalAlgorithm",
        "originalDefaultQdisc",
        "originalQdiscs",
        "appliedAlgorithm",
        "appliedDefaultQdisc",
        "appliedQdisc",
        "sysctlFile",
        "modulesFile",
        "units",
      ),
      originals: {
        algorithm: state.originalAlgorithm,
        defaultQdisc: state.originalDefaultQdisc ?? null,
        qdiscs: state.originalQdiscs ?? {},
      },
      applied: {
        algorithm: state.appliedAlgorithm ?? state.originalAlgorithm,
        defaultQdisc: state.appliedDefaultQdisc ?? null,
        qdisc: state.appliedQdisc ?? null,
      },
      filePath: state.sysctlFile ?? null,
      modulesFilePath: state.modulesFile ?? null,
      unitPaths: units.map(unitPath).filter((p) => p !== null),
    };
  },

  // `originals` as the kernel's text ("4096\t87380\t6291456"), and no `originalsText`.
  SysctlSet(state) {
    if (has(state, "originalsText")) return state;
    const texts: Record<string, string> = {};
    for (const [k, v] of Object.entries((state.originals ?? {}) as Record<string, unknown>))
      texts[k] = typeof v === "string" ? v : JSON.stringify(v);
    return { ...state, ...typedOriginals(texts) };
  },
};

/** `state` of a resource of `kind`, in this version's output names and types. */
export function migrateState(kind: string, state: State): State {
  const migrate = MIGRATIONS[kind];
  return migrate ? migrate(state) : state;
}
