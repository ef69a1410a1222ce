/**
 * Persistence of link settings across reboots: one systemd oneshot unit per resource that
 * re-runs the resource's commands at boot, once its interface exists.
 *
 * Why a unit and not a systemd-networkd `.link` file: `.link` files are applied by udev when a
 * device is added, so they need udev (absent in containers and on hosts that do not run it),
 * only act on "add" events, and cover fewer settings on older systemd. A unit runs the same
 * ethtool/ip commands nettune applies live, on any systemd host, and is removed on delete.
 */
import { createHash } from "node:crypto";
import { renderCommand, shellQuote } from "../transport/quote";

export const UNIT_DIR = "/etc/systemd/system";

/** The unit file's path on the host: what the resources' `unitPath`/`unitPaths` outputs hold. */
export function unitPathOf(name: string): string {
  return `${UNIT_DIR}/${name}`;
}

/** The unit's name from its file's path (or from a bare name). */
export function unitNameOfPath(pathOrName: string): string {
  return pathOrName.slice(pathOrName.lastIndexOf("/") + 1);
}

/**
 * `nettune-<kind>-<name>.service`, with the name reduced to what unit names allow. A name that
 * had to be changed gets 8 hex digits of its sha256, so `x+1` and `x-1` (interfaces both may
 * be) never share a unit.
 */
export function unitName(kind: string, resourceName: string): string {
  const safe = resourceName.replace(/[^A-Za-z0-9:_.-]/g, "-").slice(0, 100);
  const tag =
    safe === resourceName
      ? ""
      : `-${createHash("sha256").update(resourceName).digest("hex").slice(0, 8)}`;
  return `nettune-${kind.toLowerCase()}-${safe}${tag}.service`;
}

export interface LinkUnit {
  /** The unit's file name. */
  readonly name: string;
  readonly description: string;
  /** The interface the commands act on; the unit waits up to 30 s for it to appear. */
  readonly interface: string;
  /** Commands (argv) run in order at boot. */
  readonly commands: readonly (readonly string[])[];
}

/** The unit file's text. */
export function renderLinkUnit(unit: LinkUnit): string {
  const dev = shellQuote(`/sys/class/net/${unit.interface}`);
  const wait = `i=0; while [ ! -e ${dev} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done`;
  const run = unit.commands.map((c) => renderCommand(c)).join(" && ");
  // systemd unescapes the ExecStart line: % and \ must be doubled, $ written as $$.
  const script = `${wait}; ${run}`
    .replace(/\\/g, "\\\\")
    .replace(/%/g, "%%")
    .replace(/\$/g, "$$$$");
  return [
    "# Managed by nettune. Removed when the Pulumi resource is destroyed.",
    "[Unit]",
    `Description=${unit.description.replace(/\n/g, " ")}`,
    "DefaultDependencies=no",
    "After=local-fs.target",
    "Before=network-pre.target",
    "Wants=network-pre.target",
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `ExecStart=/bin/sh -c ${shellQuote(script)}`,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/** Script that installs and enables the unit (not started: its settings are live already). */
export function renderUnitInstall(unit: LinkUnit): string {
  const path = shellQuote(`${UNIT_DIR}/${unit.name}`);
  const tmp = shellQuote(`${UNIT_DIR}/.${unit.name}.nettune-tmp`);
  return [
    "command -v systemctl >/dev/null || { echo 'systemd is required to persist this setting (persist: false to skip)' >&2; exit 3; }",
    `umask 022 && printf '%s' ${shellQuote(renderLinkUnit(unit))} > ${tmp} && mv -f ${tmp} ${path}`,
    // One reload: `enable` would do one of its own after its symlinks (a second, at a second or
    // more each on a slow host).
    `systemctl enable --quiet --no-reload ${shellQuote(unit.name)} && systemctl daemon-reload`,
  ].join("\n");
}

/** Script that disables and removes the unit; succeeds when it is already gone. */
export function renderUnitRemove(name: string): string {
  const path = shellQuote(`${UNIT_DIR}/${name}`);
  return [
    `if [ -e ${path} ]; then`,
    `  systemctl disable --quiet --no-reload ${shellQuote(name)} 2>/dev/null || true`,
    `  rm -f ${path} && systemctl daemon-reload`,
    "fi",
  ].join("\n");
}

/** Script that prints the unit's text, or nothing when it does not exist. */
export function renderUnitRead(name: string): string {
  const path = shellQuote(`${UNIT_DIR}/${name}`);
  return `if [ -e ${path} ]; then cat ${path}; fi`;
}
