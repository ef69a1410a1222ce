/**
 * Runs commands on a host over one long-lived SSH connection (ssh2), optionally through a
 * jump host, with host-key pinning, bounded connect retries and a cap on concurrent channels.
 */

import { createHash } from "node:crypto";
import * as net from "node:net";
import {
  Client,
  utils,
  type AgentAuthMethod,
  type AuthMethod,
  type ClientChannel,
  type ConnectConfig,
  type ParsedKey,
  type PasswordAuthMethod,
  type PublicKeyAuthMethod,
} from "ssh2";

import { connectionSecrets, type Connection, type ProxyConnection } from "../schemas/connection";
import {
  CommandTimeoutError,
  ConnectError,
  HostKeyMismatchError,
  redact,
  settleCommand,
  type ConnectFailureKind,
} from "./errors";
import { commandArgv, renderCommand } from "./quote";
import type { Command, ExecOptions, ExecResult, Transport, TransportStats } from "./types";

/** Tuning knobs that are not part of the user's connection object. */
export interface SshTransportOptions {
  /** Receives retry and host-key notes. Lines are redacted and never contain secrets. */
  log?: (msg: string) => void;
  /** Channels open at once on the connection (OpenSSH allows 10 by default). Default 8. */
  maxChannels?: number;
  /** First retry delay; each further retry doubles it. Default 200 ms. */
  retryBaseMs?: number;
  /** Upper bound of the retry delay. Default 10 000 ms. */
  retryMaxMs?: number;
  /**
   * Close the connection this long after the last command finished; the next command
   * reconnects. Default: stay connected until `close()`.
   */
  idleMs?: number;
}

const DEFAULT_MAX_CHANNELS = 8;
const DEFAULT_RETRY_BASE_MS = 200;
const DEFAULT_RETRY_MAX_MS = 10_000;
/** How long a killed channel may take to close before its slot is given to the next command. */
const KILL_GRACE_MS = 2_000;

/** `user@host:port`, with IPv6 literals bracketed. */
export function targetOf(endpoint: { user: string; host: string; port: number }): string {
  const host = endpoint.host.includes(":") ? `[${endpoint.host}]` : endpoint.host;
  return `${endpoint.user}@${host}:${endpoint.port}`;
}

// ---------------------------------------------------------------------------------------------
// Host keys

/** The key type named inside an SSH public key blob (`ssh-ed25519`). */
export function hostKeyType(blob: Buffer): string {
  if (blob.length < 4) return "unknown";
  const len = blob.readUInt32BE(0);
  return 4 + len <= blob.length ? blob.toString("latin1", 4, 4 + len) : "unknown";
}

/** The `SHA256:...` fingerprint of a public key blob, as `ssh-keygen -lf` prints it. */
export function hostKeyFingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** A public key blob as an OpenSSH one-line public key (`ssh-ed25519 AAAA...`). */
export function hostKeyLine(blob: Buffer): string {
  return `${hostKeyType(blob)} ${blob.toString("base64")}`;
}

/** The SHA256 fingerprint a `hostKey` pin stands for: given directly, or of the pinned key. */
export function pinFingerprint(pin: string): string {
  const trimmed = pin.trim();
  if (trimmed.startsWith("SHA256:")) return trimmed.replace(/=+$/, "");
  const blob = trimmed.split(/\s+/)[1] ?? "";
  return hostKeyFingerprint(Buffer.from(blob, "base64"));
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/** Limits how many channels are open at once; waiters are served in order. */
class Semaphore {
  private active = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    // Hand the slot over directly so a late acquirer cannot jump the queue.
    if (next) next();
    else this.active--;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return typeof code === "string" && /^E[A-Z]+$/.test(code) ? code : err.message;
  }
  return String(err);
}

/** A failed attempt, before it is turned into the public error. */
class AttemptError extends Error {
  constructor(
    readonly kind: Exclude<ConnectFailureKind, "lost">,
    readonly reason: string,
  ) {
    super(reason);
  }
}

/**
 * Sends KILL to the command behind a channel, then closes it. ssh2's `signal()` is a no-op once
 * stdin has been closed, but RFC 4254 allows the request at any time and we always close stdin
 * (so no command can wait on it), so this falls back to ssh2's protocol object.
 */
