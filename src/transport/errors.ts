/**
 * Errors raised by transports. Every text that goes into one of them passes through `redact`
 * first, so a private key, passphrase or password can never reach a message, a property, a
 * Pulumi diagnostic or a log.
 */

/** What replaces a secret in messages and output. */
export const REDACTED = "[redacted]";

/** Lines of a multi-line secret (a PEM key) shorter than this are not redacted on their own. */
const MIN_SECRET_LINE = 8;

/** The longest command shown in a message; the full text stays in `.command`. */
const MAX_COMMAND_IN_MESSAGE = 400;

/** The most output put into a message; the full text stays in `.stdout` and `.stderr`. */
const MAX_OUTPUT_IN_MESSAGE = 4000;

/**
 * Replaces every occurrence of each secret in `text` with `[redacted]`. Multi-line secrets are
 * also redacted line by line, so a command that prints part of a key file leaks nothing.
 */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  const needles = new Set<string>();
  for (const secret of secrets) {
    if (!secret) continue;
    needles.add(secret);
    const trimmed = secret.trim();
    if (trimmed) needles.add(trimmed);
    if (secret.includes("\n")) {
      for (const line of secret.split(/\r?\n/)) {
        const l = line.trim();
        // PEM armour lines are public and would only blot out harmless text.
        if (l.length >= MIN_SECRET_LINE && !l.startsWith("-----")) needles.add(l);
      }
    }
  }
  // Longest first, so a whole key is replaced before any of its lines.
  let out = text;
  for (const needle of [...needles].sort((a, b) => b.length - a.length)) {
    out = out.split(needle).join(REDACTED);
  }
  return out;
}

function clip(text: string, max: number, keep: "head" | "tail"): string {
  if (text.length <= max) return text;
  return keep === "head" ? `${text.slice(0, max)}…` : `…${text.slice(text.length - max)}`;
}

/** Trimmed stdout and stderr on their own lines, the way they appear under a failure message. */
export function formatOutput(stdout: string, stderr: string): string {
  const parts = [stdout.trim(), stderr.trim()].filter((s) => s !== "");
  return clip(parts.join("\n"), MAX_OUTPUT_IN_MESSAGE, "tail");
}

/** Base of transport errors; `target` is `user@host:port` or `local`, never a secret. */
export class TransportError extends Error {
  readonly target: string;

  constructor(target: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.target = target;
  }
}

/** Fields of a finished (or killed) command, already redacted by the caller's transport. */
export interface CommandErrorInit {
  target: string;
  command: string;
  exitCode: number | null;
  signal?: string | undefined;
  stdout: string;
  stderr: string;
  secrets?: readonly (string | undefined)[];
}

/**
 * What a finished command becomes: its result, or a CommandError when it exited non-zero (or
 * was killed) and the caller did not allow failure. Shared by every transport.
 */
export function settleCommand(
  init: CommandErrorInit,
  allowFailure: boolean | undefined,
): { result: import("./types").ExecResult } | { error: CommandError } {
  const { stdout, stderr, exitCode, signal } = init;
  const result =
    signal !== undefined ? { stdout, stderr, exitCode, signal } : { stdout, stderr, exitCode };
  if (exitCode === 0 || allowFailure) return { result };
  return { error: new CommandError(init) };
}

/**
 * A command that exited non-zero or was killed. The message reads
 * `Command failed with exit code 1 on root@198.18.0.2:22: ethtool -K eth0 gro on`
 * followed by the command's trimmed output on the next lines.
 */
export class CommandError extends TransportError {
  /** The command as sent, rendered to shell text. */
  readonly command: string;
  readonly exitCode: number | null;
  readonly signal: string | undefined;
  readonly stdout: string;
  readonly stderr: string;

