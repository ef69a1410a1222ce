/**
 * The one all-or-nothing script nettune changes a host with: steps run in order, each with the
 * shell that undoes it; the first failure undoes that step and every one before it, in reverse
 * order. It may first read sysctl keys (the originals a create records, the values an undo puts
 * back) before anything is written. No I/O here: `specs/` runs these through a transport.
 */
import { shellQuote } from "../transport/quote";
import { normalizeSysctl } from "../schemas/sysctl";
import { ParseError } from "./errors";
import { sysctlPath } from "./sysctl";

const TOOL = "nettune steps";

/** One change on the host, with what undoes it. */
export interface Step {
  /** The input the step serves, named in errors: `algorithm`, `qdisc`, `interfaces`, `persist`. */
  readonly property: string;
  /** What it does, in words: `net.ipv4.tcp_congestion_control = reno`. */
  readonly action: string;
  /**
   * Shell (already quoted) that does it; a non-zero exit is a failure, its exit status and
   * output the reason. It runs in a subshell: it cannot change the script's variables.
   */
  readonly run: string;
  /** Shell that undoes it, also after it failed half-way; run in reverse order on a failure. */
  readonly undo?: string;
  /** Shell run once every step succeeded (removing a backup). */
  readonly cleanup?: string;
  /** The sysctl key whose captured value the undo puts back: the script must capture it. */
  readonly captured?: string;
}

export interface StepsOptions {
  /**
   * Sysctl keys read before the first step, each printed as `captured <TAB> key <TAB> value`;
   * a {@link sysctlWriteStep} undoes to one. A key that cannot be read stops the script before
   * anything is written.
   */
  readonly capture?: readonly string[];
  /** Read-only shell run once every step succeeded; what it prints follows `applied`. */
  readonly after?: string;
  /**
   * A journal of originals: when the file exists, its `key <TAB> value` lines are printed as
   * `journal <TAB> key <TAB> value`; when it does not, the captured values are written to it
   * before the first step (exit 7 if it cannot be written: nothing is changed then), and a
   * step that fails removes it again with the rest. So the values a host had before a change
   * survive an apply whose answer never arrived, and a failed apply leaves nothing behind.
   */
  readonly journal?: string;
  /** What a new journal holds instead of the captured values (a resource's own originals). */
  readonly journalValues?: Readonly<Record<string, string>>;
}

/** Where a resource's journal of originals lives on the host. */
export const JOURNAL_DIR = "/var/lib/nettune/originals";

const procPath = (key: string) => shellQuote(`/proc/sys/${sysctlPath(key)}`);

const ESCAPES: Readonly<Record<string, string>> = { ".": "_d", _: "_u", "-": "_h", "/": "_s" };

/**
 * The shell variable the capture of `key` is kept in: one name per key, never another's
 * (`net.ipv4.tcp_rmem` -> `c_net_dipv4_dtcp_urmem`).
 */
function captureVar(key: string): string {
  const safe = [...key].map((ch) =>
    /[A-Za-z0-9]/.test(ch)
      ? ch
      : (ESCAPES[ch] ?? `_x${ch.codePointAt(0)!.toString(16).padStart(6, "0")}`),
  );
  return `c_${safe.join("")}`;
}

/**
 * The journal's shell (StepsOptions.journal): when the file exists, its `key <TAB> value` lines
 * are printed as `journal <TAB> key <TAB> value`; when it does not, what `rows` print is written
 * to it through a temp file (exit 7 if it cannot be: nothing is changed then), and `uj` is
 * defined to remove it again, for a script that fails and undoes what it did.
 */
function journalLines(path: string, rows: readonly string[]): string[] {
  const j = shellQuote(path);
  const tmp = shellQuote(`${path}.tmp`);
  return [
    `if [ -f ${j} ]; then while IFS= read -r l; do printf 'journal\\t%s\\n' "$l"; done < ${j}`,
    `else if ! e=$( { mkdir -p ${shellQuote(dirOf(path))} && { ${rows.join("; ") || ":"}; } > ${tmp} && mv -f ${tmp} ${j}; } 2>&1 ); then ` +
      `rm -f ${tmp}; printf 'failed\\t-1\\t7\\tcannot write the journal of originals ${path.replace(/'/g, "")}: %s\\n' "$(echo $e)"; exit 7; fi`,
    `uj() { ${renderJournalRemove(path)}; }; fi`,
  ];
}

const journalText = (values: Readonly<Record<string, string>>) =>
  Object.entries(values).map(([k, v]) => {
    if (/[\t\n]/.test(k + v)) throw new Error(`journal: ${k} holds a tab or a newline`);
    return `${k}\t${v}`;
  });

/**
 * A journal of originals for scripts other than {@link renderSteps} (the interface resources'
 * batches), with values known before the script runs: put it first. When the file exists it
 * prints it (read it with {@link parseJournal}); when it does not, it writes `values` to it
 * before anything else runs, or exits 7 saying why it could not.
 */
export function renderJournal(path: string, values: Readonly<Record<string, string>>): string {
  const rows = journalText(values).map((row) => `printf '%s\\n' ${shellQuote(row)}`);
  return journalLines(path, rows).join("\n");
}

