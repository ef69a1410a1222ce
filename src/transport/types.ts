/** The result of one command run on a host. Failure is decided by `exitCode`, never by stderr. */
export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  /** Exit code of the command; null when it was killed by a signal. */
  readonly exitCode: number | null;
  readonly signal?: string;
}

export interface ExecOptions {
  /** Data written to the command's standard input, then closed. */
  readonly stdin?: string;
  /** Kill the command and fail after this many milliseconds (default 60 000). */
  readonly timeoutMs?: number;
  /** Return a non-zero exit as a result instead of throwing a CommandError. */
  readonly allowFailure?: boolean;
  /**
   * When this command has to connect: at most this many attempts (never more than the
   * connection's own `dialErrorLimit`). Preview's host checks fail fast with it.
   */
  readonly dialErrorLimit?: number;
}

/**
 * A command: an argument vector (quoted in exactly one place, `quote.ts`) or a shell script
 * built with `script()` from already-quoted parts, run by `sh -c`.
 */
export type Command = readonly string[] | { readonly script: string };

/** Counters a benchmark reads to report SSH cost per host. */
export interface TransportStats {
  /** SSH connections established (TCP + handshake + auth), a jump host's included. */
  handshakes: number;
  /** Calls to `exec`. */
  execs: number;
}

/** How nettune runs commands on one host. `host/` renders commands, `transport/` runs them. */
export interface Transport {
  /** A name for the host in messages: `user@host:port`, never a secret. */
  readonly target: string;
  exec(command: Command, options?: ExecOptions): Promise<ExecResult>;
  readonly stats: TransportStats;
  close(): Promise<void>;
}
