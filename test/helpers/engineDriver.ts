/**
 * Runs one real Pulumi operation (preview, up, refresh, destroy) of a test program through the
 * Automation API and the pinned Pulumi CLI, in its own process (so closures are serialized
 * from plain compiled JavaScript, as in a user's program).
 *
 *   node dist/test/helpers/engineDriver.js <request.json>
 *
 * It writes one JSON object to the file named by request.resultFile.
 *
 * The engine's event stream carries debug messages even without `--debug`, among them the SDK's
 * `RegisterResource RPC finished … resp:` with every output decrypted (a connection's key and
 * password included): they are counted and dropped, never kept, written or printed.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as auto from "@pulumi/pulumi/automation";

export interface EngineStep {
  op: "preview" | "up" | "refresh" | "destroy";
  args: unknown;
}

export interface EngineRequest {
  /** Compiled program module: its default export takes `args` and returns the stack outputs. */
  program: string;
  /** Operations run one after another in this process. */
  steps: EngineStep[];
  stateDir: string;
  stack: string;
  project: string;
  resultFile: string;
}

export interface EngineEvent {
  type: string;
  op?: string;
  urn?: string;
  resourceType?: string;
  diffs?: string[];
  detailedDiff?: unknown;
  oldInputs?: Record<string, unknown>;
  newInputs?: Record<string, unknown>;
  oldOutputs?: Record<string, unknown>;
  newOutputs?: Record<string, unknown>;
  severity?: string;
  message?: string;
}

export interface EngineResult {
  ok: boolean;
  /** Debug messages the engine sent and this driver dropped (they may hold decrypted secrets). */
  debugEvents: number;
  error?: string;
  stdout: string;
  changes: Record<string, number>;
  outputs: Record<string, unknown>;
  events: EngineEvent[];
}

/** A debug message: the engine sends them whatever the options, with secrets in plain text. */
export function isDebugEvent(e: auto.EngineEvent): boolean {
  // The SDK's type leaves "debug" out, but the engine sends it.
  const severity: string | undefined = e.diagnosticEvent?.severity;
  return severity === "debug";
}

function simplify(e: auto.EngineEvent): EngineEvent | undefined {
  const pre = e.resourcePreEvent?.metadata ?? e.resOutputsEvent?.metadata;
  if (pre) {
    return {
      type: e.resourcePreEvent ? "pre" : "outputs",
      op: pre.op,
      urn: pre.urn,
      resourceType: pre.type,
      diffs: pre.diffs,
      detailedDiff: pre.detailedDiff,
      oldInputs: pre.old?.inputs,
      newInputs: pre.new?.inputs,
      oldOutputs: pre.old?.outputs,
      newOutputs: pre.new?.outputs,
    };
  }
  if (e.diagnosticEvent) {
    return {
      type: "diagnostic",
      urn: e.diagnosticEvent.urn,
      severity: e.diagnosticEvent.severity,
      message: e.diagnosticEvent.message,
    };
  }
  if (e.resOpFailedEvent) return { type: "failed", urn: e.resOpFailedEvent.metadata.urn };
  return undefined;
}

/**
 * The stack of this driver process, made once: its steps share the CLI found at the start (one
 * `pulumi version`) and the selected stack (one `pulumi stack select`); each step gives the
 * workspace its own program.
 */
let stackOnce: Promise<auto.Stack> | undefined;
function stackOf(req: EngineRequest): Promise<auto.Stack> {
  stackOnce ??= (async () => {
    const workDir = path.join(req.stateDir, "work");
    fs.mkdirSync(workDir, { recursive: true });
    const pulumiCommand = await auto.PulumiCommand.get();
    return auto.LocalWorkspace.createOrSelectStack(
      { stackName: req.stack, projectName: req.project, program: () => Promise.resolve({}) },
      {
        workDir,
        pulumiCommand,
        envVars: {
          PULUMI_BACKEND_URL: `file://${req.stateDir}`,
          // nettune checks changed resources against their hosts in diff: in parallel with this.
          PULUMI_PARALLEL_DIFF: "true",
          PULUMI_CONFIG_PASSPHRASE:
            process.env.PULUMI_CONFIG_PASSPHRASE ?? "nettune-test-passphrase",
        },
      },
    );
  })();
  return stackOnce;
}

async function runStep(req: EngineRequest, step: EngineStep): Promise<EngineResult> {
  const mod = require(path.resolve(req.program)) as {
    default: (args: unknown) => Promise<Record<string, unknown>>;
  };
  const stack = await stackOf(req);
  (stack.workspace as auto.LocalWorkspace).program = () => mod.default(step.args);
  // The engine runs providers in the project's `main` folder: the folder this step runs in
  // (an upgrade test installs another nettune there between steps).
  await stack.workspace.saveProjectSettings({
    name: req.project,
    runtime: "nodejs",
    main: process.cwd(),
  });
  const events: EngineEvent[] = [];
  let stdout = "";
  let debugEvents = 0;
  const common = {
    onEvent: (e: auto.EngineEvent) => {
      if (isDebugEvent(e)) {
        debugEvents++;
        return;
      }
      const s = simplify(e);
      if (s) events.push(s);
    },
    onOutput: (s: string) => {
      stdout += s;
    },
    color: "never" as const,
  };
  const result: EngineResult = {
    ok: true,
    debugEvents: 0,
    stdout: "",
    changes: {},
    outputs: {},
    events,
  };
  try {
    switch (step.op) {
      case "preview": {
        const r = await stack.preview({ ...common, diff: true });
        result.changes = r.changeSummary;
        break;
      }
      case "up": {
        const r = await stack.up({ ...common, diff: true });
        result.changes = r.summary.resourceChanges ?? {};
        result.outputs = Object.fromEntries(
          Object.entries(r.outputs).map(([k, v]) => [k, v.value]),
        );
        break;
      }
      case "refresh": {
        const r = await stack.refresh({ ...common });
        result.changes = r.summary.resourceChanges ?? {};
        break;
      }
      case "destroy": {
        const r = await stack.destroy({ ...common });
        result.changes = r.summary.resourceChanges ?? {};
        break;
      }
    }
  } catch (err) {
    result.ok = false;
    result.error = err instanceof Error ? err.message : String(err);
  }
  result.stdout = stdout;
  result.debugEvents = debugEvents;
  return result;
}

async function main(): Promise<void> {
  const req = JSON.parse(fs.readFileSync(process.argv[2]!, "utf8")) as EngineRequest;
  const results: EngineResult[] = [];
  for (const step of req.steps) results.push(await runStep(req, step));
  fs.writeFileSync(req.resultFile, JSON.stringify(results));
}

main().catch((err: unknown) => {
  process.stderr.write(`engine driver: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
