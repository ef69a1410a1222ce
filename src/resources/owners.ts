/**
 * One owner per setting on a host, across every resource kind of a program: two resources that
 * set the same sysctl key (a SysctlSet and a CongestionControl both setting
 * net.ipv4.tcp_congestion_control), the same qdisc or the same sysctl.d file would undo each
 * other on every apply and at boot, and destroy would warn about nettune's own change. Checked
 * in the program, so preview fails naming both resources before any host is read.
 */

/** A setting a resource claims: its identity on the host and how the error names its input. */
export interface Setting {
  /** `sysctl:net.core.somaxconn`, `file:/etc/sysctl.d/90-nettune-web.conf`, `root-qdisc:eth0`. */
  readonly id: string;
  /** The claiming resource's input: `values["net.core.somaxconn"]`, `algorithm`, `fileName`. */
  readonly input: string;
}

import * as pulumi from "@pulumi/pulumi";
import { stackTag } from "../schemas/names";

const claims = new Map<string, Map<string, { owner: string; input: string }>>();
/** The run the claims belong to: its resource monitor (one per program run). */
let claimsRun: unknown;

/** Forgets the claims of earlier programs (tests run several programs in one process). */
export function resetClaims(): void {
  claims.clear();
}

/**
 * The claims of the program run now. The Automation API runs many programs (stacks,
 * operations) in one process: each has its own resource monitor, and a run never sees the
 * claims of another.
 */
function runClaims(): typeof claims {
  let monitor: unknown;
  try {
    monitor = pulumi.runtime.getMonitor();
  } catch {
    monitor = undefined;
  }
  if (monitor !== claimsRun) {
    claimsRun = monitor;
    claims.clear();
  }
  return claims;
}

/**
 * A host as the one-owner rule sees it: its name or address as the connection schema keeps it
 * (trimmed; names are case-insensitive) and its port, so `" 198.18.1.2"` and `198.18.1.2:22`
 * are one host.
 *
 * Resource classes call it on the connection resolved by `pulumi.output(...).apply`, which
 * resolves Outputs nested in its fields too (`host: instance.publicIp`). While such a field is
 * unknown (preview of a host created by the same deployment) the apply does not run and there is
 * no claim: the rule is checked at `up`, and at every preview once the host exists. A host that
 * is not a string (nothing to compare) is no claim either.
 */
export function hostIdOf(conn: { host?: unknown; port?: unknown } | undefined): string | undefined {
  if (!conn || typeof conn.host !== "string") return undefined;
  const port = typeof conn.port === "number" ? conn.port : 22;
  return `${conn.host.trim().toLowerCase()}:${port}`;
}

/**
 * The tag of the program's stack that makes its resources' default file and unit names its own
 * (../schemas/names.ts); undefined outside a program.
 */
export function programStackTag(): string | undefined {
  return stackTag(pulumi.getProject(), pulumi.getStack());
}

/**
 * `project/stack/Kind name`: who owns a resource's settings across stacks. Passed to the
 * provider as `__nettuneOwner`, kept in the state and written in the resource's ownership record
 * on its host (src/host/owners.ts), so another stack's resource setting the same thing is
 * refused at preview, naming this one.
 */
export function ownerIdentity(kind: string, name: string): string {
  return `${pulumi.getProject()}/${pulumi.getStack()}/${kind} ${name}`;
}

/** Claims `settings` for `owner` ("SysctlSet web") on `hostId`; throws naming both owners. */
export function claimSettings(owner: string, hostId: string, settings: readonly Setting[]): void {
  const all = runClaims();
  let owners = all.get(hostId);
  if (!owners) all.set(hostId, (owners = new Map<string, { owner: string; input: string }>()));
  for (const s of settings) {
    const other = owners.get(s.id);
    if (other && other.owner !== owner) {
      throw new Error(
        `${owner}: ${s.input} is also set by ${other.owner} (${other.input}) on ${hostId}; ` +
          `a setting may have one owner per host`,
      );
    }
    owners.set(s.id, { owner, input: s.input });
  }
}
