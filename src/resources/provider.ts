/**
 * The dynamic provider object that Pulumi serializes into every resource's state.
 *
 * It must stay tiny and must never change: each method only names the resource kind and
 * requires `nettune/provider` by package name when it runs. So the text stored in state is
 * the same for every nettune version (no diff after an upgrade), and refresh, update and
 * delete always run the nettune that is installed now, never a copy frozen in old state.
 *
 * test/unit/provider.test.ts pins the serialized text: if it changes, existing stacks would
 * see every resource as changed.
 */
/* eslint-disable @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-member-access -- the methods call whatever nettune is installed, untyped by design */
import type * as pulumi from "@pulumi/pulumi";

/** Resource kinds nettune's provider serves. */
export type ResourceKind =
  | "SysctlSet"
  | "Mtu"
  | "NicOffloads"
  | "RssQueues"
  | "NicRings"
  | "CongestionControl"
  | "IrqAffinity"
  | "PacketSteering"
  | "XdpProgram";

export function providerFor(kind: ResourceKind): pulumi.dynamic.ResourceProvider {
  // Only `kind` (a string) is captured; `require` is resolved when the method runs.
  return {
    check: (olds, news) => require("nettune/provider").handle(kind, "check", olds, news),
    diff: (id, olds, news) => require("nettune/provider").handle(kind, "diff", id, olds, news),
    create: (inputs) => require("nettune/provider").handle(kind, "create", inputs),
    read: (id, props) => require("nettune/provider").handle(kind, "read", id, props),
    update: (id, olds, news) => require("nettune/provider").handle(kind, "update", id, olds, news),
    delete: (id, props) => require("nettune/provider").handle(kind, "delete", id, props),
  };
}

/**
 * `opts.import` cannot work for nettune's resources (a dynamic provider has nothing to import
 * from: its code lives in the state it would create), and Pulumi's own error says nothing
 * useful. Refused when the resource is declared, saying what to do instead.
 */
export function refuseImport(
  kind: ResourceKind,
  name: string,
  opts: pulumi.CustomResourceOptions | undefined,
): void {
  if (opts?.import === undefined) return;
  throw new Error(
    `${kind} ${name}: opts.import is not supported by nettune's resources. Declare the resource ` +
      "without it: its create reads the host's current values, records them as the originals " +
      "that destroy puts back, and applies the declared ones (docs/limitations.md)",
  );
}
