/**
 * The public view of the sysctl catalogue: the keys nettune types and range-checks, each with a
 * one-line description. The catalogue itself (src/schemas/sysctl.ts) holds each key's zod schema;
 * this view is typed without it, so the declarations a user's program loads reach no zod type.
 */
import { SYSCTL_CATALOGUE as CATALOGUE } from "../schemas/sysctl";

/** A key of the catalogue as the public API shows it. */
export interface SysctlKeyInfo {
  /** What the key does, in one line. */
  readonly doc: string;
}

/** The sysctl keys nettune types and range-checks, by name, with a one-line description each. */
export const SYSCTL_CATALOGUE: Readonly<Record<string, SysctlKeyInfo>> = CATALOGUE;
