/**
 * "Commit confirmed" for changes that can cut the management path (MTU, offloads on the
 * interface SSH runs over), like `netplan try` or a router's `commit confirmed`:
 *
 *   1. arm a rollback on the host (a systemd timer, or a detached sleeper where there is no
 *      systemd) in the same command that applies the change;
 *   2. open a NEW SSH connection and move real data over it;
 *   3. if that works, disarm the rollback; if not, the host undoes the change by itself when
 *      the timer fires, and the operation fails saying so.
 */
import type { Connection } from "../schemas/connection";
import { shellQuote } from "../transport/quote";
import { SshTransport } from "../transport/ssh";
import { CommandError, CommandTimeoutError, ConnectError } from "../transport/errors";
import type { ExecResult, Transport } from "../transport/types";
import { OwnershipConflict } from "../engine/ownership";

export interface ConfirmOptions {
  /** Seconds after which the host undoes the change unless it was confirmed. */
  readonly rollbackAfter: number;
  /** A short id for the rollback unit (unique per resource). */
  readonly token: string;
  /** Shell script (already quoted) that undoes the change. */
  readonly rollback: string;
  /** Shell script (already quoted) that applies the change. */
  readonly apply: string;
}

export function rollbackUnit(token: string): string {
  return `nettune-rollback-${token.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 60)}`;
}

/** The file the armed rollback runs: `/run/nettune-rollback-<token>.sh`. */
export function rollbackFile(token: string): string {
  return `/run/${rollbackUnit(token)}.sh`;
}

/**
 * One script: arm the rollback, then apply. Prints `armed systemd|process` when it armed. With
 * `onlyIfSshOver`, it arms only when the SSH session arrives on that interface.
 */
export function renderArmAndApply(o: ConfirmOptions, onlyIfSshOver?: string): string {
  const unit = rollbackUnit(o.token);
  const pidFile = shellQuote(`/run/${unit}.pid`);
  const file = shellQuote(rollbackFile(o.token));
  const arm = [
    // The rollback is a file the timer runs, not a command line: systemd re-reads a transient
    // unit at every `daemon-reload` (an apply that installs a unit does one) and mangles a
    // command line with newlines or `;`, so the rollback would fail when it is needed.
    `(umask 077 && printf '%s\\n' ${shellQuote(o.rollback)} ${shellQuote(`rm -f ${rollbackFile(o.token)}`)} > ${file}) || exit 90`,
    `if command -v systemd-run >/dev/null 2>&1 && [ -d /run/systemd/system ]; then`,
    `  systemctl stop ${shellQuote(`${unit}.timer`)} 2>/dev/null; systemctl reset-failed ${shellQuote(`${unit}.service`)} 2>/dev/null`,
    // Timers fire up to a minute late by default (AccuracySec=1min): a rollback must be on time.
    `  systemd-run --quiet --unit=${shellQuote(unit)} --timer-property=AccuracySec=100ms --on-active=${o.rollbackAfter}s /bin/sh ${file} || exit 90`,
    `  echo armed systemd`,
    `else`,
    `  nohup /bin/sh -c ${shellQuote(`sleep ${o.rollbackAfter}; /bin/sh ${rollbackFile(o.token)}`)} >/dev/null 2>&1 &`,
    `  echo $! > ${pidFile}`,
    `  echo armed process`,
    `fi`,
  ];
  if (onlyIfSshOver === undefined) return [...arm, o.apply].join("\n");
  return [
    `ssh_if=$(${SSH_INTERFACE_SCRIPT})`,
    `if [ "$ssh_if" = ${shellQuote(onlyIfSshOver)} ]; then`,
    ...arm,
    `fi`,
    o.apply,
  ].join("\n");
}

/** Disarms the rollback (the change was confirmed). */
export function renderDisarm(token: string): string {
  const unit = rollbackUnit(token);
  const pidFile = shellQuote(`/run/${unit}.pid`);
  return [
    `systemctl stop ${shellQuote(`${unit}.timer`)} 2>/dev/null || true`,
    `if [ -f ${pidFile} ]; then kill "$(cat ${pidFile})" 2>/dev/null; rm -f ${pidFile}; fi`,
    `rm -f ${shellQuote(rollbackFile(token))}`,
    `echo disarmed`,
  ].join("\n");
}

/** Exit status of {@link renderConfirm} when the rollback already ran. */
const ROLLED_BACK = 75;

/**
 * Disarms the rollback of a change just confirmed, unless it already ran: its file is gone
 * (the rollback removes it last), so the change is undone whatever the new connection saw, and
 * this exits {@link ROLLED_BACK}. The answer to an apply can come late, once a cut path is back.
 */
export function renderConfirm(token: string): string {
  return [
    `if [ ! -e ${shellQuote(rollbackFile(token))} ]; then echo 'the rollback already ran' >&2; exit ${ROLLED_BACK}; fi`,
    renderDisarm(token),
  ].join("\n");
}

/** Which interface the current SSH session runs over, seen from the host. */
export const SSH_INTERFACE_SCRIPT =
  'set -- $SSH_CONNECTION; [ -n "$1" ] && ip -o route get "$1" 2>/dev/null | sed -n \'s/.* dev \\([^ ]*\\).*/\\1/p\' | head -n 1';

/**
 * A fresh connection (not the pooled one) that must carry real data both ways: 64 KiB from the
 * host exercises full-size segments, which is what an MTU problem breaks. It is opened only
 * after the settle wait: a connection opened earlier could ride out a cut path on TCP
 * retransmits and carry its data only after the host's own rollback, confirming nothing.
 */
