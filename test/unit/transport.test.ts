import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import {
  AgentProtocol,
  Server,
  utils,
  type Connection as ServerConnection,
  type ParsedKey,
} from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { connectionSchema, type ConnectionArgs } from "../../src/schemas/connection";
import {
  CommandError,
  CommandTimeoutError,
  ConnectError,
  HostKeyMismatchError,
  hostKeyFingerprint,
  SshTransport,
  TransportPool,
  connectionKey,
  type SshTransportOptions,
} from "../../src/transport";

// ---------------------------------------------------------------------------------------------
// Keys and credentials. Everything secret is distinctive so a leak is easy to spot.

const HOST_KEY = utils.generateKeyPairSync("ed25519");
const JUMP_HOST_KEY = utils.generateKeyPairSync("ed25519");
const OTHER_KEY = utils.generateKeyPairSync("ed25519");
const CLIENT_KEY = utils.generateKeyPairSync("ed25519");
const AGENT_KEY = utils.generateKeyPairSync("ed25519");
const PASSPHRASE = "Passphrase-7f3a9c1e-do-not-leak";
// Few bcrypt rounds: decrypting a default (16-round) key takes ~0.4 s.
const ENCRYPTED_KEY = utils.generateKeyPairSync("ed25519", {
  passphrase: PASSPHRASE,
  cipher: "aes256-cbc",
  rounds: 2,
});
const UNKNOWN_ENCRYPTED_KEY = utils.generateKeyPairSync("ed25519", {
  passphrase: PASSPHRASE,
  cipher: "aes256-cbc",
  rounds: 2,
});
const PASSWORD = "Password-2b8e41d0-do-not-leak";
const WRONG_PASSWORD = "WrongPassword-91c3-do-not-leak";

function parsed(text: string): ParsedKey {
  const key = utils.parseKey(text);
  if (key instanceof Error) throw key;
  return Array.isArray(key) ? (key[0] as ParsedKey) : key;
}

const AUTHORIZED = [CLIENT_KEY, AGENT_KEY, ENCRYPTED_KEY].map((k) => parsed(k.public));
const HOST_KEY_LINE = HOST_KEY.public.split(" ").slice(0, 2).join(" ");
const HOST_FINGERPRINT = hostKeyFingerprint(parsed(HOST_KEY.public).getPublicSSH());
const OTHER_FINGERPRINT = hostKeyFingerprint(parsed(OTHER_KEY.public).getPublicSSH());

/** Every secret, plus each long line of each private key, that must never show up anywhere. */
const SECRETS = [PASSWORD, WRONG_PASSWORD, PASSPHRASE, CLIENT_KEY.private, ENCRYPTED_KEY.private];
const SECRET_FRAGMENTS = [
  ...SECRETS,
  ...[CLIENT_KEY.private, ENCRYPTED_KEY.private, UNKNOWN_ENCRYPTED_KEY.private].flatMap((k) =>
    k.split("\n").filter((l) => l.length >= 20 && !l.startsWith("-----")),
  ),
];

function expectNoSecrets(text: string): void {
  for (const s of SECRET_FRAGMENTS) expect(text).not.toContain(s);
}

/** The error with every own property, the way a logger or Pulumi would serialize it. */
function dump(err: unknown): string {
  return JSON.stringify(err, Object.getOwnPropertyNames(err)) + String(err);
}

async function rejectionOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

