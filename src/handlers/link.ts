/**
 * What the interface resources (NicOffloads, RssQueues, NicRings) share: the interface-name and
 * count schemas, running several read-only or apply commands in one SSH round trip, the
 * interface check (`ethtool -i` plus `ip -d -j link show` in that same trip), the replace rule,
 * and persistence through one systemd unit per resource (src/host/systemd.ts says why a unit).
 */
import { z } from "zod";
import { parseEthtoolDriverInfo, renderEthtoolShow } from "../host/ethtool";
import { ParseError } from "../host/errors";
import { isValidInterfaceName, parseIpLink, renderIpLinkShow, type IpLink } from "../host/ip";
import {
  UNIT_DIR,
  renderUnitInstall,
  renderUnitRemove,
  unitName as renderUnitName,
  type LinkUnit,
} from "../host/systemd";
import { isScript, renderCommand } from "../transport/quote";
import type { Command, Transport } from "../transport/types";
import { ConnectError } from "../transport/errors";
import type { Connection } from "../schemas/connection";
import { sameHost, type Failure } from "./framework";

// ---------------------------------------------------------------------------------------------
// Schemas

/**
 * An interface name: what the kernel accepts (1-15 characters, IFNAMSIZ - 1, no `/`, `:` or
 * white space, not `.` or `..`) narrowed to letters, digits and `_ . + -`, not starting with
 * `-`. Real names (eth0, enp3s0f1, bond0.100, br-1a2b) fit; anything a shell, a systemd unit
 * or `/sys/class/net/<name>` would read specially does not.
 */
export const interfaceSchema = z
  .string({ error: "interface must be an interface name such as eth0" })
  .refine((name) => isValidInterfaceName(name) && /^[A-Za-z0-9_.+-]+$/.test(name), {
    message:
      "must be an interface name: 1-15 letters, digits and _ . + - (not starting with -, not . or ..)",
  });

/** `persist`: re-apply the settings at every boot through a systemd unit. */
export const persistSchema = z.boolean({ error: "persist must be true or false" }).default(true);

/** The unit a resource owns, named by the resource class from the Pulumi resource name. */
export const unitNameSchema = z
  .string({ error: "unitName must be a systemd unit name" })
  .regex(
    /^nettune-[a-z]+-[A-Za-z0-9:_.-]{1,100}\.service$/,
    "must be nettune-<kind>-<name>.service with letters, digits and : _ . - in the name",
  );

/** A queue or ring count as declared: a positive integer, or "max" for the driver's maximum. */
export type Count = number | "max";

/**
 * A count from 1 to `limit`, or "max". Never 0: an interface without a queue (or a ring) cuts
 * the host off, the SSH connection first.
 */
export function countSchema(limit: number) {
  return z
    .union([z.literal("max"), z.number()], { error: 'expected a positive integer or "max"' })
    .superRefine((value, ctx) => {
      if (value === "max") return;
      if (!Number.isInteger(value))
        ctx.addIssue({ code: "custom", message: `expected an integer (got ${value})` });
      else if (value < 1)
        ctx.addIssue({
          code: "custom",
          message: `must be at least 1 (got ${value}): an interface needs at least one`,
        });
      else if (value > limit)
        ctx.addIssue({ code: "custom", message: `must be at most ${limit} (got ${value})` });
    });
}

// ---------------------------------------------------------------------------------------------
// Several commands in one round trip

