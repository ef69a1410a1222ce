/**
 * PacketSteering at boot: a POSIX shell script, for `nettune.cloudInit`, that sets what a
 * PacketSteering would set on the instance itself, where the queue count is known only when it
 * boots. It writes the files the resource writes (src/specs/packetSteering.ts):
 *
 *   rps           each rx queue's `rps_cpus` (one list for every queue, or one per queue)
 *   rfs           `net.core.rps_sock_flow_entries`, and each rx queue's `rps_flow_cnt` as
 *                 flowCntPerQueue plans it: flowEntries / rx queues, rounded up to a power of 2
 *   xps.cpus      each tx queue's `xps_cpus`
 *   xps.rxqs      the named tx queues' `xps_rxqs`
 *
 * The first time it runs it writes PacketSteering's journal of originals (`key <TAB> JSON`, masks
 * as cpulists, as the resource's create writes it), so the NetworkTuning over SSH later records
 * the image's values and its destroy puts them back. Every write is read back: a file that is
 * missing or reads back otherwise (a CPU the kernel does not have or drops) stops the script with
 * exit 3 and the reason on stderr, and what it had written is put back first.
 *
 * It has no single quote, so it fits inside the single-quoted `sh -c` of a unit's ExecStart.
 * No I/O here.
 */
import type { PacketSteeringInputs, QueueCpus } from "../schemas/packetSteering";
import { parseCpuList, renderCpuMask } from "./cpus";
import { SOCK_FLOW_KEY } from "../specs/packetSteering";

/** A cpulist as the shortest mask the kernel takes (leading zero words implied). */
function maskOf(list: string): string {
  const cpus = parseCpuList(list);
  const top = cpus.length === 0 ? 0 : Math.max(...cpus);
  return renderCpuMask(cpus, top + 1).replace(/^0+(?=[0-9a-f])/, "");
}

/** `"x"` for the script: double-quoted, nothing the shell expands. */
const dq = (s: string) => {
  if (!/^[A-Za-z0-9_./,:=+@-]*$/.test(s))
    throw new RangeError(`steering at boot: cannot quote ${s}`);
  return `"${s}"`;
};

/**
 * awk that prints a mask (`00000000,0000000f`, words from the right) as a cpulist (`0-3`), or
 * a count as it is; `v` is the text, `l` 1 for a mask. In double quotes: `$` is escaped.
 */
const TO_VALUE =
  'awk -v v="$1" -v l="$2" "BEGIN { if (!l) { print v; exit } gsub(/,/, \\"\\", v); n = length(v); s = -1; o = \\"\\"; ' +
  'for (i = n; i >= 0; i--) { d = i ? index(\\"0123456789abcdef\\", tolower(substr(v, i, 1))) - 1 : 0; ' +
  "for (b = 0; b < 4; b++) { c = (n - i) * 4 + b; if (i && int(d / 2 ^ b) % 2) { if (s < 0) s = c } " +
  'else if (s >= 0) { o = o (o == \\"\\" ? \\"\\" : \\",\\") s (c - 1 > s ? \\"-\\" c - 1 : \\"\\"); s = -1 } } } print o }"';

/**
 * The script. `journal` is the journal of originals' path; `opts.root` a folder prefixed to every
 * /sys and /proc path it reads and writes (tests run it on a built tree).
 */
