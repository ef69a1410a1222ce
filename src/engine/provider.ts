/**
 * `nettune/provider`: what the serialized dynamic provider calls. It finds the handler of a
 * resource kind and runs one lifecycle method with a pooled transport to the resource's host.
 * Everything here runs in the engine's dynamic-provider process.
 */
import { connectionSchema, connectionSecrets, type Connection } from "../schemas/connection";
import { redact } from "../transport/errors";
import { defaultPool, transportFor } from "../transport/pool";
import type { Transport } from "../transport/types";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  containsUnknown,
  userInputs,
  validate,
  type Failure,
  type HandlerContext,
  type ResourceHandler,
} from "./framework";
import { sysctlSetHandler } from "./sysctlSet";
import { mtuHandler } from "./mtu";
import { nicOffloadsHandler } from "./nicOffloads";
import { nicRingsHandler } from "./nicRings";
import { rssQueuesHandler } from "./rssQueues";
import { congestionControlHandler } from "./congestionControl";

interface BaseInputs {
  connection: Connection;
}
/** Any resource's handler, seen through what every handler shares. */
type AnyHandler = ResourceHandler<BaseInputs, BaseInputs>;
/** State as the engine hands it back: validated when it was written. */
const asState = (props: Record<string, unknown>) => userInputs(props) as unknown as BaseInputs;

const HANDLERS: Record<string, AnyHandler> = {
  SysctlSet: sysctlSetHandler,
  Mtu: mtuHandler,
  NicOffloads: nicOffloadsHandler,
  RssQueues: rssQueuesHandler,
  NicRings: nicRingsHandler,
  CongestionControl: congestionControlHandler,
};

/** Lets tests run handlers against another transport (a recording fake, a local one). */
let transportOverride: ((conn: Connection) => Transport) | undefined;
export function setTransportFactory(factory: ((conn: Connection) => Transport) | undefined): void {
  transportOverride = factory;
}

function contextFor(conn: Connection, warnings: string[]): HandlerContext {
  const transport = transportOverride ? transportOverride(conn) : transportFor(conn);
  return {
    transport,
    warn(message) {
      warnings.push(message);
      // The engine shows a dynamic provider's stderr with the resource.
      process.stderr.write(`warning: ${message}\n`);
    },
  };
}

/** Errors leave the provider without any secret of the connection in them. */
function scrub(err: unknown, conn: Connection | undefined): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  if (!conn) return e;
  const secrets = connectionSecrets(conn);
  const clean = new Error(redact(e.message, secrets));
  clean.name = e.name;
  return clean;
}

async function check(handler: AnyHandler, _olds: unknown, news: Record<string, unknown>) {
  const raw = userInputs(news);
  // Values not known yet (preview of a resource that depends on another) are checked at apply.
  if (containsUnknown(raw)) return { inputs: news };
  const { value, failures } = validate(handler.schema, raw);
  if (!value) return { inputs: news, failures };
  let hostFailures: Failure[] = [];
  if (handler.hostCheck) {
    try {
      hostFailures = await handler.hostCheck(value, contextFor(value.connection, []));
    } catch {
      // The host did not answer: nothing more can be checked now; create checks again.
      hostFailures = [];
    }
  }
  return { inputs: value, failures: hostFailures };
}

/** Entry point of the serialized provider: `handle(kind, method, ...args)`. */
export async function handle(kind: string, method: string, ...args: unknown[]): Promise<unknown> {
  const handler = HANDLERS[kind];
  if (!handler) {
    throw new Error(
      `nettune: this version has no resource kind ${kind}; install the version that created it`,
    );
  }
  const warnings: string[] = [];
  let conn: Connection | undefined;
  try {
    switch (method) {
      case "check":
        return await check(handler, args[0], args[1] as Record<string, unknown>);
      case "diff": {
        const [id, olds, news] = args as [string, Record<string, unknown>, Record<string, unknown>];
        return handler.diff(id, asState(olds), handler.schema.parse(userInputs(news)));
      }
      case "create": {
        const inputs = handler.schema.parse(userInputs(args[0] as Record<string, unknown>));
        conn = inputs.connection;
        const ctx = contextFor(inputs.connection, warnings);
        return await handler.create(inputs, ctx);
      }
      case "read": {
        const [id, props] = args as [string, Record<string, unknown>];
        const olds = asState(props);
        conn = connectionSchema.parse(olds.connection);
        const res = await handler.read(id, olds, contextFor(conn, warnings));
        return { id, props: res.props, inputs: res.inputs };
      }
      case "update": {
        const [id, olds, news] = args as [string, Record<string, unknown>, Record<string, unknown>];
        const inputs = handler.schema.parse(userInputs(news));
        conn = inputs.connection;
        const ctx = contextFor(inputs.connection, warnings);
        return { outs: await handler.update(id, asState(olds), inputs, ctx) };
      }
      case "delete": {
        const [id, props] = args as [string, Record<string, unknown>];
        const olds = asState(props);
        conn = connectionSchema.parse(olds.connection);
        await handler.delete(id, olds, contextFor(conn, warnings));
        return undefined;
      }
      default:
        throw new Error(`nettune: unknown provider method ${method}`);
    }
  } catch (err) {
    throw scrub(err, conn);
  } finally {
    writeStats();
  }
}

/**
 * With NETTUNE_STATS_DIR set, each provider process keeps a file of its SSH cost per host
 * (handshakes, commands), rewritten after every call: `npm run bench` reads them.
 */
function writeStats(): void {
  const dir = process.env.NETTUNE_STATS_DIR;
  if (!dir) return;
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(
      path.join(dir, `provider-${process.pid}.json`),
      JSON.stringify(defaultPool.stats()),
    );
  } catch {
    /* statistics never fail an operation */
  }
}