function killChannel(stream: ClientChannel): void {
  const ch = stream as unknown as {
    outgoing?: { id: number; state: string };
    _client?: { _protocol?: { signal(id: number, signal: string): void } };
  };
  try {
    if (ch.outgoing?.state === "open" && stream.writable) stream.signal("KILL");
    else if (ch.outgoing?.state === "eof") {
      ch._client?._protocol?.signal(ch.outgoing.id, "KILL");
    }
  } catch {
    // The channel is already going away; closing it below is all that is left to do.
  }
  try {
    stream.close();
  } catch {
    // Already closed.
  }
}

type Endpoint = ProxyConnection;

/** One established connection: the target client and, with a jump host, the proxy client. */
interface Live {
  client: Client;
  proxy?: Client;
  /** TCP sockets, referenced only while commands run: an idle connection never holds a process. */
  sockets: net.Socket[];
  dead: boolean;
  closed: Promise<void>;
}

// ---------------------------------------------------------------------------------------------

/** How long `waitForCloudInit` waits for cloud-init, in seconds. */
export const CLOUD_INIT_WAIT_S = 1200;

/**
 * Waits for cloud-init; exit 0 when it is done (or not installed), 124 on the timeout, another
 * code when it finished with errors. Prints `cloud-init status --long` when it did not succeed.
 */
export function renderCloudInitWait(seconds: number): string {
  return [
    "command -v cloud-init >/dev/null 2>&1 || exit 0",
    `timeout ${seconds} cloud-init status --wait >/dev/null 2>&1; r=$?`,
    '[ "$r" -eq 0 ] && exit 0',
    "cloud-init status --long 2>&1 | tr '\n' ' '",
    'exit "$r"',
  ].join("\n");
}

/** A `Transport` over SSH. One instance keeps at most one connection to its host. */
export class SshTransport implements Transport {
  readonly target: string;
  readonly stats: TransportStats = { handshakes: 0, execs: 0 };

  private readonly conn: Connection;
  private readonly secrets: string[];
  private readonly sudo: boolean;
  private readonly slots: Semaphore;
  private readonly logFn: ((msg: string) => void) | undefined;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly idleMs: number | undefined;

  private live: Live | undefined;
  private connecting: Promise<Live> | undefined;
  private busy = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Bumped by close() so a dial finishing afterwards does not resurrect the connection. */
  private generation = 0;
  /** Keys seen on hosts without a pin; a later reconnect must present the same key. */
  private readonly learned = new Map<string, Buffer>();
  private presented: Buffer | undefined;
  /** The wait for cloud-init (waitForCloudInit), shared by the commands that need it. */
  private cloudInit: Promise<void> | undefined;
  /** Decrypting a key costs hundreds of ms (bcrypt), so it is done once per endpoint. */
  private readonly keys = new Map<string, ParsedKey | AttemptError>();

  constructor(conn: Connection, options: SshTransportOptions = {}) {
    this.conn = conn;
    this.target = targetOf(conn);
    this.secrets = connectionSecrets(conn);
    // root needs no sudo, and a host without sudo installed must still work for root.
    this.sudo = conn.sudo && conn.user !== "root";
    this.slots = new Semaphore(Math.max(1, options.maxChannels ?? DEFAULT_MAX_CHANNELS));
    this.logFn = options.log;
    this.retryBaseMs = options.retryBaseMs ?? DEFAULT_RETRY_BASE_MS;
    this.retryMaxMs = options.retryMaxMs ?? DEFAULT_RETRY_MAX_MS;
    this.idleMs = options.idleMs;
  }

  /**
   * The host key the target presented on the last handshake, as an OpenSSH one-line public key
   * (`ssh-ed25519 AAAA...`); use it to pin `connection.hostKey`.
   */
  get presentedHostKey(): string | undefined {
    return this.presented ? hostKeyLine(this.presented) : undefined;
  }

  /** True while a connection is established. */
  get connected(): boolean {
    return this.live !== undefined && !this.live.dead;
  }

