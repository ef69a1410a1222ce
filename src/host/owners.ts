/**
 * Ownership records: one small file per resource on its host, under {@link OWNERS_DIR}, naming
 * the resource (`project/stack/Kind name`) and the settings it owns (sysctl keys, an
 * interface's features, qdisc, MTU, channels, rings, IRQs, steering, XDP, and the files and
 * units it writes). Another stack's resource that would own one of them is refused at preview,
 * naming the owner: two stacks on one host would otherwise undo each other's settings, and
 * destroying one would delete the other's file or unit.
 *
 * Pure render and parse; the engine reads, writes and removes the records
 * (src/engine/ownership.ts).
 */
import { createHash } from "node:crypto";
import { shellQuote } from "../transport/quote";

export const OWNERS_DIR = "/var/lib/nettune/owners";

/** A setting a resource owns: its identity on the host and the input that sets it. */
export interface OwnedSetting {
  /** `sysctl:net.core.somaxconn`, `feature:eth0:generic-receive-offload`, `unit:nettune-…`. */
  readonly id: string;
  /** The input that sets it, as errors name it: `values["net.core.somaxconn"]`, `unitName`. */
  readonly input: string;
}

/** A record as read from a host. */
export interface OwnerRecord {
  /** The record's file. */
  readonly path: string;
  /** `project/stack/Kind name`. */
  readonly owner: string;
  readonly settings: readonly OwnedSetting[];
}

const HEADER = "# nettune ownership record: written and removed by nettune, do not edit";

/**
 * `project/stack` of an identity (`project/stack/Kind name`, made by the resource classes:
 * src/resources/owners.ts): records of the same stack never refuse each other.
 */
export function stackOf(owner: string): string {
  const parts = owner.split("/");
  return parts.slice(0, 2).join("/");
}

/**
 * The record's file: `<kind>-<name>-<8 hex of sha256(identity)>`, so the same resource name in
 * two stacks (or two names that reduce to one file name) never shares a record.
 */
export function recordPath(owner: string): string {
  const rest = owner.split("/").slice(2).join("/");
  const safe = rest
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .replace(/^[-.]+/, "")
    .slice(0, 100);
  const hash = createHash("sha256").update(owner).digest("hex").slice(0, 8);
  return `${OWNERS_DIR}/${safe}-${hash}`;
}

/** Tabs and newlines cannot be in a field: they would end it. */
const clean = (s: string) => s.replace(/[\t\r\n]/g, " ");

/** The record's text: a header, `owner <TAB> identity`, then `setting <TAB> id <TAB> input`. */
export function renderRecord(owner: string, settings: readonly OwnedSetting[]): string {
  const lines = [HEADER, `owner\t${clean(owner)}`];
  for (const s of settings) lines.push(`setting\t${clean(s.id)}\t${clean(s.input)}`);
  return `${lines.join("\n")}\n`;
}

const MARK = "@@nettune-owners";

/**
 * Shell that prints every record between marker lines, reading nothing else and never failing
 * (no directory: no records). It runs before a probe's own commands, in the same round trip.
 */
export function renderRecordsRead(): string {
  const d = shellQuote(OWNERS_DIR);
  return [
    `{ printf '${MARK} begin\\n'`,
    `for f in ${d}/*; do [ -f "$f" ] || continue; printf '${MARK} file %s\\n' "$f"; cat "$f"; echo; done`,
    `printf '${MARK} end\\n'; } </dev/null 2>/dev/null`,
  ].join("\n");
}

/**
 * The records {@link renderRecordsRead} printed, and the rest of stdout (what the commands after
 * it printed). Undefined when the markers are not there.
 */
export function takeRecords(
  stdout: string,
): { readonly records: OwnerRecord[]; readonly rest: string } | undefined {
  const begin = stdout.indexOf(`${MARK} begin\n`);
  const endMark = `${MARK} end\n`;
  const end = stdout.indexOf(endMark, begin);
  if (begin < 0 || end < 0) return undefined;
  const body = stdout.slice(begin + MARK.length + 7, end);
  const rest = stdout.slice(0, begin) + stdout.slice(end + endMark.length);
  return { records: parseRecords(body), rest };
}

/** Records from `@@nettune-owners file <path>` sections; a file without an owner is skipped. */
export function parseRecords(text: string): OwnerRecord[] {
  const out: OwnerRecord[] = [];
  let cur: { path: string; owner?: string; settings: OwnedSetting[] } | undefined;
  const flush = () => {
    if (cur?.owner) out.push({ path: cur.path, owner: cur.owner, settings: cur.settings });
  };
  for (const line of text.split("\n")) {
    const file = line.startsWith(`${MARK} file `) ? line.slice(MARK.length + 6) : undefined;
    if (file !== undefined) {
      flush();
      cur = { path: file, settings: [] };
      continue;
    }
    if (!cur) continue;
    const [tag, a, b] = line.split("\t");
    if (tag === "owner" && a) cur.owner = a;
    if (tag === "setting" && a) cur.settings.push({ id: a, input: b ?? "" });
  }
  flush();
  return out;
}

/** What a setting id is, in words: `sysctl net.core.somaxconn`, `unit nettune-mtu-x.service`. */
export function describeSetting(id: string): string {
  const i = id.indexOf(":");
  if (i < 0) return id;
  const kind = id.slice(0, i);
  const rest = id.slice(i + 1);
  const j = rest.indexOf(":");
  // `feature:eth0:gro` → `feature gro of eth0`.
  if (kind === "feature" && j > 0) return `feature ${rest.slice(j + 1)} of ${rest.slice(0, j)}`;
  return `${kind} ${rest}`;
}

