/**
 * The `nettune` command line outside the sandbox commands: `--version`/`-v` print the package's
 * version, `--help`/`-h` the usage, both exiting 0; no command prints the usage and exits 2; a
 * flag without its value is a usage error. Runs the built CLI (dist/src/bin/nettune.js), as
 * `npx nettune` runs it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { describe, expect, test } from "vitest";

const ROOT = path.resolve(__dirname, "../..");
const VERSION = (
  JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
    version: string;
  }
).version;

function nettune(...args: string[]) {
  const res = spawnSync(process.execPath, [path.join(ROOT, "dist/src/bin/nettune.js"), ...args], {
    encoding: "utf8",
    timeout: 30_000,
  });
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

describe("nettune --version", () => {
  for (const flag of ["--version", "-v"]) {
    test(`${flag} prints the package's version and exits 0`, () => {
      expect(nettune(flag)).toEqual({ status: 0, stdout: `${VERSION}\n`, stderr: "" });
    });
  }
});

describe("nettune --help", () => {
  for (const flag of ["--help", "-h"]) {
    test(`${flag} prints the usage and exits 0`, () => {
      const r = nettune(flag);
      expect(r.status).toBe(0);
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(/^usage:\n/);
      expect(r.stdout).toContain("nettune sandbox up [--hosts N]");
      expect(r.stdout).toContain("nettune --version");
    });
  }

  test("a command's --help prints the usage too", () => {
    const r = nettune("sandbox", "up", "--help");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage:\n/);
  });
});

describe("usage errors", () => {
  test("no command prints the usage and exits 2", () => {
    const r = nettune();
    expect(r.status).toBe(2);
    expect(r.stdout).toMatch(/^usage:\n/);
  });

  test("a flag without its value names the flag and exits 2", () => {
    const r = nettune("sandbox", "status", "--name");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^nettune: --name needs a value\nusage:/);
  });
});
