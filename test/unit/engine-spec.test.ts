/**
 * The lifecycle engine on a spec of its own (no host): the diff every spec gets, restore-or-warn,
 * ids, migration of old state, and what refresh reports.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { changedOutside, restoreOrWarn } from "../../src/engine/restore";
import { handlerOf, resourceId, specDiff, type Spec } from "../../src/engine/spec";
import { connectionSchema, type Connection } from "../../src/schemas/connection";
import type { HandlerContext } from "../../src/engine/lifecycle";
import type { Transport } from "../../src/transport/types";

const conn = (host = "198.18.1.2", port = 22): Connection =>
  connectionSchema.parse({ host, port, user: "root", password: "pw" });

const schema = z.strictObject({
  connection: connectionSchema,
  name: z.string(),
  values: z.record(z.string(), z.number()),
  level: z.number().default(1),
});
type In = z.output<typeof schema>;
interface Out extends In {
  originals: Record<string, number>;
  warnings: string[];
}

const lower = (k: string) => k.toLowerCase();

function spec(live: Record<string, number | undefined>, probes: string[] = []) {
  const s: Spec<In, Out, Record<string, number | undefined>> = {
    kind: "Toy",
    schema,
    replaceOn: ["connection", "name"],
    keyed: { values: { same: (a, b) => a === b, key: lower } },
    outputs: ["originals"],
    migrate: (state) => ({ ...state, level: state.level ?? 1 }),
    id: (i) => `toy/${i.name}`,
    probe: (_t, i) => {
      probes.push(i.name);
      return Promise.resolve({ facts: live });
    },
    check: (i, facts) =>
      Object.keys(i.values)
        .filter((k) => !(lower(k) in facts))
        .map((k) => ({ property: `values.${k}`, reason: `no ${k} here` })),
    apply: (ctx, facts, olds, news) => {
      const originals = { ...olds?.originals };
      for (const k of Object.keys(news.values)) originals[k] ??= facts[lower(k)]!;
      for (const [k, v] of Object.entries(news.values)) live[lower(k)] = v;
      ctx.warn("applied");
      return Promise.resolve({ originals, warnings: [] });
    },
    release: (ctx, _facts, olds) => {
      for (const [k, orig] of Object.entries(olds.originals)) {
        const r = restoreOrWarn({
          what: k,
          live: live[lower(k)],
          applied: olds.values[k]!,
          original: orig,
          where: "toy",
        });
        if (r.action === "restore") live[lower(k)] = r.to;
        else if (r.action === "warn") ctx.warn(r.message);
      }
      return Promise.resolve();
    },
    live: (olds, facts) => ({
      values: Object.fromEntries(
        Object.keys(olds.values).map((k) => [k, facts?.[lower(k)]]),
      ) as Record<string, number>,
      level: undefined,
    }),
  };
  return s;
}

const ctx = (warnings: string[] = []): HandlerContext => ({
  transport: { target: "toy" } as Transport,
  warn: (m) => warnings.push(m),
});

const inputs = (values: Record<string, number>, extra: Partial<In> = {}): In =>
  schema.parse({ connection: conn(), name: "a", values, ...extra });

describe("specDiff", () => {
  const s = spec({});
  const olds = { ...inputs({ A: 1, B: 2 }), originals: {}, warnings: [] } as Out;

  it("diffs keyed inputs key by key and other inputs as a whole", () => {
    const d = specDiff(s, olds, inputs({ A: 1, B: 3, C: 4 }, { level: 2 }));
    expect(d).toMatchObject({ changes: true, replaces: [], deleteBeforeReplace: true });
    expect(d.detailedDiff).toEqual({
      "values.B": { kind: "update", inputDiff: true },
      "values.C": { kind: "add", inputDiff: true },
      level: { kind: "update", inputDiff: true },
    });
  });

  it("the same keys under other names are a change with no diff line", () => {
    const d = specDiff(s, olds, inputs({ a: 1, b: 2 }));
    expect(d).toMatchObject({ changes: true, replaces: [], detailedDiff: {} });
  });

  it("another host or a replacing input replaces; a port is another host", () => {
    expect(specDiff(s, olds, inputs({ A: 1, B: 2 }, { name: "b" })).replaces).toEqual(["name"]);
    const moved = { ...inputs({ A: 1, B: 2 }), connection: conn("198.18.1.2", 2222) };
    expect(specDiff(s, olds, moved).replaces).toEqual(["connection"]);
  });

  it("outputs and an unchanged declaration are no change", () => {
    expect(specDiff(s, olds, inputs({ A: 1, B: 2 }))).toMatchObject({ changes: false });
  });
});

describe("handlerOf", () => {
  it("create probes, refuses what the check finds before applying, and builds the id", async () => {
    const live: Record<string, number | undefined> = { a: 5 };
    const h = handlerOf(spec(live));
    await expect(h.create(inputs({ A: 1, Z: 2 }), ctx())).rejects.toThrow("values.Z: no Z here");
    expect(live).toEqual({ a: 5 });
    const warnings: string[] = [];
    const { id, outs } = await h.create(inputs({ A: 1 }), ctx(warnings));
    expect(id).toBe("root@198.18.1.2:22/toy/a");
    expect(outs).toMatchObject({ originals: { A: 5 }, warnings: ["applied"] });
    expect(warnings).toEqual(["applied"]);
  });

  it("refresh reports live values and leaves out what cannot be read, outputs and migrated fields", async () => {
    const live: Record<string, number | undefined> = { a: 7 };
    const h = handlerOf(spec(live));
    const old = { ...inputs({ A: 1, B: 2 }), originals: { A: 5 }, warnings: [] } as Out;
    const { level: _l, ...withoutLevel } = old;
    const r = await h.read("id", withoutLevel as Out, ctx());
    expect(r.inputs).toEqual({ connection: old.connection, name: "a", values: { A: 7 } });
    expect(Object.values(r.props).includes(undefined)).toBe(false);
    expect(r.props).toMatchObject({ originals: { A: 5 } });
  });

  it("delete restores where the value is still ours and warns where it is not", async () => {
    const live: Record<string, number | undefined> = { a: 1, b: 9 };
    const h = handlerOf(spec(live));
    const old = {
      ...inputs({ A: 1, B: 2 }),
      originals: { A: 5, B: 6 },
      warnings: [],
    } as Out;
    const warnings: string[] = [];
    await h.delete("id", old, ctx(warnings));
    expect(live).toEqual({ a: 5, b: 9 });
    expect(warnings).toEqual([changedOutside("B", "9", "2", "toy")]);
  });
});

describe("resourceId and restoreOrWarn", () => {
  it("an id names user, host, port and what; never a secret", () => {
    expect(resourceId(conn(), "x/y")).toBe("root@198.18.1.2:22/x/y");
    expect(resourceId(conn(), "x")).not.toContain("pw");
  });

  it("decides restore, nothing or warn", () => {
    const base = { what: "k", applied: 2, original: 1, where: "h" };
    expect(restoreOrWarn({ ...base, live: 2 })).toEqual({ action: "restore", to: 1 });
    expect(restoreOrWarn({ ...base, live: 1 })).toEqual({ action: "none" });
    expect(restoreOrWarn({ ...base, live: undefined })).toEqual({ action: "none" });
    expect(restoreOrWarn({ ...base, live: 3 })).toEqual({
      action: "warn",
      message: "k: left at 3 on h: it was changed outside nettune after it was set to 2",
    });
  });
});
