/**
 * What the interface resources (NicOffloads, RssQueues, NicRings) share (their input schemas
 * are in src/schemas/link.ts): running several read-only or apply commands in one SSH round
 * trip, the interface check (`ethtool -i` plus `ip -d -j link show` in that same trip), the
 * replace rule, and persistence through one systemd unit per resource (src/host/systemd.ts says
 * why a unit).
 */
import { parseEthtoolDriverInfo, renderEthtoolShow } from "../host/ethtool";
import { ParseError } from "../host/errors";
import { parseIpLink, renderIpLinkShow, type IpLink } from "../host/ip";
import { UNIT_DIR, renderUnitInstall, renderUnitRemove, type LinkUnit } from "../host/systemd";
import type { Command } from "../transport/types";
import { messageOf, missingTool, outputOf, type StepResult } from "../engine/batch";
import type { Connection } from "../schemas/connection";
import { sameHost } from "../engine/lifecycle";

// ---------------------------------------------------------------------------------------------
// The interface

/** The interface as found on the host. */
export interface LinkInfo {
  readonly ifname: string;
  /** `ethtool -i`'s driver (`veth`, `virtio_net`, `mlx5_core`); the link kind where it has none. */
  readonly driver: string;
  readonly link: IpLink;
}

/** `eth0 (driver veth)`: how messages name an interface. */
export function describeLink(info: Pick<LinkInfo, "ifname" | "driver">): string {
  return `${info.ifname} (driver ${info.driver})`;
}

/** The two read-only commands of the interface check; put them first in a batch. */
export function linkCommands(ifname: string): Command[] {
  return [renderEthtoolShow("driverInfo", ifname), renderIpLinkShow(ifname)];
}

/** Reads the interface check's two steps: the interface, or why it cannot be used. */
export function readLink(
  ifname: string,
  target: string,
  [driverStep, ipStep]: readonly StepResult[],
): { info: LinkInfo } | { failure: string } {
  if (!driverStep || !ipStep) throw new Error("readLink: the interface check's steps are missing");
  const missing = missingTool(ipStep, target) ?? missingTool(driverStep, target);
  if (missing) return { failure: missing };
  if (ipStep.exitCode !== 0) {
    return /does not exist|Cannot find device/.test(ipStep.stderr)
      ? { failure: `no interface ${ifname} on ${target}` }
      : { failure: `cannot read interface ${ifname} on ${target}: ${messageOf(ipStep)}` };
  }
  const link = parseIpLink(ipStep.stdout).find((l) => l.ifname === ifname);
  if (!link) return { failure: `no interface ${ifname} on ${target}` };
  let driver: string;
  try {
    driver = parseEthtoolDriverInfo(outputOf(driverStep)).driver;
  } catch (err) {
    // lo and a few virtual devices have no driver information: name them by their kind.
    if (!(err instanceof ParseError && err.unsupported)) throw err;
    driver = link.kind ?? (link.linkType === "loopback" ? "loopback" : "unknown");
  }
  return { info: { ifname, driver, link } };
}

// ---------------------------------------------------------------------------------------------
// Diff

/** What every interface resource has. */
export interface LinkInputs {
  connection: Connection;
  interface: string;
  persist: boolean;
  unitName: string;
}

/**
 * The replace rule: another host or another interface is another resource (the old one is
 * restored first, `deleteBeforeReplace`). `persist` and the unit name are updated in place.
 */
export function linkReplaces(olds: LinkInputs, news: LinkInputs): string[] {
  const replaces: string[] = [];
  if (!sameHost(olds.connection, news.connection)) replaces.push("connection");
  if (olds.interface !== news.interface) replaces.push("interface");
  return replaces;
}

/** Changes that touch no host but must reach the state (credentials, persistence). */
export function linkOtherChanges(olds: LinkInputs, news: LinkInputs): string[] {
  const out: string[] = [];
  if (olds.persist !== news.persist) out.push("persist");
  if (olds.unitName !== news.unitName && (olds.persist || news.persist)) out.push("unitName");
  return out;
}

/** The resource's id: where and what, never a secret. */
export function linkId(kind: string, inputs: LinkInputs): string {
  const c = inputs.connection;
  return `${c.user}@${c.host}:${c.port}/${kind}/${inputs.interface}/${inputs.unitName}`;
}

// ---------------------------------------------------------------------------------------------
// Persistence

/** The unit file's path on the host. */
export function unitPathOf(name: string): string {
  return `${UNIT_DIR}/${name}`;
}

/** The unit that re-applies `commands` to the interface at boot. */
export function linkUnit(
  inputs: LinkInputs,
  description: string,
  commands: readonly (readonly string[])[],
): LinkUnit {
  return { name: inputs.unitName, description, interface: inputs.interface, commands };
}

/**
 * The commands that bring the host's units in line: install `unit` (when given) and remove
 * every unit in `remove` that is not it.
 */
export function persistCommands(unit: LinkUnit | undefined, remove: readonly string[]): Command[] {
  const out: Command[] = [];
  for (const name of new Set(remove)) {
    if (name !== unit?.name) out.push({ script: renderUnitRemove(name) });
  }
  if (unit) out.push({ script: renderUnitInstall(unit) });
  return out;
}

/** Throws when a persistence step failed; `undone` says what was put back before. */
export function checkPersist(steps: readonly StepResult[], target: string, undone: string): void {
  for (const s of steps) {
    if (s.exitCode === 0) continue;
    throw new Error(
      `persist: could not write the systemd unit on ${target}: ${messageOf(s)}${undone ? `; ${undone}` : ""}`,
    );
  }
}
