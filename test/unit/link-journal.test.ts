/**
 * The journal of originals of the interface resources (NicOffloads, NicRings, RssQueues) against
 * the fake link host: written before the first change, read by a create run again after an
 * answer that never arrived, removed by delete and by a failed apply that wrote it, and the
 * commit-confirmed rollback undoing everything the apply wrote (features, unit, journal).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";

import type { HandlerContext } from "../../src/engine/lifecycle";
import { featureState, nicOffloadsHandler as offloads } from "../../src/specs/nicOffloads";
import { nicOffloadsSchema } from "../../src/schemas/nicOffloads";
import { nicRingsHandler as rings } from "../../src/specs/nicRings";
import { nicRingsSchema } from "../../src/schemas/nicRings";
import { rssQueuesHandler as rss } from "../../src/specs/rssQueues";
import { rssQueuesSchema } from "../../src/schemas/rssQueues";
import * as link from "../../src/specs/link";
import { parseEthtoolFeatures, renderEthtoolFeatures } from "../../src/host/ethtool";
import { FakeLinkHost, type DeviceOptions } from "../helpers/fakeLinkHost";

const CONNECTION = {
  host: "198.18.9.9",
  privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
};
const VETH: DeviceOptions = { fixture: "veth-b", ifname: "eth0" };
const VIRTIO: DeviceOptions = { fixture: "virtio_net-eth0", ifname: "eth0" };
const OFFLOADS_UNIT = "nettune-nicoffloads-eth0-offloads.service";
const OFFLOADS_JOURNAL = "offloads-eth0-nettune-nicoffloads-eth0-offloads";

let host: FakeLinkHost | undefined;
let warnings: string[] = [];

async function fake(...devices: DeviceOptions[]) {
  host = await FakeLinkHost.create({ devices });
  warnings = [];
  const ctx: HandlerContext = { transport: host, warn: (m) => warnings.push(m) };
  return { h: host, ctx };
}

afterEach(async () => {
  await host?.close();
  host = undefined;
});

const offloadInputs = (extra: Record<string, unknown>) =>
  nicOffloadsSchema.parse({
    connection: CONNECTION,
    interface: "eth0",
    unitName: OFFLOADS_UNIT,
    ...extra,
  });

const on = (h: FakeLinkHost, long: string) =>
  featureState(parseEthtoolFeatures(h.device("eth0").featuresText()), long)?.on;

describe("NicOffloads' journal of originals", () => {
  it("is written before the change; a create run again after a lost answer records the first originals; delete removes it", async () => {
    const { h, ctx } = await fake(VETH);
    const inputs = offloadInputs({ features: { gro: true, tso: false } });
    const first = await offloads.create(inputs, ctx);
    // The journal is the first thing the apply script does.
    const script = h.commands[1]!;
    expect(script.indexOf("'generic-receive-offload	false'")).toBeGreaterThan(0);
    expect(script.indexOf("'generic-receive-offload	false'")).toBeLessThan(
      script.indexOf("ethtool -K eth0 gro on tso off"),
    );
    expect(h.journals()).toEqual({
      [OFFLOADS_JOURNAL]: "generic-receive-offload\tfalse\ntcp-segmentation-offload\ttrue\n",
    });
    // Pulumi recorded nothing (the answer was lost); the host is tuned. Run again: the journal,
    // not the tuned host, says what the originals were.
    const again = await offloads.create(inputs, ctx);
    expect(again.outs.originals).toEqual(first.outs.originals);
    expect(again.outs.originals).toEqual({
      "generic-receive-offload": false,
      "tcp-segmentation-offload": true,
    });
    await offloads.delete(again.id, again.outs, ctx);
    expect(on(h, "generic-receive-offload")).toBe(false);
    expect(on(h, "tcp-segmentation-offload")).toBe(true);
    expect(h.journals()).toEqual({});
    expect(h.hasStateDir()).toBe(false);
    expect(h.units()).toEqual({});
  });

  it("a create that fails removes the journal it wrote with the unit; one an earlier create left stays", async () => {
    const { h, ctx } = await fake(VETH);
    h.device("eth0").stuck.add("generic-receive-offload"); // synthetic: the driver keeps GRO off
    const inputs = offloadInputs({ features: { gro: true, tso: false } });
    await expect(offloads.create(inputs, ctx)).rejects.toThrow(/features\.gro: requested on/);
    expect(on(h, "tcp-segmentation-offload")).toBe(true);
    expect(h.units()).toEqual({});
    expect(h.hasStateDir()).toBe(false);

    // An earlier create whose answer was lost left its journal: TSO was on before nettune,
    // though the host now has it off. A failed create puts back what it found and keeps it.
    const dir = path.join(h.root, "state", "originals");
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, OFFLOADS_JOURNAL), "tcp-segmentation-offload\ttrue\n");
    h.run("ethtool", ["-K", "eth0", "tso", "off"]);
    await expect(offloads.create(inputs, ctx)).rejects.toThrow(/features\.gro: requested on/);
    expect(h.journals()).toEqual({ [OFFLOADS_JOURNAL]: "tcp-segmentation-offload\ttrue\n" });
  });

  it("a journal that cannot be written stops the create before anything changes", async () => {
    const { h, ctx } = await fake(VETH);
    fs.writeFileSync(path.join(h.root, "state"), ""); // a file where the folder should be
    await expect(offloads.create(offloadInputs({ features: { gro: true } }), ctx)).rejects.toThrow(
      /^cannot write the journal of originals \/var\/lib\/nettune\/originals\/offloads-eth0-\S+: mkdir: .* on root@198\.18\.9\.9:22; nothing was changed$/,
    );
    expect(h.setCalls()).toEqual([]);
    expect(h.units()).toEqual({});
  });

  it("an update that renames the unit moves the journal along, so delete still finds it", async () => {
    const { h, ctx } = await fake(VETH);
    const { id, outs } = await offloads.create(offloadInputs({ features: { gro: true } }), ctx);
    const renamed = offloadInputs({
      features: { gro: true },
      unitName: "nettune-nicoffloads-other.service",
    });
    const updated = await offloads.update(id, outs, renamed, ctx);
    expect(Object.keys(h.journals())).toEqual(["offloads-eth0-nettune-nicoffloads-other"]);
    await offloads.delete(id, updated, ctx);
    expect(h.hasStateDir()).toBe(false);
    expect(h.units()).toEqual({});
  });

  it("the commit-confirmed rollback undoes everything the apply wrote: features, unit and journal", async () => {
    const { h } = await fake(VETH);
    const info = { ifname: "eth0", driver: "veth", link: {} as never };
    const journal = link.journalOf(
      "offloads",
      undefined,
      offloadInputs({ features: { gro: true } }),
    );
    const unit = link.linkUnit(offloadInputs({ features: { gro: true } }), "test", [
      renderEthtoolFeatures("eth0", { gro: true }),
    ]);
    let rollback = "";
    // The path is cut after the apply: the host runs the rollback by itself, the answer is lost.
    const k: link.KeyedSettings<boolean> = {
      set: (c) => [renderEthtoolFeatures("eth0", c.gro === undefined ? {} : { gro: c.gro })],
      readBack: [["ethtool", "-k", "eth0"]],
      after: () => ({ gro: on(h, "generic-receive-offload") }),
      property: (key) => `features.${key}`,
      show: String,
      async run(t, script, undo) {
        rollback = undo;
        await t.exec({ script }, { allowFailure: true });
        expect(on(h, "generic-receive-offload")).toBe(true);
        expect(h.units()).toHaveProperty([OFFLOADS_UNIT]);
        expect(h.journals()).toEqual({ [OFFLOADS_JOURNAL]: "gro\tfalse\n" });
        await t.exec({ script: undo });
        throw new Error("cut the SSH connection");
      },
    };
    await expect(
      link.applyKeyed(
        h,
        info,
        k,
        { gro: false },
        { gro: true },
        link.persistCommands(unit, []),
        link.persistCommands(undefined, [unit.name]),
        undefined,
        journal,
      ),
    ).rejects.toThrow(/cut the SSH connection/);
    expect(rollback).toContain(`rm -f ${"/etc/systemd/system"}/${OFFLOADS_UNIT}`);
    expect(on(h, "generic-receive-offload")).toBe(false);
    expect(h.units()).toEqual({});
    expect(h.enabled.size).toBe(0);
    expect(h.hasStateDir()).toBe(false);
  });
});

describe("NicOffloads: an apply that fails on the host with a reason", () => {
  it("names the reason, not a lost answer, and puts everything back", async () => {
    const { h } = await fake(VETH);
    const failing: typeof h = Object.create(h) as typeof h;
    failing.exec = async (command, options) => {
      const res = await h.exec(command, options);
      const text = (command as { script: string }).script;
      return text.startsWith("ssh_if=")
        ? {
            ...res,
            exitCode: 3,
            stderr: "Cannot change generic-receive-offload: Device or resource busy\n",
          }
        : res;
    };
    const ctx: HandlerContext = { transport: failing, warn: (m) => warnings.push(m) };
    const err = offloads.create(offloadInputs({ features: { gro: true } }), ctx);
    await expect(err).rejects.toThrow(
      /offload changes on \S+ failed \(exit 3\): Cannot change generic-receive-offload: Device or resource busy; they were put back/,
    );
    expect(on(h, "generic-receive-offload")).toBe(false);
    expect(h.units()).toEqual({});
  });
});

describe("NicOffloads: a session killed mid-apply on an interface SSH does not run over", () => {
  it("is undone over a new connection: features, unit and journal", async () => {
    const { h } = await fake(VETH);
    // The apply runs to its end on the host, but the session dies before its answer: no exit
    // status, no output, as ssh2 reports a channel closed under it.
    const killed: typeof h = Object.create(h) as typeof h;
    killed.exec = async (command, options) => {
      const res = await h.exec(command, options);
      const text = (command as { script: string }).script;
      // The apply: the script that arms a rollback when SSH runs over the interface.
      return text.startsWith("ssh_if=") ? { ...res, exitCode: null, stdout: "" } : res;
    };
    const ctx: HandlerContext = { transport: killed, warn: (m) => warnings.push(m) };
    await expect(offloads.create(offloadInputs({ features: { gro: true } }), ctx)).rejects.toThrow(
      /the answer to the offload changes on \S+ was lost; they were put back/,
    );
    expect(on(h, "generic-receive-offload")).toBe(false);
    expect(h.units()).toEqual({});
    expect(h.enabled.size).toBe(0);
    expect(h.hasStateDir()).toBe(false);
  });
});

describe("NicRings' and RssQueues' journals", () => {
  it("NicRings: a create run again after a lost answer records the first sizes; delete removes the journal", async () => {
    const { h, ctx } = await fake(VIRTIO);
    const inputs = nicRingsSchema.parse({
      connection: CONNECTION,
      interface: "eth0",
      unitName: "nettune-nicrings-eth0-rings.service",
      rx: 128,
    });
    const first = await rings.create(inputs, ctx);
    const again = await rings.create(inputs, ctx);
    expect(again.outs.originals).toEqual(first.outs.originals);
    expect(again.outs.originals.rx).not.toBe(128);
    expect(Object.keys(h.journals())).toEqual(["rings-eth0-nettune-nicrings-eth0-rings"]);
    await rings.delete(again.id, again.outs, ctx);
    expect(h.hasStateDir()).toBe(false);
  });

  it("RssQueues: a create run again after a lost answer records the first counts; delete removes the journal", async () => {
    const { h, ctx } = await fake(VETH);
    const inputs = rssQueuesSchema.parse({
      connection: CONNECTION,
      interface: "eth0",
      unitName: "nettune-rssqueues-eth0-rss.service",
      rx: 2,
      tx: 2,
    });
    await rss.create(inputs, ctx);
    const again = await rss.create(inputs, ctx);
    expect(again.outs.originals).toEqual({ rx: 4, tx: 4, combined: null });
    await rss.delete(again.id, again.outs, ctx);
    expect(h.run("ethtool", ["-l", "eth0"]).stdout).toMatch(
      /Current hardware settings:\nRX:\t\t4\nTX:\t\t4/,
    );
    expect(h.hasStateDir()).toBe(false);
    expect(h.units()).toEqual({});
  });
});
