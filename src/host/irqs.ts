/**
 * IRQ affinity on a host: the script that reads what pinning needs (CPU topology, the NIC's
 * devices below bonds and VLANs, their MSI IRQs, NUMA node and driver, each IRQ's affinity, and
 * irqbalance's state) and its parser; and the one script that pins IRQs by their action names,
 * all-or-nothing, keeps irqbalance off them, and reads back. No I/O here.
 *
 * Pinning by name, not by number: an IRQ's number changes when its driver re-creates its queues
 * (`ethtool -L` on some drivers, a driver reload, a reboot), its action name (`virtio3-input.0`,
 * `eth0-TxRx-3`) does not. The same script runs at apply, at boot and when the queues change
 * (a udev rule), so all three place the same queues on the same CPUs.
 */
import { shellQuote } from "../transport/quote";
import { UNIT_DIR } from "./systemd";
import { parseCpuList } from "./cpus";
import { ParseError } from "./errors";
import { assertInterfaceName } from "./ip";

const TOOL = "nettune irq probe";

/** Where nettune keeps what it changed in irqbalance's setup, per resource. */
export const IRQBALANCE_STATE_DIR = "/var/lib/nettune/irqbalance";

/** The options files irqbalance's unit reads its arguments from (Debian, then RHEL/SUSE). */
export const IRQBALANCE_OPTION_FILES = ["/etc/default/irqbalance", "/etc/sysconfig/irqbalance"];

/** A network device with a bus device under the interface (itself, or a bond's or VLAN's lower). */
export interface IrqDevice {
  readonly ifname: string;
  /** The bus device's driver (`virtio_net`, `ena`, `mlx5_core`). */
  readonly driver: string;
  /** The PCI address of the device (for virtio, of the PCI device above `virtioN`). */
  readonly busInfo: string;
  /** The device's NUMA node; null where the platform gives none (-1). */
  readonly numaNode: number | null;
  /** The device's MSI/MSI-X IRQs; null where it has no `msi_irqs` (legacy INTx, some buses). */
  readonly msiIrqs: readonly number[] | null;
}

/** irqbalance as the probe found it. */
export interface IrqbalanceState {
  readonly installed: boolean;
  readonly active: boolean;
  /** `systemctl is-enabled`: `enabled`, `disabled`, `masked`, `static`, or `` where unknown. */
  readonly enabled: string;
  /** The options file its unit reads (`/etc/default/irqbalance`), or null. */
  readonly optionsFile: string | null;
  /** The value of the last `IRQBALANCE_ARGS=` line there, or null when there is none. */
  readonly args: string | null;
  /** IRQs each nettune resource banned (by its state name). */
  readonly owned: Readonly<Record<string, readonly number[]>>;
  /** nettune resources that stopped it. */
  readonly stoppedBy: readonly string[];
}

/** What the probe script reports. */
export interface IrqProbe {
  readonly online: readonly number[];
  readonly possible: readonly number[];
  /** CPUs of each NUMA node. */
  readonly nodes: ReadonlyMap<number, readonly number[]>;
  /** Hyperthread siblings of each CPU (itself included). */
  readonly siblings: ReadonlyMap<number, readonly number[]>;
  readonly devices: readonly IrqDevice[];
  /** smp_affinity_list and effective_affinity_list (null where the kernel has none) per IRQ. */
  readonly affinity: ReadonlyMap<
    number,
    { readonly smp: string; readonly effective: string | null }
  >;
  /** IRQs whose affinity the kernel manages (seen only where debugfs shows IRQ flags). */
  readonly managed: ReadonlySet<number>;
  readonly irqbalance: IrqbalanceState;
}

/**
 * The probe script for `ifname`. One line per fact, tab-separated:
 * `cpu online|possible LIST`, `node N LIST`, `siblings CPU LIST`,
 * `dev IF DRIVER BUSINFO NUMA`, `msi IF IRQ…`, `aff IRQ SMP EFFECTIVE`, `managed IRQ`,
 * `ib installed|active|enabled|options|args|owned|stopped …`.
 */