/** The `journal <TAB> key <TAB> value` lines a script printed, as key -> value. */
export function parseJournal(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    const [tag, key, ...value] = line.split("\t");
    if (tag === "journal" && key) out[key] = value.join("\t");
  }
  return out;
}

/**
 * Removes a journal of originals, and its folders once empty; nothing to do when it is gone.
 * With `only`, only a journal that holds exactly these values: the one an apply wrote, which
 * its undo (a commit-confirmed rollback run later by the host) removes, while a journal an
 * earlier apply left, whose values the host no longer has, stays.
 */
export function renderJournalRemove(path: string, only?: Readonly<Record<string, string>>): string {
  const j = shellQuote(path);
  const rm = `rm -f ${j}; jd=${shellQuote(dirOf(path))}; rmdir "$jd" "\${jd%/*}" 2>/dev/null; true`;
  if (only === undefined) return rm;
  return `if [ "$(cat ${j} 2>/dev/null)" = ${shellQuote(journalText(only).join("\n"))} ]; then ${rm}; fi`;
}

/**
 * One script: the captures, then the steps. Output, one line each:
 *   captured <TAB> key <TAB> value            per capture key, values normalized
 *   unreadable <TAB> key <TAB> reason         a capture key cannot be read; nothing was run (exit 6)
 *   failed <TAB> index <TAB> status <TAB> reason   step `index` exited with `status`; it and every
 *                                             step before it were undone (exit 3)
 *   applied                                   every step succeeded; cleanups ran, `after` follows
 * Every undo is safe to run when its step did nothing, and runs in a subshell, so one that
 * fails or exits cannot stop the others.
 */
export function renderSteps(steps: readonly Step[], options: StepsOptions = {}): string {
  const capture = options.capture ?? [];
  for (const s of steps) {
    if (s.captured !== undefined && !capture.includes(s.captured))
      throw new Error(
        `renderSteps: ${s.action} undoes to a value of ${s.captured} it does not read`,
      );
  }
  const lines = ["set -f", "u0() { :; }", "uj() { :; }"];
  for (const key of capture) {
    const k = shellQuote(key);
    const c = captureVar(key);
    lines.push(
      `if ! ${c}=$(cat ${procPath(key)} 2>&1); then ` +
        `printf 'unreadable\\t%s\\t%s\\n' ${k} "$(echo $${c} | sed 's/^cat: //')"; exit 6; fi`,
      `${c}=$(echo $${c}); printf 'captured\\t%s\\t%s\\n' ${k} "$${c}"`,
    );
  }
  if (options.journal !== undefined) {
    const rows = options.journalValues
      ? journalText(options.journalValues).map((row) => `printf '%s\\n' ${shellQuote(row)}`)
      : capture.map((key) => `printf '%s\\t%s\\n' ${shellQuote(key)} "$${captureVar(key)}"`);
    lines.push(...journalLines(options.journal, rows));
  }
  steps.forEach((s, i) => {
    lines.push(
      s.undo === undefined
        ? `u${i + 1}() { u${i}; }`
        : `u${i + 1}() { ( ${s.undo}\n) >/dev/null 2>&1; u${i}; }`,
      `e=$( { ${s.run}\n} 2>&1 ); s=$?`,
      `if [ $s -ne 0 ]; then printf 'failed\\t${i}\\t%d\\t%s\\n' $s "$(echo $e)"; u${i + 1}; uj; exit 3; fi`,
    );
  });
  for (const s of steps) if (s.cleanup) lines.push(`( ${s.cleanup}\n) >/dev/null 2>&1`);
  lines.push("echo applied");
  if (options.after) lines.push(options.after);
  return lines.join("\n");
}

export type StepsOutcome =
  | {
      readonly ok: true;
      /** The capture keys' values before anything was written, normalized. */
      readonly captured: Readonly<Record<string, string>>;
      /** The journal's values (StepsOptions.journal), when it existed; normalized. */
      readonly journal: Readonly<Record<string, string>>;
      /** What `after` printed. */
      readonly after: string;
    }
  | {
      readonly ok: false;
      readonly kind: "unreadable";
      readonly key: string;
      readonly reason: string;
    }
  | {
      readonly ok: false;
      readonly kind: "failed";
      readonly index: number;
      /** The step's exit status: {@link sysctlWriteStep} tells a refused write from a read-back. */
      readonly status: number;
      readonly reason: string;
    };

