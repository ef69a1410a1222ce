/**
 * The engine harness: real `pulumi preview/up/refresh/destroy` of a test program against
 * sandbox hosts, with a file:// backend in a temp folder and a passphrase secrets provider.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import type { EngineRequest, EngineResult, EngineStep } from "./engineDriver";
import { stackTag } from "../../src/schemas/names";

export type { EngineResult, EngineEvent } from "./engineDriver";

/** The checkout: the nearest folder above this file with nettune's package.json. */
function findRoot(dir: string): string {
  for (let d = dir; d !== path.dirname(d); d = path.dirname(d)) {
    const pkg = path.join(d, "package.json");
    if (
      fs.existsSync(pkg) &&
      (JSON.parse(fs.readFileSync(pkg, "utf8")) as { name?: string }).name === "nettune"
    ) {
      return d;
    }
  }
  throw new Error(`no nettune checkout above ${dir}`);
}
const ROOT = findRoot(__dirname);

/**
 * `name` as the resources of test program `program`'s stack `stack` name their files and units
 * after it: `<name>-<tag>`, the tag being the stack's (src/schemas/names.ts).
 */
export function stackNamed(program: string, stack: string, name: string): string {
  return `${name}-${stackTag(`nettune-test-${program}`, stack)!}`;
}

export class EngineStack {
  readonly stateDir: string;
  /** What each driver process printed (stdout, then stderr), for tests that look for leaks. */
  readonly printed: string[] = [];
  private n = 0;

  constructor(
    /** Program name: test/programs/<name>.ts, compiled to dist/test/programs/<name>.js. */
    readonly program: string,
    readonly stack = "test",
    /**
     * Working directory of the Pulumi run: the dynamic provider loads `nettune/provider` from
     * here, as it loads it from a user's project. Default: the checkout.
     */
    public cwd = ROOT,
    /** Environment of the Pulumi run (and so of the provider) beyond this process's own. */
    readonly env: Record<string, string> = {},
  ) {
    this.stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-engine-"));
  }

  /** The tag this stack's default file and unit names carry (src/schemas/names.ts). */
  get tag(): string {
    return stackTag(`nettune-test-${this.program}`, this.stack)!;
  }

  /** `name` as this stack's resources name their files and units after it: `<name>-<tag>`. */
  named(name: string): string {
    return stackNamed(this.program, this.stack, name);
  }

  run(op: EngineStep["op"], args: unknown): EngineResult {
    return this.runSteps([{ op, args }])[0]!;
  }

  /** Several operations in one driver process, one after another. */
  runSteps(steps: EngineStep[]): EngineResult[] {
    const resultFile = path.join(this.stateDir, `result-${++this.n}.json`);
    const req: EngineRequest = {
      program: path.join(ROOT, "dist/test/programs", `${this.program}.js`),
      steps,
      stateDir: this.stateDir,
      stack: this.stack,
      project: `nettune-test-${this.program}`,
      resultFile,
    };
    const reqFile = path.join(this.stateDir, `request-${this.n}.json`);
    fs.writeFileSync(reqFile, JSON.stringify(req));
    const child = spawnSync(
      process.execPath,
      [path.join(ROOT, "dist/test/helpers/engineDriver.js"), reqFile],
      {
        cwd: this.cwd,
        env: { ...process.env, ...this.env },
        encoding: "utf8",
        // A whole component's lifecycle on a TCG guest takes minutes.
        timeout: 600_000,
      },
    );
    this.printed.push(`${child.stdout}${child.stderr}`);
    if (!fs.existsSync(resultFile)) {
      throw new Error(`engine driver failed (${child.status ?? child.signal}): ${child.stderr}`);
    }
    return JSON.parse(fs.readFileSync(resultFile, "utf8")) as EngineResult[];
  }

  /**
   * Several operations in one driver process, without blocking this one: for two stacks on two
   * hosts at once. At most `timeoutMs` (default 15 minutes) in all.
   */
  runStepsAsync(steps: EngineStep[], timeoutMs = 900_000): Promise<EngineResult[]> {
    const resultFile = path.join(this.stateDir, `result-${++this.n}.json`);
    const req: EngineRequest = {
      program: path.join(ROOT, "dist/test/programs", `${this.program}.js`),
      steps,
      stateDir: this.stateDir,
      stack: this.stack,
      project: `nettune-test-${this.program}`,
      resultFile,
    };
    const reqFile = path.join(this.stateDir, `request-${this.n}.json`);
    fs.writeFileSync(reqFile, JSON.stringify(req));
    return new Promise((resolve, reject) => {
      let stderr = "";
      const child = spawn(
        process.execPath,
        [path.join(ROOT, "dist/test/helpers/engineDriver.js"), reqFile],
        {
          cwd: this.cwd,
          env: { ...process.env, ...this.env },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let stdout = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        this.printed.push(`${stdout}${stderr}`);
        if (!fs.existsSync(resultFile)) {
          reject(new Error(`engine driver failed (${code ?? signal}): ${stderr}`));
          return;
        }
        resolve(JSON.parse(fs.readFileSync(resultFile, "utf8")) as EngineResult[]);
      });
    });
  }

  /** A preview of each program in turn (the engine stops a preview at its first failed check). */
  previewEach(argsList: unknown[]): EngineResult[] {
    return this.runSteps(argsList.map((args) => ({ op: "preview" as const, args })));
  }

  preview(args: unknown): EngineResult {
    return this.run("preview", args);
  }
  up(args: unknown): EngineResult {
    return this.run("up", args);
  }
  refresh(args: unknown): EngineResult {
    return this.run("refresh", args);
  }
  destroy(args: unknown): EngineResult {
    return this.run("destroy", args);
  }

  /** Every file of the backend (state, history, backups) as text, to search for leaks. */
  stateText(): string {
    const out: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (!e.name.startsWith("request-")) out.push(fs.readFileSync(p, "utf8"));
      }
    };
    walk(path.join(this.stateDir, ".pulumi"));
    return out.join("\n");
  }

  dispose(): void {
    fs.rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/** Resources of a type in a result's events, by op. */
export function resourceOps(result: EngineResult, type: string): string[] {
  return result.events
    .filter((e) => e.type === "pre" && e.resourceType === type)
    .map((e) => e.op ?? "");
}