export function renderIrqProbe(ifname: string): string {
  assertInterfaceName(ifname);
  return [
    `IF=${shellQuote(ifname)}`,
    'r() { cat "$1" 2>/dev/null; }',
    "T=$(printf '\\t')",
    'echo "cpu${T}online${T}$(r /sys/devices/system/cpu/online)"',
    'echo "cpu${T}possible${T}$(r /sys/devices/system/cpu/possible)"',
    'for n in /sys/devices/system/node/node[0-9]*; do [ -r "$n/cpulist" ] && echo "node${T}${n##*/node}${T}$(r "$n/cpulist")"; done',
    'for c in /sys/devices/system/cpu/cpu[0-9]*; do [ -r "$c/topology/thread_siblings_list" ] && echo "siblings${T}${c##*/cpu}${T}$(r "$c/topology/thread_siblings_list")"; done',
    // The devices with a bus device under the interface: itself, or its lower devices (bond
    // slaves, a VLAN's parent), four levels deep at most.
    "lowers() {",
    '  if [ -e "/sys/class/net/$1/device" ]; then echo "$1"; return; fi',
    '  [ "$2" -ge 4 ] && return',
    '  for l in /sys/class/net/$1/lower_*; do [ -e "$l" ] && lowers "${l##*/lower_}" $(($2 + 1)); done',
    "}",
    "IRQS=; NOMSI=",
    'for d in $(lowers "$IF" 0); do',
    "  dev=/sys/class/net/$d/device",
    '  drv=$(readlink "$dev/driver"); msi=$dev/msi_irqs; numa=$dev/numa_node',
    '  [ -d "$msi" ] || msi=$dev/../msi_irqs; [ -r "$numa" ] || numa=$dev/../numa_node',
    '  bus=$(readlink -f "$dev"); case "${bus##*/}" in virtio*) bus=${bus%/*};; esac',
    '  echo "dev${T}$d${T}${drv##*/}${T}${bus##*/}${T}$(r "$numa")"',
    '  if [ -d "$msi" ]; then m=$(ls "$msi" | tr \'\\n\' \' \'); echo "msi${T}$d${T}$m"; IRQS="$IRQS $m"; else NOMSI=yes; fi',
    "done",
    // A device without MSI interrupts (legacy INTx): every IRQ is a candidate. No device: none.
    "[ -n \"$NOMSI\" ] && IRQS=$(ls /proc/irq | grep -E '^[0-9]+$')",
    "DBG=; [ -d /sys/kernel/debug/irq/irqs ] && DBG=yes",
    // `read` is a builtin: no process per IRQ, which matters on slow hosts with many IRQs.
    "for i in $IRQS; do",
    '  s=; e=-; read -r s < "/proc/irq/$i/smp_affinity_list" 2>/dev/null || continue',
    '  [ -r "/proc/irq/$i/effective_affinity_list" ] && { read -r e < "/proc/irq/$i/effective_affinity_list" || e=-; }',
    '  echo "aff${T}$i${T}$s${T}${e:--}"',
    '  [ -n "$DBG" ] && grep -qs AFFINITY_MANAGED "/sys/kernel/debug/irq/irqs/$i" && echo "managed${T}$i"',
    "done",
    'if command -v irqbalance >/dev/null 2>&1; then echo "ib${T}installed${T}yes"; else echo "ib${T}installed${T}no"; fi',
    'echo "ib${T}active${T}$(systemctl is-active irqbalance 2>/dev/null)"',
    'echo "ib${T}enabled${T}$(systemctl is-enabled irqbalance 2>/dev/null)"',
    `for f in ${IRQBALANCE_OPTION_FILES.join(" ")}; do`,
    '  [ -f "$f" ] || continue',
    '  echo "ib${T}options${T}$f"',
    "  a=$(grep -E '^[[:space:]]*IRQBALANCE_ARGS=' \"$f\" | tail -n 1)",
    '  [ -n "$a" ] && echo "ib${T}args${T}${a#*=}"',
    "  break",
    "done",
    `for s in ${IRQBALANCE_STATE_DIR}/*.banned; do [ -f "$s" ] && echo "ib\${T}owned\${T}$(basename "$s" .banned)\${T}$(echo $(r "$s"))"; done`,
    `for s in ${IRQBALANCE_STATE_DIR}/*.stopped; do [ -f "$s" ] && echo "ib\${T}stopped\${T}$(basename "$s" .stopped)"; done`,
    "exit 0",
  ].join("\n");
}

function num(text: string, line: string, full: string): number {
  if (!/^\d+$/.test(text)) throw new ParseError(TOOL, `expected a number in "${line}"`, full);
  return Number(text);
}

function cpus(text: string, line: string, full: string): number[] {
  try {
    return parseCpuList(text);
  } catch {
    throw new ParseError(TOOL, `expected a CPU list in "${line}"`, full);
  }
}

