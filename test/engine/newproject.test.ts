/**
 * nettune as a user gets it, in a project laid out by `pulumi new typescript`: the program
 * (test/programs/newproject/index.ts) compiles under the template's tsconfig, with no
 * `skipLibCheck`, and deploys with its connection taken from another resource's outputs, secret
 * and unknown at preview.
 *
 * The project is a temp folder with nettune installed from `npm pack` of this checkout, so the
 * compiler and the engine see what the registry would serve: the `files`, `exports` and `types`
 * of package.json, and only what is shipped (a `paths` entry pointing at dist/ would see neither).
 * The dependencies `npm install nettune @pulumi/pulumi` and the template's devDependencies would
 * put at the top of node_modules (nettune's own, @pulumi/pulumi, typescript, @types/node) are
 * links to the checkout's node_modules: the same versions, without the registry. Nothing else of
 * the checkout is visible from the project (no @types beyond node, no zod unless nettune's
 * declarations import it).
 *
 * The tsconfigs are pulumi/templates' typescript/tsconfig.json: tsconfig.json as `pulumi new`
 * writes it now (commit 81e65225, 2026-03-25: `module`/`moduleResolution` nodenext), and
 * tsconfig.node10.json as it wrote it from 2024-04-12 (a3029400) until then (`commonjs`/`node`,
 * no `esModuleInterop`), the one under which zod's declarations fail to compile. Prettier
 * reindents them; their settings are the template's.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EngineStack, resourceOps, stackNamed } from "../helpers/engine";
import { liveSysctls, onHost, typedSysctls } from "../helpers/hostShell";
import { direct, ROOT, sandboxHosts } from "../helpers/sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import type { NewProjectArgs } from "../programs/newproject";

const TYPE = "pulumi-nodejs:dynamic/nettune:SysctlSet";
const MACHINE = "pulumi-nodejs:dynamic:Resource";
const SOURCE = path.join(ROOT, "test/programs/newproject");
const KEYS = ["net.core.somaxconn", "net.ipv4.tcp_rmem"];
/** The SysctlSet `tuned` of stack `newproject`: its file carries the stack's tag. */
const FILE = `/etc/sysctl.d/90-nettune-${stackNamed("newproject", "newproject", "tuned")}.conf`;

const work = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-newproject-"));
const project = path.join(work, "project");
afterAll(() => {
  if (!process.env.KEEP_NEWPROJECT) fs.rmSync(work, { recursive: true, force: true });
});

function run(cmd: string, args: string[], cwd: string) {
  const res = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 300_000 });
  return { status: res.status, out: `${res.stdout ?? ""}${res.stderr ?? ""}` };
}

