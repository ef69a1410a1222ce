/**
 * The one rule for giving a setting back (on delete, or when an update stops declaring it):
 * put the original back only where the live value is still the one nettune set; where someone
 * changed it since, leave it and say so; where it already is the original, do nothing.
 */

/** What to do with one setting nettune set and no longer wants. */
export type Restore<V> =
  | { readonly action: "none" }
  | { readonly action: "restore"; readonly to: V }
  | { readonly action: "warn"; readonly message: string };

export interface RestoreInput<V> {
  /** How messages name the setting: `net.core.somaxconn`, `rx`, `generic-receive-offload`. */
  readonly what: string;
  /** The live value now; undefined when the host no longer has the setting. */
  readonly live: V | undefined;
  /** What nettune set. */
  readonly applied: V;
  /** The value before nettune first set it; undefined when it was never recorded. */
  readonly original: V | undefined;
  /** Where, for messages: `root@198.18.1.2:22`, `eth0 (driver veth)`. */
  readonly where: string;
  /** Equality of two values (default `===`). */
  readonly same?: (a: V, b: V) => boolean;
  /** A value as messages show it (default `String`). */
  readonly show?: (v: V) => string;
}

/** The decision for one setting; see the module comment. */
export function restoreOrWarn<V>(s: RestoreInput<V>): Restore<V> {
  const same = s.same ?? ((a: V, b: V) => a === b);
  const show = s.show ?? String;
  if (s.live === undefined || s.original === undefined) return { action: "none" };
  if (same(s.live, s.original)) return { action: "none" };
  if (same(s.live, s.applied)) return { action: "restore", to: s.original };
  return {
    action: "warn",
    message: changedOutside(s.what, show(s.live), show(s.applied), s.where),
  };
}

/** `key: left at X on host: it was changed outside nettune after it was set to Y`. */
export function changedOutside(what: string, live: string, applied: string, where: string): string {
  return `${what}: left at ${live} on ${where}: it was changed outside nettune after it was set to ${applied}`;
}