/** Parses what {@link renderIrqProbe} prints. @throws ParseError on a line it cannot read. */
export function parseIrqProbe(text: string): IrqProbe {
  let online: number[] = [];
  let possible: number[] = [];
  const nodes = new Map<number, number[]>();
  const siblings = new Map<number, number[]>();
  const devices: IrqDevice[] = [];
  const msi = new Map<string, number[]>();
  const affinity = new Map<number, { smp: string; effective: string | null }>();
  const managed = new Set<number>();
  const ib = {
    installed: false,
    active: false,
    enabled: "",
    optionsFile: null as string | null,
    args: null as string | null,
    owned: {} as Record<string, number[]>,
    stoppedBy: [] as string[],
  };
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const f = line.split("\t");
    const [kind, a = "", b = "", c = "", d = ""] = f;
    switch (kind) {
      case "cpu":
        if (a === "online") online = cpus(b, line, text);
        else if (a === "possible") possible = cpus(b, line, text);
        break;
      case "node":
        nodes.set(num(a, line, text), cpus(b, line, text));
        break;
      case "siblings":
        siblings.set(num(a, line, text), cpus(b, line, text));
        break;
      case "dev": {
        const n = d.trim();
        devices.push({
          ifname: a,
          driver: b,
          busInfo: c,
          numaNode: /^\d+$/.test(n) ? Number(n) : null,
          msiIrqs: null,
        });
        break;
      }
      case "msi":
        msi.set(
          a,
          b
            .trim()
            .split(/\s+/)
            .filter((x) => x !== "")
            .map((x) => num(x, line, text)),
        );
        break;
      case "aff":
        affinity.set(num(a, line, text), {
          smp: b.trim(),
          effective: c.trim() === "-" || c.trim() === "" ? null : c.trim(),
        });
        break;
      case "managed":
        managed.add(num(a, line, text));
        break;
      case "ib":
        if (a === "installed") ib.installed = b === "yes";
        else if (a === "active") ib.active = b.trim() === "active";
        else if (a === "enabled") ib.enabled = b.trim();
        else if (a === "options") ib.optionsFile = b;
        else if (a === "args") ib.args = f.slice(2).join("\t");
        else if (a === "owned")
          ib.owned[b] = c
            .trim()
            .split(/\s+/)
            .filter((x) => /^\d+$/.test(x))
            .map(Number);
        else if (a === "stopped") ib.stoppedBy.push(b);
        break;
      default:
        throw new ParseError(TOOL, `unexpected line "${line}"`, text);
    }
  }
  return {
    online,
    possible,
    nodes,
    siblings,
    devices: devices.map((d) => ({ ...d, msiIrqs: msi.get(d.ifname) ?? null })),
    affinity,
    managed,
    irqbalance: ib,
  };
}

// ---------------------------------------------------------------------------------------------
// Pinning

/** One IRQ to place: by its action name (as in /proc/interrupts and /proc/irq/N/<name>). */
export interface PinEntry {
  readonly action: string;
  /** The cpulist to write to `smp_affinity_list`. */
  readonly cpus: string;
}

/** What the pin script does about irqbalance. */
export type IrqbalanceAction =
  /**
   * Add `--banirq=N` for the pinned IRQs to its options (replacing this resource's earlier ones).
   * `optionsFile` "*": the first of {@link IRQBALANCE_OPTION_FILES} the host has, found when the
   * script runs, and no ban where irqbalance or every options file is missing (as IrqAffinity
   * decides from its probe).
   */
  | { readonly mode: "ban"; readonly optionsFile: string }
  /** Remove this resource's bans. */
  | { readonly mode: "unban"; readonly optionsFile: string }
  /** Stop and disable it, remembering how it was. */
  | { readonly mode: "stop" }
  /** Drop this resource's stop; the last one gives irqbalance back its state. */
  | { readonly mode: "unstop" }
  | { readonly mode: "none" };

export interface PinScriptOptions {
  /** The resource's name for its irqbalance state files: letters, digits and `:_.-`. */
  readonly owner: string;
  readonly irqbalance: IrqbalanceAction;
  /**
   * Seconds to wait for every named IRQ to exist (at boot a driver may request its IRQs only
   * when the interface comes up); 0 fails at once on a name that is missing.
   */
  readonly waitSeconds: number;
  /** Where a name is missing: fail (apply) or pin what there is (boot, restore). */
  readonly missing: "fail" | "skip";
  /**
   * Shell that prints the table (`action <TAB> cpus` per line) when the script runs, instead of
   * `entries`: a plan made on the host at boot (src/host/irqBoot.ts). A failing plan ends the
   * script with its own exit code, nothing changed.
   */
  readonly tableFrom?: string;
}

/**
 * The script that pins `entries`. It finds each name's IRQ in /proc/irq, does what
 * `irqbalance` says, then writes every `smp_affinity_list`; if anything fails it puts back every
 * IRQ it wrote and irqbalance as it was, and exits 3. Output, tab-separated:
 *   missing ACTION                  no IRQ has that name (exit 4 with `missing: "fail"`)
 *   failed IRQ ACTION REASON        writing that IRQ failed; everything was put back (exit 3)
 *   ibfailed REASON                 irqbalance could not be changed; nothing was written (exit 5)
 *   pinned IRQ ACTION SMP EFFECTIVE ORIGINAL   per IRQ written, read back after all writes
 *   ib banned|stopped|restored … , ibwarn REASON
 */
