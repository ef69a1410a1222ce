/**
 * Mtu: an interface's MTU (and optionally its transmit queue length), checked against the
 * driver's limits, optionally verified end to end with DF pings to peers ("every device on the
 * path must agree"), applied commit-confirmed when SSH runs over the interface, persisted by a
 * systemd unit, restored on delete.
 */
import { parseIpLink, renderIpLinkSet, renderIpLinkShow, type IpLinkSettings } from "../host/ip";
import { mtuSchema, type MtuInputs } from "../schemas/mtu";
import { messageOf, missingTool, runBatch } from "../engine/batch";
import {
  renderUnitInstall,
  renderUnitRemove,
  unitName,
  unitNameOfPath,
  unitPathOf,
  type LinkUnit,
} from "../host/systemd";
import { renderCommand, shellQuote } from "../transport/quote";
import type { Transport } from "../transport/types";
import { AnswerLost, applyConfirmed, renderDisarm, SSH_INTERFACE_SCRIPT } from "./confirm";
import { JOURNAL_DIR, parseJournal, renderJournal, renderJournalRemove } from "../host/steps";
import type { Failure } from "../engine/lifecycle";
import { restoreOrWarn } from "../engine/restore";
import { handlerOf, type Probed, type Spec } from "../engine/spec";

export interface MtuOutputs extends MtuInputs {
  /** The link before nettune first set it; put back on delete (txQueueLength only if declared). */
  originals: { mtu: number; txQueueLength: number | null };
  /** Whether the SSH connection ran over this interface when it was last applied. */
  carriesSsh: boolean;
  /** The systemd unit (its file) that applies the MTU at boot, or null without persist. */
  unitPath: string | null;
  /** Messages from the last operation the user should read. */
  warnings: string[];
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
async function readLink(t: Transport, ifname: string): Promise<Probed<LinkState>> {
  const [ip, ssh] = await runBatch(t, [renderIpLinkShow(ifname), { script: SSH_INTERFACE_SCRIPT }]);
  const missing = (why: string) => ({
    missing: { property: "interface", reason: `no interface ${ifname} on ${t.target}: ${why}` },
  });
  const missingIp = missingTool(ip!, t.target);
  if (missingIp) return missing(missingIp);
  if (ip!.exitCode !== 0) return missing(messageOf(ip!));
  const link = parseIpLink(ip!.stdout).find((l) => l.ifname === ifname);
  if (!link) return missing("no such device");
  return {
    facts: {
      mtu: link.mtu,
      txqlen: link.txqlen ?? null,
      minMtu: link.minMtu,
      maxMtu: link.maxMtu,
      driverKind: link.kind,
      sshInterface: ssh!.stdout.trim(),
    },
  };
}

export function linkUnit(inputs: MtuInputs): LinkUnit {
  return {
    name: unitName("mtu", inputs.resourceName),
    description: `nettune Mtu ${inputs.resourceName}: ${inputs.interface} mtu ${inputs.mtu}`,
    interface: inputs.interface,
    commands: [renderIpLinkSet(inputs.interface, settingsOf(inputs.mtu, inputs.txQueueLength))],
  };
}

function settingsOf(mtu: number, txqlen: number | null | undefined): IpLinkSettings {
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

/**
 * The journal of originals (src/host/steps.ts): written by create before it sets the link, read
 * by a create that finds it, removed by delete.
 */
export const journalPathOf = (inputs: Pick<MtuInputs, "interface">) =>
  `${JOURNAL_DIR}/mtu-${inputs.interface}`;

/**
 * Sets mtu/txqlen, verifies peers with DF pings; puts the old values back if a peer fails.
 * `undone` is shell run on any failure after the old values are back (removing the journal).
 */
function renderApply(
  ifname: string,
  set: IpLinkSettings,
  peers: readonly string[],
  rollbackArgv: string[],
  undone = ":",
): string {
  const lines = [`${renderCommand(renderIpLinkSet(ifname, set))} || { s=$?; ${undone}; exit $s; }`];
  const size = (set.mtu ?? 0) - 28; // IPv4 header 20 + ICMP header 8
  for (const peer of set.mtu === undefined ? [] : peers) {
    lines.push(
      `if ! ping -n -q -c 2 -i 0.2 -W 2 -M do -s ${size} ${shellQuote(peer)} >/dev/null 2>&1; then ` +
        `${renderCommand(rollbackArgv)}; ${undone}; printf 'peer\\t%s\\n' ${shellQuote(peer)}; exit 6; fi`,
    );
  }
  lines.push("echo applied");
  return lines.join("\n");
}

/** The rollback of a commit-confirmed change, one per resource. */
const tokenOf = (inputs: MtuInputs) => `mtu-${inputs.resourceName}`;

/**
 * Sets the link, commit-confirmed when SSH runs over it (./confirm.ts); with `peers`, verified
 * by DF pings. Whatever fails, `before` is put back. With `journal` (a create), `before` is
 * written to the journal of originals first, or the journal an earlier create left is read and
 * returned; a failure or the host's rollback removes the journal this apply wrote.
 */
async function setLink(
  t: Transport,
  inputs: MtuInputs,
  set: IpLinkSettings,
  before: LinkState,
  peers: readonly string[],
  journal?: string,
): Promise<Record<string, string>> {
  const ifname = inputs.interface;
  const rollbackArgv = renderIpLinkSet(ifname, settingsOf(before.mtu, before.txqlen));
  const written = journal
    ? {
        mtu: String(before.mtu),
        ...(before.txqlen === null ? {} : { txqlen: String(before.txqlen) }),
      }
    : undefined;
  const undone = journal && written ? renderJournalRemove(journal, written) : ":";
  const script =
    (journal && written ? `${renderJournal(journal, written)}\n` : "") +
    renderApply(ifname, set, peers, rollbackArgv, undone);
  const describe =
    set.mtu !== undefined ? `MTU ${set.mtu} on ${ifname}` : `txqueuelen ${set.txqlen} on ${ifname}`;
  const res =
    before.sshInterface === ifname
      ? await applyConfirmed(
          t,
          inputs.connection,
          {
            rollbackAfter: inputs.rollbackAfter,
            token: tokenOf(inputs),
            rollback: `${renderCommand(rollbackArgv)}\n${undone}`,
            apply: script,
          },
          describe,
        )
      : await t.exec({ script }, { allowFailure: true });
  if (res instanceof AnswerLost) {
    throw new Error(
      `mtu: the answer to setting ${describe} on ${t.target} was lost (${res.reason}); the host is reachable, and it was put back.`,
    );
  }
  if (res.exitCode === 0) return parseJournal(res.stdout);
  const out = res.stdout;
  const peer = /^peer\t(.*)$/m.exec(out)?.[1];
  if (peer) {
    throw new Error(
      `verifyPeers: the path from ${ifname} on ${t.target} to ${peer} does not carry ${set.mtu}-byte packets ` +
        `(ping with "don't fragment" failed): every device on the path must agree. The MTU was put back to ${before.mtu}.`,
    );
  }
  const why =
    `${res.stderr}${out}`.trim() ||
    `cut short (${res.signal ?? `exit ${res.exitCode ?? "unknown"}`})`;
  throw new Error(`mtu: setting ${describe} on ${t.target} failed: ${why}. Nothing was changed.`);
}

export const mtuSpec: Spec<MtuInputs, MtuOutputs, LinkState> = {
  kind: "Mtu",
  schema: mtuSchema,
  replaceOn: ["connection", "interface"],
  // It names the unit and the rollback, which follow in place.
  shows: (field) => field !== "resourceName",
  outputs: ["originals", "carriesSsh", "unitPath"],
  id: (inputs) => `mtu/${inputs.interface}`,

  probe: (t, inputs) => readLink(t, inputs.interface),

  check(inputs, link, target) {
    const f = limitsFailure(inputs, link, target);
    return f ? [f] : [];
  },

  asDeclared: (inputs, link) =>
    link.mtu === inputs.mtu &&
    (inputs.txQueueLength === undefined || link.txqlen === inputs.txQueueLength),

  async apply(ctx, link, olds, news) {
    const t = ctx.transport;
    const differs =
      link.mtu !== news.mtu ||
      (news.txQueueLength !== undefined && link.txqlen !== news.txQueueLength);
    // A create always applies, so its peers are verified even where the MTU is already right.
    let journaled: Record<string, string> = {};
    if (!olds || differs) {
      journaled = await setLink(
        t,
        news,
        settingsOf(news.mtu, news.txQueueLength),
        link,
        news.verifyPeers,
        olds ? undefined : journalPathOf(news),
      );
    }
    // A journal an earlier create left knows the values from before nettune.
    const fromJournal = (key: string, live: number | null) =>
      journaled[key] !== undefined && /^\d+$/.test(journaled[key]) ? Number(journaled[key]) : live;
    const unit = news.persist ? linkUnit(news) : undefined;
    const oldUnit = olds?.unitPath ? unitNameOfPath(olds.unitPath) : undefined;
    if (oldUnit && oldUnit !== unit?.name) await t.exec({ script: renderUnitRemove(oldUnit) });
    if (unit) await t.exec({ script: renderUnitInstall(unit) });
    return {
      originals: olds?.originals ?? {
        mtu: fromJournal("mtu", link.mtu)!,
        txQueueLength: fromJournal("txqlen", link.txqlen),
      },
      carriesSsh: link.sshInterface === news.interface,
      unitPath: unit ? unitPathOf(unit.name) : null,
      warnings: [],
    };
  },

  async release(ctx, link, olds) {
    const t = ctx.transport;
    // A rollback left armed by an interrupted apply must not fire later; the unit goes first,
    // so a failure below never leaves it to set the MTU again at boot.
    const cleanup = [`{ ${renderDisarm(tokenOf(olds))}\n} >/dev/null 2>&1`];
    if (olds.unitPath) cleanup.push(renderUnitRemove(unitNameOfPath(olds.unitPath)));
    cleanup.push(renderJournalRemove(journalPathOf(olds)));
    await t.exec({ script: cleanup.join("\n") });
    if (!link) return;
    const where = `${olds.interface} on ${t.target}`;
    const back: { mtu?: number; txqlen?: number } = {};
    const mtu = restoreOrWarn({
      what: "mtu",
      live: link.mtu,
      applied: olds.mtu,
      original: olds.originals.mtu,
      where,
    });
    if (mtu.action === "restore") back.mtu = mtu.to;
    else if (mtu.action === "warn") ctx.warn(mtu.message);
    // The queue length is put back only when this resource set it.
    if (olds.txQueueLength !== undefined) {
      const txqlen = restoreOrWarn({
        what: "txQueueLength",
        live: link.txqlen ?? undefined,
        applied: olds.txQueueLength,
        original: olds.originals.txQueueLength ?? undefined,
        where,
      });
      if (txqlen.action === "restore") back.txqlen = txqlen.to;
      else if (txqlen.action === "warn") ctx.warn(txqlen.message);
    }
    if (back.mtu !== undefined || back.txqlen !== undefined) await setLink(t, olds, back, link, []);
  },

  live(olds, link) {
    if (!link) return {};
    return {
      mtu: link.mtu,
      ...(olds.txQueueLength !== undefined && link.txqlen !== null
        ? { txQueueLength: link.txqlen }
        : {}),
    };
  },
};

export const mtuHandler = handlerOf(mtuSpec);