async function waitFor(cond: () => boolean, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---------------------------------------------------------------------------------------------
// An in-process SSH server that runs exec requests with `sh -c`, like sshd does.

interface FakeSshd {
  port: number;
  /** TCP connections accepted so far. */
  connections: number;
  /** Connections currently open. */
  open: number;
  commands: string[];
  /** Signal requests as they arrived on the wire. */
  signals: string[];
  /** Process ids of the commands run. */
  pids: number[];
  authMethods: string[];
  /** Most session channels open at once on a single connection. */
  peakSessions: number;
  clients: Set<ServerConnection>;
  close(): Promise<void>;
}

function listen(server: net.Server | Server, where: number | string = 0): Promise<void> {
  return new Promise((resolve) => {
    if (typeof where === "string") server.listen(where, () => resolve());
    else server.listen(where, "127.0.0.1", () => resolve());
  });
}

/** Without it Nagle's algorithm adds ~40 ms to every small reply. Missing from @types/ssh2. */
function noDelay(client: ServerConnection): void {
  (client as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true);
}

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

async function startSshd(opts: { maxSessions?: number } = {}): Promise<FakeSshd> {
  const maxSessions = opts.maxSessions ?? 10;
  const state: FakeSshd = {
    port: 0,
    connections: 0,
    open: 0,
    commands: [],
    signals: [],
    pids: [],
    authMethods: [],
    peakSessions: 0,
    clients: new Set(),
    close: () => Promise.resolve(),
  };
  const config = {
    hostKeys: [HOST_KEY.private],
    // ssh2's server drops a signal request that follows EOF (OpenSSH does not), so signals
    // are recorded from the protocol trace rather than from the session's "signal" event.
    debug: (msg: string) => {
      const m = /Inbound: CHANNEL_REQUEST \(r:\d+, signal: (\w+)\)/.exec(msg);
      if (m?.[1]) state.signals.push(m[1]);
    },
  };
  const server = new Server(config, (client) => {
    state.connections++;
    state.open++;
    state.clients.add(client);
    noDelay(client);
    let sessions = 0;
    client.on("error", () => undefined);
    client.on("close", () => {
      state.open--;
      state.clients.delete(client);
    });
    client.on("authentication", (ctx) => {
      state.authMethods.push(ctx.method);
      if (ctx.method === "password") {
        return ctx.password === PASSWORD ? ctx.accept() : ctx.reject();
      }
      if (ctx.method === "publickey") {
        const key = AUTHORIZED.find(
          (k) => k.type === ctx.key.algo && k.getPublicSSH().equals(ctx.key.data),
        );
        if (!key) return ctx.reject();
        if (ctx.signature && ctx.blob) {
          return key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true
            ? ctx.accept()
            : ctx.reject();
        }
        return ctx.accept();
      }
      ctx.reject(["publickey", "password"]);
    });
    client.on("ready", () => {
      client.on("session", (accept, reject) => {
        // Like OpenSSH's MaxSessions: refuse channels beyond the limit.
        if (sessions >= maxSessions) return reject();
        sessions++;
        state.peakSessions = Math.max(state.peakSessions, sessions);
        const session = accept();
        let child: ChildProcess | undefined;
        session.once("close", () => {
          sessions--;
          if (child && child.exitCode === null) killGroup(child);
        });
        session.on("signal", (acceptSignal) => {
          if (child) killGroup(child);
          acceptSignal?.();
        });
        session.once("exec", (acceptExec, _reject, info) => {
          state.commands.push(info.command);
          const channel = acceptExec();
          const proc = spawn("sh", ["-c", info.command], { detached: true });
          child = proc;
          if (proc.pid !== undefined) state.pids.push(proc.pid);
          proc.stdout.on("data", (b: Buffer) => channel.write(b));
          proc.stderr.on("data", (b: Buffer) => channel.stderr.write(b));
          proc.stdin.on("error", () => undefined);
          channel.pipe(proc.stdin);
          proc.on("close", (code, signal) => {
            if (signal) channel.exit(signal.replace(/^SIG/, ""));
            else channel.exit(code ?? 0);
            channel.end();
          });
        });
      });
    });
  });
  await listen(server);
  state.port = (server.address() as net.AddressInfo).port;
  state.close = () =>
    new Promise((resolve) => {
      for (const c of state.clients) c.end();
      server.close(() => resolve());
    });
  return state;
}

/** A jump host that accepts `direct-tcpip` requests and pipes them to the destination. */
async function startJumpHost(): Promise<{
  port: number;
  forwards: string[];
  connections: number;
  close(): Promise<void>;
}> {
  const clients = new Set<ServerConnection>();
  const state = { port: 0, forwards: [] as string[], connections: 0, close: async () => {} };
  const server = new Server({ hostKeys: [JUMP_HOST_KEY.private] }, (client) => {
    state.connections++;
    clients.add(client);
    noDelay(client);
    client.on("error", () => undefined);
    client.on("close", () => clients.delete(client));
    client.on("authentication", (ctx) =>
      ctx.method === "password" && ctx.username === "jump" && ctx.password === PASSWORD
        ? ctx.accept()
        : ctx.reject(["password"]),
    );
    client.on("ready", () => {
      client.on("tcpip", (accept, reject, info) => {
        state.forwards.push(`${info.destIP}:${info.destPort}`);
        const sock = net.connect(Number(info.destPort), info.destIP);
        sock.once("error", () => reject());
        sock.once("connect", () => {
          const channel = accept();
          sock.pipe(channel).pipe(sock);
          channel.on("close", () => sock.destroy());
          sock.on("close", () => channel.close());
        });
      });
    });
  });
  await listen(server);
  state.port = (server.address() as net.AddressInfo).port;
  state.close = () =>
    new Promise((resolve) => {
      for (const c of clients) c.end();
      server.close(() => resolve());
    });
  return state;
}

/** An ssh-agent speaking the OpenSSH agent protocol on a UNIX socket, holding AGENT_KEY. */
async function startAgent(): Promise<{ path: string; signs: number; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "nettune-agent-"));
  const path = join(dir, "agent.sock");
  const key = parsed(AGENT_KEY.private);
  const state = { path, signs: 0, close: async () => {} };
  const server = net.createServer((sock) => {
    const proto = new AgentProtocol(false);
    proto.on("identities", (req) => proto.getIdentitiesReply(req, [key]));
    proto.on("sign", (req, _pubKey, data: Buffer) => {
      state.signs++;
      proto.signReply(req, key.sign(data));
    });
    sock.on("error", () => undefined);
    sock.pipe(proto).pipe(sock);
  });
  await listen(server, path);
  state.close = () =>
    new Promise((resolve) =>
      server.close(() => {
        rmSync(dir, { recursive: true, force: true });
        resolve();
      }),
    );
  return state;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await listen(s);
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

