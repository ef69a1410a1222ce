/**
 * Sandbox address blocks are claimed under a lock (src/sandbox/sandbox.ts, claimBlock): two
 * `sandbox up`s at once (two test runs on one machine) never take the same block. Runs in a temp
 * state folder (NETTUNE_SANDBOX_DIR); nothing is brought up.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { afterEach, beforeEach, expect, test } from "vitest";
import { claimBlock } from "../../src/sandbox/sandbox";

const ROOT = path.resolve(__dirname, "../..");
let dir = "";
const saved = process.env.NETTUNE_SANDBOX_DIR;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-claim-"));
  process.env.NETTUNE_SANDBOX_DIR = dir;
});
afterEach(() => {
  if (saved === undefined) delete process.env.NETTUNE_SANDBOX_DIR;
  else process.env.NETTUNE_SANDBOX_DIR = saved;
  fs.rmSync(dir, { recursive: true, force: true });
});

const stateOf = (name: string) =>
  JSON.parse(fs.readFileSync(path.join(dir, name, "state.json"), "utf8")) as {
    block: number;
    hosts: unknown[];
  };

test("each claim takes the next free block and writes its state at once", () => {
  expect(claimBlock("a").block).toBe(0);
  expect(stateOf("a")).toMatchObject({ block: 0, hosts: [] });
  expect(claimBlock("b").block).toBe(1);
  expect(fs.existsSync(path.join(dir, ".claim.lock"))).toBe(false);
});

test("a claim waits while another holds the lock, then takes a block of its own", async () => {
  const lock = path.join(dir, ".claim.lock");
  fs.writeFileSync(lock, "12345\n");
  // Another process claims while this one holds the lock (as another `sandbox up` would).
  const child = spawn(
    process.execPath,
    [
      "-e",
      `require(${JSON.stringify(path.join(ROOT, "dist/src/sandbox/sandbox.js"))}).claimBlock("b")`,
    ],
    { env: { ...process.env, NETTUNE_SANDBOX_DIR: dir }, stdio: "inherit" },
  );
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  await new Promise((r) => setTimeout(r, 1000));
  expect(fs.existsSync(path.join(dir, "b", "state.json"))).toBe(false);
  // This holder claims "a" (as it would inside the lock), then lets go.
  fs.mkdirSync(path.join(dir, "a"));
  fs.writeFileSync(
    path.join(dir, "a", "state.json"),
    JSON.stringify({ name: "a", block: 0, createdAt: "", hosts: [] }),
  );
  fs.rmSync(lock);
  expect(await exited).toBe(0);
  expect(stateOf("b").block).toBe(1);
});

test("a lock left by a process that died holding it (older than 10 s) is taken over", () => {
  const lock = path.join(dir, ".claim.lock");
  fs.writeFileSync(lock, "12345\n");
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(lock, old, old);
  expect(claimBlock("a").block).toBe(0);
  expect(fs.existsSync(lock)).toBe(false);
});