export function renderSteeringBoot(
  p: PacketSteeringInputs,
  journal: string,
  opts: { root?: string } = {},
): string {
  const lines: string[] = [];
  /** The plan's lines for one list of CPUs per queue of `dir`: `key mask`. */
  const perQueue = (declared: QueueCpus, dir: "rx" | "tx", file: string) => {
    if (typeof declared === "string")
      lines.push(`for q in $${dir}; do echo "${dir}-$q/${file} ${maskOf(declared)}"; done`);
    else
      for (const [q, list] of Object.entries(declared))
        lines.push(`echo "${dir}-${Number(q)}/${file} ${maskOf(list)}"`);
  };
  if (p.rps !== undefined) perQueue(p.rps, "rx", "rps_cpus");
  if (p.rfs) {
    const f = p.rfs.flowEntries;
    lines.push(
      `c=$(( (${f} + nrx - 1) / nrx )); p=1; while [ $p -lt $c ]; do p=$((p * 2)); done`,
      'for q in $rx; do echo "rx-$q/rps_flow_cnt $p"; done',
    );
  }
  const xps = p.xps;
  if (xps && "cpus" in xps) perQueue(xps.cpus, "tx", "xps_cpus");
  if (xps && "rxqs" in xps)
    for (const [q, list] of Object.entries(xps.rxqs))
      lines.push(`echo "tx-${Number(q)}/xps_rxqs ${maskOf(list)}"`);
  if (p.rfs) lines.push(`echo "${SOCK_FLOW_KEY} ${p.rfs.flowEntries}"`);

  const root = dq(opts.root ?? "");
  const dir = journal.replace(/\/[^/]*$/, "");
  // One line: it goes on a unit's ExecStart. W holds `key=text` of each file before it was
  // written, `|`-separated, for nt_fail to put back.
  return [
    `R=${root}; Q="$R/sys/class/net/${p.interface}/queues"; J=${dq(journal)}; I=${dq(p.interface)}; W=""`,
    `nt_path() { case "$1" in ${SOCK_FLOW_KEY}) echo "$R/proc/sys/net/core/rps_sock_flow_entries" ;; *) echo "$Q/$1" ;; esac; }`,
    // A file's value as the resource keeps it: masks as cpulists, counts as they are.
    `nt_value() { ${TO_VALUE}; }`,
    'nt_list() { case "$1" in *_cpus|*_rxqs) echo 1 ;; *) echo 0 ;; esac; }',
    'nt_fail() { echo "nettune: steering on $I: $1" >&2; for l in $(echo "$W" | tr "|" " "); do echo "${l#*=}" > "$(nt_path "${l%%=*}")"; done; exit 3; }',
    'rx=""; tx=""; for d in "$Q"/rx-* "$Q"/tx-*; do [ -d "$d" ] || continue; n=${d##*/}; case "$n" in rx-*) rx="$rx ${n#rx-}" ;; tx-*) tx="$tx ${n#tx-}" ;; esac; done',
    'nrx=$(echo $rx | wc -w); [ "$nrx" -gt 0 ] || nt_fail "no rx queues in $Q"',
    `P=$( ${lines.join("; ")} )`,
    'for l in $(echo "$P" | tr " " "="); do [ -e "$(nt_path "${l%%=*}")" ] || nt_fail "no ${l%%=*}"; done',
    // The journal of originals, once: each key's value now, as PacketSteering's create writes it.
    `[ -e "$J" ] || { mkdir -p ${dq(dir)} && for l in $(echo "$P" | tr " " "="); do k=\${l%%=*}; printf "%s\\t\\"%s\\"\\n" "$k" "$(nt_value "$(cat "$(nt_path "$k")")" "$(nt_list "$k")")"; done > "$J.tmp" && mv -f "$J.tmp" "$J"; } || nt_fail "cannot write $J"`,
    // Each write read back, as the apply reads its writes back.
    'for l in $(echo "$P" | tr " " "="); do k=${l%%=*}; v=${l#*=}; f=$(nt_path "$k"); o=$(cat "$f"); ' +
      'echo "$v" > "$f" || nt_fail "$k: writing $v failed"; W="$W|$k=$o"; ' +
      'a=$(nt_value "$(cat "$f")" "$(nt_list "$k")"); w=$(nt_value "$v" "$(nt_list "$k")"); ' +
      '[ "$a" = "$w" ] || nt_fail "$k: requested $w, the kernel reports $a"; done',
  ].join("; ");
}
