/**
 * `nettune sandbox up --vm --user-data FILE`: cloud-init in a VM host runs the user data from
 * its NoCloud seed (/var/lib/cloud/seed/nocloud) on first boot, without touching the network,
 * the host keys or the logins the sandbox seeded. One VM (2 vCPUs) to keep the TCG boot short.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { connectionSchema } from "../../src/schemas/connection";
import { SshTransport } from "../../src/transport/ssh";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import { cloudInitSchema } from "../helpers/cloudInitSchema";
import { cli, connection, SANDBOX, VM_UP_TIMEOUT_MS, vmSandboxUp } from "../helpers/sandbox";

const NAME = `${SANDBOX}ci`;
/** cloud-init's stages under TCG, after sshd is up: the final one runs after multi-user. */
const CLOUD_INIT_WAIT_S = 300;

const USER_DATA = `#cloud-config
bootcmd:
  - [sh, -c, "date +%s >> /var/lib/nettune-ci-bootcmd"]
write_files:
  - path: /etc/nettune-ci/written
    content: "written by write_files\\n"
runcmd:
  - [sh, -c, "echo ran > /etc/nettune-ci/runcmd"]
`;

describe("nettune sandbox up --vm --user-data", () => {
  let dir = "";
  let host: SandboxHost;
  let t: SshTransport | undefined;

  /** Runs a script over the pinned connection; it must succeed. */
  async function sh(script: string, timeoutMs = 60_000): Promise<string> {
    return (await t!.exec({ script }, { timeoutMs })).stdout;
  }

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-vmci-"));
    const file = path.join(dir, "user-data");
    fs.writeFileSync(file, USER_DATA);
    const schema = cloudInitSchema(USER_DATA);
    expect(schema.errors).toEqual([]);
    [host] = vmSandboxUp(NAME, 1, [
      "--cpus",
      "2",
      "--numa",
      "1",
      "--queues",
      "2",
      "--user-data",
      file,
    ]) as [SandboxHost];
    // The pinned host key: a regenerated one would fail every command below.
    t = new SshTransport(connectionSchema.parse(connection(host)));
  }, VM_UP_TIMEOUT_MS + 60_000);

  afterAll(async () => {
    await t?.close();
    cli(["sandbox", "down", "--name", NAME]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  test(
    "cloud-init finishes (status --wait: done) from the NoCloud seed, and the user data ran",
    async () => {
      expect(host.cloudInit?.instanceId).toMatch(/^i-[0-9a-f]{17}$/);
      const status = await sh(
        `timeout ${CLOUD_INIT_WAIT_S} cloud-init status --wait >/dev/null; cloud-init status --long`,
        (CLOUD_INIT_WAIT_S + 60) * 1000,
      );
      expect(status).toMatch(/^status: done$/m);
      expect(status).toMatch(/DataSourceNoCloud \[seed=\/var\/lib\/cloud\/seed\/nocloud\]/);
      const out = await sh(
        [
          "cat /etc/nettune-ci/written /etc/nettune-ci/runcmd",
          "wc -l < /var/lib/nettune-ci-bootcmd",
          "cat /var/lib/cloud/data/instance-id",
          "ls /var/lib/cloud/seed/nocloud",
          "hostname",
        ].join("; "),
      );
      expect(out.trim().split("\n")).toEqual([
        "written by write_files",
        "ran",
        "1",
        host.cloudInit!.instanceId,
        "meta-data",
        "user-data",
        "host1",
      ]);
    },
    (CLOUD_INIT_WAIT_S + 120) * 1000,
  );

  test("host keys, root's authorized_keys and the sudo user are the seeded ones", async () => {
    const pub = fs.readFileSync(`${host.privateKeyPath}.pub`, "utf8").trim();
    const out = await sh(
      [
        "cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub",
        "ls /etc/ssh/ | grep -c '^ssh_host_.*_key$'",
        "cat /root/.ssh/authorized_keys",
        "getent passwd debian || echo 'no default user'",
        `su ${host.sudoUser} -c 'sudo -n id -un'`,
      ].join("; "),
    );
    expect(out.trim().split("\n")).toEqual([host.hostKey, "1", pub, "no default user", "root"]);
  });

  test("nothing touched the network: eth0 has the sandbox's address, no DHCP, no metadata service", async () => {
    const out = await sh(
      [
        "ip -4 -o addr show dev eth0 | awk '{print $4}'",
        "ip -4 route show default | awk '{print $3}'",
        "pgrep -c dhclient || true",
        "ls /var/lib/dhcp/ 2>/dev/null | grep -c lease || true",
        "ls /etc/network/interfaces.d /etc/systemd/network /etc/netplan 2>/dev/null | grep -c cloud-init || true",
        "grep -cE 'dhclient|EphemeralDHCP|169\\.254\\.169\\.254|url_helper' /var/log/cloud-init.log || true",
      ].join("; "),
    );
    expect(out.trim().split("\n")).toEqual([
      `${host.hostAddress}/24`,
      host.rootAddress,
      "0",
      "0",
      "0",
      "0",
    ]);
  });
});