export function renderPinScript(entries: readonly PinEntry[], o: PinScriptOptions): string {
  if (!/^[A-Za-z0-9:_.-]{1,200}$/.test(o.owner)) throw new Error(`invalid owner ${o.owner}`);
  for (const e of entries) {
    if (/[\t\n/]/.test(e.action) || e.action === "")
      throw new Error(`IRQ action name ${JSON.stringify(e.action)} cannot be pinned by name`);
    if (!/^[0-9,-]+$/.test(e.cpus)) throw new Error(`invalid cpulist ${e.cpus}`);
  }
  const table = entries.map((e) => `${e.action}\t${e.cpus}`).join("\n");
  const findOptions = `F=; if command -v irqbalance >/dev/null 2>&1; then for f in ${IRQBALANCE_OPTION_FILES.join(" ")}; do [ -f "$f" ] && { F=$f; break; }; done; fi`;
  const ibAuto = o.irqbalance.mode === "ban" && o.irqbalance.optionsFile === "*";
  const dir = IRQBALANCE_STATE_DIR;
  const state = shellQuote(`${dir}/${o.owner}`);
  const ib = o.irqbalance;
  const lines = [
    "set -u",
    "T=$(printf '\\t')",
    o.tableFrom === undefined ? `TABLE=${shellQuote(table)}` : `TABLE=$(${o.tableFrom}) || exit $?`,
    `WAIT=${Math.max(0, Math.floor(o.waitSeconds)) * 10}`,
    // Every IRQ's action names, as /proc/irq/N/<name> directories, joined with the table.
    "resolve() {",
    '  for d in /proc/irq/[0-9]*/*/; do n=${d%/}; i=${n#/proc/irq/}; printf \'%s\\t%s\\n\' "${i%%/*}" "${n##*/}"; done |',
    '  TABLE="$TABLE" awk -F\'\\t\' \'BEGIN { n = split(ENVIRON["TABLE"], L, "\\n"); for (k = 1; k <= n; k++) { split(L[k], p, "\\t"); if (p[1] != "") want[p[1]] = p[2] } }',
    '    ($2 in want) && !($2 in seen) { seen[$2] = 1; print $1 "\\t" want[$2] "\\t" $2 }',
    '    END { for (a in want) if (!(a in seen)) print "missing\\t" a }\'',
    "}",
    "i=0",
    "while :; do",
    '  R=$(resolve); M=$(printf \'%s\\n\' "$R" | grep "^missing$T" || true)',
    '  [ -z "$M" ] || [ "$i" -ge "$WAIT" ] && break',
    "  sleep 0.1; i=$((i + 1))",
    "done",
    '[ -z "$M" ] || printf \'%s\\n\' "$M"',
    o.missing === "fail" ? '[ -z "$M" ] || exit 4' : ":",
    'P=$(printf \'%s\\n\' "$R" | grep -v "^missing$T" | grep . || true)',
    "IRQS=$(printf '%s\\n' \"$P\" | cut -f1 | grep . | sort -n | tr '\\n' ' ')",
    `mkdir -p ${shellQuote(dir)} || { echo "ibfailed\${T}cannot create ${dir}"; exit 5; }`,
    "ib_undo() { :; }",
    // On a failure, the folders this run may have made go again when empty.
    `cleanup() { rmdir ${shellQuote(dir)} ${shellQuote(dir.replace(/\/[^/]+$/, ""))} 2>/dev/null || true; }`,
  ];
  if (ib.mode === "ban" || ib.mode === "unban") {
    const file = shellQuote(ib.optionsFile);
    // Our bans are `--banirq=N` tokens in IRQBALANCE_ARGS; the state file lists the ones this
    // resource added, so a ban the user wrote is never removed. A line nettune had to add is
    // removed again when the last ban goes.
    if (ibAuto) lines.push(findOptions, 'if [ -n "$F" ]; then');
    lines.push(
      `${ibAuto ? "" : `F=${file}; `}S=${state}.banned; A=${shellQuote(`${dir}/appended-line`)}`,
      'OLD=$(cat "$S" 2>/dev/null || true)',
      ib.mode === "ban" ? 'NEW="$IRQS"' : "NEW=",
      'cp -p "$F" "$F.nettune-bak" 2>/dev/null || { echo "ibfailed${T}cannot read $F"; cleanup; exit 5; }',
      'HADA=; [ -f "$A" ] && HADA=yes',
      'ib_undo() { mv -f "$F.nettune-bak" "$F"; [ -n "$OLD" ] && printf \'%s\\n\' "$OLD" > "$S" || rm -f "$S"; [ -n "$HADA" ] || rm -f "$A"; [ "$(systemctl is-active irqbalance 2>/dev/null)" = active ] && systemctl restart irqbalance; }',
      'OUT=$(Q="\'" OLD="$OLD" NEW="$NEW" APPENDED=$([ -f "$A" ] && echo yes) awk \'',
      '  BEGIN { split(ENVIRON["OLD"], t, /[ \\t]+/); for (k in t) if (t[k] != "") old[t[k]] = 1; nn = split(ENVIRON["NEW"], nw, /[ \\t]+/); last = 0 }',
      "  { line[NR] = $0; if ($0 ~ /^[ \\t]*IRQBALANCE_ARGS=/) last = NR }",
      "  END {",
      '    v = ""; if (last) { v = line[last]; sub(/^[ \\t]*IRQBALANCE_ARGS=/, "", v)',
      '      q = ENVIRON["Q"]; if (v ~ /^".*"$/ || (length(v) >= 2 && substr(v, 1, 1) == q && substr(v, length(v), 1) == q)) v = substr(v, 2, length(v) - 2)',
      '      else if (v ~ /[ \\t"$`\\\\]/ || index(v, q)) { print "ERR\\tthe IRQBALANCE_ARGS line of " FILENAME " is not a plain value nettune can edit"; exit 1 } }',
      '    n = split(v, t, /[ \\t]+/); out = ""',
      '    for (k = 1; k <= n; k++) { if (t[k] == "") continue; id = t[k]; sub(/^--banirq=/, "", id)',
      "      if (t[k] ~ /^--banirq=[0-9]+$/) { if (id in old) continue; present[id] = 1 }",
      '      out = out (out == "" ? "" : " ") t[k] }',
      '    owned = ""',
      '    for (k = 1; k <= nn; k++) { id = nw[k]; if (id == "" || (id in present)) continue; present[id] = 1; out = out (out == "" ? "" : " ") "--banirq=" id; owned = owned " " id }',
      '    print "OWNED\\t" owned',
      '    if (!last && out == "") { for (k = 1; k <= NR; k++) print "L\\t" line[k]; exit 0 }',
      '    if (!last) { for (k = 1; k <= NR; k++) print "L\\t" line[k]; print "L\\tIRQBALANCE_ARGS=\\"" out "\\""; print "APPENDED"; exit 0 }',
      "    for (k = 1; k <= NR; k++) {",
      '      if (k == last && out == "" && ENVIRON["APPENDED"] == "yes") { print "UNAPPENDED"; continue }',
      '      if (k == last) print "L\\tIRQBALANCE_ARGS=\\"" out "\\""; else print "L\\t" line[k] } }',
      '\' "$F")',
      'if printf \'%s\\n\' "$OUT" | grep -q "^ERR$T"; then printf \'%s\\n\' "$OUT" | sed -n "s/^ERR$T/ibfailed$T/p"; rm -f "$F.nettune-bak"; cleanup; exit 5; fi',
      'printf \'%s\\n\' "$OUT" | sed -n "s/^L$T//p" > "$F.nettune-tmp" && cat "$F.nettune-tmp" > "$F" && rm -f "$F.nettune-tmp" || { echo "ibfailed${T}cannot write $F"; ib_undo; cleanup; exit 5; }',
      'printf \'%s\\n\' "$OUT" | grep -qx APPENDED && : > "$A"',
      'printf \'%s\\n\' "$OUT" | grep -qx UNAPPENDED && rm -f "$A"',
      "OWNED=$(printf '%s\\n' \"$OUT\" | sed -n \"s/^OWNED$T//p\" | tr ' ' '\\n' | grep . | sort -n | tr '\\n' ' ')",
      'if [ -n "$OWNED" ]; then printf \'%s\\n\' "$OWNED" > "$S"; else rm -f "$S"; fi',
      'if ! cmp -s "$F" "$F.nettune-bak" && [ "$(systemctl is-active irqbalance 2>/dev/null)" = active ]; then',
      '  systemctl restart irqbalance || echo "ibwarn${T}irqbalance did not restart: $(systemctl is-active irqbalance 2>&1)"',
      "fi",
      ib.mode === "ban"
        ? 'echo "ib${T}banned${T}$IRQS${T}$OWNED"'
        : 'echo "ib${T}unbanned${T}$OLD"',
    );
    if (ibAuto) lines.push("fi");
  } else if (ib.mode === "stop") {
    // The first resource to stop irqbalance records how it was; the last to let go restores it.
    lines.push(
      `S=${state}.stopped; O=${shellQuote(`${dir}/original-state`)}`,
      'WAS="$(systemctl is-active irqbalance 2>/dev/null) $(systemctl is-enabled irqbalance 2>/dev/null)"',
      '[ -f "$O" ] || printf \'%s\\n\' "$WAS" > "$O"',
      'NEWO=$([ -f "$S" ] || echo yes); : > "$S"',
      'ib_undo() { [ -n "$NEWO" ] && rm -f "$S"; if [ -z "$(ls ' +
        shellQuote(dir) +
        '/*.stopped 2>/dev/null)" ]; then case "$WAS" in *" enabled") systemctl enable --quiet irqbalance;; esac; case "$WAS" in "active "*) systemctl start irqbalance;; esac; rm -f "$O"; fi; }',
      'case "$WAS" in "active "*|*" enabled") systemctl disable --now --quiet irqbalance 2>&1 || { echo "ibfailed${T}systemctl disable --now irqbalance failed"; ib_undo; cleanup; exit 5; };; esac',
      'echo "ib${T}stopped${T}$WAS"',
    );
  } else if (ib.mode === "unstop") {
    lines.push(
      `S=${state}.stopped; O=${shellQuote(`${dir}/original-state`)}`,
      'rm -f "$S"',
      'if [ -z "$(ls ' + shellQuote(dir) + '/*.stopped 2>/dev/null)" ] && [ -f "$O" ]; then',
      '  WAS=$(cat "$O")',
      '  case "$WAS" in *" enabled") systemctl enable --quiet irqbalance || echo "ibwarn${T}could not enable irqbalance again";; esac',
      '  case "$WAS" in "active "*) systemctl start irqbalance || echo "ibwarn${T}could not start irqbalance again";; esac',
      '  rm -f "$O"; echo "ib${T}restored${T}$WAS"',
      "fi",
    );
  }
  lines.push(
    // Every write, all-or-nothing: a failure puts back each IRQ written before it.
    'DONE=""; FAIL=""',
    'while IFS="$T" read -r irq cpus action; do',
    '  [ -n "$irq" ] || continue',
    "  f=/proc/irq/$irq/smp_affinity_list",
    '  orig=$(cat "$f" 2>&1) || { FAIL="$irq$T$action$T$orig"; break; }',
    "  if ! err=$( (printf '%s\\n' \"$cpus\" > \"$f\") 2>&1 ); then FAIL=\"$irq$T$action$T$(printf '%s' \"$err\" | tr '\\n' ' ')\"; break; fi",
    '  DONE="$irq $orig $action',
    '$DONE"',
    "done <<EOF",
    "$P",
    "EOF",
    'if [ -n "$FAIL" ]; then',
    '  printf \'%s\\n\' "$DONE" | while read -r irq orig action; do [ -n "$irq" ] && printf \'%s\\n\' "$orig" > /proc/irq/$irq/smp_affinity_list; done',
    "  ib_undo",
    '  cleanup; echo "failed$T$FAIL"; exit 3',
    "fi",
    'rm -f "${F:-/nonexistent}.nettune-bak" 2>/dev/null',
    "printf '%s\\n' \"$DONE\" | while read -r irq orig action; do",
    '  [ -n "$irq" ] || continue',
    '  echo "pinned$T$irq$T$action$T$(cat /proc/irq/$irq/smp_affinity_list)$T$(cat /proc/irq/$irq/effective_affinity_list 2>/dev/null || echo -)$T$orig"',
    "done",
    "exit 0",
  );
  return lines.join("\n");
}

