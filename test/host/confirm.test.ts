/**
 * The commit-confirmed rollback on a real systemd host (an nspawn sandbox host): armed, then an
 * apply that runs `systemctl daemon-reload` (as every apply that installs a unit does), and not
 * disarmed. systemd re-reads the transient timer's unit at the reload and mangles a command
 * line with newlines or `;`: the rollback must still run, every line of it.
 */
import { expect, test } from "vitest";
import { renderArmAndApply, renderDisarm, rollbackFile } from "../../src/specs/confirm";
import { onHost } from "../helpers/hostShell";
import { sandboxHosts } from "../helpers/sandbox";

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