// ---------------------------------------------------------------------------------------------

let sshd: FakeSshd;
const transports: SshTransport[] = [];

beforeAll(async () => {
  sshd = await startSshd();
});

afterAll(async () => {
  await Promise.all(transports.map((t) => t.close()));
  await sshd.close();
});

function conn(over: Partial<ConnectionArgs> = {}) {
  return connectionSchema.parse({
    host: "127.0.0.1",
    port: sshd.port,
    privateKey: CLIENT_KEY.private,
    perDialTimeout: 5,
    ...over,
  });
}

function transport(over: Partial<ConnectionArgs> = {}, options: SshTransportOptions = {}) {
  const t = new SshTransport(conn(over), { retryBaseMs: 10, ...options });
  transports.push(t);
  return t;
}

describe("SshTransport: running commands", () => {
  it("runs argv with key auth and returns stdout, stderr and the exit code", async () => {
    const t = transport();
    const r = await t.exec(["sh", "-c", "echo out; echo err >&2; echo ünïcødé ✓"]);
    expect(r).toEqual({ stdout: "out\nünïcødé ✓\n", stderr: "err\n", exitCode: 0 });
    expect(sshd.commands.at(-1)).toBe(`sh -c 'echo out; echo err >&2; echo ünïcødé ✓'`);
    expect(t.target).toBe(`root@127.0.0.1:${sshd.port}`);
    expect(t.stats).toEqual({ handshakes: 1, execs: 1 });
  });

  it("runs a script through sh -c, feeds stdin and reports failures when allowed", async () => {
    const t = transport();
    const r = await t.exec(
      { script: 'read x\necho "got $x"\nexit 3' },
      { stdin: "hello\n", allowFailure: true },
    );
    expect(r).toEqual({ stdout: "got hello\n", stderr: "", exitCode: 3 });
    expect(sshd.commands.at(-1)).toBe(`sh -c 'read x\necho "got $x"\nexit 3'`);
    // stdin is closed even when none is given, so a reader cannot hang.
    expect((await t.exec(["cat"])).stdout).toBe("");
  });

  it("authenticates with a password", async () => {
    const t = transport({ privateKey: undefined, password: PASSWORD });
    expect((await t.exec(["echo", "pw"])).stdout).toBe("pw\n");
    expect(sshd.authMethods).toContain("password");
  });

  it("authenticates with an ssh-agent", async () => {
    const agent = await startAgent();
    try {
      const t = transport({ privateKey: undefined, agentSocketPath: agent.path });
      expect((await t.exec(["echo", "agent"])).stdout).toBe("agent\n");
      expect(agent.signs).toBeGreaterThan(0);
      await t.close();
    } finally {
      await agent.close();
    }
  });

  it("authenticates with an encrypted key and its passphrase", async () => {
    const t = transport({ privateKey: ENCRYPTED_KEY.private, privateKeyPassword: PASSPHRASE });
    expect((await t.exec(["echo", "enc"])).stdout).toBe("enc\n");
  });

  it("turns a non-zero exit into a CommandError naming target, command and code", async () => {
    const t = transport();
    const err = await rejectionOf(t.exec(["sh", "-c", "echo boom; echo bad >&2; exit 3"]));
    expect(err).toBeInstanceOf(CommandError);
    const e = err as CommandError;
    expect(e.message).toBe(
      `Command failed with exit code 3 on root@127.0.0.1:${sshd.port}: ` +
        `sh -c 'echo boom; echo bad >&2; exit 3'\nboom\nbad`,
    );
    expect(e).toMatchObject({
      target: `root@127.0.0.1:${sshd.port}`,
      command: "sh -c 'echo boom; echo bad >&2; exit 3'",
      exitCode: 3,
      stdout: "boom\n",
      stderr: "bad\n",
    });
  });

  it("reports a command killed by a signal", async () => {
    const t = transport();
    // The server's `sh -c` wraps ours, so kill that one; the guard keeps a shell that exec'd
    // straight into ours from killing the test runner instead.
    const err = (await rejectionOf(
      t.exec({ script: `[ "$(cat /proc/$PPID/comm)" = sh ] && kill -9 $PPID; exit 1` }),
    )) as CommandError;
    expect(err).toBeInstanceOf(CommandError);
    expect(err.exitCode).toBeNull();
    expect(err.signal).toBe("SIGKILL");
    expect(err.message).toMatch(/killed by signal SIGKILL/);
  });

  it("kills a command that outlives its timeout and stays usable", async () => {
    const t = transport();
    const started = Date.now();
    const err = await rejectionOf(t.exec(["sleep", "30"], { timeoutMs: 300 }));
    expect(err).toBeInstanceOf(CommandTimeoutError);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect((err as CommandTimeoutError).message).toMatch(
      new RegExp(`^Command timed out after 300 ms on root@127\\.0\\.0\\.1:${sshd.port}`),
    );
    await waitFor(() => sshd.signals.includes("KILL"));
    const pid = sshd.pids.at(-1)!;
    await waitFor(() => !alive(pid));
    expect((await t.exec(["echo", "after"])).stdout).toBe("after\n");
  });

  it("uses the connection's commandTimeout by default", async () => {
    const t = transport({ commandTimeout: 0.3 });
    expect(await rejectionOf(t.exec(["sleep", "30"]))).toBeInstanceOf(CommandTimeoutError);
  });
});

