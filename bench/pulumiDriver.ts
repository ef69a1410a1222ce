/**
 * Runs Pulumi operations of a program through the Automation API in its own process and times
 * each one alone: the clock runs around `stack.up()` / `stack.preview()` / `stack.destroy()`,
 * i.e. one `pulumi up --yes --skip-preview` (or `pulumi preview`, `pulumi destroy --yes
 * --skip-preview`) of the CLI with its dynamic-provider process, not around workspace setup.
 *
 *   node dist/bench/pulumiDriver.js <request.json>
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as auto from "@pulumi/pulumi/automation";

export interface DriverOp {
  op: "up" | "preview" | "destroy";
  /** NETTUNE_STATS_DIR for this operation's provider process. */
  statsDir: string;
  /** More environment for this operation's CLI and provider process only. */
  env?: Record<string, string>;
}

export interface DriverRequest {
  program: string;
  args: unknown;
  stateDir: string;
  project: string;
  stack: string;
  ops: DriverOp[];
  resultFile: string;
  /** `--parallel` of every operation; the CLI's default (4 per CPU) when left out. */
  parallel?: number;
}

export interface DriverResult {
  op: DriverOp["op"];
  ok: boolean;
  error?: string;
  ms: number;
  /** Epoch ms at the start and end of the operation, to find its logins in sshd's journal. */
  startedAt: number;
  endedAt: number;
  changes: Record<string, number>;
  outputs: Record<string, unknown>;
}

async function main(): Promise<void> {
  const req = JSON.parse(fs.readFileSync(process.argv[2]!, "utf8")) as DriverRequest;
  const mod = require(path.resolve(req.program)) as {
    default: (args: unknown) => Promise<Record<string, unknown>>;
  };
  const workDir = path.join(req.stateDir, "work");
  fs.mkdirSync(workDir, { recursive: true });
  const stack = await auto.LocalWorkspace.createOrSelectStack(
    { stackName: req.stack, projectName: req.project, program: () => mod.default(req.args) },
    {
      workDir,
      envVars: {
        PULUMI_BACKEND_URL: `file://${req.stateDir}`,
        // nettune checks changed resources against their hosts in diff: in parallel with this.
        PULUMI_PARALLEL_DIFF: "true",
        PULUMI_CONFIG_PASSPHRASE:
          process.env.PULUMI_CONFIG_PASSPHRASE ?? "nettune-bench-passphrase",
      },
    },
  );
  const results: DriverResult[] = [];
  for (const op of req.ops) {
    fs.mkdirSync(op.statsDir, { recursive: true });
    // The CLI, and the provider process it starts, take the environment at spawn time.
    process.env.NETTUNE_STATS_DIR = op.statsDir;
    const saved = Object.fromEntries(Object.keys(op.env ?? {}).map((k) => [k, process.env[k]]));
    Object.assign(process.env, op.env);
    const result: DriverResult = {
      op: op.op,
      ok: true,
      ms: 0,
      startedAt: Date.now(),
      endedAt: 0,
      changes: {},
      outputs: {},
    };
    let output = "";
    const common = {
      color: "never" as const,
      onOutput: (s: string) => (output += s),
      ...(req.parallel === undefined ? {} : { parallel: req.parallel }),
    };
    const started = performance.now();
    try {
      if (op.op === "up") {
        const r = await stack.up(common);
        result.changes = r.summary.resourceChanges ?? {};
        result.outputs = Object.fromEntries(
          Object.entries(r.outputs).map(([k, v]) => [k, v.value]),
        );
      } else if (op.op === "preview") {
        const r = await stack.preview(common);
        result.changes = r.changeSummary;
      } else {
        const r = await stack.destroy(common);
        result.changes = r.summary.resourceChanges ?? {};
      }
    } catch (err) {
      result.ok = false;
      result.error = `${err instanceof Error ? err.message : String(err)}\n${output}`;
    }
    result.ms = performance.now() - started;
    result.endedAt = Date.now();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    results.push(result);
    if (!result.ok) break;
  }
  fs.writeFileSync(req.resultFile, JSON.stringify(results));
}

main().catch((err: unknown) => {
  process.stderr.write(`pulumi driver: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
