/**
 * The connection's secrets through the real Pulumi engine: a SysctlSet on sandbox host 1 whose
 * connection has an encrypted private key, its passphrase and a password. Pulumi's Node SDK logs
 * `RegisterResource RPC finished … resp:` with the decrypted outputs at debug severity, and the
 * Automation API's event stream carries those messages without `--debug`. nettune's drivers
 * (the engine test driver, the benchmark driver) must neither keep nor print them, and the state
 * must hold the connection only encrypted.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EngineStack } from "../helpers/engine";
import { ROOT, sandboxHosts } from "../helpers/sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import type { SecretsArg } from "../programs/secrets";
import type { DriverRequest, DriverResult } from "../../bench/pulumiDriver";

const TYPE = "pulumi-nodejs:dynamic/nettune:SysctlSet";
/** Pulumi's marker of a secret value in state. */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

type Stored = { connection: Record<string, unknown> };

let host: SandboxHost;
let dir: string;
let args: SecretsArg;
/** Text that must appear nowhere nettune's drivers print or store: each secret, or a piece of it. */
let secrets: Record<string, string>;

/** Every file under `d` as text. */
function allText(d: string): string {
  const out: string[] = [];
  const walk = (p: string) => {
    for (const e of fs.readdirSync(p, { withFileTypes: true })) {
      const f = path.join(p, e.name);
      if (e.isDirectory()) walk(f);
      else out.push(fs.readFileSync(f, "utf8"));
    }
  };
  walk(d);
  return out.join("\n");
}

function expectNoSecret(where: string, text: string): void {
  for (const [name, s] of Object.entries(secrets)) {
    expect(text.includes(s), `${name} found in ${where}`).toBe(false);
  }
}

beforeAll(() => {
  host = sandboxHosts()[0]!;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-secrets-"));
  const passphrase = `pp-${crypto.randomBytes(12).toString("hex")}`;
  const password = `pw-${crypto.randomBytes(12).toString("hex")}`;
  const keyPath = path.join(dir, "id");
  fs.copyFileSync(host.privateKeyPath, keyPath);
  fs.chmodSync(keyPath, 0o600);
  const enc = spawnSync("ssh-keygen", ["-q", "-p", "-P", "", "-N", passphrase, "-f", keyPath], {
    encoding: "utf8",
  });
  expect(enc.status, enc.stderr).toBe(0);
  fs.writeFileSync(path.join(dir, "passphrase"), passphrase, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, "password"), password, { mode: 0o600 });
  const body = (pem: string) => pem.split("\n").slice(1, -2).join("");
  const encrypted = fs.readFileSync(keyPath, "utf8");
  expect(encrypted).not.toBe(fs.readFileSync(host.privateKeyPath, "utf8"));
  secrets = {
    // A line of the key as the connection holds it, and of the key it encrypts.
    "the private key": encrypted.split("\n")[2]!,
    "the private key (unencrypted)": fs.readFileSync(host.privateKeyPath, "utf8").split("\n")[2]!,
    // The base64 of the key as a JSON string might be split by `\n`: its body, unbroken, too.
    "the private key's body": body(encrypted).slice(40, 100),
    "the passphrase": passphrase,
    "the password": password,
  };
  args = {
    address: host.hostAddress,
    port: host.directPort,
    user: host.user,
    hostKey: host.hostKey,
    privateKeyPath: keyPath,
    passphrasePath: path.join(dir, "passphrase"),
    passwordPath: path.join(dir, "password"),
    values: { "net.ipv4.tcp_fin_timeout": 37 },
  };
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("the connection's secrets", () => {
  test("the test driver keeps and prints no debug event; state holds the connection only encrypted", () => {
    const stack = new EngineStack("secrets", "secrets");
    try {
      const results = stack.runSteps([
        { op: "preview", args },
        { op: "up", args },
        { op: "refresh", args },
        { op: "up", args },
      ]);
      for (const r of results) expect(r.error).toBeUndefined();
      expect(results[1]!.changes.create).toBe(2);
      expect(results[3]!.changes).toEqual({ same: 2 });
      // The engine did send debug messages (the SDK's RPC logs): the driver dropped them.
      expect(results[1]!.debugEvents).toBeGreaterThan(0);
      expect(results.flatMap((r) => r.events).some((e) => e.severity === "debug")).toBe(false);

      // Everything the driver received and kept, printed, or wrote (results, requests, state).
      expectNoSecret("the driver's results", JSON.stringify(results));
      expectNoSecret("what the driver printed", stack.printed.join("\n"));
      expectNoSecret("the driver's folder", allText(stack.stateDir));

      // The connection is in state, as inputs and outputs, only as a secret. Every field stays:
      // delete and refresh get nothing but the state to log in with (key, passphrase, password,
      // agent, jump host), and the inputs Pulumi stores are the ones create got.
      const checkpoint = JSON.parse(
        fs.readFileSync(
          path.join(stack.stateDir, ".pulumi/stacks/nettune-test-secrets/secrets.json"),
          "utf8",
        ),
      ) as {
        checkpoint: { latest: { resources: Array<{ type: string } & Record<string, Stored>> } };
      };
      const res = checkpoint.checkpoint.latest.resources.find((r) => r.type === TYPE)!;
      for (const part of [res["inputs"]!, res["outputs"]!]) {
        expect(Object.keys(part.connection)).toEqual([SECRET_SIG, "ciphertext"]);
      }

      const d = stack.destroy(args);
      expect(d.error).toBeUndefined();
      expectNoSecret("the destroy's result", JSON.stringify(d));
      expectNoSecret("what the driver printed", stack.printed.join("\n"));
      expectNoSecret("the driver's folder", allText(stack.stateDir));
    } finally {
      stack.destroy(args);
      stack.dispose();
    }
  });

  test("the benchmark driver prints and writes no secret", () => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-secrets-bench-"));
    try {
      const req: DriverRequest = {
        program: path.join(ROOT, "dist/test/programs/secrets.js"),
        args,
        stateDir,
        project: "nettune-test-secrets-bench",
        stack: "bench",
        ops: [
          { op: "up", statsDir: path.join(stateDir, "stats-up") },
          { op: "destroy", statsDir: path.join(stateDir, "stats-destroy") },
        ],
        resultFile: path.join(stateDir, "result.json"),
      };
      const reqFile = path.join(stateDir, "request.json");
      fs.writeFileSync(reqFile, JSON.stringify(req));
      const child = spawnSync(
        process.execPath,
        [path.join(ROOT, "dist/bench/pulumiDriver.js"), reqFile],
        { cwd: ROOT, encoding: "utf8", timeout: 300_000 },
      );
      expect(child.status, child.stderr).toBe(0);
      const results = JSON.parse(fs.readFileSync(req.resultFile, "utf8")) as DriverResult[];
      expect(results.map((r) => [r.op, r.ok])).toEqual([
        ["up", true],
        ["destroy", true],
      ]);
      expectNoSecret("what the benchmark driver printed", `${child.stdout}${child.stderr}`);
      expectNoSecret("the benchmark driver's folder", allText(stateDir));
    } finally {
      fs.rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
