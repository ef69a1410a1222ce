/**
 * Runs commands on this machine with the same contract as `SshTransport`: argv without a shell,
 * scripts through `sh -c`, failure decided by the exit code.
 */

import { spawn } from "node:child_process";

import { CommandTimeoutError, settleCommand } from "./errors";
import { commandArgv, renderCommand } from "./quote";
import type { Command, ExecOptions, ExecResult, Transport, TransportStats } from "./types";

/** Options of a `LocalTransport`. */
export interface LocalTransportOptions {
  /** Prefix commands with `sudo -n`. Default false. */
  sudo?: boolean;
  /** Default per-command timeout. Default 60 000 ms. */
  commandTimeoutMs?: number;
  /** Strings to redact from errors (for commands that handle credentials). */
  secrets?: readonly string[];
}

const DEFAULT_TIMEOUT_MS = 60_000;

/** A `Transport` for the local machine; `target` is `local`. */
export class LocalTransport implements Transport {
  readonly target = "local";
  readonly stats: TransportStats = { handshakes: 0, execs: 0 };

  private readonly sudo: boolean;
  private readonly timeoutMs: number;
  private readonly secrets: readonly string[];

  constructor(options: LocalTransportOptions = {}) {
    this.sudo = options.sudo ?? false;
    this.timeoutMs = options.commandTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.secrets = options.secrets ?? [];
  }

  /** Runs a command here; errors as for `SshTransport.exec`. */
  exec(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    this.stats.execs++;
    const argv = commandArgv(command, this.sudo);
    const rendered = renderCommand(argv);
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;

    return new Promise<ExecResult>((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString("utf8");
      let settled = false;

      // Own process group, so a timeout kills `sh -c` and everything it started.
      const child = spawn(argv[0]!, argv.slice(1), {
        stdio: ["pipe", "pipe", "pipe"],
        detached: true,
      });
      child.stdout.on("data", (b: Buffer) => out.push(b));
      child.stderr.on("data", (b: Buffer) => err.push(b));
      // A command that exits without reading its input makes the write fail with EPIPE.
      child.stdin.on("error", () => undefined);

      const finish = (exitCode: number | null, signal: string | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const stdout = text(out);
        const stderr = text(err);
        const outcome = settleCommand(
          {
            target: this.target,
            command: rendered,
            exitCode,
            signal,
            stdout,
            stderr,
            secrets: this.secrets,
          },
          options.allowFailure,
        );
        if ("error" in outcome) reject(outcome.error);
        else resolve(outcome.result);
      };

      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        try {
          if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
        } catch {
          child.kill("SIGKILL");
        }
        reject(
          new CommandTimeoutError({
            target: this.target,
            command: rendered,
            timeoutMs,
            stdout: text(out),
            stderr: text(err),
            secrets: this.secrets,
          }),
        );
      }, timeoutMs);

      child.on("error", (e: NodeJS.ErrnoException) => {
        // A missing program behaves like it does in a shell: exit status 127.
        err.push(Buffer.from(`${argv[0]}: ${e.code ?? e.message}\n`));
        finish(e.code === "ENOENT" ? 127 : 126, undefined);
      });
      child.on("close", (code, signal) => finish(code, signal ?? undefined));

      if (options.stdin !== undefined) child.stdin.end(options.stdin);
      else child.stdin.end();
    });
  }

  /** Nothing is held open between commands, so there is nothing to close. */
  async close(): Promise<void> {}
}
