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
import type { Failure } from "../engine/lifecycle";
import { handlerOf, type Spec } from "../engine/spec";
import { missingTool, outputOf, type StepResult } from "../engine/batch";
import * as link from "./link";

type Field = "rx" | "tx";
const FIELDS: readonly Field[] = ["rx", "tx"];

/** Ring sizes; null where the driver has no such ring. */
export type RingSizes = {
  rx: number | null;
  tx: number | null;
};

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

function readRings(step: StepResult | undefined, target: string): EthtoolRings | "unsupported" {
  if (!step) throw new Error("readRings: the ethtool -g step is missing");
  const missing = missingTool(step, target);
  if (missing) throw new Error(missing);
  try {
    return parseEthtoolRings(outputOf(step));
  } catch (err) {
    if (err instanceof ParseError && err.unsupported) return "unsupported";
    throw err;
  }
}

type Facts = link.LinkFacts<EthtoolRings | "unsupported">;

/** The declared sizes with "max" resolved, and what the driver cannot take. */
function plan(
  inputs: NicRingsInputs,
  facts: Facts,
): { failures: Failure[]; sizes: Partial<Record<Field, number>> } {
  const { info, own: rings } = facts;
  const fields = FIELDS.filter((f) => inputs[f] !== undefined);
  const sizes: Partial<Record<Field, number>> = {};
  if (rings === "unsupported") {
    const reason = `ring sizes are not supported by driver ${info.driver} on ${info.ifname}`;
    return { failures: [{ property: fields[0] ?? "rx", reason }], sizes };
  }
  const failures: Failure[] = [];
  for (const f of fields) {
    const want = inputs[f] as Count;
    const max = rings.max[f];
    if (max === null || max < 1) {
      failures.push({ property: f, reason: `${link.describeLink(info)} has no ${f} ring to size` });
    } else if (want !== "max" && want > max) {
      failures.push({
        property: f,
        reason: `${want} is more than the maximum ${f} ring size of ${max} on ${link.describeLink(info)}`,
      });
    } else {
      sizes[f] = want === "max" ? max : want;
    }
  }
  return { failures, sizes };
}

/** The journal of originals: `/var/lib/nettune/originals/rings-<interface>-<unit>`. */
export const JOURNAL = "rings";

function unitOf(inputs: NicRingsInputs, sizes: Partial<Record<Field, number>>) {
  return link.linkUnit(inputs, `nettune NicRings on ${inputs.interface}`, [
    renderEthtoolRings(inputs.interface, sizes),
  ]);
}

/** Ring sizes as keyed settings: one `ethtool -G`, verified by `ethtool -g`. */
function keyed(info: link.LinkInfo, target: string): link.KeyedSettings<number | null> {
  return {
    set: (c) => [renderEthtoolRings(info.ifname, c)],
    readBack: [renderEthtoolShow("rings", info.ifname)],
    after([read]) {
      const r = readRings(read, target);
      if (r === "unsupported")
        throw new Error(`ethtool -g stopped working on ${link.describeLink(info)}`);
      return sizesOf(r.current);
    },
    property: (key) => key,
    show: (v) => (v === null || v === undefined ? "n/a" : String(v)),
  };
}

const live = (facts: Facts): RingSizes =>
  facts.own === "unsupported" ? { rx: null, tx: null } : sizesOf(facts.own.current);

export const nicRingsSpec: Spec<NicRingsInputs, NicRingsOutputs, Facts> = {
  kind: "NicRings",
  schema: nicRingsSchema,
  replaceOn: link.LINK_REPLACE_ON,
  shows: link.linkShows,
  outputs: ["originals", "applied", "maximums", "driver", "unitPath"],
  id: (inputs) => link.linkPath("rings", inputs),

  probe: (t, inputs) =>
    link.probeLink(t, inputs.interface, [renderEthtoolShow("rings", inputs.interface)], ([s]) =>
      readRings(s, t.target),
    ),

  check: (inputs, facts) => plan(inputs, facts).failures,

  asDeclared(inputs, facts) {
    const { sizes, failures } = plan(inputs, facts);
    const before = live(facts);
    return (
      failures.length === 0 && FIELDS.every((f) => sizes[f] === undefined || before[f] === sizes[f])
    );
  },

  async apply(ctx, facts, olds, news) {
    const t = ctx.transport;
    const { sizes } = plan(news, facts);
    const before = live(facts);
    const k = keyed(facts.info, t.target);
    // Sizes no longer declared go back to their originals, where still ours.
    const target = olds
      ? {
          ...link.giveBackUndeclared(
            ctx,
            facts.info,
            k,
            before,
            sizes,
            olds.applied,
            olds.originals,
          ),
          ...sizes,
        }
      : sizes;
    const unit = news.persist ? unitOf(news, sizes) : undefined;
    const oldUnit = olds?.persist ? olds.unitName : undefined;
    const journaled = await link.applyKeyed(
      t,
      facts.info,
      k,
      before,
      target,
      link.persistCommands(unit, oldUnit ? [oldUnit] : []),
      olds?.persist
        ? link.persistCommands(unitOf(olds, olds.applied), unit ? [unit.name] : [])
        : link.persistCommands(undefined, unit ? [unit.name] : []),
      undefined,
      link.journalOf(JOURNAL, olds, news),
    );
    const rings = facts.own as EthtoolRings;
    return {
      originals: olds?.originals ?? { ...before, ...journaled },
      applied: sizes,
      maximums: sizesOf(rings.max),
      driver: facts.info.driver,
      unitPath: unit ? link.unitPathOf(unit.name) : null,
      warnings: [],
    };
  },

  async release(ctx, facts, olds) {
    const units = olds.persist ? [olds.unitName] : [];
    const info = facts?.info;
    await link.releaseKeyed(
      ctx,
      info,
      keyed(
        info ?? { ifname: olds.interface, driver: "", link: {} as never },
        ctx.transport.target,
      ),
      facts ? live(facts) : {},
      olds.applied,
      olds.originals,
      units,
      link.journalPathOf(JOURNAL, olds),
    );
  },

  live(olds, facts) {
    const out: Partial<Record<Field, Count | undefined>> = { rx: undefined, tx: undefined };
    const r = facts?.own;
    if (!r || r === "unsupported") return out;
    for (const f of FIELDS) {
      const now = r.current[f];
      if (olds[f] === undefined || now === null) continue;
      out[f] = olds[f] === "max" && now === r.max[f] ? "max" : now;
    }
    return out;
  },
};

export const nicRingsHandler = handlerOf(nicRingsSpec);