describe("SshTransport: host keys", () => {
  it("refuses a host presenting a key other than the pinned one", async () => {
    const before = sshd.connections;
    const t = transport({ hostKey: OTHER_KEY.public, dialErrorLimit: 5 });
    const err = await rejectionOf(t.exec(["true"]));
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    const e = err as HostKeyMismatchError;
    expect(e.message).toContain(`root@127.0.0.1:${sshd.port}`);
    expect(e.message).toContain(OTHER_FINGERPRINT);
    expect(e.message).toContain(HOST_FINGERPRINT);
    expect(e.message).toContain("connection.hostKey");
    expect(e).toMatchObject({
      expected: OTHER_FINGERPRINT,
      presented: HOST_FINGERPRINT,
      presentedKey: HOST_KEY_LINE,
    });
    // Never retried, and no command reached the host.
    expect(sshd.connections - before).toBe(1);
    expect(t.stats.handshakes).toBe(0);
  });

  it("refuses a wrong SHA256 fingerprint pin", async () => {
    const t = transport({ hostKey: OTHER_FINGERPRINT });
    expect(await rejectionOf(t.exec(["true"]))).toBeInstanceOf(HostKeyMismatchError);
  });

  it("accepts the right key pinned as an OpenSSH line or as a fingerprint", async () => {
    for (const hostKey of [HOST_KEY.public, HOST_KEY_LINE, HOST_FINGERPRINT]) {
      const t = transport({ hostKey });
      expect((await t.exec(["echo", "ok"])).stdout).toBe("ok\n");
      expect(t.presentedHostKey).toBe(HOST_KEY_LINE);
    }
  });

  it("records the presented key when none is pinned, and says so", async () => {
    const logs: string[] = [];
    const t = transport({}, { log: (m) => logs.push(m) });
    expect(t.presentedHostKey).toBeUndefined();
    await t.exec(["true"]);
    expect(t.presentedHostKey).toBe(HOST_KEY_LINE);
    expect(logs.join("\n")).toContain(`not pinned; recorded ssh-ed25519 ${HOST_FINGERPRINT}`);
  });
});

