/**
 * The example projects (examples/<name>: Pulumi.yaml, package.json, tsconfig.json, index.ts)
 * and the `pulumi new` template (templates/nettune-typescript) as a user runs them.
 *
 * Compile: each project type-checks with its own tsconfig (strict, no `skipLibCheck`), both in
 * place (`tsc --noEmit -p examples/<name>`, whose `paths` entry points at the checkout's dist/)
 * and copied into a folder beside nettune as `npm pack` ships it, where that entry points at
 * nothing and the compiler falls back to node_modules/nettune, as in a user's own project;
 * there it is built into bin/ for the deploy tests. (Which declarations nettune's load, zod's
 * among them, is test/engine/newproject.test.ts's subject.)
 *
 * Deploy: each example, compiled there, runs on a sandbox host with the configuration its
 * README gives for sandbox hosts: up, a second preview with no changes, destroy, and the host's
 * net.* sysctls, link, offloads and qdiscs as they were before. Pulumi's Node.js language host
 * is not part of the CLI these tests use (it is built from Pulumi's Go module without it), so
 * `pulumi up` cannot run a Pulumi.yaml project here: each example's compiled index.js is
 * required by an inline program through the Automation API (test/programs/newproject.ts), with
 * the stack configuration set as `pulumi config set` sets it, and the engine's working directory
 * is the project's folder, so the provider loads the packed `nettune/provider` from there.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EngineStack, type EngineResult } from "../helpers/engine";
import { liveSysctls, onHost, procSysNet, typedSysctls } from "../helpers/hostShell";
import { direct, ROOT, sandboxHosts } from "../helpers/sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import type { NewProjectArgs } from "../programs/newproject";

const EXAMPLES = ["sysctl-set", "nic-tuning", "mtu", "congestion-control", "network-tuning"];
const TEMPLATE = "templates/nettune-typescript";

/** The configuration each example's README sets for a sandbox host, beyond the connection. */
const SANDBOX_CONFIG: Record<string, Record<string, string>> = {
  "sysctl-set": {},
  "nic-tuning": { channels: "separate", rings: "false" },
  mtu: {},
  "congestion-control": { qdisc: "pfifo_fast" },
  "network-tuning": { channels: "separate", irq: "false", xdp: "false", qdisc: "pfifo_fast" },
  // The template's program, as `pulumi new` writes it, with the README's `pulumi config set`s.
  template: {},
};

const work = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-examples-"));
const projects = path.join(work, "projects");
afterAll(() => {
  if (!process.env.KEEP_EXAMPLES) fs.rmSync(work, { recursive: true, force: true });
});

function run(cmd: string, args: string[], cwd: string) {
  const res = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 300_000 });
  return { status: res.status, out: `${res.stdout ?? ""}${res.stderr ?? ""}` };
}

/**
 * `npm pack` of the checkout unpacked as work/node_modules/nettune, with what `npm install`
 * would put beside it linked from the checkout's node_modules (same versions, no registry), and
 * each project's files copied to work/projects/<name>.
 */
function makeWorkspace(): void {
  const pack = run("npm", ["pack", "--json", "--pack-destination", work], ROOT);
  expect(pack.status, pack.out).toBe(0);
  const [{ filename }] = JSON.parse(pack.out.slice(pack.out.indexOf("["))) as [
    { filename: string },
  ];
  const mods = path.join(work, "node_modules");
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
  for (const [name, source] of [
    ...EXAMPLES.map((x) => [x, path.join(ROOT, "examples", x)]),
    ["template", path.join(ROOT, TEMPLATE)],
  ] as const) {
    const dir = path.join(projects, name);
    fs.mkdirSync(dir, { recursive: true });
    for (const f of ["Pulumi.yaml", "package.json", "tsconfig.json", "index.ts"]) {
      fs.copyFileSync(path.join(source, f), path.join(dir, f));
    }
  }
}

/** The project's TypeScript, as `npx tsc` runs it there; `--pretty false` for the test. */
function tsc(cwd: string, ...args: string[]) {
  return run(
    process.execPath,
    [path.join(ROOT, "node_modules/typescript/bin/tsc"), "--pretty", "false", ...args],
    cwd,
  );
}

const errorsOf = (out: string) => out.split("\n").filter((l) => /error TS\d+/.test(l));

/** Built as `pulumi new typescript`'s tsconfig builds it: `tsc` in the project, into bin/. */
const build = (project: string, ...args: string[]) =>
  tsc(path.join(projects, project), "-p", "tsconfig.json", ...args);

beforeAll(() => {
  makeWorkspace();
});

