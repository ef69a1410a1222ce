/**
 * Mtu: an interface's MTU (and optionally its transmit queue length), checked against the
 * driver's limits, optionally verified end to end with DF pings to peers ("every device on the
 * path must agree"), applied commit-confirmed when SSH runs over the interface, persisted by a
 * systemd unit, restored on delete.
 */
import { parseIpLink, renderIpLinkSet, renderIpLinkShow } from "../host/ip";
import { mtuSchema, type MtuInputs } from "../schemas/mtu";
import { messageOf, missingTool, runBatch } from "../engine/batch";
import { renderUnitInstall, renderUnitRemove, unitName, type LinkUnit } from "../host/systemd";
import { renderCommand, shellQuote } from "../transport/quote";
import type { Transport } from "../transport/types";
import { applyConfirmed, renderDisarm, SSH_INTERFACE_SCRIPT } from "./confirm";
import {
  diffResult,
  sameHost,
  stableJson,
  type DiffResult,
  type Failure,
  type ResourceHandler,
} from "../engine/lifecycle";

export interface MtuOutputs extends MtuInputs {
  originalMtu: number;
  originalTxQueueLength: number | null;
  /** Whether the SSH connection ran over this interface when it was last applied. */
  carriesSsh: boolean;
  /** The systemd unit that applies the MTU at boot, or null without persist. */
  unit: string | null;
}

interface LinkState {
  mtu: number;
  txqlen: number | null;
  minMtu?: number;
  maxMtu?: number;
  driverKind?: string;
  sshInterface: string;
}

/** One round trip: the link's details and the interface the SSH session arrives on. */
async function readLink(t: Transport, ifname: string): Promise<LinkState | { missing: string }> {
  const [ip, ssh] = await runBatch(t, [renderIpLinkShow(ifname), { script: SSH_INTERFACE_SCRIPT }]);
  const missingIp = missingTool(ip!, t.target);
  if (missingIp) return { missing: missingIp };
  if (ip!.exitCode !== 0) return { missing: messageOf(ip!) };
  const link = parseIpLink(ip!.stdout).find((l) => l.ifname === ifname);
  if (!link) return { missing: "no such device" };
  return {
    mtu: link.mtu,
    txqlen: link.txqlen ?? null,
    minMtu: link.minMtu,
    maxMtu: link.maxMtu,
    driverKind: link.kind,
    sshInterface: ssh!.stdout.trim(),
  };
}

function linkUnit(inputs: MtuInputs): LinkUnit {
  return {
    name: unitName("mtu", inputs.resourceName),
    description: `nettune Mtu ${inputs.resourceName}: ${inputs.interface} mtu ${inputs.mtu}`,
    interface: inputs.interface,
    commands: [renderIpLinkSet(inputs.interface, settingsOf(inputs.mtu, inputs.txQueueLength))],
  };
}

function settingsOf(
  mtu: number,
  txqlen: number | null | undefined,
): { mtu: number; txqlen?: number } {
  return txqlen === undefined || txqlen === null ? { mtu } : { mtu, txqlen };
}

function limitsFailure(inputs: MtuInputs, link: LinkState, target: string): Failure | undefined {
  const { minMtu, maxMtu } = link;
  // ip reports 0/0 when the driver enforces no limits.
  if (maxMtu && (inputs.mtu > maxMtu || (minMtu !== undefined && inputs.mtu < minMtu))) {
    return {
      property: "mtu",
      reason: `${inputs.mtu} is outside what ${inputs.interface} on ${target} accepts (${minMtu ?? 0}-${maxMtu})`,
    };
  }
  return undefined;
}

/** Applies mtu/txqlen, verifies peers with DF pings; puts the old values back if a peer fails. */
function renderApply(inputs: MtuInputs, rollbackArgv: string[]): string {
  const lines = [
    renderCommand(renderIpLinkSet(inputs.interface, settingsOf(inputs.mtu, inputs.txQueueLength))),
  ];
  const size = inputs.mtu - 28; // IPv4 header 20 + ICMP header 8
  for (const peer of inputs.verifyPeers) {
    lines.push(
      `if ! ping -n -q -c 2 -i 0.2 -W 2 -M do -s ${size} ${shellQuote(peer)} >/dev/null 2>&1; then ` +
        `${renderCommand(rollbackArgv)}; printf 'peer\\t%s\\n' ${shellQuote(peer)}; exit 6; fi`,
    );
  }
  lines.push("echo applied");
  return lines.join("\n");
}

async function apply(
  t: Transport,
  inputs: MtuInputs,
  before: LinkState,
  carriesSsh: boolean,
): Promise<void> {
  const rollbackArgv = renderIpLinkSet(inputs.interface, settingsOf(before.mtu, before.txqlen));
  const script = renderApply(inputs, rollbackArgv);
  const describe = `MTU ${inputs.mtu} on ${inputs.interface}`;
  const res = carriesSsh
    ? await applyConfirmed(
        t,
        inputs.connection,
        {
          rollbackAfter: inputs.rollbackAfter,
          token: `mtu-${inputs.resourceName}`,
          rollback: renderCommand(rollbackArgv),
          apply: script,
        },
        describe,
      )
    : await t.exec({ script }, { allowFailure: true });
  if (res && res.exitCode === 0) return;
  const out = res?.stdout ?? "";
  const peer = /^peer\t(.*)$/m.exec(out)?.[1];
  if (peer) {
    throw new Error(
      `verifyPeers: the path from ${inputs.interface} on ${t.target} to ${peer} does not carry ${inputs.mtu}-byte packets ` +
        `(ping with "don't fragment" failed): every device on the path must agree. The MTU was put back to ${before.mtu}.`,
    );
  }
  const why = `${res?.stderr ?? ""}${out}`.trim() || "the answer was lost";
  throw new Error(`mtu: setting ${describe} on ${t.target} failed: ${why}. Nothing was changed.`);
}

