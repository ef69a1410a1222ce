/**
 * `npm run demo`: the whole lifecycle of a SysctlSet on a real (sandbox) host.
 * `npm run demo -- profile`: the apiGateway profile on a sandbox host, with the measured effect
 * of a SYN flood and a connection burst before and after (./profile.ts).
 *
 *   1. bring up a sandbox host (Debian booted by systemd in its own network namespace)
 *   2. preview the guide's 99-network-optimizations.conf values: per-key diff, host untouched
 *   3. apply them with `pulumi up`, then check on the host over SSH
 *   4. preview again: nothing to change
 *   5. destroy: the host's original values are back and the sysctl.d file is gone
 *   6. take the sandbox down
 *
 * Pulumi runs for real (the pinned CLI, a file:// backend in a temp folder, passphrase
 * secrets); the program is the same one Pulumi.yaml points at.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as auto from "@pulumi/pulumi/automation";
import * as sandbox from "../../src/sandbox/sandbox";
import { connectionSchema } from "../../src/schemas/connection";
import { SshTransport } from "../../src/transport/ssh";
import { bold, step, table } from "./narrate";
import { profileDemo } from "./profile";
import { demoProgram, GUIDE_VALUES, type DemoHost } from "./program";

const SANDBOX = "demo";
const KEYS = Object.keys(GUIDE_VALUES);
const FILE = "/etc/sysctl.d/99-network-optimizations.conf";

async function onHost(target: DemoHost, script: string): Promise<string> {
  const t = new SshTransport(
    connectionSchema.parse({
      host: target.host,
      port: target.port,
      user: target.user,
      privateKey: fs.readFileSync(target.privateKeyPath, "utf8"),
      hostKey: target.hostKey,
    }),
  );
  try {
    return (await t.exec({ script })).stdout;
  } finally {
    await t.close();
  }
}

async function live(target: DemoHost): Promise<Record<string, string>> {
  const out = await onHost(
    target,
    KEYS.map(
      (k) => `printf '%s\\t%s\\n' ${k} "$(echo $(cat /proc/sys/${k.split(".").join("/")}))"`,
    ).join("\n"),
  );
  return Object.fromEntries(
    out
      .trim()
      .split("\n")
      .map((l) => l.split("\t") as [string, string]),
  );
}

async function main(): Promise<void> {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-demo-"));
  let failed = false;
  try {
    step(1, "bring up a sandbox host");
    const state = await sandbox.up({
      name: SANDBOX,
      hosts: 1,
      log: (m) => process.stdout.write(`${m}\n`),
    });
    const h = state.hosts[0]!;
    const target: DemoHost = {
      host: h.hostAddress,
      port: h.directPort,
      user: h.user,
      privateKeyPath: h.privateKeyPath,
      hostKey: h.hostKey,
    };
    process.stdout.write(
      `${h.name}: ${h.user}@${h.hostAddress}, host key pinned (${h.hostKey.slice(0, 32)}…)\n`,
    );
    const before = await live(target);

    const stack = await auto.LocalWorkspace.createOrSelectStack(
      {
        stackName: "demo",
        projectName: "nettune-demo",
        program: () => Promise.resolve(demoProgram(target)),
      },
      {
        workDir: stateDir,
        envVars: {
          PULUMI_BACKEND_URL: `file://${stateDir}`,
          // nettune checks changed resources against their hosts in diff: in parallel with this.
          PULUMI_PARALLEL_DIFF: "true",
          PULUMI_CONFIG_PASSPHRASE: process.env.PULUMI_CONFIG_PASSPHRASE ?? "nettune-demo",
        },
      },
    );
    const print = (s: string) => process.stdout.write(s);

    step(2, "pulumi preview: what would change (the host is not touched)");
    await stack.preview({ diff: true, onOutput: print, color: "never" });
    const afterPreview = await live(target);
    if (JSON.stringify(afterPreview) !== JSON.stringify(before))
      throw new Error("preview changed the host");

    step(3, "pulumi up: apply, read back, verify, persist");
    await stack.up({ onOutput: print, color: "never" });
    const applied = await live(target);
    const rows: Array<[string, string, string]> = KEYS.map((k) => [
      k,
      before[k] ?? "?",
      applied[k] ?? "?",
    ]);
    process.stdout.write(
      "\nOn the host now (read over SSH):\n" + table(rows, ["key", "before", "now"]),
    );
    const file = await onHost(target, `cat ${FILE}`);
    process.stdout.write(`\n${FILE}:\n${file}`);
    const wrong = KEYS.filter((k) => {
      const v = GUIDE_VALUES[k];
      const want = Array.isArray(v)
        ? v.join(" ")
        : typeof v === "number" || typeof v === "string"
          ? String(v)
          : "";
      return applied[k] !== want;
    });
    if (wrong.length) throw new Error(`not applied on the host: ${wrong.join(", ")}`);

    step(4, "pulumi preview again: nothing to do");
    const again = await stack.preview({ color: "never" });
    process.stdout.write(`changes: ${JSON.stringify(again.changeSummary)}\n`);

    step(5, "pulumi destroy: the original values come back");
    await stack.destroy({ onOutput: print, color: "never" });
    const restored = await live(target);
    const rows2: Array<[string, string, string]> = KEYS.map((k) => [
      k,
      before[k] ?? "?",
      restored[k] ?? "?",
    ]);
    process.stdout.write("\n" + table(rows2, ["key", "original", "after destroy"]));
    const fileGone = (
      await onHost(target, `test -e ${FILE} && echo present || echo absent`)
    ).trim();
    process.stdout.write(`${FILE}: ${fileGone}\n`);
    if (JSON.stringify(restored) !== JSON.stringify(before) || fileGone !== "absent") {
      throw new Error("destroy did not restore the host");
    }
    process.stdout.write(`\n${bold("The host is exactly as it was.")}\n`);
  } catch (err) {
    failed = true;
    process.stderr.write(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  } finally {
    step(6, "take the sandbox down");
    await sandbox.down({ name: SANDBOX, log: (m) => process.stdout.write(`${m}\n`) });
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
  process.exitCode = failed ? 1 : 0;
}

const USAGE = "usage: node dist/examples/demo/index.js [profile]";
const part = process.argv[2];
if (part === undefined) void main();
else if (part === "profile" && process.argv.length === 3) {
  void profileDemo().then((code) => (process.exitCode = code));
} else {
  process.stderr.write(`${USAGE}\n`);
  process.exitCode = 2;
}