describe("each example is a project", () => {
  for (const x of EXAMPLES) {
    test(`${x}: Pulumi.yaml (nodejs), package.json (nettune, @pulumi/pulumi), strict tsconfig, README`, () => {
      const dir = path.join(ROOT, "examples", x);
      const yaml = fs.readFileSync(path.join(dir, "Pulumi.yaml"), "utf8");
      expect(yaml).toMatch(new RegExp(`^name: nettune-${x}$`, "m"));
      expect(yaml).toMatch(/^runtime: nodejs$/m);
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as {
        main: string;
        dependencies: Record<string, string>;
      };
      expect(pkg.main).toBe("index.ts");
      expect(Object.keys(pkg.dependencies).sort()).toEqual(["@pulumi/pulumi", "nettune"]);
      // The tarball `npm pack` writes at the repository root, as the README says.
      const version = (
        JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string }
      ).version;
      expect(pkg.dependencies.nettune).toBe(`file:../../nettune-${version}.tgz`);
      const options = (
        JSON.parse(fs.readFileSync(path.join(dir, "tsconfig.json"), "utf8")) as {
          compilerOptions: Record<string, unknown>;
        }
      ).compilerOptions;
      expect(options.strict).toBe(true);
      expect(options).not.toHaveProperty("skipLibCheck");
      const readme = fs.readFileSync(path.join(dir, "README.md"), "utf8");
      expect(readme).toContain(`cd examples/${x}`);
      expect(readme).toContain("sandbox up --json");
      for (const [key, value] of Object.entries(SANDBOX_CONFIG[x]!)) {
        expect(readme).toContain(`pulumi config set ${key} ${value}`);
      }
    });
  }
});

describe("each example and the template compile as their own project", () => {
  for (const x of EXAMPLES) {
    test(`${x}: tsc --noEmit -p examples/${x} in the checkout (against dist/)`, () => {
      const r = tsc(ROOT, "--noEmit", "-p", `examples/${x}`);
      expect(errorsOf(r.out)).toEqual([]);
      expect(r.status).toBe(0);
    });
  }
  for (const x of [...EXAMPLES, "template"]) {
    test(`${x}: in its own folder, built into bin/ against the packed nettune`, () => {
      const r = build(x, "--listFiles");
      expect(errorsOf(r.out)).toEqual([]);
      expect(r.status).toBe(0);
      const loaded = r.out.split("\n");
      // The `paths` entry points at nothing here: the compiler took the installed package.
      expect(loaded).toContain(path.join(work, "node_modules/nettune/dist/src/index.d.ts"));
      expect(loaded.filter((l) => l.includes(`${ROOT}/dist/`))).toEqual([]);
      expect(fs.existsSync(path.join(projects, x, "bin/index.js"))).toBe(true);
    });
  }
});

describe("each example and the template deploy on a sandbox host, and destroy puts the host back", () => {
  let host: SandboxHost;
  const stacks: EngineStack[] = [];
  beforeAll(() => {
    host = sandboxHosts()[0]!;
  });
  afterAll(() => {
    for (const s of stacks) s.dispose();
  });

  /** What the examples touch: net.* sysctls, and eth0's link, offloads, channels and qdiscs. */
  const hostState = async () => ({
    sysctls: await procSysNet(host),
    link: await onHost(
      host,
      "ip -o link show dev eth0 | sed 's/ state [A-Z]*//'; ethtool -k eth0; ethtool -l eth0; tc qdisc show dev eth0",
    ),
  });

  const warnings = (r: EngineResult) =>
    r.events
      .filter((e) => e.type === "diagnostic" && e.severity === "warning")
      .map((e) => e.message ?? "");

  for (const x of [...EXAMPLES, "template"]) {
    test(`${x}: up with the README's sandbox configuration, a second preview changes nothing, destroy restores`, async () => {
      const dir = path.join(projects, x);
      // Built by the compile test above; again when that test was filtered out.
      if (!fs.existsSync(path.join(dir, "bin/index.js"))) expect(build(x).out).toBe("");
      const d = direct(host);
      const args: NewProjectArgs = {
        main: path.join(dir, "bin/index.js"),
        config: {
          host: d.address,
          port: String(d.port),
          user: d.user,
          privateKeyPath: d.privateKeyPath,
          hostKey: d.hostKey ?? "",
          ...SANDBOX_CONFIG[x],
        },
      };
      const stack = new EngineStack("newproject", x.replace(/-/g, ""), dir);
      stacks.push(stack);
      const before = await hostState();
      const KEYS = ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog"];
      const sysctlsBefore = await liveSysctls(host, KEYS);

      const [up, again] = stack.runSteps([
        { op: "up", args },
        { op: "preview", args },
      ]);
      expect(up!.error).toBeUndefined();
      expect(Object.keys(up!.changes)).toContain("create");
      // No stack output left undefined (Pulumi warns "Undefined value (name) will not show").
      expect(warnings(up!).filter((w) => /Undefined value/.test(w))).toEqual([]);
      expect(again!.error).toBeUndefined();
      expect(Object.keys(again!.changes)).toEqual(["same"]);
      if (x === "sysctl-set") {
        expect(await liveSysctls(host, KEYS)).toEqual({
          "net.core.somaxconn": "16384",
          "net.ipv4.tcp_max_syn_backlog": "8192",
        });
        expect(up!.outputs.originals).toMatchObject(typedSysctls(sysctlsBefore));
        expect(up!.outputs.file).toBe(
          `/etc/sysctl.d/90-nettune-${stack.named("api-gateway")}.conf`,
        );
      }
      if (x === "nic-tuning") expect(up!.outputs.ringsBefore).toBeNull();

      const down = stack.destroy(args);
      expect(down.error).toBeUndefined();
      expect(Object.keys(down.changes)).toEqual(["delete"]);
      expect(await hostState()).toEqual(before);
      expect(
        await onHost(host, "ls /etc/sysctl.d /etc/systemd/system | grep nettune || true"),
      ).toBe("");
    });
  }
});