/** Reads what {@link renderSteps} printed. */
export function parseSteps(stdout: string, exitCode: number | null): StepsOutcome {
  const lines = stdout.split("\n");
  const applied = lines.indexOf("applied");
  if (exitCode === 0 && applied >= 0) {
    const captured: Record<string, string> = {};
    const journal: Record<string, string> = {};
    for (const line of lines.slice(0, applied)) {
      const [tag, key, ...value] = line.split("\t");
      if (tag === "captured" && key) captured[key] = normalizeSysctl(value.join("\t"));
      if (tag === "journal" && key) journal[key] = normalizeSysctl(value.join("\t"));
    }
    return { ok: true, captured, journal, after: lines.slice(applied + 1).join("\n") };
  }
  for (const line of lines) {
    const failed = /^failed\t(-?\d+)\t(\d+)\t(.*)$/.exec(line);
    if (failed) {
      const [, index, status, reason] = failed;
      return {
        ok: false,
        kind: "failed",
        index: Number(index),
        status: Number(status),
        reason: reason!.trim(),
      };
    }
    const unreadable = /^unreadable\t([^\t]*)\t(.*)$/.exec(line);
    if (unreadable) {
      const [, key, reason] = unreadable;
      return {
        ok: false,
        kind: "unreadable",
        key: key!,
        reason: reason!.trim() || "cannot be read",
      };
    }
  }
  throw new ParseError(TOOL, `apply ended with exit code ${exitCode} and no result`, stdout);
}

/** Exit statuses of a {@link sysctlWriteStep} that failed. */
export const SYSCTL_STEP = {
  /** The kernel refused the write; the reason is its errno text (`Invalid argument`). */
  rejected: 1,
  /** The write went through but the key reads back otherwise; the reason is what it reads. */
  readBack: 2,
} as const;

/**
 * Writes a sysctl key through /proc/sys and reads it back; undone by writing `before`, or with
 * `before` null the value the script captured before its first step. A value the kernel clamps
 * or ignores fails the step, so nothing half-applied stays.
 */
export function sysctlWriteStep(
  property: string,
  key: string,
  value: string,
  before: string | null,
): Step {
  const p = procPath(key);
  const back = before === null ? `"$${captureVar(key)}"` : shellQuote(before);
  return {
    property,
    action: `${key} = ${value}`,
    run:
      // tee reports the kernel's errno ("Invalid argument"); a shell redirection would not.
      `e=$(printf '%s\\n' ${shellQuote(value)} | tee ${p} 2>&1 >/dev/null) || ` +
      `{ echo "\${e##*: }"; exit ${SYSCTL_STEP.rejected}; }\n` +
      `g=$(echo $(cat ${p} 2>&1)); [ "$g" = ${shellQuote(normalizeSysctl(value))} ] || ` +
      `{ printf '%s\\n' "$g"; exit ${SYSCTL_STEP.readBack}; }`,
    undo: `printf '%s\\n' ${back} > ${p}`,
    ...(before === null ? { captured: key } : {}),
  };
}

function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}
function siblingOf(path: string, suffix: string): string {
  return `${dirOf(path)}/.${path.slice(path.lastIndexOf("/") + 1)}.${suffix}`;
}

/**
 * Writes a file whole through a temp file beside it; a backup of the old one lets the step be
 * undone. `load` is shell run on the (quoted) temp file before it is moved into place
 * (`sysctl -p`): when it fails, the old file stays as it was.
 */
export function fileWriteStep(
  property: string,
  path: string,
  content: string,
  options: { load?: (tmp: string) => string } = {},
): Step {
  const f = shellQuote(path);
  const b = shellQuote(siblingOf(path, "nettune-bak"));
  const t = shellQuote(siblingOf(path, "nettune-tmp"));
  const load = options.load ? ` && ${options.load(t)}` : "";
  return {
    property,
    action: `write ${path}`,
    run:
      `mkdir -p ${shellQuote(dirOf(path))} && { if [ -e ${f} ]; then cp -p ${f} ${b}; else rm -f ${b}; fi; } && ` +
      `umask 022 && printf '%s' ${shellQuote(content)} > ${t}${load} && mv -f ${t} ${f}`,
    undo: `rm -f ${t}; if [ -e ${b} ]; then mv -f ${b} ${f}; else rm -f ${f}; fi`,
    cleanup: `rm -f ${b}`,
  };
}

/** The first line of every file nettune writes (sysctl.d, modules-load.d, units). */
export const MANAGED_HEADER = "# Managed by nettune";

/**
 * Fails (changing nothing) when `path` exists and nettune did not write it: its first line is
 * not {@link MANAGED_HEADER}. Put before a {@link fileWriteStep}, whose undo would otherwise
 * remove a file that was there before.
 */
export function fileOwnedStep(property: string, path: string): Step {
  const f = shellQuote(path);
  return {
    property,
    action: `check that ${path} is nettune's`,
    run:
      `if [ -e ${f} ] && [ "$(head -c ${MANAGED_HEADER.length} ${f})" != ${shellQuote(MANAGED_HEADER)} ]; then ` +
      `echo ${shellQuote(`${path} exists and nettune did not write it; nettune writes and removes only files it made: choose another fileName`)}; exit 1; fi`,
  };
}

/** Removes a file (nothing to do when it is gone); undone from a backup. */
export function fileRemoveStep(property: string, path: string): Step {
  const f = shellQuote(path);
  const b = shellQuote(siblingOf(path, "nettune-bak"));
  return {
    property,
    action: `remove ${path}`,
    run: `if [ -e ${f} ]; then cp -p ${f} ${b} && rm -f ${f}; else rm -f ${b}; fi`,
    undo: `if [ -e ${b} ]; then mv -f ${b} ${f}; fi`,
    cleanup: `rm -f ${b}`,
  };
}
