/**
 * Messages for the user, shown under their resource. The Node dynamic provider gives a
 * provider's methods neither the resource's URN nor a way to log: its stderr reaches the user
 * as a message of the stack. So each resource passes its own URN (`__nettuneUrn`, see
 * resources/urn.ts, kept in the state for read and delete), and the provider sends its
 * warnings to the engine's Log RPC with it, at the address the engine started the provider
 * process with (its first argument). Where either is missing (state written before URNs were
 * kept, a process not started by the engine), the message goes to stderr, after
 * `<Kind> <name or id>: ` so it still says which resource it is about.
 */
import * as path from "node:path";

/** The part of the engine's generated gRPC client this uses. */
interface EngineClient {
  log(req: unknown, done: (err: Error | null) => void): void;
}
interface LogRequest {
  setSeverity(s: number): void;
  setMessage(m: string): void;
  setUrn(u: string): void;
  setStreamid(n: number): void;
  setEphemeral(e: boolean): void;
}
interface EngineProto {
  LogRequest: new () => LogRequest;
  LogSeverity: { INFO: number; WARNING: number };
}

/** `127.0.0.1:PORT` as the engine passes it; anything else is not an engine. */
const ENGINE_ADDRESS = /^(127\.0\.0\.1|localhost|\[::1\]):\d{1,5}$/;

let engine: { client: EngineClient; proto: EngineProto } | null | undefined;

/** The engine's client in this process, or null when it has none (or it cannot be made). */
function engineClient(): { client: EngineClient; proto: EngineProto } | null {
  if (engine !== undefined) return engine;
  engine = null;
  const address = process.argv[2];
  if (!address || !ENGINE_ADDRESS.test(address)) return engine;
  try {
    // The engine's client and messages as the installed @pulumi/pulumi generates them, with
    // the gRPC library it uses (one instance: credentials are checked by class).
    const pulumiDir = path.dirname(require.resolve("@pulumi/pulumi/package.json"));
    const grpc = require(require.resolve("@grpc/grpc-js", { paths: [pulumiDir] })) as {
      credentials: { createInsecure(): unknown };
    };
    const rpc = require("@pulumi/pulumi/proto/engine_grpc_pb") as {
      EngineClient: new (address: string, creds: unknown) => EngineClient;
    };
    const proto = require("@pulumi/pulumi/proto/engine_pb") as EngineProto;
    engine = { client: new rpc.EngineClient(address, grpc.credentials.createInsecure()), proto };
  } catch {
    engine = null;
  }
  return engine;
}

/** Sends a message to the engine under `urn`; false when it could not be delivered. */
function logToEngine(
  urn: string,
  message: string,
  severity: "info" | "warning" = "warning",
): Promise<boolean> {
  const e = engineClient();
  if (!e) return Promise.resolve(false);
  return new Promise((resolve) => {
    try {
      const req = new e.proto.LogRequest();
      req.setSeverity(severity === "info" ? e.proto.LogSeverity.INFO : e.proto.LogSeverity.WARNING);
      req.setMessage(message);
      req.setUrn(urn);
      req.setStreamid(0);
      req.setEphemeral(false);
      e.client.log(req, (err) => resolve(!err));
    } catch {
      resolve(false);
    }
  });
}

/** Who a message is about, for stderr: `SysctlSet web` from the URN, else the kind and id. */
function whoOf(kind: string, urn: string | undefined, id: string | undefined): string {
  const name = urn ? urn.slice(urn.lastIndexOf("::") + 2) : undefined;
  return [kind, name ?? id].filter(Boolean).join(" ");
}

/**
 * A warning about one resource: under it in the engine's events when its URN is known and the
 * engine answers, else on stderr naming it.
 */
export async function warnAbout(
  kind: string,
  urn: string | undefined,
  id: string | undefined,
  message: string,
): Promise<void> {
  if (urn && (await logToEngine(urn, message))) return;
  process.stderr.write(`warning: ${whoOf(kind, urn, id)}: ${message}\n`);
}

/**
 * A note about one resource (what preview found, not a problem): shown under it as info when its
 * URN is known and the engine answers, else on stderr naming it.
 */
export async function noteAbout(
  kind: string,
  urn: string | undefined,
  id: string | undefined,
  message: string,
): Promise<void> {
  if (urn && (await logToEngine(urn, message, "info"))) return;
  process.stderr.write(`info: ${whoOf(kind, urn, id)}: ${message}\n`);
}

/** The URN a resource passed (`__nettuneUrn`), when it is one. */
export function urnOf(props: Record<string, unknown> | undefined): string | undefined {
  const u = props?.__nettuneUrn;
  return typeof u === "string" && u.startsWith("urn:pulumi:") ? u : undefined;
}
