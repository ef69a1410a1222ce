/**
 * The names of the files and units a resource owns on its host, unique per stack.
 *
 * A resource's default file and unit names carry a tag of its stack: 6 hex digits of the sha256
 * of `<project>/<stack>`. Two stacks that both have a SysctlSet `web` on one host get
 * `90-nettune-web-1a2b3c.conf` and `90-nettune-web-4d5e6f.conf`, not one file both would write
 * and either's destroy would delete.
 *
 *   stackTag("shop", "prod")      → "a1b2c3"   (the same in the program and in the provider)
 *   deployName("web", "a1b2c3")   → "web-a1b2c3"
 *   keepDeployedNames(...)        → a resource already deployed keeps the names it has
 *
 * A resource deployed before names had a tag (or under a stack since renamed) keeps its names:
 * renaming its unit or file would be an update that changes nothing on the host but the names.
 * The provider's check puts the deployed name back when the program sends the default one.
 *
 * No I/O and no Pulumi runtime: used by the resource classes, cloudInit and the provider.
 */
import { createHash } from "node:crypto";
import { unitName as renderUnitName } from "../host/systemd";

/** 6 hex digits of sha256(`<project>/<stack>`); undefined outside a program (neither known). */
export function stackTag(project: string, stack: string): string | undefined {
  if (project === "" && stack === "") return undefined;
  return createHash("sha256").update(`${project}/${stack}`).digest("hex").slice(0, 6);
}

/** The stack tag of a resource from its URN (`urn:pulumi:<stack>::<project>::...`). */
export function stackTagOfUrn(urn: string | undefined): string | undefined {
  const m = /^urn:pulumi:([^:]*)::([^:]*)::/.exec(urn ?? "");
  return m ? stackTag(m[2]!, m[1]!) : undefined;
}

/** The name a resource's files and units are named after: its own, with its stack's tag. */
export function deployName(name: string, tag: string | undefined): string {
  return tag === undefined ? name : `${name}-${tag}`;
}

/** The default unit name of a resource: `nettune-<kind>-<name>-<tag>.service`. */
export function defaultUnitName(kind: string, name: string, tag: string | undefined): string {
  return renderUnitName(kind, deployName(name, tag));
}

/** The default sysctl.d file of a SysctlSet: `90-nettune-<name>-<tag>.conf`. */
export function defaultSysctlFileName(name: string, tag: string | undefined): string {
  return `90-nettune-${deployName(name, tag).replace(/[^A-Za-z0-9._-]/g, "-")}.conf`;
}

/** The input each kind's default names come from, and the default it has for a name. */
const DEFAULTS: Readonly<
  Record<string, { field: string; of: (kind: string, name: string) => string }>
> = {
  SysctlSet: { field: "fileName", of: (_kind, name) => defaultSysctlFileName(name, undefined) },
  Mtu: { field: "resourceName", of: (_kind, name) => name },
  CongestionControl: { field: "resourceName", of: (_kind, name) => name },
  NicOffloads: { field: "unitName", of: (kind, name) => renderUnitName(kind, name) },
  NicRings: { field: "unitName", of: (kind, name) => renderUnitName(kind, name) },
  RssQueues: { field: "unitName", of: (kind, name) => renderUnitName(kind, name) },
  IrqAffinity: { field: "unitName", of: (kind, name) => renderUnitName(kind, name) },
  PacketSteering: { field: "unitName", of: (kind, name) => renderUnitName(kind, name) },
  XdpProgram: { field: "unitName", of: (kind, name) => renderUnitName(kind, name) },
};

/** The input of `kind` that its default names come from (`unitName`, `fileName`, `resourceName`). */
export function namingField(kind: string): string | undefined {
  return DEFAULTS[kind]?.field;
}

/** Whether `value` is a default name of resource `name`: untagged, or with any stack's tag. */
function isDefaultName(kind: string, name: string, value: string): boolean {
  const d = DEFAULTS[kind]!;
  if (value === d.of(kind, name)) return true;
  const tag = /-([0-9a-f]{6})(?:\.service|\.conf)?$/.exec(value)?.[1];
  return tag !== undefined && value === d.of(kind, deployName(name, tag));
}

/**
 * `news` with the default name `olds` has kept: when the program sends this stack's default
 * name and the deployed resource has a default name of its own (untagged from an earlier
 * release, or another tag from before a stack rename), the deployed one stays. A name the user
 * set, in either, is never replaced.
 */
export function keepDeployedNames<T extends object>(
  kind: string,
  name: string | undefined,
  urn: string | undefined,
  olds: Record<string, unknown> | undefined,
  news: T,
): T {
  const d = DEFAULTS[kind];
  if (!d || name === undefined || !olds) return news;
  const was = olds[d.field];
  const now = (news as Record<string, unknown>)[d.field];
  if (typeof was !== "string" || typeof now !== "string" || was === now) return news;
  const tag = stackTagOfUrn(urn);
  if (now !== d.of(kind, deployName(name, tag))) return news;
  return isDefaultName(kind, name, was) ? { ...news, [d.field]: was } : news;
}