async function probe(
  conn: Connection,
  timeoutSeconds: number,
  then?: { script: string; allowFailure: boolean },
): Promise<void> {
  const t = new SshTransport({
    ...conn,
    dialErrorLimit: 2,
    perDialTimeout: Math.max(3, Math.floor(timeoutSeconds / 2)),
  });
  try {
    const res = await t.exec(
      { script: "head -c 65536 /dev/zero | od -An -v | wc -c" },
      { timeoutMs: timeoutSeconds * 1000 },
    );
    if (Number(res.stdout.trim()) < 65536) throw new Error("short read over the new connection");
    // Confirmed: what follows (disarming) goes over the connection that just proved the path.
    // A disarm that fails must fail the check: a rollback left armed would undo the change.
    if (then !== undefined)
      await t.exec({ script: then.script }, { allowFailure: then.allowFailure });
  } finally {
    await t.close();
  }
}

/** How long a changed link gets to settle before the new connection must carry data. */
const SETTLE_MS = 2000;

/**
 * How long the apply's answer is awaited: it is of use only before the host's rollback fires,
 * and a slow host (an emulated CPU, a daemon-reload under load) needs more than a few seconds.
 * What is left of the window after it goes to confirming over a new connection.
 */
export function applyTimeoutMs(rollbackAfter: number): number {
  return Math.max(20, rollbackAfter - 10) * 1000;
}

/**
 * The apply's answer never came (the connection was lost, or it timed out), yet a new
 * connection reached the host and undid the change. `reason` says what became of the answer.
 */
export class AnswerLost {
  constructor(readonly reason: string) {}
}

/** What became of an answer that never came, in a few words. */
function whyLost(err: unknown): string {
  if (err instanceof CommandTimeoutError)
    return `no answer within ${Math.round(err.timeoutMs / 1000)} s`;
  if (err instanceof ConnectError)
    return err.reason === "connection lost"
      ? "the connection dropped"
      : `the connection dropped: ${err.reason}`;
  return (err instanceof Error ? err.message : String(err)).split("\n")[0]!;
}

export class ManagementPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ManagementPathError";
  }
}

/**
 * Runs an apply script that may cut the SSH path with a rollback armed first, confirms the
 * host is still reachable over a new connection, and disarms. A script that fails (non-zero
 * exit) while the host stays reachable is undone at once and its result returned to the
 * caller, which names the reason; an answer that never came, though a new connection reached
 * the host and undid the change, is an {@link AnswerLost}. `describe` names the change in
 * messages ("MTU 1400 on eth0").
 */
export async function applyConfirmed(
  transport: Transport,
  conn: Connection,
  o: ConfirmOptions,
  describe: string,
  options: { onlyIfSshOver?: string; sleep?: (ms: number) => Promise<void> } = {},
): Promise<ExecResult | AnswerLost> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const armedAt = Date.now();
  // The apply may cut this very connection: losing it here is not yet a failure.
  let result: ExecResult | undefined;
  let lost = "";
  try {
    result = await transport.exec(
      { script: renderArmAndApply(o, options.onlyIfSshOver) },
      { timeoutMs: applyTimeoutMs(o.rollbackAfter), allowFailure: true },
    );
  } catch (err) {
    // Refused before anything ran (another stack claimed a setting): nothing to undo.
    if (err instanceof OwnershipConflict) throw err;
    lost = whyLost(err);
  }
  // Not armed (SSH runs over another interface): an ordinary apply, nothing to confirm.
  if (result && options.onlyIfSshOver !== undefined && !/^armed /m.test(result.stdout)) {
    return result;
  }
  // The pooled connection is left alone: other resources of this deployment may be running
  // commands on it right now. The check below uses a connection of its own.
  // Let the link settle first: many NICs reset their link on an MTU or offload change, and a
  // probe that slips through before a path breaks would confirm a change that cuts it.
  await sleep(SETTLE_MS);
  // Reachable, but the apply failed or its answer was lost: undo now, not when the timer fires.
  const failed = !result || result.exitCode !== 0;
  const then = failed
    ? { script: `${o.rollback}\n${renderDisarm(o.token)}`, allowFailure: true }
    : { script: renderConfirm(o.token), allowFailure: false };
  try {
    await probe(conn, 10, then);
  } catch (err) {
    if (err instanceof CommandError && err.exitCode === ROLLED_BACK) {
      throw new ManagementPathError(
        `${describe} cut the SSH connection to ${transport.target}: it could not be confirmed in time. ` +
          `The host undid the change by itself after ${o.rollbackAfter} s (commit-confirmed rollback) and is reachable again.`,
      );
    }
    // Wait for the host's own rollback (armed when the apply began), then see whether it is back.
    await sleep(Math.max(0, armedAt + (o.rollbackAfter + 3) * 1000 - Date.now()));
    let back = false;
    for (let i = 0; i < 6 && !back; i++) {
      try {
        await probe(conn, 10);
        back = true;
      } catch {
        await sleep(2000);
      }
    }
    throw new ManagementPathError(
      `${describe} cut the SSH connection to ${transport.target}: a new connection could not carry data. ` +
        (back
          ? `The host undid the change by itself after ${o.rollbackAfter} s (commit-confirmed rollback) and is reachable again.`
          : `The host was told to undo it after ${o.rollbackAfter} s, but is still unreachable: check it from its console.`),
    );
  }
  return result ?? new AnswerLost(lost);
}