  constructor(init: CommandErrorInit) {
    const secrets = init.secrets ?? [];
    const command = redact(init.command, secrets);
    const stdout = redact(init.stdout, secrets);
    const stderr = redact(init.stderr, secrets);
    const how =
      init.exitCode !== null
        ? `failed with exit code ${init.exitCode}`
        : init.signal
          ? `was killed by signal ${init.signal}`
          : "ended without an exit status";
    const output = formatOutput(stdout, stderr);
    const shown = clip(command, MAX_COMMAND_IN_MESSAGE, "head");
    const head = `Command ${how} on ${init.target}: ${shown}`;
    super(init.target, output ? `${head}\n${output}` : head);
    this.command = command;
    this.exitCode = init.exitCode;
    this.signal = init.signal;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

/** Why a connection could not be made; `auth` and `config` failures are never retried. */
export type ConnectFailureKind = "network" | "auth" | "config" | "lost";

/** The host could not be reached, refused our credentials, or dropped the connection. */
export class ConnectError extends TransportError {
  /** How many connection attempts were made. */
  readonly attempts: number;
  readonly kind: ConnectFailureKind;
  /** The underlying reason, redacted (`ECONNREFUSED`, `Timed out while waiting for handshake`). */
  readonly reason: string;

  constructor(init: {
    target: string;
    attempts: number;
    kind: ConnectFailureKind;
    reason: string;
    message?: string;
    secrets?: readonly (string | undefined)[];
  }) {
    const secrets = init.secrets ?? [];
    const reason = redact(init.reason, secrets);
    const tries = `${init.attempts} attempt${init.attempts === 1 ? "" : "s"}`;
    const message =
      init.message !== undefined
        ? redact(init.message, secrets)
        : init.kind === "auth"
          ? `Cannot connect to ${init.target}: authentication failed (${reason}) after ${tries}; ` +
            "authentication failures are not retried, check user and credentials"
          : init.kind === "config"
            ? `Cannot connect to ${init.target}: ${reason}`
            : `Cannot connect to ${init.target} after ${tries}: ${reason}`;
    super(init.target, message);
    this.attempts = init.attempts;
    this.kind = init.kind;
    this.reason = reason;
  }
}

/**
 * The host presented a key other than the pinned one. Never retried: either the host was
 * reinstalled (update the pin) or someone is in the middle.
 */
export class HostKeyMismatchError extends TransportError {
  /** SHA256 fingerprint of the pinned key. */
  readonly expected: string;
  /** SHA256 fingerprint of the key the host presented. */
  readonly presented: string;
  /** The presented key as an OpenSSH one-line public key (`ssh-ed25519 AAAA…`). */
  readonly presentedKey: string;

  constructor(init: {
    target: string;
    expected: string;
    presented: string;
    presentedKey: string;
    /** The setting that pins this host's key, e.g. `connection.hostKey`. */
    pinField?: string;
    /** The expected key was recorded earlier in this run, not pinned by the user. */
    learned?: boolean;
  }) {
    const field = init.pinField ?? "connection.hostKey";
    const origin = init.learned ? `seen earlier in this run; ${field} is not set` : field;
    super(
      init.target,
      `Host key mismatch for ${init.target}: expected ${init.expected} (${origin}), ` +
        `but the host presented ${init.presented}. Refusing to connect. ` +
        `If the host was reinstalled and this key is legitimate, verify it out of band and set ` +
        `${field} to "${init.presentedKey}"; otherwise treat it as a possible man-in-the-middle.`,
    );
    this.expected = init.expected;
    this.presented = init.presented;
    this.presentedKey = init.presentedKey;
  }
}

/** A command ran longer than its timeout and was killed. */
export class CommandTimeoutError extends TransportError {
  readonly command: string;
  readonly timeoutMs: number;
  /** Output collected before the command was killed. */
  readonly stdout: string;
  readonly stderr: string;

  constructor(init: {
    target: string;
    command: string;
    timeoutMs: number;
    stdout: string;
    stderr: string;
    secrets?: readonly (string | undefined)[];
  }) {
    const secrets = init.secrets ?? [];
    const command = redact(init.command, secrets);
    const stdout = redact(init.stdout, secrets);
    const stderr = redact(init.stderr, secrets);
    const output = formatOutput(stdout, stderr);
    const head =
      `Command timed out after ${init.timeoutMs} ms on ${init.target} and was killed: ` +
      clip(command, MAX_COMMAND_IN_MESSAGE, "head");
    super(init.target, output ? `${head}\n${output}` : head);
    this.command = command;
    this.timeoutMs = init.timeoutMs;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}