export const mtuHandler: ResourceHandler<MtuInputs, MtuOutputs> = {
  kind: "Mtu",
  schema: mtuSchema,
  replaceOn: ["connection", "interface"],

  async hostCheck(inputs, ctx) {
    const link = await readLink(ctx.transport, inputs.interface);
    if ("missing" in link) {
      return [
        {
          property: "interface",
          reason: `no interface ${inputs.interface} on ${ctx.transport.target}: ${link.missing}`,
        },
      ];
    }
    const f = limitsFailure(inputs, link, ctx.transport.target);
    return f ? [f] : [];
  },

  diff(_id, olds, news): DiffResult {
    const replaces: string[] = [];
    if (!sameHost(olds.connection, news.connection)) replaces.push("connection");
    if (olds.interface !== news.interface) replaces.push("interface");
    const detailedDiff: NonNullable<DiffResult["detailedDiff"]> = {};
    for (const k of ["mtu", "txQueueLength", "verifyPeers", "persist", "rollbackAfter"] as const) {
      if (stableJson(olds[k]) !== stableJson(news[k]))
        detailedDiff[k] = { kind: "update", inputDiff: true };
    }
    return diffResult(detailedDiff, replaces, olds, news);
  },

  async create(inputs, ctx) {
    const t = ctx.transport;
    const link = await readLink(t, inputs.interface);
    if ("missing" in link)
      throw new Error(
        `interface: no interface ${inputs.interface} on ${t.target}: ${link.missing}`,
      );
    const limit = limitsFailure(inputs, link, t.target);
    if (limit) throw new Error(`${limit.property}: ${limit.reason}`);
    const carriesSsh = link.sshInterface === inputs.interface;
    await apply(t, inputs, link, carriesSsh);
    const unit = inputs.persist ? linkUnit(inputs) : undefined;
    if (unit) await t.exec({ script: renderUnitInstall(unit) });
    return {
      id: `${inputs.connection.user}@${inputs.connection.host}:${inputs.connection.port}/mtu/${inputs.interface}`,
      outs: {
        ...inputs,
        originalMtu: link.mtu,
        originalTxQueueLength: link.txqlen,
        carriesSsh,
        unit: unit?.name ?? null,
      },
    };
  },

  async read(_id, olds, ctx) {
    const link = await readLink(ctx.transport, olds.interface);
    const props: MtuOutputs =
      "missing" in link
        ? { ...olds }
        : {
            ...olds,
            mtu: link.mtu,
            ...(olds.txQueueLength !== undefined && link.txqlen !== null
              ? { txQueueLength: link.txqlen }
              : {}),
          };
    const {
      originalMtu: _m,
      originalTxQueueLength: _q,
      carriesSsh: _c,
      unit: _u,
      ...inputs
    } = props;
    return { props, inputs };
  },

  async update(_id, olds, news, ctx) {
    const t = ctx.transport;
    const link = await readLink(t, news.interface);
    if ("missing" in link)
      throw new Error(`interface: no interface ${news.interface} on ${t.target}: ${link.missing}`);
    const limit = limitsFailure(news, link, t.target);
    if (limit) throw new Error(`${limit.property}: ${limit.reason}`);
    const carriesSsh = link.sshInterface === news.interface;
    if (
      link.mtu !== news.mtu ||
      (news.txQueueLength !== undefined && link.txqlen !== news.txQueueLength)
    ) {
      await apply(t, news, link, carriesSsh);
    }
    const unit = news.persist ? linkUnit(news) : undefined;
    if (unit) await t.exec({ script: renderUnitInstall(unit) });
    else if (olds.unit) await t.exec({ script: renderUnitRemove(olds.unit) });
    return {
      ...news,
      originalMtu: olds.originalMtu,
      originalTxQueueLength: olds.originalTxQueueLength,
      carriesSsh,
      unit: unit?.name ?? null,
    };
  },

  async delete(_id, olds, ctx) {
    const t = ctx.transport;
    if (olds.unit) await t.exec({ script: renderUnitRemove(olds.unit) });
    const link = await readLink(t, olds.interface);
    if ("missing" in link) {
      ctx.warn(`${olds.interface} is gone from ${t.target}; nothing to restore`);
      return;
    }
    if (link.mtu !== olds.mtu) {
      ctx.warn(
        `${olds.interface} on ${t.target}: MTU left at ${link.mtu}; it was changed outside nettune after it was set to ${olds.mtu}`,
      );
      return;
    }
    const restore = {
      ...olds,
      mtu: olds.originalMtu,
      // The queue length is put back only when this resource set it.
      txQueueLength:
        olds.txQueueLength !== undefined ? (olds.originalTxQueueLength ?? undefined) : undefined,
      verifyPeers: [],
    };
    await apply(t, restore, link, link.sshInterface === olds.interface);
    // A rollback left armed by an interrupted apply must not fire later.
    await t.exec({ script: renderDisarm(`mtu-${olds.resourceName}`) }, { allowFailure: true });
  },
};
