/**
 * `connection.waitForCloudInit` on a real host (an nspawn sandbox host, which has no cloud-init
 * of its own): a stand-in `cloud-init` in /usr/local/bin answers `status --wait` and
 * `status --long` with the exit codes and text of the real one. The first command runs only
 * after the wait; an error status fails with cloud-init's own words; a host without cloud-init
 * is not waited for.
 */
import { afterAll, describe, expect, test } from "vitest";
import { connectionSchema } from "../../src/schemas/connection";
import { SshTransport } from "../../src/transport/ssh";
import { onHost } from "../helpers/hostShell";
import { connection, sandboxHosts } from "../helpers/sandbox";

const STUB = "/usr/local/bin/cloud-init";
const MARK = "/tmp/nettune-cloud-init-done";

/** A stand-in: `status --wait` sleeps, marks and exits `code`; `status --long` describes. */
function stub(code: number, long: string): string {
  return [
    `cat > ${STUB} <<'EOF'`,
    "#!/bin/sh",
    `if [ "$2" = "--wait" ]; then sleep 2; : > ${MARK}; exit ${code}; fi`,
    `printf '%s\\n' '${long}'`,
    "EOF",
    `chmod +x ${STUB}; rm -f ${MARK}`,
  ].join("\n");
}

async function firstCommand(wait: boolean): Promise<string> {
  const h = sandboxHosts()[0]!;
  const t = new SshTransport(connectionSchema.parse(connection(h, { waitForCloudInit: wait })));
  try {
    return (await t.exec({ script: `[ -e ${MARK} ] && echo after || echo before` })).stdout.trim();
  } finally {
    await t.close();
  }
}

describe("waitForCloudInit", () => {
  afterAll(async () => {
    await onHost(sandboxHosts()[0]!, `rm -f ${STUB} ${MARK}`);
  });

  test("the first command runs once cloud-init is done", async () => {
    await onHost(sandboxHosts()[0]!, stub(0, "status: done"));
    expect(await firstCommand(true)).toBe("after");
  });

  test("without it, nothing is waited for", async () => {
    await onHost(sandboxHosts()[0]!, stub(0, "status: done"));
    expect(await firstCommand(false)).toBe("before");
  });

  test("cloud-init finishing with errors fails the command, with its status", async () => {
    await onHost(
      sandboxHosts()[0]!,
      stub(1, "status: error  errors: - Failed to run module scripts-user"),
    );
    await expect(firstCommand(true)).rejects.toThrow(
      /cloud-init on root@[\d.]+:\d+ finished with errors \(waitForCloudInit\); nothing was read or changed: status: error {2}errors: - Failed to run module scripts-user/,
    );
  });

  test("a host without cloud-init is not waited for", async () => {
    await onHost(sandboxHosts()[0]!, `rm -f ${STUB} ${MARK}`);
    expect(await firstCommand(true)).toBe("before");
  });
});
