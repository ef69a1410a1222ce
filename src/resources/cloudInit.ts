/**
 * `nettune.cloudInit`: the same tuning model NetworkTuning applies over SSH, rendered as
 * cloud-init user data, so an instance boots tuned. It writes the files the resources would
 * write, under the same names (the sysctl.d files, the modules-load.d file and the boot units),
 * and starts them in NetworkTuning's order; a NetworkTuning with the same name, interface and
 * model then finds the host as it wants it, takes the files over, and removes them on destroy.
 *
 * Rendered: `queues`/`rss`, `rings`, `offloads`, `mtu`, `congestion`, `sysctls` ("max" counts
 * are read on the instance at boot, as the resources read them at apply), `irq` (its pins
 * planned on the instance at boot by src/host/irqBoot.ts, as IrqAffinity plans them at apply)
 * and `steering` (written at boot by src/host/steeringBoot.ts, RFS's per-queue counts from the
 * queues the instance has). Before anything is applied, the first boot writes each part's
 * journal of originals (the instance's own values), which the NetworkTuning's creates read: its
 * destroy puts back the image's values. Not rendered, and listed in the user data's header:
 * `xdp` (the loader and object are far larger than the 16 KB of user data EC2 takes): a
 * NetworkTuning over SSH applies it after boot.
 */
import { renderSysctlConf, sysctlPath } from "../host/sysctl";
import { journalPathOf } from "../specs/sysctlSet";
import { renderModulesLoadConf, CC_KEY, DEFAULT_QDISC_KEY } from "../host/congestion";
import { renderLinkUnit, UNIT_DIR, type LinkUnit } from "../host/systemd";
import { renderEthtoolChannels, renderEthtoolRings } from "../host/ethtool";
import { formatSysctl } from "../schemas/sysctl";
import { renderCommand, shellQuote } from "../transport/quote";
import { stackTag } from "../schemas/names";
import { gzipSync } from "node:zlib";
import { renderIrqBootFiles, type IrqbalanceAction } from "../host/irqs";
import { renderBootPlanner } from "../host/irqBoot";
import { IRQ_JOURNAL } from "../specs/irqAffinity";
import type { IrqAffinityInputs } from "../schemas/irqAffinity";
import type { PacketSteeringInputs } from "../schemas/packetSteering";
import { JOURNAL as STEERING_JOURNAL } from "../specs/packetSteering";
import { renderSteeringBoot } from "../host/steeringBoot";
import { programStackTag } from "./owners";
import { unitOf as offloadsUnit, JOURNAL as OFFLOADS_JOURNAL } from "../specs/nicOffloads";
import { JOURNAL as RINGS_JOURNAL } from "../specs/nicRings";
import { linkUnit as mtuUnit, journalPathOf as mtuJournalPathOf } from "../specs/mtu";
import { journalPathOf as linkJournalPathOf } from "../specs/link";
import { resolveFeatureName } from "../host/ethtool";
import { indirectionCommand, JOURNAL as RSS_JOURNAL } from "../specs/rssQueues";
import {
  JOURNAL as CC_JOURNAL,
  journalPathOf as ccJournalPathOf,
  linkUnitOf as qdiscUnit,
  modulesFileOf,
  safeName,
  sysctlFileOf,
} from "../specs/congestionControl";
import type { SysctlSetInputs } from "../schemas/sysctlSet";
import type { NicOffloadsInputs } from "../schemas/nicOffloads";
import type { MtuInputs } from "../schemas/mtu";
import type { RssQueuesInputs } from "../schemas/rssQueues";
import type { NicRingsInputs } from "../schemas/nicRings";
import type { CongestionControlInputs } from "../schemas/congestionControl";
import {
  checkTuning,
  stepProviderInputs,
  TUNING_ORDER,
  type TuningModel,
  type TuningOverrides,
  type TuningField,
} from "./networkTuning";

/** EC2 takes at most this many bytes of user data. */
export const USER_DATA_MAX_BYTES = 16384;

