/**
 * Plain types that the public API shares with the schemas and specs. No zod here: the
 * declarations a user's program loads (dist/src/index.d.ts and what it imports) must never
 * reach zod's, which do not compile under every tsconfig (`pulumi new typescript`'s until
 * March 2026: `module: commonjs`, no `esModuleInterop`, no `skipLibCheck`).
 */

/** A sysctl value as declared: a number, a list of numbers, or a word (e.g. an algorithm). */
export type SysctlValue = number | readonly number[] | string;

/** An interface's root qdisc as it was, enough to put it back. */
export interface SavedQdisc {
  readonly kind: string;
  readonly handle: string;
  /** tc parameters that recreate its settings. */
  readonly params: string[];
  /** The kernel attached it by itself (handle 0:): restored by deleting ours. */
  readonly kernelDefault: boolean;
}