/** `npm pack` of the checkout, installed with its dependencies into a new project folder. */
function makeProject(): void {
  const pack = run("npm", ["pack", "--json", "--pack-destination", work], ROOT);
  expect(pack.status, pack.out).toBe(0);
  const [{ filename }] = JSON.parse(pack.out.slice(pack.out.indexOf("["))) as [
    { filename: string },
  ];
  const mods = path.join(project, "node_modules");
  const pkg = path.join(mods, "nettune");
  fs.mkdirSync(pkg, { recursive: true });
  const untar = run(
    "tar",
    ["xzf", path.join(work, filename), "-C", pkg, "--strip-components=1"],
    ROOT,
  );
  expect(untar.status, untar.out).toBe(0);
  const shipped = JSON.parse(fs.readFileSync(path.join(pkg, "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
  };
  for (const dep of [
    ...Object.keys(shipped.dependencies),
    "@pulumi/pulumi",
    "typescript",
    "@types/node",
  ]) {
    const link = path.join(mods, dep);
    if (fs.existsSync(link)) continue;
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(path.join(ROOT, "node_modules", dep), link);
  }
  // The template's package.json, with the two dependencies the README's Install section names.
  fs.writeFileSync(
    path.join(project, "package.json"),
    JSON.stringify({
      name: "newproject",
      main: "index.ts",
      devDependencies: { "@types/node": "*", typescript: "*" },
      dependencies: { "@pulumi/pulumi": "*", nettune: "*" },
    }),
  );
  for (const f of ["index.ts", "tsconfig.json", "tsconfig.node10.json"]) {
    fs.copyFileSync(path.join(SOURCE, f), path.join(project, f));
  }
}

/** The project's own TypeScript (as `npx tsc` runs it there); `--pretty false` for the test. */
function tsc(...args: string[]) {
  return run(
    process.execPath,
    [path.join(project, "node_modules/typescript/bin/tsc"), "--pretty", "false", ...args],
    project,
  );
}

beforeAll(() => {
  makeProject();
});

describe("a pulumi new typescript project compiles against the packed nettune", () => {
  for (const config of ["tsconfig.json", "tsconfig.node10.json"]) {
    test(`with ${config} (strict, no skipLibCheck): no errors, and no zod declaration loaded`, () => {
      const options = JSON.parse(fs.readFileSync(path.join(project, config), "utf8")) as {
        compilerOptions: Record<string, unknown>;
      };
      expect(options.compilerOptions.strict).toBe(true);
      expect(options.compilerOptions).not.toHaveProperty("skipLibCheck");
      const r = tsc("-p", config, "--noEmit", "--listFiles");
      const errors = r.out.split("\n").filter((l) => /error TS\d+/.test(l));
      expect(errors).toEqual([]);
      expect(r.status).toBe(0);
      const loaded = r.out.split("\n").filter((l) => l.includes("/node_modules/"));
      // The compiler did read nettune's declarations, and none of them led it into zod.
      expect(loaded.some((l) => l.includes("/nettune/dist/src/resources/connection.d.ts"))).toBe(
        true,
      );
      expect(loaded.filter((l) => /\/zod\//.test(l))).toEqual([]);
    });
  }
});

describe("its connection comes from another resource's outputs", () => {
  let host: SandboxHost;
  let stack: EngineStack;
  let privateKey: string;
  let before: Record<string, string>;
  const args = (extra: Record<string, string> = {}): NewProjectArgs => {
    const d = direct(host);
    return {
      main: path.join(project, "bin/index.js"),
      config: {
        address: d.address,
        port: String(d.port),
        user: d.user,
        keyFile: d.privateKeyPath,
        hostKey: d.hostKey ?? "",
        somaxconn: "4321",
        duplicate: "false",
        ...extra,
      },
    };
  };

  beforeAll(async () => {
    host = sandboxHosts()[0]!;
    privateKey = fs.readFileSync(direct(host).privateKeyPath, "utf8");
    before = await liveSysctls(host, KEYS);
    // Built as the template builds it: `tsc` with the project's tsconfig, into bin/.
    const build = tsc("-p", "tsconfig.json");
    expect(build.out).toBe("");
    // The engine runs the provider in the project's folder: nettune/provider is the packed one.
    stack = new EngineStack("newproject", "newproject", project);
  });
  afterAll(() => {
    stack.destroy(args());
    stack.dispose();
  });

  test("preview: the SysctlSet is to be created, its connection unknown; the host is untouched", async () => {
    const p = stack.preview(args());
    expect(p.error).toBeUndefined();
    expect(resourceOps(p, MACHINE)).toEqual(["create"]);
    expect(resourceOps(p, TYPE)).toEqual(["create"]);
    expect(p.changes).toEqual({ create: 3 });
    expect(p.stdout).toMatch(/connection\s*: \[secret\]/);
    expect(p.stdout).toMatch(/applied\s*: \[unknown\]/);
    expect(await liveSysctls(host, KEYS)).toEqual(before);
    // The connection is unknown, not merely hidden: with a Machine whose key would be no key,
    // preview still passes, since nothing can check a value that does not exist yet (a known
    // connection with that key fails check: "privateKey must be the text of ... private key").
    const notAKey = path.join(work, "not-a-key");
    fs.writeFileSync(notAKey, "not a key\n");
    const q = stack.preview(args({ keyFile: notAKey }));
    expect(q.error).toBeUndefined();
    expect(resourceOps(q, TYPE)).toEqual(["create"]);
  });

  test("up applies the values over the connection the Machine's outputs make; it stays secret", async () => {
    const u = stack.up(args());
    expect(u.error).toBeUndefined();
    expect(u.changes).toEqual({ create: 3 });
    expect(await liveSysctls(host, KEYS)).toEqual({
      "net.core.somaxconn": "4321",
      "net.ipv4.tcp_rmem": "4096 87380 33554432",
    });
    expect(await onHost(host, `cat ${FILE}`)).toContain("net.core.somaxconn = 4321");
    expect(u.outputs.originals).toEqual(typedSysctls(before));
    // The SysctlSet's connection is ciphertext in state (inputs and outputs), and the key is
    // nowhere in plain text.
    const state = stack.stateText();
    const SECRET = /"connection":\s*\{\s*"4dabf18193072939515e22adb298388d"/g;
    expect(state.match(SECRET)?.length).toBeGreaterThanOrEqual(2);
    for (const line of privateKey.trim().split("\n").slice(1, -1)) {
      expect(state).not.toContain(line);
    }
  });

  test("with the host known, the one-owner rule sees two connections made of Outputs as one host", () => {
    const p = stack.preview(args({ duplicate: "true" }));
    expect(p.ok).toBe(false);
    expect(`${p.error}\n${p.stdout}`).toMatch(
      /SysctlSet again: values\["net\.core\.somaxconn"\] is also set by SysctlSet tuned/,
    );
  });

  test("destroy restores the host", async () => {
    const d = stack.destroy(args());
    expect(d.error).toBeUndefined();
    expect(d.changes).toEqual({ delete: 3 });
    expect(await liveSysctls(host, KEYS)).toEqual(before);
    expect((await onHost(host, "ls /etc/sysctl.d/")).split(/\s+/)).not.toContain(
      path.basename(FILE),
    );
  });
});
