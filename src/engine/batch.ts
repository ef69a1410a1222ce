/**
 * The one way nettune runs several commands on a host in one round trip: a batch script that
 * runs each command in turn and prints each one's stdout, stderr and exit code between marker
 * lines, so the caller judges every result (by exit code, never by stderr, and by reading back
 * where a tool's exit code cannot be trusted).
 */
import { isScript, renderCommand } from "../transport/quote";
import type { Command, ExecResult, Transport } from "../transport/types";
import { ConnectError } from "../transport/errors";

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

/**
 * Runs an idempotent script, once more on a new connection when the connection was lost under
 * it: some drivers reset the link on a channel or feature change, which can drop the SSH session
 * mid-command, and the script's own read-back then decides. A failing exit is returned.
 */
export async function execOnceMoreIfLost(t: Transport, script: string): Promise<ExecResult> {
  try {
    return await t.exec({ script }, { allowFailure: true });
  } catch (err) {
    if (!(err instanceof ConnectError && err.kind === "lost")) throw err;
    return await t.exec({ script }, { allowFailure: true });
  }
}

/** Runs commands in one round trip; see {@link renderBatch}. */
export async function runBatch(t: Transport, commands: readonly Command[]): Promise<StepResult[]> {
  if (commands.length === 0) return [];
  // Every batch here is idempotent (set, read back, install a unit).
  const res = await execOnceMoreIfLost(t, renderBatch(commands));
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