describe("SshTransport: secrets", () => {
  it("keeps passwords, keys and passphrases out of command errors and logs", async () => {
    const logs: string[] = [];
    const t = transport(
      { privateKey: ENCRYPTED_KEY.private, privateKeyPassword: PASSPHRASE, password: PASSWORD },
      { log: (m) => logs.push(m) },
    );
    const err = await rejectionOf(
      t.exec({
        script: [
          `echo "pw=${PASSWORD}"`,
          `echo "pass=${PASSPHRASE}" >&2`,
          `printf '%s' '${ENCRYPTED_KEY.private}'`,
          "exit 1",
        ].join("\n"),
      }),
    );
    expect(err).toBeInstanceOf(CommandError);
    // The output really was there: it was redacted, not lost.
    expect((err as CommandError).stdout).toContain("pw=[redacted]");
    expect((err as CommandError).stderr).toContain("pass=[redacted]");
    expectNoSecrets(dump(err));
    expectNoSecrets(logs.join("\n"));
  });

  it("keeps them out of timeouts", async () => {
    const t = transport({ password: PASSWORD });
    const err = await rejectionOf(
      t.exec({ script: `echo ${PASSWORD}; sleep 30` }, { timeoutMs: 500 }),
    );
    expect(err).toBeInstanceOf(CommandTimeoutError);
    expectNoSecrets(dump(err));
  });

  it("keeps them out of authentication failures, which are not retried", async () => {
    const logs: string[] = [];
    const before = sshd.connections;
    const t = transport(
      {
        privateKey: UNKNOWN_ENCRYPTED_KEY.private,
        privateKeyPassword: PASSPHRASE,
        password: WRONG_PASSWORD,
        dialErrorLimit: 5,
      },
      { log: (m) => logs.push(m) },
    );
    const err = await rejectionOf(t.exec(["true"]));
    expect(err).toBeInstanceOf(ConnectError);
    expect(err).toMatchObject({ kind: "auth", attempts: 1 });
    expect((err as ConnectError).message).toMatch(/authentication failed/);
    expect(sshd.connections - before).toBe(1);
    expect(logs.filter((l) => l.includes("retrying"))).toEqual([]);
    expectNoSecrets(dump(err));
    expectNoSecrets(logs.join("\n"));
  });

  it("keeps them out of a wrong passphrase error", async () => {
    const before = sshd.connections;
    const t = transport({ privateKey: ENCRYPTED_KEY.private, privateKeyPassword: WRONG_PASSWORD });
    const err = await rejectionOf(t.exec(["true"]));
    expect(err).toMatchObject({ kind: "config", attempts: 1 });
    expect((err as Error).message).toMatch(/privateKeyPassword/);
    expect(sshd.connections).toBe(before);
    expectNoSecrets(dump(err));
  });
});

