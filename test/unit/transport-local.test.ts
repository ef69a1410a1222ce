import { describe, expect, it } from "vitest";

import {
  CommandError,
  CommandTimeoutError,
  ConnectError,
  HostKeyMismatchError,
  LocalTransport,
  redact,
  REDACTED,
} from "../../src/transport";

async function rejectionOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

describe("LocalTransport", () => {
  const local = new LocalTransport();

  it("runs argv without a shell", async () => {
    const r = await local.exec(["printf", "%s|", "a b", "$HOME", "*"]);
    expect(r).toEqual({ stdout: "a b|$HOME|*|", stderr: "", exitCode: 0 });
    expect(local.target).toBe("local");
  });

  it("runs scripts with sh -c and feeds stdin", async () => {
    const r = await local.exec(
      { script: 'read x\necho "got $x"\necho warn >&2' },
      { stdin: "hi\n" },
    );
    expect(r).toEqual({ stdout: "got hi\n", stderr: "warn\n", exitCode: 0 });
    expect((await local.exec(["cat"])).stdout).toBe("");
  });

  it("counts execs and never handshakes", async () => {
    const t = new LocalTransport();
    await t.exec(["true"]);
    await t.exec(["true"]);
    expect(t.stats).toEqual({ handshakes: 0, execs: 2 });
  });

  it("throws CommandError on a non-zero exit, or returns it when allowed", async () => {
    const err = await rejectionOf(local.exec({ script: "echo out; echo err >&2; exit 4" }));
    expect(err).toBeInstanceOf(CommandError);
    expect((err as CommandError).message).toBe(
      "Command failed with exit code 4 on local: sh -c 'echo out; echo err >&2; exit 4'\nout\nerr",
    );
    expect(err).toMatchObject({ target: "local", exitCode: 4, stdout: "out\n", stderr: "err\n" });

    const r = await local.exec(["sh", "-c", "exit 2"], { allowFailure: true });
    expect(r.exitCode).toBe(2);
  });

  it("reports a missing program like a shell does, with exit code 127", async () => {
    const err = await rejectionOf(local.exec(["nettune-no-such-program", "x"]));
    expect(err).toBeInstanceOf(CommandError);
    expect(err).toMatchObject({ exitCode: 127 });
    expect((err as Error).message).toContain("nettune-no-such-program");
  });

  it("reports a command killed by a signal", async () => {
    const err = (await rejectionOf(local.exec({ script: "kill -9 $$" }))) as CommandError;
    expect(err).toBeInstanceOf(CommandError);
    expect(err.exitCode).toBeNull();
    expect(err.signal).toBe("SIGKILL");
  });

  it("kills a command and its children on timeout", async () => {
    const started = Date.now();
    const err = await rejectionOf(
      local.exec({ script: "echo started; sleep 30; echo never" }, { timeoutMs: 200 }),
    );
    expect(err).toBeInstanceOf(CommandTimeoutError);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(err).toMatchObject({ target: "local", timeoutMs: 200, stdout: "started\n" });
  });

  it("prefixes sudo -n when asked", async () => {
    const t = new LocalTransport({ sudo: true });
    const err = await rejectionOf(t.exec(["nettune-no-such-program"]));
    // Either sudo is missing (127) or it refuses to prompt; both mention the command run.
    expect((err as CommandError).command).toBe("sudo -n nettune-no-such-program");
  });

  it("redacts configured secrets from errors", async () => {
    const t = new LocalTransport({ secrets: ["hunter2-hunter2"] });
    const err = (await rejectionOf(t.exec({ script: "echo hunter2-hunter2; exit 1" }))) as Error;
    expect(JSON.stringify(err, Object.getOwnPropertyNames(err))).not.toContain("hunter2-hunter2");
    expect(err.message).toContain(REDACTED);
  });
});

describe("redact", () => {
  it("replaces every occurrence of each secret", () => {
    expect(redact("a pw b pw", ["pw"])).toBe(`a ${REDACTED} b ${REDACTED}`);
    expect(redact("nothing here", [undefined, ""])).toBe("nothing here");
  });

  it("redacts a key's lines even when only part of it is printed", () => {
    const key = [
      "-----BEGIN OPENSSH PRIVATE KEY-----",
      "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
      "QyNTUxOQAAACDx2dmnG1zFdT6gXp6Vn4H5wWmJ3Q7jEx8yV3gk2aQbWQAAAJgm2r4LJtq+",
      "-----END OPENSSH PRIVATE KEY-----",
    ].join("\n");
    const line = key.split("\n")[2]!;
    const out = redact(`cat says: ${line}\nwhole: ${key}`, [key]);
    expect(out).not.toContain(line);
    expect(out).not.toContain(key.split("\n")[1]!);
    expect(out).toContain(REDACTED);
  });
});

describe("error messages", () => {
  it("formats a CommandError like the documented example", () => {
    const e = new CommandError({
      target: "root@198.18.0.2:22",
      command: "ethtool -K eth0 gro on",
      exitCode: 1,
      stdout: "",
      stderr: "  Cannot change generic-receive-offload\n",
    });
    expect(e.message).toBe(
      "Command failed with exit code 1 on root@198.18.0.2:22: ethtool -K eth0 gro on\n" +
        "Cannot change generic-receive-offload",
    );
    expect(e.name).toBe("CommandError");
    expect(e).toBeInstanceOf(Error);
  });

  it("names target, pins and the fix in a HostKeyMismatchError", () => {
    const e = new HostKeyMismatchError({
      target: "root@h:22",
      expected: "SHA256:aaa",
      presented: "SHA256:bbb",
      presentedKey: "ssh-ed25519 AAAAbbb",
    });
    expect(e.message).toContain("root@h:22");
    expect(e.message).toContain("expected SHA256:aaa");
    expect(e.message).toContain("presented SHA256:bbb");
    expect(e.message).toContain('set connection.hostKey to "ssh-ed25519 AAAAbbb"');
  });

  it("names target and attempts in a ConnectError and redacts its reason", () => {
    const e = new ConnectError({
      target: "root@h:22",
      attempts: 3,
      kind: "network",
      reason: "bad sekrit-value",
      secrets: ["sekrit-value"],
    });
    expect(e.message).toBe(`Cannot connect to root@h:22 after 3 attempts: bad ${REDACTED}`);
    expect(e.reason).toBe(`bad ${REDACTED}`);
  });
});