  /** Establishes the connection now instead of on the first command. */
  async connect(): Promise<void> {
    await this.ensureConnected();
    if (this.busy === 0) this.becameIdle();
  }

  /**
   * Runs a command, connecting first if needed. At most `maxChannels` commands run at once on
   * the connection; the rest wait their turn. Throws CommandError on a non-zero exit unless
   * `allowFailure`, CommandTimeoutError after the timeout, ConnectError or
   * HostKeyMismatchError when the host cannot be reached safely.
   */
  async exec(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    if (this.conn.waitForCloudInit) await (this.cloudInit ??= this.waitCloudInit());
    return this.execNow(command, options);
  }

  /**
   * Waits for cloud-init to finish on the host (once per transport; a failed wait is tried
   * again by the next command). Throws when cloud-init reports an error or is still running
   * after {@link CLOUD_INIT_WAIT_S} seconds.
   */
  private async waitCloudInit(): Promise<void> {
    try {
      const r = await this.execNow(
        { script: renderCloudInitWait(CLOUD_INIT_WAIT_S) },
        { allowFailure: true, timeoutMs: (CLOUD_INIT_WAIT_S + 60) * 1000 },
      );
      const status = r.stdout.trim();
      if (r.exitCode === 124)
        throw new Error(
          `cloud-init on ${this.target} was still running after ${CLOUD_INIT_WAIT_S} s (waitForCloudInit): ${status}`,
        );
      if (r.exitCode !== 0)
        throw new Error(
          `cloud-init on ${this.target} finished with errors (waitForCloudInit); nothing was read or changed: ${status || r.stderr.trim()}`,
        );
    } catch (err) {
      this.cloudInit = undefined;
      throw err;
    }
  }

  private async execNow(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    this.stats.execs++;
    const wire = renderCommand(commandArgv(command, this.sudo));
    const timeoutMs = options.timeoutMs ?? this.conn.commandTimeout * 1000;
    this.busy++;
    this.cancelIdle();
    if (this.live) this.setRef(this.live, true);
    try {
      await this.slots.acquire();
      let released = false;
      const release = () => {
        if (!released) {
          released = true;
          this.slots.release();
        }
      };
      try {
        return await this.run(wire, options, timeoutMs, release);
      } catch (err) {
        // Failures before a channel opened have nothing that would release the slot later.
        if (!(err instanceof CommandTimeoutError)) release();
        throw err;
      }
    } finally {
      this.busy--;
      if (this.busy === 0) this.becameIdle();
    }
  }

  /** Closes the connection. A later `exec` opens a new one. */
  async close(): Promise<void> {
    this.generation++;
    this.cancelIdle();
    const live = this.live;
    this.live = undefined;
    if (live) await this.shutdown(live);
  }

  // -------------------------------------------------------------------------------------------

  private log(msg: string): void {
    this.logFn?.(redact(msg, this.secrets));
  }

  private setRef(live: Live, on: boolean): void {
    for (const s of live.sockets) {
      if (on) s.ref();
      else s.unref();
    }
  }