export interface CloudInitArgs extends TuningOverrides {
  /** The NetworkTuning's name: the files and units carry it, as its children's do. */
  readonly name: string;
  /** The interface, e.g. `ens5` on an EC2 instance with ENA. */
  readonly interface: string;
  /** The model to start from; the other fields override it, as in NetworkTuning. */
  readonly profile?: TuningModel;
  /**
   * The Pulumi project and stack whose NetworkTuning manages the host after boot. Its children's
   * files and units carry a tag of their stack (`nettune-nicoffloads-gw-offloads-1a2b3c.service`),
   * and the user data must write the same names. Default: the program's own project and stack,
   * which is right when one program renders the user data and declares the NetworkTuning (the
   * usual case). Outside a program, without it, the names carry no tag.
   */
  readonly stack?: { readonly project: string; readonly stack: string };
}

/** What a rendering covers. */
export interface CloudInitRendering {
  /** The user data: `#cloud-config` YAML. */
  readonly userData: string;
  /** The model's fields the user data applies. */
  readonly rendered: TuningField[];
  /** The model's fields it leaves to a NetworkTuning over SSH after boot, with why. */
  readonly leftOver: { field: TuningField; why: string }[];
}

interface FileSpec {
  path: string;
  content: string;
  permissions: string;
  /** Written gzip-compressed and base64-encoded (cloud-init's `gz+b64`): large scripts. */
  gzip?: boolean;
}

/** Fields the user data cannot apply, and why. */
const LEFT_OVER: Partial<Record<TuningField, string>> = {
  xdp: "the on-host loader and the program object do not fit in 16 KB of user data",
};

// ---------------------------------------------------------------------------------------------
// YAML: strings as JSON (a subset of YAML's double-quoted form), file contents as block literals.

const q = (s: string) => JSON.stringify(s);

function yamlBlock(text: string, indent: string): string {
  // A literal block keeps the text byte for byte: "|" keeps one final newline, "|-" none.
  const trailing = text.endsWith("\n");
  const body = trailing ? text.slice(0, -1) : text;
  const lines = body.split("\n").map((l) => (l === "" ? "" : `${indent}${l}`));
  return `${trailing ? "|" : "|-"}\n${lines.join("\n")}`;
}

// ---------------------------------------------------------------------------------------------
// "max" at boot: the driver's maximum, read with ethtool as the resources read it at apply.

/**
 * A shell function printing the pre-set maximum of field `$3` in `ethtool $2 $1` (`-l`, `-g`).
 * No single quote in it: it goes inside the single-quoted script of a unit's ExecStart.
 */
const MAX_FN =
  'nt_max() { p=0; ethtool "$1" "$2" 2>/dev/null | while IFS=: read -r k v; do ' +
  'case "$k" in "Pre-set maximums"*) p=1 ;; "Current hardware"*) p=0 ;; esac; ' +
  '[ "$p" = 1 ] && [ "$k" = "$3" ] && { echo $v; break; }; done; }';

/**
 * `ethtool -L`/`-G` with counts that may be "max": fixed counts as the resource renders them,
 * "max" read at boot. Nothing to resolve: the resource's own command.
 */
export function countsScript(
  flag: "-l" | "-g",
  ifname: string,
  counts: Record<string, number | "max">,
  labels: Record<string, [string, string]>,
): string[] {
  const fixed = Object.fromEntries(Object.entries(counts).filter(([, v]) => v !== "max"));
  const maxed = Object.keys(counts).filter((k) => counts[k] === "max");
  const render = (c: Record<string, number>) =>
    flag === "-l" ? renderEthtoolChannels(ifname, c) : renderEthtoolRings(ifname, c);
  if (maxed.length === 0) return render(fixed as Record<string, number>);
  const dev = shellQuote(ifname);
  const lines = [MAX_FN];
  const args: string[] = [];
  for (const k of Object.keys(counts)) {
    const [label, arg] = labels[k]!;
    if (counts[k] === "max") {
      lines.push(`m_${k}=$(nt_max ${flag} ${dev} ${shellQuote(label)})`);
      lines.push(
        `case "$m_${k}" in ""|*[!0-9]*) echo "ethtool ${flag} ${ifname}: no maximum for ${label} ($m_${k})" >&2; exit 1 ;; esac`,
      );
      args.push(`${arg} "$m_${k}"`);
    } else args.push(`${arg} ${counts[k]}`);
  }
  lines.push(`ethtool ${flag === "-l" ? "-L" : "-G"} ${dev} ${args.join(" ")}`);
  // One line: it ends up on a unit's ExecStart line.
  return ["sh", "-c", lines.join("; ")];
}