/** One IRQ the pin script wrote, as read back. */
export interface Pinned {
  readonly irq: number;
  readonly action: string;
  readonly smp: string;
  readonly effective: string | null;
  /** Its smp_affinity_list before the write. */
  readonly original: string;
}

/** What the pin script reported. */
export interface PinResult {
  readonly pinned: readonly Pinned[];
  readonly missing: readonly string[];
  readonly failed?: { readonly irq: number; readonly action: string; readonly reason: string };
  readonly ibFailed?: string;
  readonly ib?: { readonly what: string; readonly detail: readonly string[] };
  readonly ibWarnings: readonly string[];
}

/** Parses what {@link renderPinScript} printed. */
export function parsePinResult(text: string): PinResult {
  const pinned: Pinned[] = [];
  const missing: string[] = [];
  const ibWarnings: string[] = [];
  let failed: PinResult["failed"];
  let ibFailed: string | undefined;
  let ib: PinResult["ib"];
  for (const line of text.split("\n")) {
    const f = line.split("\t");
    switch (f[0]) {
      case "pinned":
        pinned.push({
          irq: Number(f[1]),
          action: f[2] ?? "",
          smp: (f[3] ?? "").trim(),
          effective: f[4] === undefined || f[4].trim() === "-" ? null : f[4].trim(),
          original: (f[5] ?? "").trim(),
        });
        break;
      case "missing":
        missing.push(f[1] ?? "");
        break;
      case "failed":
        failed = { irq: Number(f[1]), action: f[2] ?? "", reason: (f[3] ?? "").trim() };
        break;
      case "ibfailed":
        ibFailed = f.slice(1).join(" ").trim();
        break;
      case "ibwarn":
        ibWarnings.push(f.slice(1).join(" ").trim());
        break;
      case "ib":
        ib = { what: f[1] ?? "", detail: f.slice(2).map((s) => s.trim()) };
        break;
      default:
        break;
    }
  }
  return { pinned, missing, failed, ibFailed, ib, ibWarnings };
}