/** One command of a batch and how it ended. Failure is read from `exitCode`, never stderr. */
export interface StepResult {
  /** The command as shell text, for messages. */
  readonly command: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

const MARK = "@@nettune-batch";

/**
 * One script that runs every command in turn, whatever the previous ones returned, and prints
 * each one's stdout, stderr and exit code between marker lines. Callers decide what a failure
 * means: ethtool's exit codes are not reliable enough to stop on (`-K` may exit 0 having
 * changed nothing, or 1 having changed part), so results are judged by reading back.
 */
export function renderBatch(commands: readonly Command[]): string {
  const lines = ["t=$(mktemp -d) || exit 97", `trap 'rm -rf "$t"' EXIT`];
  commands.forEach((c, i) => {
    const text = isScript(c) ? `(\n${c.script}\n)` : renderCommand(c);
    lines.push(
      `${text} >"$t/o" 2>"$t/e" </dev/null; r=$?`,
      `printf '\\n${MARK} ${i} out %d\\n' "$r"; cat "$t/o"; printf '\\n${MARK} ${i} err\\n'; cat "$t/e"`,
    );
  });
  lines.push(`printf '\\n${MARK} end\\n'`);
  return lines.join("\n");
}

/** Reads what {@link renderBatch} printed; throws when a command's part is missing. */
export function parseBatch(stdout: string, commands: readonly Command[]): StepResult[] {
  const re = new RegExp(`\\n${MARK} (?:(\\d+) (out|err)(?: (\\d+))?|end)\\n`, "g");
  const marks = [...stdout.matchAll(re)];
  const out: StepResult[] = [];
  for (let i = 0; i < commands.length; i++) {
    const o = marks.findIndex((m) => m[1] === String(i) && m[2] === "out");
    const e = marks[o + 1];
    const next = marks[o + 2];
    const start = marks[o];
    if (!start || !e || !next || e[1] !== String(i) || e[2] !== "err") {
      throw new Error(`nettune: incomplete output of a command batch (command ${i}):\n${stdout}`);
    }
    const slice = (from: RegExpExecArray, to: RegExpExecArray) =>
      stdout.slice(from.index + from[0].length, to.index);
    const c = commands[i]!;
    out.push({
      command: isScript(c) ? c.script : renderCommand(c),
      stdout: slice(start, e),
      stderr: slice(e, next),
      exitCode: Number(start[3]),
    });
  }
  return out;
}

/** Runs commands in one round trip; see {@link renderBatch}. */
export async function runBatch(t: Transport, commands: readonly Command[]): Promise<StepResult[]> {
  if (commands.length === 0) return [];
  const script = { script: renderBatch(commands) };
  let res;
  try {
    res = await t.exec(script, { allowFailure: true });
  } catch (err) {
    // Some drivers reset the link on a channel or feature change, which can drop the SSH
    // session mid-command. Every batch here is idempotent (set, read back, install a unit),
    // so it runs once more on a new connection and the read-back decides.
    if (!(err instanceof ConnectError && err.kind === "lost")) throw err;
    res = await t.exec(script, { allowFailure: true });
  }
  if (res.exitCode !== 0) {
    throw new Error(
      `nettune: could not run commands on ${t.target} (exit code ${res.exitCode ?? res.signal}): ` +
        `${res.stderr.trim() || res.stdout.trim()}`,
    );
  }
  return parseBatch(res.stdout, commands);
}

/** stdout and stderr of a step joined, as the parsers take them to spot "not supported". */
export function outputOf(r: StepResult): string {
  return r.stderr.trim() === "" ? r.stdout : `${r.stdout}\n${r.stderr}`;
}

/** The step's messages on one line, for errors: `netlink error: Invalid argument`. */
export function messageOf(r: StepResult): string {
  const text = (r.stderr.trim() || r.stdout.trim()).split(/\s*\n\s*/).join("; ");
  return text || `exit code ${r.exitCode}`;
}

/** "`ethtool` is not installed on …" when a step's program was not found (exit 127). */
export function missingTool(r: StepResult, target: string): string | undefined {
  if (r.exitCode !== 127) return undefined;
  const tool = r.command.split(" ")[0] ?? "a command";
  const pkg = tool === "ip" ? "iproute2" : tool;
  return `${tool} is not installed on ${target} (Debian and Ubuntu: apt-get install ${pkg})`;
}

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

/** Failures as one error, for create and update (preview shows them one per field). */
export function failuresError(failures: readonly Failure[]): Error {
  return new Error(failures.map((f) => `${f.property}: ${f.reason}`).join("\n"));
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

/** The default unit name of a resource: `nettune-<kind>-<resource name>.service`. */
export function defaultUnitName(kind: string, resourceName: string): string {
  return renderUnitName(kind, resourceName);
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
