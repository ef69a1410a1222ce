/**
 * POSIX shell quoting. This is the only module that turns values into shell text: everything
 * that reaches a remote `sh` is built from `shellQuote`, `renderCommand`, `sh` and `script`.
 */

import type { Command } from "./types";

/** Words made only of these characters mean the same to `sh` quoted or not. */
const SAFE_WORD = /^[A-Za-z0-9_\-.,/=:@%+]+$/;

/**
 * Quotes one argument for a POSIX shell. Safe words (`abc-1.2/x=y:,@%+`) are returned as they
 * are; anything else is wrapped in single quotes, with embedded single quotes written as `'\''`.
 * Throws on NUL, which no argv entry can carry.
 */
export function shellQuote(arg: string): string {
  if (typeof arg !== "string") {
    throw new TypeError(`shellQuote expects a string, got ${typeof arg}`);
  }
  if (arg.includes("\0")) {
    throw new TypeError("a shell argument cannot contain a NUL byte");
  }
  if (arg === "") return "''";
  if (SAFE_WORD.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Renders an argument vector as one shell command line, each argument quoted. */
export function renderCommand(argv: readonly string[]): string {
  if (argv.length === 0) throw new TypeError("cannot render an empty command");
  return argv.map(shellQuote).join(" ");
}

/**
 * Shell text that is already quoted. Interpolating a fragment into `sh` inserts it verbatim,
 * so fragments compose without being quoted twice; any other value is quoted.
 */
export class ShellFragment {
  constructor(readonly text: string) {}

  toString(): string {
    return this.text;
  }
}

/** Values `sh` accepts: strings and numbers are quoted, arrays become quoted words. */
export type ShellValue = string | number | ShellFragment | readonly (string | number)[];

/** Marks trusted shell text (operators, redirections, a loop) to be inserted as is by `sh`. */
export function raw(text: string): ShellFragment {
  return new ShellFragment(text);
}

function quoteValue(value: ShellValue): string {
  if (value instanceof ShellFragment) return value.text;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`cannot put ${value} in a shell command`);
    return String(value);
  }
  if (typeof value === "string") return shellQuote(value);
  if (Array.isArray(value)) {
    return value.map((v) => quoteValue(v as string | number)).join(" ");
  }
  // Catches undefined/null/booleans from untyped callers before they become the text "undefined".
  throw new TypeError(`cannot put a ${value === null ? "null" : typeof value} in a shell command`);
}

/**
 * Tagged template that quotes every interpolated value:
 * `` sh`ethtool -K ${iface} gro ${state}` `` gives `ethtool -K 'eth0 x' gro on`.
 */
export function sh(strings: TemplateStringsArray, ...values: ShellValue[]): ShellFragment {
  let out = strings[0] ?? "";
  values.forEach((value, i) => {
    out += quoteValue(value) + (strings[i + 1] ?? "");
  });
  return new ShellFragment(out);
}

/**
 * Joins lines into a script run with `sh -c`. Plain strings are taken as literal shell text
 * written by the caller; build any line that carries data with `sh`.
 */
export function script(...lines: (string | ShellFragment)[]): { script: string } {
  return { script: lines.map(String).join("\n") };
}

/** True when the command is a script rather than an argument vector. */
export function isScript(command: Command): command is { readonly script: string } {
  return !Array.isArray(command) && typeof (command as { script?: unknown }).script === "string";
}

/**
 * The argument vector that runs `command`: a script becomes `sh -c <script>`, since the
 * login shell of the remote user is not necessarily POSIX; `sudo` prefixes `sudo -n` so a
 * missing sudoers rule fails at once instead of waiting for a password.
 */
export function commandArgv(command: Command, sudo = false): string[] {
  let argv: string[];
  if (isScript(command)) {
    argv = ["sh", "-c", command.script];
  } else if (Array.isArray(command)) {
    if (command.length === 0) throw new TypeError("cannot run an empty command");
    argv = [...(command as readonly string[])];
  } else {
    throw new TypeError("a command is an argument array or { script }");
  }
  return sudo ? ["sudo", "-n", ...argv] : argv;
}
