/**
 * The error every host-tool parser throws when the text it was given is not what the tool prints
 * on success. It names the tool and keeps the whole text, so a failure on a host with an
 * unexpected driver or tool version can be reported and turned into a new fixture.
 */

/** The most output put into a message; the full text stays in `.output`. */
const MAX_OUTPUT_IN_MESSAGE = 2048;

/** The most of one bad line quoted in a message (the line is in the output below it anyway). */
const MAX_LINE_IN_MESSAGE = 200;

/** Options of {@link ParseError}. */
export interface ParseErrorOptions {
  /**
   * True when the text says the device or driver does not support the operation (for example
   * `netlink error: Operation not supported` from `ethtool -l lo`), so callers can tell "this NIC
   * cannot do that" from "this output is garbage".
   */
  readonly unsupported?: boolean;
  /** The underlying error, such as the `SyntaxError` of invalid JSON. */
  readonly cause?: unknown;
}

/**
 * Output of a host tool that could not be read.
 *
 * @example
 * try {
 *   parsers.ethtoolChannels(stdout);
 * } catch (e) {
 *   if (e instanceof ParseError && e.unsupported) console.log(`${e.tool} is not supported here`);
 *   else throw e;
 * }
 */
export class ParseError extends Error {
  /** The command whose output this was, e.g. `ethtool -k` or `ip -d -j link`. */
  readonly tool: string;
  /** The complete text that was parsed. */
  readonly output: string;
  /** True when the text is the tool saying the operation is not supported. */
  readonly unsupported: boolean;

  /**
   * @param tool the command, e.g. `ethtool -k`
   * @param reason what is wrong, e.g. `cannot read line 3: "…"`
   * @param output the text that was parsed (at most 2 KB of it goes into the message)
   */
  constructor(tool: string, reason: string, output: string, options: ParseErrorOptions = {}) {
    const shown =
      output.length > MAX_OUTPUT_IN_MESSAGE ? `${output.slice(0, MAX_OUTPUT_IN_MESSAGE)}…` : output;
    const body = shown.trim() === "" ? "" : `\n${shown.replace(/\s+$/, "")}`;
    super(
      `${tool}: ${reason}${body}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "ParseError";
    this.tool = tool;
    this.output = output;
    this.unsupported = options.unsupported ?? false;
  }

  /** `<tool>: cannot read line <n>: "<line>"` plus an optional hint. */
  static atLine(
    tool: string,
    output: string,
    lineNumber: number,
    line: string,
    hint?: string,
  ): ParseError {
    const shown =
      line.length > MAX_LINE_IN_MESSAGE ? `${line.slice(0, MAX_LINE_IN_MESSAGE)}…` : line;
    const reason = `cannot read line ${lineNumber}: ${JSON.stringify(shown)}`;
    return new ParseError(tool, hint ? `${reason} (${hint})` : reason, output);
  }
}