const CHANNEL_LABELS: Record<string, [string, string]> = {
  rx: ["RX", "rx"],
  tx: ["TX", "tx"],
  other: ["Other", "other"],
  combined: ["Combined", "combined"],
};
const RING_LABELS: Record<string, [string, string]> = {
  rx: ["RX", "rx"],
  rxMini: ["RX Mini", "rx-mini"],
  rxJumbo: ["RX Jumbo", "rx-jumbo"],
  tx: ["TX", "tx"],
};

function countsOf(inputs: object, fields: readonly string[]): Record<string, number | "max"> {
  const out: Record<string, number | "max"> = {};
  for (const f of fields) {
    const v = (inputs as Record<string, unknown>)[f];
    if (typeof v === "number" || v === "max") out[f] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Journals of originals: the instance's own values, read at first boot before anything is
// applied, in the files the resources' creates read (src/host/steps.ts). A NetworkTuning over
// SSH then records them as its originals, and its destroy puts back the image's own values.

/** A journal row: the key, a tab, the value the shell command `value` prints. */
const journalRow = (key: string, value: string) =>
  `printf '%s\\t%s\\n' ${shellQuote(key)} "${value}"`;

/**
 * The bootcmd that writes `journal` from `rows` once per instance (`cloud-init-per`), unless it
 * is there already; `tag` names the once-per-instance marker.
 */
export function journalBootcmd(tag: string, journal: string, rows: readonly string[]): string[] {
  const j = shellQuote(journal);
  const tmp = shellQuote(`${journal}.tmp`);
  const dir = shellQuote(journal.replace(/\/[^/]*$/, ""));
  return [
    "cloud-init-per",
    "instance",
    `nettune-journal-${tag.replace(/[^A-Za-z0-9_.-]/g, "-")}`,
    "sh",
    "-c",
    `[ -e ${j} ] || { mkdir -p ${dir} && { ${rows.join("; ")}; } > ${tmp} && mv -f ${tmp} ${j}; }`,
  ];
}

/**
 * The root qdisc of `dev` as CongestionControl journals it (JSON), when it is the kernel's
 * default (handle `0:`, as `tc qdisc show dev X root` prints it); nothing otherwise.
 */
const defaultRootJson = (dev: string) =>
  `$(tc qdisc show dev ${shellQuote(dev)} root 2>/dev/null | awk 'NR == 1 && $3 == "0:" { printf "{\\"kind\\":\\"%s\\",\\"handle\\":\\"0:\\",\\"params\\":[],\\"kernelDefault\\":true}", $2 }')`;

/**
 * One journal row per feature (`long` names, in order): `true`/`false` (JSON) as `ethtool -k`
 * shows it, as NicOffloads journals it; empty for a feature it does not show. One ethtool run.
 */
const featureRows = (ifname: string, longs: readonly string[]) =>
  `ethtool -k ${shellQuote(ifname)} 2>/dev/null | awk -v want=${shellQuote(longs.join(" "))} ` +
  `'BEGIN { n = split(want, w, " ") } { sub(/^[ \\t]+/, "") } !($1 in v) { v[$1] = ($2 == "on") ? "true" : "false" } ` +
  `END { for (i = 1; i <= n; i++) printf "%s\\t%s\\n", w[i], ((w[i] ":") in v) ? v[w[i] ":"] : "" }'`;

/**
 * The journal rows of the counts in `counts`, each the current value `ethtool -l`/`-g` shows
 * under its label (RssQueues' and NicRings' journals hold the same JSON their creates write).
 */
const countRows = (
  flag: "-l" | "-g",
  ifname: string,
  counts: Record<string, unknown>,
  labels: Record<string, [string, string]>,
) => Object.keys(counts).map((f) => journalRow(f, countValue(flag, ifname, labels[f]![0])));

/** The current count labelled `label` in `ethtool -l`/`-g` (JSON: a number or null). */
const countValue = (flag: "-l" | "-g", ifname: string, label: string) =>
  `$(ethtool ${flag} ${shellQuote(ifname)} 2>/dev/null | awk -F: -v k=${shellQuote(label)} '/^Current/ { c = 1 } c && $1 == k { gsub(/[ \\t]/, "", $2); print ($2 ~ /^[0-9]+$/) ? $2 : "null"; exit }')`;

// ---------------------------------------------------------------------------------------------

/**
 * Renders the tuning as cloud-init user data, with what it covers and what it leaves to a
 * NetworkTuning over SSH. Bad args fail naming the field (as NetworkTuning's do), and a
 * rendering larger than EC2's 16 KB fails saying so.
 */
export function renderCloudInit(args: CloudInitArgs): CloudInitRendering {
  if (typeof args?.name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(args.name))
    throw new Error(
      "nettune.cloudInit: name must be the NetworkTuning's name (letters, digits, . _ -, at most 63)",
    );
  const { name, interface: ifname, profile, stack, ...overrides } = args;
  if (
    stack !== undefined &&
    (typeof stack?.project !== "string" || typeof stack?.stack !== "string")
  )
    throw new Error("nettune.cloudInit: stack must be { project, stack }, both strings");
  const tag = stack ? stackTag(stack.project, stack.stack) : programStackTag();
  const { model, problems } = checkTuning(name, {
    ...overrides,
    ...(profile === undefined ? {} : { profile }),
    interface: ifname,
    connection: { host: "192.0.2.1", password: "unused" },
  });
  if (problems.length > 0)
    throw new Error(
      `nettune.cloudInit ${name}:\n${problems.map((p) => `  ${p.field}: ${p.reason}`).join("\n")}`,
    );

  const files: FileSpec[] = [];
  const bootcmd: string[][] = [];
  const runcmd: string[][] = [];
  const units: string[] = [];
  const rendered: TuningField[] = [];
  const leftOver: { field: TuningField; why: string }[] = [];
  const unitFile = (u: LinkUnit) =>
    files.push({ path: `${UNIT_DIR}/${u.name}`, content: renderLinkUnit(u), permissions: "0644" });
  /** A part's journal of originals, written at first boot before anything is applied. */
  const journal = (path: string, rows: readonly string[]) =>
    bootcmd.push(journalBootcmd(path.replace(/^.*\//, ""), path, rows));
  /** A link step: its boot unit, started now and at every boot; or its commands once. */
  const linkStep = (unit: LinkUnit, persist: boolean) => {
    if (persist) {
      unitFile(unit);
      units.push(unit.name);
    } else runcmd.push(["sh", "-c", unit.commands.map((c) => renderCommand(c)).join(" && ")]);
  };

  for (const step of TUNING_ORDER) {
    const childName = `${name}-${step.child}`;
    const parsed = stepProviderInputs(step, model, childName, ifname, tag);
    if (parsed === undefined) continue;
    const fields = step.fields.filter((f) => model[f] !== undefined);
    const why = fields.map((f) => LEFT_OVER[f]).find((w) => w !== undefined);
    if (why !== undefined) {
      for (const f of fields) leftOver.push({ field: f, why });
      continue;
    }
    rendered.push(...fields);
    switch (step.kind) {
      case "RssQueues": {
        const p = parsed as RssQueuesInputs;
        const commands: string[][] = [];
        const counts = countsOf(p, ["rx", "tx", "other", "combined"]);
        if (Object.keys(counts).length > 0) {
          commands.push(countsScript("-l", ifname, counts, CHANNEL_LABELS));
          journal(
            linkJournalPathOf(RSS_JOURNAL, p),
            countRows("-l", ifname, counts, CHANNEL_LABELS),
          );
        }
        if (p.indirection) commands.push(indirectionCommand(ifname, p.indirection));
        if (commands.length > 0)
          linkStep(
            {
              name: p.unitName,
              description: `nettune RssQueues on ${ifname}`,
              interface: ifname,
              commands,
            },
            p.persist,
          );
        break;
      }
      case "NicRings": {
        const p = parsed as NicRingsInputs;
        const counts = countsOf(p, ["rx", "rxMini", "rxJumbo", "tx"]);
        journal(linkJournalPathOf(RINGS_JOURNAL, p), countRows("-g", ifname, counts, RING_LABELS));
        linkStep(
          {
            name: p.unitName,
            description: `nettune NicRings on ${ifname}`,
            interface: ifname,
            commands: [countsScript("-g", ifname, counts, RING_LABELS)],
          },
          p.persist,
        );
        break;
      }
      case "NicOffloads": {
        const p = parsed as NicOffloadsInputs;
        journal(linkJournalPathOf(OFFLOADS_JOURNAL, p), [
          featureRows(
            ifname,
            Object.keys(p.features).map((f) => resolveFeatureName(f)),
          ),
        ]);
        linkStep(offloadsUnit(p), p.persist);
        break;
      }
      case "Mtu": {
        const p = parsed as MtuInputs;
        const sys = `/sys/class/net/${ifname}`;
        journal(mtuJournalPathOf(p), [
          journalRow("mtu", `$(cat ${shellQuote(`${sys}/mtu`)})`),
          journalRow("txqlen", `$(cat ${shellQuote(`${sys}/tx_queue_len`)})`),
        ]);
        linkStep(mtuUnit(p), p.persist);
        break;
      }
      case "CongestionControl": {
        const p = parsed as CongestionControlInputs;
        const owner = safeName(p.resourceName);
        // What CongestionControl's create journals, read before anything is applied. A root
        // qdisc is journalled when it is the kernel's default (as at first boot), which delete
        // gives back by removing the root; any other is left to the create to read live.
        const proc = (key: string) => `$(cat ${shellQuote(`/proc/sys/${sysctlPath(key)}`)})`;
        journal(ccJournalPathOf(p.resourceName), [
          journalRow(CC_JOURNAL.algorithm, proc(CC_KEY)),
          ...(p.qdisc === undefined
            ? []
            : [
                journalRow(CC_JOURNAL.defaultQdisc, proc(DEFAULT_QDISC_KEY)),
                ...p.interfaces.map((dev) =>
                  journalRow(CC_JOURNAL.qdisc(dev), defaultRootJson(dev)),
                ),
              ]),
        ]);
        const values: Record<string, string> = { [CC_KEY]: p.algorithm };
        if (p.qdisc !== undefined) values[DEFAULT_QDISC_KEY] = p.qdisc;
        const modules = [`tcp_${p.algorithm}`, ...(p.qdisc ? [`sch_${p.qdisc}`] : [])];
        // Loaded before the sysctls name them; a module built into the kernel loads as a no-op.
        for (const m of modules) runcmd.push(["sh", "-c", `modprobe -q ${shellQuote(m)} || true`]);
        const file = sysctlFileOf(p.resourceName);
        if (p.persist) {
          files.push({
            path: modulesFileOf(p.resourceName),
            content: renderModulesLoadConf(owner, modules),
            permissions: "0644",
          });
          files.push({ path: file, content: renderSysctlConf(owner, values), permissions: "0644" });
          runcmd.push(["sysctl", "-q", "-p", file]);
        } else
          runcmd.push(["sysctl", "-q", ...Object.entries(values).map(([k, v]) => `${k}=${v}`)]);
        for (const dev of p.interfaces)
          if (p.qdisc !== undefined) linkStep(qdiscUnit(p.resourceName, dev, p.qdisc), p.persist);
        break;
      }
      case "SysctlSet": {
        const p = parsed as SysctlSetInputs;
        const file = `/etc/sysctl.d/${p.fileName}`;
        // The values before anything is applied, once per instance, in the journal the
        // SysctlSet's create reads: destroy then puts back the image's own values.
        const rows = Object.keys(p.values).map((k) =>
          journalRow(k, `$(echo $(cat ${shellQuote(`/proc/sys/${sysctlPath(k)}`)}))`),
        );
        // Its marker keeps the file's name, as in user data rendered before the other journals.
        bootcmd.push(journalBootcmd(p.fileName, journalPathOf(p.fileName), rows));
        if (p.persist !== "runtime")
          files.push({
            path: file,
            content: renderSysctlConf(p.fileName, p.values),
            permissions: "0644",
          });
        if (p.persist !== "persistent") {
          if (p.persist === "both") runcmd.push(["sysctl", "-q", "-p", file]);
          else
            runcmd.push([
              "sysctl",
              "-q",
              ...Object.entries(p.values).map(([k, v]) => `${k}=${formatSysctl(v)}`),
            ]);
        }
        break;
      }
      case "IrqAffinity": {
        // Planned on the instance at boot, as IrqAffinity plans it at apply (src/host/irqBoot.ts).
        const p = parsed as IrqAffinityInputs;
        const ib: IrqbalanceAction =
          p.irqbalance === "stop" ? { mode: "stop" } : { mode: "ban", optionsFile: "*" };
        const [script, unit, rule] = renderIrqBootFiles(
          p,
          renderBootPlanner(p),
          linkJournalPathOf(IRQ_JOURNAL, p),
          ib,
        );
        files.push({ ...script!, gzip: true });
        if (p.persist) {
          files.push(unit!, rule!);
          units.push(p.unitName);
        } else runcmd.push(["sh", script!.path]);
        break;
      }
      case "PacketSteering": {
        // Written at boot as PacketSteering writes it, with the queue count read on the
        // instance (src/host/steeringBoot.ts); the first run journals the originals.
        const p = parsed as PacketSteeringInputs;
        linkStep(
          {
            name: p.unitName,
            description: `nettune PacketSteering on ${ifname}`,
            interface: ifname,
            commands: [["sh", "-c", renderSteeringBoot(p, linkJournalPathOf(STEERING_JOURNAL, p))]],
          },
          p.persist,
        );
        break;
      }
      default:
        throw new Error(`nettune.cloudInit: no rendering for ${step.kind}`);
    }
  }
  if (units.length > 0) {
    runcmd.splice(0, 0, ["systemctl", "daemon-reload"]);
    // The units first, in NetworkTuning's order (channels, IRQs, rings, offloads, MTU), as at boot.
    // Started one after the other: `enable --now` of them all starts them at once, and a
    // channel change (even to the same count) makes virtio_net reset its queue IRQs' affinity,
    // which would undo IRQ pins made before it. Each start of a oneshot waits for it to end.
    runcmd.splice(
      1,
      0,
      ["systemctl", "enable", ...units],
      ...units.map((u) => ["systemctl", "start", u]),
    );
  }

  const lines = [
    "#cloud-config",
    `# nettune NetworkTuning ${name} on ${ifname}, rendered by nettune.cloudInit.`,
    `# Applied here: ${rendered.join(", ") || "nothing"}.`,
    ...leftOver.map((l) => `# Left to NetworkTuning ${name} over SSH: ${l.field} (${l.why}).`),
  ];
  if (bootcmd.length > 0)
    lines.push("bootcmd:", ...bootcmd.map((c) => `  - [${c.map(q).join(", ")}]`));
  if (files.length > 0) {
    lines.push("write_files:");
    for (const f of files) {
      lines.push(`  - path: ${q(f.path)}`);
      // No `owner`: cloud-init writes files as root:root by default, and every byte counts.
      lines.push(`    permissions: ${q(f.permissions)}`);
      if (f.gzip) {
        lines.push(`    encoding: "gz+b64"`);
        lines.push(`    content: ${q(gzipSync(f.content, { level: 9 }).toString("base64"))}`);
      } else lines.push(`    content: ${yamlBlock(f.content, "      ")}`);
    }
  }
  if (runcmd.length > 0)
    lines.push("runcmd:", ...runcmd.map((c) => `  - [${c.map(q).join(", ")}]`));
  const userData = `${lines.join("\n")}\n`;
  const size = Buffer.byteLength(userData);
  if (size > USER_DATA_MAX_BYTES)
    throw new Error(
      `nettune.cloudInit ${name}: the user data is ${size} bytes; EC2 takes at most ${USER_DATA_MAX_BYTES}`,
    );
  return { userData, rendered, leftOver };
}

/**
 * The tuning as cloud-init user data (`#cloud-config`), for an instance's `userData`:
 *
 * ```ts
 * const args = { name: "gw", interface: "ens5", profile: nettune.profiles.apiGateway };
 * new aws.ec2.Instance("gw", { ..., userData: nettune.cloudInit(args) });
 * new nettune.NetworkTuning("gw", { ...args, connection: { ..., waitForCloudInit: true } });
 * ```
 *
 * See {@link renderCloudInit} for what it covers.
 */
export function cloudInit(args: CloudInitArgs): string {
  return renderCloudInit(args).userData;
}