  private cancelIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private becameIdle(): void {
    const live = this.live;
    if (!live) return;
    this.setRef(live, false);
    if (this.idleMs === undefined) return;
    this.cancelIdle();
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.busy === 0 && this.live === live) {
        this.live = undefined;
        void this.shutdown(live);
      }
    }, this.idleMs);
    this.idleTimer.unref();
  }

  private async shutdown(live: Live): Promise<void> {
    live.dead = true;
    // An awaited close must keep the process alive until the sockets are really closed.
    this.setRef(live, true);
    live.client.end();
    live.proxy?.end();
    const timer = setTimeout(() => {
      for (const s of live.sockets) s.destroy();
    }, 1_000);
    timer.unref();
    await live.closed;
    clearTimeout(timer);
  }

  private async ensureConnected(dialErrorLimit?: number): Promise<Live> {
    if (this.live && !this.live.dead) return this.live;
    if (!this.connecting) {
      const generation = this.generation;
      this.connecting = this.dial(dialErrorLimit)
        .then(async (live) => {
          if (generation !== this.generation) {
            await this.shutdown(live);
            throw new ConnectError({
              target: this.target,
              attempts: 1,
              kind: "lost",
              reason: "transport was closed while connecting",
            });
          }
          this.live = live;
          return live;
        })
        .finally(() => {
          this.connecting = undefined;
        });
    }
    return this.connecting;
  }

  /** Connects with bounded, exponentially spaced retries of transient failures. */
  private async dial(dialErrorLimit?: number): Promise<Live> {
    const limit = Math.min(dialErrorLimit ?? this.conn.dialErrorLimit, this.conn.dialErrorLimit);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.dialOnce();
      } catch (err) {
        if (err instanceof HostKeyMismatchError) throw err;
        const kind = err instanceof AttemptError ? err.kind : "network";
        const reason = err instanceof AttemptError ? err.reason : errorText(err);
        // Credentials and host keys do not fix themselves; retrying only locks accounts.
        if (kind !== "network" || attempt >= limit) {
          throw new ConnectError({
            target: this.target,
            attempts: attempt,
            kind,
            reason,
            secrets: this.secrets,
          });
        }
        const delay = Math.min(this.retryBaseMs * 2 ** (attempt - 1), this.retryMaxMs);
        this.log(
          `connect to ${this.target} failed (attempt ${attempt}/${limit}): ${reason}; ` +
            `retrying in ${delay} ms`,
        );
        await sleep(delay);
      }
    }
  }

  private async dialOnce(): Promise<Live> {
    const proxyConn = this.conn.proxy;
    if (!proxyConn) {
      const { client, socket, closed } = await this.dialEndpoint(this.conn, "connection");
      const live: Live = { client, sockets: [socket!], dead: false, closed };
      this.watch(live);
      return live;
    }

    const proxyName = targetOf(proxyConn);
    let proxy: Awaited<ReturnType<SshTransport["dialEndpoint"]>>;
    try {
      proxy = await this.dialEndpoint(proxyConn, "connection.proxy");
    } catch (err) {
      if (err instanceof AttemptError) {
        throw new AttemptError(err.kind, `jump host ${proxyName}: ${err.reason}`);
      }
      throw err;
    }
    try {
      const tunnel = await this.forward(proxy.client, proxyConn, proxyName);
      const target = await this.dialEndpoint(this.conn, "connection", tunnel);
      const live: Live = {
        client: target.client,
        proxy: proxy.client,
        sockets: [proxy.socket!],
        dead: false,
        closed: Promise.all([target.closed, proxy.closed]).then(() => undefined),
      };
      this.watch(live);
      return live;
    } catch (err) {
      proxy.client.end();
      throw err;
    }
  }

  /** Marks the connection dead when either hop goes away, so the next command reconnects. */
  private watch(live: Live): void {
    const onGone = (which: string) => {
      if (live.dead) return;
      live.dead = true;
      if (this.live === live) this.live = undefined;
      live.client.end();
      live.proxy?.end();
      this.log(`connection to ${which} closed; the next command reconnects`);
    };
    live.client.once("close", () => onGone(this.target));
    live.proxy?.once("close", () => onGone(`jump host ${targetOf(this.conn.proxy!)}`));
  }

  /** Opens a TCP tunnel from the jump host to the target (`ssh -J`). */
  private forward(proxy: Client, proxyConn: Endpoint, proxyName: string): Promise<ClientChannel> {
    const { host, port } = this.conn;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new AttemptError("network", `jump host ${proxyName}: tunnel timed out`)),
        proxyConn.perDialTimeout * 1000,
      );
      proxy.forwardOut("127.0.0.1", 0, host, port, (err, channel) => {
        clearTimeout(timer);
        if (err) {
          reject(
            new AttemptError(
              "network",
              `jump host ${proxyName} could not open a tunnel to ${host}:${port}: ${err.message}`,
            ),
          );
        } else {
          resolve(channel);
        }
      });
    });
  }

  /**
   * One TCP connect + SSH handshake + authentication to `ep`, directly or over `via`.
   * `pinField` names the setting that pins this endpoint's host key, for messages.
   */
  private dialEndpoint(
    ep: Endpoint,
    pinField: string,
    via?: ClientChannel,
  ): Promise<{ client: Client; socket: net.Socket | undefined; closed: Promise<void> }> {
    const name = targetOf(ep);
    const isTarget = via !== undefined || !this.conn.proxy;

    let key: ParsedKey | undefined;
    if (ep.privateKey) {
      const parsed = this.parsePrivateKey(ep);
      if (parsed instanceof AttemptError) return Promise.reject(parsed);
      key = parsed;
    }

    const configuredPin = ep.hostKey;
    const learned = this.learned.get(name);
    let mismatch: HostKeyMismatchError | undefined;
    let presented: Buffer | undefined;

    const hostVerifier = (blob: Buffer): boolean => {
      presented = Buffer.from(blob);
      const fingerprint = hostKeyFingerprint(blob);
      const expected = configuredPin
        ? pinFingerprint(configuredPin)
        : learned
          ? hostKeyFingerprint(learned)
          : undefined;
      if (expected === undefined || expected === fingerprint) return true;
      mismatch = new HostKeyMismatchError({
        target: name,
        expected,
        presented: fingerprint,
        presentedKey: hostKeyLine(blob),
        pinField: `${pinField}.hostKey`,
        learned: !configuredPin,
      });
      return false;
    };

    const socket = via ? undefined : net.connect({ host: ep.host, port: ep.port });
    socket?.setNoDelay(true);

    // Keys before passwords, as OpenSSH does: a password is only sent if no key is accepted.
    const username = ep.user;
    const methods: AuthMethod[] = [];
    if (key) methods.push({ type: "publickey", username, key } as PublicKeyAuthMethod);
    if (ep.agentSocketPath) {
      methods.push({ type: "agent", username, agent: ep.agentSocketPath } as AgentAuthMethod);
    }
    if (ep.password) {
      methods.push({ type: "password", username, password: ep.password } as PasswordAuthMethod);
    }
    const config: ConnectConfig = {
      username: ep.user,
      readyTimeout: Math.round(ep.perDialTimeout * 1000),
      hostVerifier,
      sock: via ?? socket,
      authHandler: methods,
    };

    return new Promise((resolve, reject) => {
      const client = new Client();
      const closed = new Promise<void>((res) => client.once("close", () => res()));
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        client.end();
        socket?.destroy();
        reject(err);
      };

      client.on("error", (err: Error & { level?: string }) => {
        if (settled) {
          // After the handshake, errors are followed by "close", which marks the connection dead.
          this.log(`connection to ${name}: ${errorText(err)}`);
          return;
        }
        if (mismatch) return fail(mismatch);
        if (err.level === "client-authentication") {
          const tried = methods.map((m) => (m.type === "publickey" ? "privateKey" : m.type));
          return fail(
            new AttemptError("auth", `user ${ep.user}, methods tried: ${tried.join(", ")}`),
          );
        }
        fail(new AttemptError("network", errorText(err)));
      });
      client.once("close", () => {
        fail(mismatch ?? new AttemptError("network", "connection closed during the handshake"));
      });
      client.once("ready", () => {
        if (settled) return;
        settled = true;
        this.stats.handshakes++;
        if (presented) {
          if (!configuredPin && !learned) {
            this.learned.set(name, presented);
            this.log(
              `host key of ${name} is not pinned; recorded ${hostKeyType(presented)} ` +
                `${hostKeyFingerprint(presented)} (set ${pinField}.hostKey to pin it)`,
            );
          }
          if (isTarget) this.presented = presented;
        }
        resolve({ client, socket, closed });
      });

      try {
        client.connect(config);
      } catch (err) {
        fail(new AttemptError("config", errorText(err)));
      }
    });
  }

  private parsePrivateKey(ep: Endpoint): ParsedKey | AttemptError {
    const name = targetOf(ep);
    let cached = this.keys.get(name);
    if (!cached) {
      const parsed = utils.parseKey(ep.privateKey!, ep.privateKeyPassword);
      const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey | undefined) : parsed;
      if (!key || key instanceof Error || key.isPrivateKey() === false) {
        const hint = ep.privateKeyPassword
          ? "is privateKeyPassword right?"
          : "if it is encrypted, set privateKeyPassword";
        cached = new AttemptError("config", `privateKey for ${name} cannot be used (${hint})`);
      } else {
        cached = key;
      }
      this.keys.set(name, cached);
    }
    return cached;
  }

  /**
   * Opens an exec channel and hands it to `onOpen` synchronously: ssh2 may deliver the exit
   * status in the same read as the channel confirmation, before any awaited code would run.
   * Reconnects once if the connection died before the command started.
   */
  private async openChannel<T>(
    wire: string,
    onOpen: (stream: ClientChannel, live: Live) => Promise<T>,
    dialErrorLimit?: number,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const live = await this.ensureConnected(dialErrorLimit);
      this.setRef(live, true);
      // Boxed, so awaiting the channel does not also await the command.
      let opened: { result: Promise<T> };
      try {
        opened = await new Promise<{ result: Promise<T> }>((resolve, reject) => {
          live.client.exec(wire, (err, stream) =>
            err ? reject(err) : resolve({ result: onOpen(stream, live) }),
          );
        });
      } catch (err) {
        // ssh2 says "Not connected" when the socket is gone before its close event has marked
        // the connection dead (a session killed on the host): it is dead all the same.
        if (/^Not connected$/.test(errorText(err))) {
          live.dead = true;
          live.client.end();
        }
        // Nothing ran yet, so a retry on a fresh connection cannot run the command twice.
        if (live.dead && attempt === 1) continue;
        throw new ConnectError({
          target: this.target,
          attempts: 1,
          kind: live.dead ? "lost" : "network",
          reason: errorText(err),
          message: `Cannot start a command on ${this.target}: ${errorText(err)}`,
          secrets: this.secrets,
        });
      }
      return opened.result;
    }
  }

  private run(
    wire: string,
    options: ExecOptions,
    timeoutMs: number,
    release: () => void,
  ): Promise<ExecResult> {
    return this.openChannel(
      wire,
      (stream, live) => this.collect(stream, live, wire, options, timeoutMs, release),
      options.dialErrorLimit,
    );
  }

  /** Collects a running command's output and exit status; attaches every listener at once. */
  private collect(
    stream: ClientChannel,
    live: Live,
    wire: string,
    options: ExecOptions,
    timeoutMs: number,
    release: () => void,
  ): Promise<ExecResult> {
    return new Promise<ExecResult>((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let exitCode: number | null = null;
      let signal: string | undefined;
      let sawExit = false;
      let settled = false;

      stream.on("data", (b: Buffer) => out.push(b));
      stream.stderr.on("data", (b: Buffer) => err.push(b));
      stream.on("exit", (code: number | null, sig?: string) => {
        sawExit = true;
        if (typeof code === "number") exitCode = code;
        else if (sig) signal = sig.startsWith("SIG") ? sig : `SIG${sig}`;
      });
      // Errors on a channel are followed by "close", which settles the result.
      stream.on("error", () => undefined);

      // Decoded at the end so multi-byte characters split across packets stay intact.
      const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString("utf8");

      const timer = setTimeout(() => {
        settled = true;
        killChannel(stream);
        // A server that ignores the close would otherwise hold the slot forever.
        setTimeout(release, KILL_GRACE_MS).unref();
        reject(
          new CommandTimeoutError({
            target: this.target,
            command: wire,
            timeoutMs,
            stdout: text(out),
            stderr: text(err),
            secrets: this.secrets,
          }),
        );
      }, timeoutMs);

      stream.on("close", () => {
        clearTimeout(timer);
        release();
        if (settled) return;
        settled = true;
        const stdout = text(out);
        const stderr = text(err);
        if (!sawExit && live.dead) {
          reject(
            new ConnectError({
              target: this.target,
              attempts: 1,
              kind: "lost",
              reason: "connection lost",
              message: `Connection to ${this.target} was lost while running: ${wire}`,
              secrets: this.secrets,
            }),
          );
          return;
        }
        const outcome = settleCommand(
          {
            target: this.target,
            command: wire,
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
      });

      // Always send EOF so a command that reads stdin cannot hang waiting for input.
      if (options.stdin !== undefined) stream.end(options.stdin);
      else stream.end();
    });
  }
}
