/**
 * A link batch whose SSH session is dropped mid-command (a driver resetting its link on a
 * channel change) runs once more on a new connection; any other failure is not retried.
 */
import { expect, test } from "vitest";
import { runBatch } from "../../src/engine/batch";
import { CommandTimeoutError, ConnectError } from "../../src/transport/errors";
import { LocalTransport } from "../../src/transport/local";
import type { Command, ExecOptions, ExecResult, Transport } from "../../src/transport/types";

/** Runs scripts locally; the first `failures` calls throw the given error instead. */
function flaky(failures: number, error: () => Error): Transport & { calls: number } {
  const local = new LocalTransport();
  const t = {
    target: "root@198.18.9.9:22",
    stats: { handshakes: 1, execs: 0 },
    calls: 0,
    exec(command: Command, options?: ExecOptions): Promise<ExecResult> {
      t.calls++;
      if (t.calls <= failures) return Promise.reject(error());
      return local.exec(command, options);
    },
    close: () => Promise.resolve(),
  };
  return t;
}

const lost = () =>
  new ConnectError({
    target: "root@198.18.9.9:22",
    attempts: 1,
    kind: "lost",
    reason: "connection lost",
  });

test("a batch cut off by a lost connection runs again and its results are read", async () => {
  const t = flaky(1, lost);
  const steps = await runBatch(t, [
    ["echo", "set"],
    ["echo", "read back"],
  ]);
  expect(t.calls).toBe(2);
  expect(steps.map((s) => s.stdout)).toEqual(["set\n", "read back\n"]);
});

test("a connection lost twice fails; a timeout is not retried", async () => {
  const twice = flaky(2, lost);
  await expect(runBatch(twice, [["true"]])).rejects.toBeInstanceOf(ConnectError);
  expect(twice.calls).toBe(2);
  const timeout = flaky(
    1,
    () =>
      new CommandTimeoutError({
        target: "x",
        command: "true",
        timeoutMs: 1,
        stdout: "",
        stderr: "",
      }),
  );
  await expect(runBatch(timeout, [["true"]])).rejects.toBeInstanceOf(CommandTimeoutError);
  expect(timeout.calls).toBe(1);
});
