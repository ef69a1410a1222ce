/**
 * Shares one SSH connection per host across all resources of a deployment, so a stack that
 * tunes twenty settings on a host pays for one handshake, not twenty.
 */

import { createHmac, randomBytes } from "node:crypto";

import type { Connection } from "../schemas/connection";
import { SshTransport, targetOf, type SshTransportOptions } from "./ssh";
import type { Transport } from "./types";

/**
 * Options of a pool: those of its transports, with `idleMs` defaulting to 30 s: long enough to
 * carry a host's connection from the engine's Check of its resources to their create in a large
 * stack (a new login per phase costs a handshake), short enough not to hold sshd sessions after
 * a deployment. An idle connection never keeps the provider process alive.
 */
export type TransportPoolOptions = SshTransportOptions;

const DEFAULT_IDLE_MS = 30_000;

/** Keys the digest per process, so a leaked key cannot be used to guess a password offline. */
const KEY_SALT = randomBytes(32);

/**
 * The key under which a connection's transport is shared: readable target plus a digest of
 * everything else that changes how we connect or run commands (credentials included, so a
 * rotated key gets a fresh connection). Secrets only enter the digest, never the text.
 */
export function connectionKey(conn: Connection): string {
  const p = conn.proxy;
  const identity = [
    conn.host,
    conn.port,
    conn.user,
    conn.sudo,
    conn.password ?? "",
    conn.privateKey ?? "",
    conn.privateKeyPassword ?? "",
    conn.agentSocketPath ?? "",
    conn.hostKey ?? "",
    conn.dialErrorLimit,
    conn.perDialTimeout,
    conn.commandTimeout,
    conn.waitForCloudInit,
    p
      ? [
          p.host,
          p.port,
          p.user,
          p.password ?? "",
          p.privateKey ?? "",
          p.privateKeyPassword ?? "",
          p.agentSocketPath ?? "",
          p.hostKey ?? "",
          p.perDialTimeout,
        ]
      : null,
  ];
  const digest = createHmac("sha256", KEY_SALT)
    .update(JSON.stringify(identity))
    .digest("hex")
    .slice(0, 16);
  const via = p ? ` via ${targetOf(p)}` : "";
  return `${targetOf(conn)}${via}#${digest}`;
}

/** Hands out one shared `SshTransport` per distinct connection, created on first use. */
export class TransportPool {
  private readonly transports = new Map<string, SshTransport>();
  private readonly options: SshTransportOptions;

  constructor(options: TransportPoolOptions = {}) {
    this.options = { ...options, idleMs: options.idleMs ?? DEFAULT_IDLE_MS };
  }

  /**
   * The shared transport for `conn`. Its connection is closed `idleMs` after the last command
   * finishes (the timer never keeps the process alive) and reopened by the next command.
   */
  get(conn: Connection): SshTransport {
    const key = connectionKey(conn);
    let transport = this.transports.get(key);
    if (!transport) {
      transport = new SshTransport(conn, this.options);
      this.transports.set(key, transport);
    }
    return transport;
  }

  /** Number of distinct connections handed out. */
  get size(): number {
    return this.transports.size;
  }

  /** Cost so far per host: SSH handshakes and commands run (for benchmarks). */
  stats(): Array<{ target: string; handshakes: number; execs: number }> {
    return [...this.transports.values()].map((t) => ({ target: t.target, ...t.stats }));
  }

  /** Closes every connection and forgets the transports. */
  async closeAll(): Promise<void> {
    const all = [...this.transports.values()];
    this.transports.clear();
    await Promise.all(all.map((t) => t.close()));
  }
}

/** The process-wide pool used by resources. */
export const defaultPool = new TransportPool();

/** The shared transport for `conn` from `defaultPool`. */
export function transportFor(conn: Connection): Transport {
  return defaultPool.get(conn);
}