/** One setting `owner` wants that another stack's resource owns. */
export interface Overlap {
  readonly setting: OwnedSetting;
  readonly other: OwnerRecord;
}

/**
 * The settings of `owner` that a record of another stack also owns. Records of the same stack
 * are left to the program's own one-owner check (src/resources/owners.ts): a resource renamed
 * in a stack is created before its old name is deleted.
 */
export function overlaps(
  owner: string,
  settings: readonly OwnedSetting[],
  records: readonly OwnerRecord[],
): Overlap[] {
  const mine = stackOf(owner);
  const out: Overlap[] = [];
  for (const s of settings) {
    for (const r of records) {
      if (r.owner === owner || stackOf(r.owner) === mine) continue;
      if (r.settings.some((o) => o.id === s.id)) {
        out.push({ setting: s, other: r });
        break;
      }
    }
  }
  return out;
}

/** The failure of one overlap, naming the field, the setting and its owner. */
export function overlapReason(o: Overlap, target: string): string {
  return (
    `${describeSetting(o.setting.id)} on ${target} is owned by ${o.other.owner} ` +
    `(${o.other.path}); a setting may have one owner per host: remove it from one of the stacks`
  );
}

/** Shell that writes a record whole (temp file, then rename). */
export function renderRecordWrite(owner: string, settings: readonly OwnedSetting[]): string {
  const p = shellQuote(recordPath(owner));
  const tmp = shellQuote(`${recordPath(owner)}.tmp`);
  return (
    `mkdir -p ${shellQuote(OWNERS_DIR)} && umask 022 && ` +
    `printf '%s' ${shellQuote(renderRecord(owner, settings))} > ${tmp} && mv -f ${tmp} ${p}`
  );
}

/** Where claims take turns: outside OWNERS_DIR, which is removed once empty. */
export const CLAIM_LOCK = "/run/lock/nettune-owners.lock";
/** The exit code of a script whose claim was refused: nothing after the claim ran. */
export const CLAIM_REFUSED = 75;
const OWNED = "@@nettune-owned";

/**
 * Shell that claims `settings` for `owner` and then lets the script after it run: under a lock
 * that every claim on the host takes (flock, where the host has it), it looks again for a
 * record of another stack that owns one of them, and writes this resource's record only when
 * there is none (removing `previous`'s record, an identity the resource had before). Two
 * stacks that run `up` at the same moment both pass the check at preview; the second to claim
 * is refused here, before its apply changed anything.
 *
 * A refused claim prints `@@nettune-owned <TAB> id <TAB> owner <TAB> record` per setting and
 * ends the script with {@link CLAIM_REFUSED}; {@link takeRefusal} reads it. Any other trouble
 * (no flock, a read-only disk) lets the apply go on, as the record write always did.
 */
export function renderRecordClaim(
  owner: string,
  settings: readonly OwnedSetting[],
  previous?: string,
): string {
  const dir = shellQuote(OWNERS_DIR);
  const ids = settings.map((s) => clean(s.id)).join("\n");
  const find =
    `printf '%s\\n' ${shellQuote(ids)} | awk -F '\\t' -v self=${shellQuote(recordPath(owner))} ` +
    `-v stack=${shellQuote(`${stackOf(owner)}/`)} ` +
    `'NR == FNR { want[$0] = 1; next } FNR == 1 { skip = (FILENAME == self); who = "" } ` +
    `$1 == "owner" { who = $2; if (index($2, stack) == 1) skip = 1 } ` +
    `!skip && $1 == "setting" && ($2 in want) { printf "${OWNED}\\t%s\\t%s\\t%s\\n", $2, who, FILENAME }' ` +
    `- ${dir}/* 2>/dev/null`;
  const remove =
    previous !== undefined && previous !== owner ? `${renderRecordRemove(previous)}; ` : "";
  return [
    "nt_owned=$( (",
    `  mkdir -p ${dir} || exit 0`,
    `  if command -v flock >/dev/null 2>&1 && [ -w ${shellQuote(CLAIM_LOCK.replace(/\/[^/]*$/, ""))} ]; then exec 9>${shellQuote(CLAIM_LOCK)}; flock -w 30 9; fi`,
    `  c=$(${find})`,
    `  if [ -n "$c" ]; then printf '%s\\n' "$c"; exit 0; fi`,
    `  ${remove}${renderRecordWrite(owner, settings)}`,
    ") 2>/dev/null )",
    `if [ -n "$nt_owned" ]; then printf '%s\\n' "$nt_owned"; exit ${CLAIM_REFUSED}; fi`,
  ].join("\n");
}

/** The settings a refused claim printed, with their owners; undefined when it was not refused. */
export function takeRefusal(
  stdout: string,
): { readonly id: string; readonly owner: string; readonly path: string }[] | undefined {
  const out: { id: string; owner: string; path: string }[] = [];
  for (const line of stdout.split("\n")) {
    const [mark, id, owner, path] = line.split("\t");
    if (mark === OWNED && id && owner !== undefined && path !== undefined)
      out.push({ id, owner, path });
  }
  return out.length > 0 ? out : undefined;
}

/** Shell that removes a record, and the directory once empty. */
export function renderRecordRemove(owner: string): string {
  return (
    `rm -f ${shellQuote(recordPath(owner))}; ` +
    `d=${shellQuote(OWNERS_DIR)}; rmdir "$d" "\${d%/*}" 2>/dev/null; true`
  );
}
