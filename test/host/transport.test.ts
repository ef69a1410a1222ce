/**
 * The SSH transport against a real sandbox host (OpenSSH server run by the host's systemd).
 */
import * as fs from "node:fs";
import { spawnSync } from "node:child_process";
import { describe, expect, test } from "vitest";
import { connectionSchema } from "../../src/schemas/connection";
import { CommandError, HostKeyMismatchError } from "../../src/transport/errors";
import { SshTransport } from "../../src/transport/ssh";
import { TransportPool } from "../../src/transport/pool";
import { connection, sandboxHosts } from "../helpers/sandbox";

function sshdConnections(hostAddress: string, key: string): number {
  // Established connections to the host's sshd, counted on the host itself.
  const res = spawnSync(
    "ssh",
    [
      "-i",
      key,
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-o",
      "LogLevel=ERROR",
      `root@${hostAddress}`,
      "ss -Htn state established '( sport = :22 )' | wc -l",
    ],
    { encoding: "utf8" },
  );
  // The counting session itself is one of them.
  return Number(res.stdout.trim()) - 1;
}

describe("SSH transport on a sandbox host", () => {
  test("exec returns stdout, stderr and exit code", async () => {
    const h = sandboxHosts()[0]!;
    const t = new SshTransport(connectionSchema.parse(connection(h)));
    try {
      const r = await t.exec({ script: "echo out; echo err >&2; exit 3" }, { allowFailure: true });
      expect(r).toMatchObject({ stdout: "out\n", stderr: "err\n", exitCode: 3 });
    } finally {
      await t.close();
    }
  });

  test("a wrong pinned host key is refused before any command runs", async () => {
    const [h1, h2] = sandboxHosts();
    // host2's key pinned for host1: a man in the middle presenting another key.
    const t = new SshTransport(
      connectionSchema.parse(connection(h1!, { hostKey: h2!.hostKey, dialErrorLimit: 3 })),
    );
    const err = await t.exec(["touch", "/tmp/should-not-exist"]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    expect(String((err as Error).message)).toContain(h1!.hostAddress);
    expect(t.stats.handshakes).toBe(0);
    const check = new SshTransport(connectionSchema.parse(connection(h1!)));
    expect(
      (await check.exec({ script: "test -e /tmp/should-not-exist && echo yes || echo no" })).stdout,
    ).toBe("no\n");
    await check.close();
  });

  test("a non-zero exit becomes an error naming host, command and exit code, with the output", async () => {
    const h = sandboxHosts()[0]!;
    const t = new SshTransport(connectionSchema.parse(connection(h)));
    try {
      const err = (await t
        .exec(["ethtool", "-K", "nosuchdev0", "gro", "on"])
        .catch((e: unknown) => e)) as CommandError;
      expect(err).toBeInstanceOf(CommandError);
      expect(err.exitCode).not.toBe(0);
      expect(err.message).toContain(`root@${h.hostAddress}:22`);
      expect(err.message).toContain("ethtool -K nosuchdev0 gro on");
      expect(err.message).toMatch(new RegExp(`exit code ${err.exitCode}`));
      expect(err.message).toMatch(/nosuchdev0/);
    } finally {
      await t.close();
    }
  });

  test("20 concurrent execs to one host share one SSH connection", async () => {
    const h = sandboxHosts()[0]!;
    const pool = new TransportPool();
    const conn = connectionSchema.parse(connection(h));
    try {
      const before = sshdConnections(h.hostAddress, h.privateKeyPath);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          pool.get(conn).exec({ script: `sleep 0.2; echo ${i}` }),
        ),
      );
      expect(results.map((r) => r.stdout.trim())).toEqual(
        Array.from({ length: 20 }, (_, i) => String(i)),
      );
      expect(pool.get(conn).stats.handshakes).toBe(1);
      expect(pool.get(conn).stats.execs).toBe(20);
      // While the pooled connection is open, the host sees exactly one more SSH connection.
      expect(sshdConnections(h.hostAddress, h.privateKeyPath) - before).toBe(1);
    } finally {
      await pool.closeAll();
    }
  });

  test("the private key never appears in errors, even when authentication fails", async () => {
    const h = sandboxHosts()[0]!;
    const key = fs.readFileSync(h.privateKeyPath, "utf8");
    const body = key.split("\n").slice(1, -2).join("");
    const logs: string[] = [];
    // Right key, wrong user: the server refuses it.
    const t = new SshTransport(
      connectionSchema.parse(connection(h, { user: "nobody-here", dialErrorLimit: 2 })),
      {
        log: (m) => logs.push(m),
      },
    );
    const err = (await t.exec(["true"]).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    const everything = [
      err.message,
      err.stack ?? "",
      JSON.stringify(err, Object.getOwnPropertyNames(err)),
      ...logs,
    ].join("\n");
    expect(everything).not.toContain(body.slice(0, 40));
    expect(everything).not.toContain("PRIVATE KEY");
  });
});