describe("SshTransport: connections", () => {
  it("runs 20 concurrent commands over one connection within MaxSessions", async () => {
    const server = await startSshd({ maxSessions: 10 });
    try {
      const t = transport({ port: server.port });
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => t.exec(["sh", "-c", `sleep 0.1; echo ${i}`])),
      );
      expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 20 }, (_, i) => `${i}\n`));
      expect(server.connections).toBe(1);
      expect(t.stats).toEqual({ handshakes: 1, execs: 20 });
      // Commands overlapped, but never beyond the channel limit.
      expect(server.peakSessions).toBeGreaterThan(1);
      expect(server.peakSessions).toBeLessThanOrEqual(8);
      await t.close();
    } finally {
      await server.close();
    }
  });

  it("retries a refused connection with backoff, then gives up with ConnectError", async () => {
    const port = await closedPort();
    const logs: string[] = [];
    const t = transport({ port, dialErrorLimit: 3 }, { log: (m) => logs.push(m) });
    const err = await rejectionOf(t.exec(["true"]));
    expect(err).toBeInstanceOf(ConnectError);
    expect(err).toMatchObject({ kind: "network", attempts: 3, reason: "ECONNREFUSED" });
    expect((err as ConnectError).message).toBe(
      `Cannot connect to root@127.0.0.1:${port} after 3 attempts: ECONNREFUSED`,
    );
    expect(logs).toEqual([
      `connect to root@127.0.0.1:${port} failed (attempt 1/3): ECONNREFUSED; retrying in 10 ms`,
      `connect to root@127.0.0.1:${port} failed (attempt 2/3): ECONNREFUSED; retrying in 20 ms`,
    ]);
  });

  it("reconnects when the connection drops between commands", async () => {
    const t = transport();
    await t.exec(["true"]);
    const before = sshd.connections;
    for (const c of sshd.clients) c.end();
    await waitFor(() => !t.connected);
    expect((await t.exec(["echo", "back"])).stdout).toBe("back\n");
    expect(sshd.connections - before).toBe(1);
    expect(t.stats.handshakes).toBe(2);
  });

  it("reconnects when ssh2 says Not connected before the close event (a session killed on the host)", async () => {
    const t = transport();
    await t.exec(["true"]);
    // The socket is gone, yet its close event has not marked the connection dead: ssh2's exec
    // throws "Not connected" synchronously, as it does for a destroyed socket.
    const live = (t as unknown as { live: { client: { exec: () => never } } }).live;
    live.client.exec = () => {
      throw new Error("Not connected");
    };
    expect((await t.exec(["echo", "back"])).stdout).toBe("back\n");
    expect(t.stats.handshakes).toBe(2);
  });

  it("prefixes sudo -n for a non-root user, not for root", async () => {
    const deploy = transport({ user: "deploy", sudo: true });
    await deploy.exec({ script: "echo hi" }, { allowFailure: true });
    expect(sshd.commands.at(-1)).toBe("sudo -n sh -c 'echo hi'");
    await deploy.exec(["sysctl", "-n", "net.core.somaxconn"], { allowFailure: true });
    expect(sshd.commands.at(-1)).toBe("sudo -n sysctl -n net.core.somaxconn");

    const root = transport({ sudo: true });
    await root.exec(["echo", "hi"]);
    expect(sshd.commands.at(-1)).toBe("echo hi");
  });

  it("goes through a jump host", async () => {
    const jump = await startJumpHost();
    try {
      const before = sshd.connections;
      const t = transport({
        hostKey: HOST_FINGERPRINT,
        proxy: { host: "127.0.0.1", port: jump.port, user: "jump", password: PASSWORD },
      });
      expect((await t.exec(["echo", "via jump"])).stdout).toBe("via jump\n");
      expect(jump.forwards).toEqual([`127.0.0.1:${sshd.port}`]);
      expect(jump.connections).toBe(1);
      expect(sshd.connections - before).toBe(1);
      // One handshake with the jump host, one with the target through it.
      expect(t.stats.handshakes).toBe(2);
      expect(t.presentedHostKey).toBe(HOST_KEY_LINE);
      await t.close();

      const pinned = transport({
        proxy: {
          host: "127.0.0.1",
          port: jump.port,
          user: "jump",
          password: PASSWORD,
          hostKey: OTHER_FINGERPRINT,
        },
      });
      const err = await rejectionOf(pinned.exec(["true"]));
      expect(err).toBeInstanceOf(HostKeyMismatchError);
      expect((err as HostKeyMismatchError).target).toBe(`jump@127.0.0.1:${jump.port}`);
      expect((err as Error).message).toContain("connection.proxy.hostKey");
    } finally {
      await jump.close();
    }
  });
});

describe("TransportPool", () => {
  it("shares one transport per connection and never shows secrets in its key", async () => {
    const pool = new TransportPool();
    const a = pool.get(conn({ password: PASSWORD }));
    expect(pool.get(conn({ password: PASSWORD }))).toBe(a);
    expect(pool.get(conn({ user: "other", password: PASSWORD }))).not.toBe(a);
    expect(pool.size).toBe(2);
    const key = connectionKey(conn({ password: PASSWORD }));
    expect(key).toMatch(new RegExp(`^root@127\\.0\\.0\\.1:${sshd.port}#[0-9a-f]{16}$`));
    expectNoSecrets(key);
    await pool.closeAll();
    expect(pool.size).toBe(0);
  });

  it("closes an idle connection and reopens it on the next command", async () => {
    const pool = new TransportPool({ idleMs: 100 });
    const c = conn();
    const t = pool.get(c);
    const open = sshd.open;
    await Promise.all([t.exec(["echo", "1"]), t.exec(["echo", "2"])]);
    expect(t.connected).toBe(true);
    await waitFor(() => !t.connected && sshd.open === open);
    expect(pool.get(c)).toBe(t);
    expect((await t.exec(["echo", "again"])).stdout).toBe("again\n");
    expect(t.stats).toEqual({ handshakes: 2, execs: 3 });
    await pool.closeAll();
    await waitFor(() => sshd.open === open);
  });
});
