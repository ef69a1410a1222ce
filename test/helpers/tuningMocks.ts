/**
 * Pulumi's mocks (`pulumi.runtime.setMocks`) for the unit tests of NetworkTuning and the
 * profiles: every resource registration is recorded as the engine would receive it (type,
 * name, parent, the URNs it depends on, its inputs), and resources get their inputs back as
 * outputs, plus what a host would have resolved for a few of them.
 */
import * as pulumi from "@pulumi/pulumi";
import { MockMonitor } from "@pulumi/pulumi/runtime/mocks";
import { deserializeProperties } from "@pulumi/pulumi/runtime/rpc";
import { resetClaims } from "../../src/resources/owners";

export interface Registration {
  type: string;
  name: string;
  urn: string;
  /** The parent's URN, or "" for none. */
  parent: string;
  /** The URNs the resource depends on (explicit dependsOn and implicit ones). */
  dependencies: string[];
  /** The inputs as the engine sees them (secrets unwrapped, `__provider` removed). */
  inputs: Record<string, unknown>;
}

/** The registrations of the current test, in order. */
export const registrations: Registration[] = [];

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getDependenciesList(): string[];
  getObject(): unknown;
}

const SIG = "4dabf18193072939515e22adb298388d";

/** A value with Pulumi's secret wrappers removed. */
export function unwrapSecrets(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(unwrapSecrets);
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (SIG in o && "value" in o) return unwrapSecrets(o.value);
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, unwrapSecrets(x)]));
  }
  return v;
}

/** What a host would have resolved, for the outputs NetworkTuning summarises. */
const HOST_OUTPUTS: Record<string, Record<string, unknown>> = {
  RssQueues: { applied: { combined: 4 } },
  IrqAffinity: {
    applied: [
      {
        device: "eth0",
        queue: 0,
        role: "rxtx",
        irq: 41,
        action: "eth0-TxRx-0",
        cpus: "2",
        effective: "2",
      },
    ],
  },
  NicRings: { applied: { rx: 4096 } },
  CongestionControl: { observedAlgorithm: "bbr", modules: ["tcp_bbr", "sch_fq"] },
};

/** The URN the mock monitor gives a resource (as MockMonitor's own newUrn). */
function urnOf(parent: string, type: string, name: string): string {
  const qualified = parent ? `${parent.split("::")[2]!.split("$").pop()}$${type}` : type;
  return `urn:pulumi:stack::project::${qualified}::${name}`;
}

let installed = false;

/** Installs the mocks (once per test file) and forgets earlier registrations and claims. */
export async function useTuningMocks(): Promise<void> {
  registrations.length = 0;
  resetClaims();
  if (installed) return;
  installed = true;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called on its monitor below
  const original = MockMonitor.prototype.registerResource;
  MockMonitor.prototype.registerResource = function (
    this: MockMonitor,
    req: RegisterRequest,
    callback: unknown,
  ) {
    const { __provider: _p, ...inputs } = deserializeProperties(req.getObject()) as Record<
      string,
      unknown
    >;
    registrations.push({
      type: req.getType(),
      name: req.getName(),
      urn: urnOf(req.getParent(), req.getType(), req.getName()),
      parent: req.getParent(),
      dependencies: req.getDependenciesList(),
      inputs: unwrapSecrets(inputs) as Record<string, unknown>,
    });
    return (original as (r: unknown, c: unknown) => Promise<void>).call(this, req, callback);
  };
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const kind = args.type.split(":").pop() ?? "";
        return {
          id: `${args.name}-id`,
          state: { ...(args.inputs as Record<string, unknown>), ...HOST_OUTPUTS[kind] },
        };
      },
      call: (args) => args.inputs as Record<string, unknown>,
    },
    "project",
    "stack",
  );
}

/** The value of an output, once the mocks resolved it. */
export function valueOf<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

/** Waits until a component and every child given are registered. */
export async function settle(
  component: pulumi.ComponentResource,
  children: readonly pulumi.Resource[],
): Promise<void> {
  await valueOf(component.urn);
  await Promise.all(children.map((c) => valueOf(c.urn)));
}
