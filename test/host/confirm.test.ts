/**
 * The commit-confirmed rollback on a real systemd host (an nspawn sandbox host): armed, then an
 * apply that runs `systemctl daemon-reload` (as every apply that installs a unit does), and not
 * disarmed. systemd re-reads the transient timer's unit at the reload and mangles a command
 * line with newlines or `;`: the rollback must still run, every line of it. And an apply that
 * takes longer than a fast host's (an emulated CPU, a daemon-reload under load) is awaited.
 */
import { expect, test } from "vitest";
import {
  AnswerLost,
  applyConfirmed,
  renderArmAndApply,
  renderDisarm,
  rollbackFile,
  rollbackUnit,
} from "../../src/specs/confirm";
import { connectionSchema } from "../../src/schemas/connection";
import { SshTransport } from "../../src/transport/ssh";
import type { ExecResult } from "../../src/transport/types";
import { onHost } from "../helpers/hostShell";
import { connection, sandboxHosts } from "../helpers/sandbox";

test("a multi-line rollback with ; runs whole after a daemon-reload, and leaves no file", async () => {
  const h = sandboxHosts()[0]!;
  const token = "host-test-reload";
  const marker = "/tmp/nettune-confirm-reload";
  const rollback = [`echo one > ${marker}; echo two >> ${marker}`, `echo three >> ${marker}`].join(
    "\n",
  );
  const armed = await onHost(
    h,
    `rm -f ${marker}\n` +
      renderArmAndApply({
        token,
        rollbackAfter: 5,
        rollback,
        apply: "systemctl daemon-reload && echo applied",
      }),
  );
  expect(armed).toBe("armed systemd\napplied\n");
  // Past the timer: the rollback ran, each line as written.
  const after = await onHost(
    h,
    `sleep 7; cat ${marker}; ls ${rollbackFile(token)} 2>/dev/null | wc -l`,
  );
  expect(after).toBe("one\ntwo\nthree\n0\n");
  expect(
    await onHost(
      h,
      `${renderDisarm(token)}; rm -f ${marker}; ls /run | grep -c nettune-rollback || true`,
    ),
  ).toBe("disarmed\n0\n");
});

test("an apply slower than 20 s (a slow host) is awaited within the rollback window, confirmed and disarmed", async () => {
  const h = sandboxHosts()[0]!;
  const conn = connectionSchema.parse(connection(h));
  const t = new SshTransport(conn);
  const token = "host-test-slow";
  const marker = "/tmp/nettune-confirm-slow";
  try {
    const res = await applyConfirmed(
      t,
      conn,
      {
        token,
        rollbackAfter: 40,
        rollback: `rm -f ${marker}`,
        apply: `sleep 22; echo applied > ${marker}; echo applied`,
      },
      "a slow change",
    );
    expect(res).not.toBeInstanceOf(AnswerLost);
    expect((res as ExecResult).stdout).toBe("armed systemd\napplied\n");
    // Confirmed: the timer and its file are gone, and the change stays.
    expect(
      await onHost(
        h,
        `cat ${marker}; ls ${rollbackFile(token)} 2>/dev/null | wc -l; systemctl list-timers --all --no-legend | grep -c ${rollbackUnit(token)} || true; rm -f ${marker}`,
      ),
    ).toBe("applied\n0\n0\n");
  } finally {
    await t.close();
  }
}, 90_000);
