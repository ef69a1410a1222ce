/**
 * The URN a nettune resource gets, passed to its provider as `__nettuneUrn`: the Node dynamic
 * provider calls create, update, read and delete without the resource's URN, and the engine's
 * Log RPC needs it to show a message under its resource (not the stack).
 */
import * as pulumi from "@pulumi/pulumi";
import type { ResourceKind } from "./provider";

/** `urn:pulumi:<stack>::<project>::[<parent types>$]pulumi-nodejs:dynamic/nettune:<Kind>::<name>`. */
export function resourceUrn(
  kind: ResourceKind,
  name: string,
  opts: pulumi.CustomResourceOptions | undefined,
): pulumi.Output<string> {
  const parent = opts?.parent;
  // The parent's URN without the parent as a dependency: an input that depends on a component
  // waits for all of the component's children, this resource among them.
  const parentUrn = parent
    ? pulumi.output(new Promise<string>((resolve) => parent.urn.apply((u) => resolve(u))))
    : undefined;
  return pulumi.createUrn(name, `pulumi-nodejs:dynamic/nettune:${kind}`, parentUrn);
}