// ---------------------------------------------------------------------------------------------
// Persistence: the pin script at boot and when the queues change

/** Where a resource's on-host script and udev rule live. */
const SCRIPT_DIR = "/usr/local/lib/nettune";
const UDEV_DIR = "/etc/udev/rules.d";
const baseOf = (unitName: string) => unitName.replace(/\.service$/, "");
const scriptPathOf = (unitName: string) => `${SCRIPT_DIR}/${baseOf(unitName)}.sh`;
const rulePathOf = (unitName: string) => `${UDEV_DIR}/90-${baseOf(unitName)}.rules`;
const unitPath = (unitName: string) => `${UNIT_DIR}/${unitName}`;

/** What persistence needs to know of the resource. */
export interface IrqPersistTarget {
  readonly unitName: string;
  readonly interface: string;
}

/** The unit that runs the resource's script at boot, after the network and irqbalance. */
function unitText(inputs: IrqPersistTarget, devices: readonly string[]): string {
  return [
    "# Managed by nettune. Removed when the Pulumi resource is destroyed.",
    "[Unit]",
    `Description=nettune IrqAffinity on ${inputs.interface} (${devices.join(", ")})`,
    "After=network.target irqbalance.service",
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `ExecStart=/bin/sh ${scriptPathOf(inputs.unitName)}`,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/** The udev rule that re-runs the unit when a device's queues are added or removed. */
function ruleText(inputs: IrqPersistTarget, devices: readonly string[]): string {
  return [
    "# Managed by nettune: re-pins the queue IRQs when the queues change (ethtool -L, driver reload).",
    ...devices.map(
      (d) =>
        `ACTION=="add|remove", SUBSYSTEM=="queues", KERNEL=="rx-*", ENV{DEVPATH}=="*/net/${d}/queues/*", ` +
        `RUN+="/bin/systemctl --no-block restart ${inputs.unitName}"`,
    ),
    "",
  ].join("\n");
}

const writeFile = (path: string, text: string, mode = "644") =>
  `umask 022 && printf '%s' ${shellQuote(text)} > ${shellQuote(`${path}.nettune-tmp`)} && chmod ${mode} ${shellQuote(`${path}.nettune-tmp`)} && mv -f ${shellQuote(`${path}.nettune-tmp`)} ${shellQuote(path)}`;

/**
 * Installs a resource's boot script (the pin script of `pins`, waiting up to 30 s for their
 * names), its unit and its udev rule; not run: the pins are live already. `ib` is what the boot
 * script does about irqbalance (renew the bans, or nothing).
 */
export function renderIrqPersist(
  inputs: IrqPersistTarget,
  pins: readonly (PinEntry & { readonly device: string })[],
  ib: IrqbalanceAction,
): string {
  const devices = [...new Set(pins.map((p) => p.device))];
  // At boot a driver may request its IRQs only when the interface comes up: wait for them.
  const boot = renderPinScript(
    pins.map((p) => ({ action: p.action, cpus: p.cpus })),
    {
      owner: inputs.unitName.replace(/\.service$/, ""),
      irqbalance: ib,
      waitSeconds: 30,
      missing: "skip",
    },
  );
  const unit = shellQuote(inputs.unitName);
  return [
    "command -v systemctl >/dev/null || { echo 'systemd is required to persist IRQ pins (persist: false to skip)' >&2; exit 3; }",
    `mkdir -p ${SCRIPT_DIR}`,
    writeFile(
      scriptPathOf(inputs.unitName),
      `#!/bin/sh\n# Managed by nettune: pins the queue IRQs of ${inputs.interface} by name.\n${boot}\n`,
      "755",
    ),
    writeFile(unitPath(inputs.unitName), unitText(inputs, devices)),
    `systemctl enable --quiet --no-reload ${unit} && systemctl daemon-reload`,
    `if [ -d ${UDEV_DIR} ]; then ${writeFile(rulePathOf(inputs.unitName), ruleText(inputs, devices))} && { udevadm control --reload-rules 2>/dev/null || true; }; fi`,
  ].join("\n");
}

/**
 * What {@link renderIrqPersist} installs, for a host whose topology is known only when it boots
 * (cloud-init user data, src/resources/cloudInit.ts): the same unit and udev rule, and a script
 * that plans the pins on the host (`planner`, from src/host/irqBoot.ts: prints the table or
 * fails), waiting up to 30 s for the queue interrupts to appear. The first time it runs it
 * writes IrqAffinity's journal of originals (`journal`: each planned interrupt's CPUs and
 * irqbalance's state, as IrqAffinity's create writes it), then pins with the same script an
 * apply runs. IrqAffinity over SSH later finds the pins as planned and takes the files over.
 */
export function renderIrqBootFiles(
  target: IrqPersistTarget,
  planner: string,
  journal: string,
  irqbalance: IrqbalanceAction,
): { path: string; content: string; permissions: string }[] {
  const pin = renderPinScript([], {
    owner: baseOf(target.unitName),
    irqbalance,
    waitSeconds: 0,
    missing: "skip",
    tableFrom: "printf '%s\\n' \"$NT_PLAN\"",
  });
  const j = shellQuote(journal);
  const rows = [
    // Each planned interrupt's CPUs now, found by its name as the pin script finds it.
    `printf '%s\\n' "$NT_PLAN" | while IFS="$(printf '\\t')" read -r a c; do [ -n "$a" ] || continue; ` +
      `for d in /proc/irq/[0-9]*/"$a"; do [ -d "$d" ] || continue; n=\${d#/proc/irq/}; ` +
      `printf '%s\\t%s\\n' "$a" "$(cat /proc/irq/\${n%%/*}/smp_affinity_list)"; break; done; done`,
    // irqbalance as IrqAffinity's probe reads it (src/host/irqs.ts, renderIrqProbe).
    `i=false; command -v irqbalance >/dev/null 2>&1 && i=true; ` +
      `a=false; [ "$(systemctl is-active irqbalance 2>/dev/null)" = active ] && a=true; ` +
      `printf '@irqbalance\\t{"installed":%s,"active":%s,"enabled":"%s"}\\n' "$i" "$a" "$(systemctl is-enabled irqbalance 2>/dev/null)"`,
  ];
  const script = [
    "#!/bin/sh",
    `# Managed by nettune: plans and pins the queue IRQs of ${target.interface} at boot (nettune.cloudInit).`,
    `nt_plan() (\n${planner}\n)`,
    "i=0; until NT_PLAN=$(nt_plan 2>/dev/null); do",
    '  [ "$i" -ge 300 ] && { nt_plan >/dev/null; exit 3; }',
    "  sleep 0.1; i=$((i + 1))",
    "done",
    `[ -e ${j} ] || { mkdir -p ${shellQuote(journal.replace(/\/[^/]*$/, ""))} && { ${rows.join("; ")}; } > ${shellQuote(`${journal}.tmp`)} && mv -f ${shellQuote(`${journal}.tmp`)} ${j}; }`,
    pin,
    "",
  ].join("\n");
  return [
    { path: scriptPathOf(target.unitName), content: script, permissions: "0755" },
    {
      path: unitPath(target.unitName),
      content: unitText(target, [target.interface]),
      permissions: "0644",
    },
    {
      path: rulePathOf(target.unitName),
      content: ruleText(target, [target.interface]),
      permissions: "0644",
    },
  ];
}

/** Removes what {@link renderIrqPersist} installed; succeeds when it is gone already. */
export function renderIrqUnpersist(unitName: string): string {
  const unit = shellQuote(unitName);
  return [
    `if [ -e ${shellQuote(unitPath(unitName))} ]; then systemctl disable --quiet --no-reload ${unit} 2>/dev/null || true; rm -f ${shellQuote(unitPath(unitName))}; systemctl daemon-reload; fi`,
    `rm -f ${shellQuote(scriptPathOf(unitName))}`,
    `if [ -e ${shellQuote(rulePathOf(unitName))} ]; then rm -f ${shellQuote(rulePathOf(unitName))}; udevadm control --reload-rules 2>/dev/null || true; fi`,
    // The folders nettune created, once nothing of any resource is left in them.
    `rmdir ${SCRIPT_DIR} ${IRQBALANCE_STATE_DIR} ${IRQBALANCE_STATE_DIR.replace(/\/[^/]+$/, "")} 2>/dev/null || true`,
  ].join("\n");
}
