/**
 * Readers for the JSON the host tools print (`ip -j`, `tc -j`, `ethtool --json`): one place
 * that turns a missing field or a field of the wrong type into a ParseError naming the tool,
 * the entry and the field.
 */
import { ParseError } from "./errors";

export type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The top-level array of a tool's JSON output.
 *
 * @throws ParseError naming `tool` when the text is empty, is not JSON or is not an array.
 */
export function parseJsonArray(tool: string, text: string, what: string): unknown[] {
  if (text.trim() === "") throw new ParseError(tool, "no output", text);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (cause) {
    throw new ParseError(tool, `invalid JSON: ${(cause as Error).message}`, text, { cause });
  }
  if (!Array.isArray(data)) throw new ParseError(tool, `expected a JSON array of ${what}`, text);
  return data;
}

export interface FieldReader {
  /** The entry itself, known to be an object. */
  readonly entry: Json;
  readonly fail: (field: string, want: string) => never;
  /** A number field; absent or null (how the tools say "none") is undefined. */
  readonly num: (field: string, obj?: Json) => number | undefined;
  /** A string field; absent or null is undefined. */
  readonly str: (field: string, obj?: Json) => string | undefined;
}

/**
 * Typed access to the fields of one entry; `where` names it in errors ("link 2", "qdisc 0").
 *
 * @throws ParseError when the entry is not an object.
 */
export function fieldReader(
  tool: string,
  entry: unknown,
  where: string,
  text: string,
): FieldReader {
  if (!isObject(entry)) throw new ParseError(tool, `${where} is not an object`, text);
  const fail = (field: string, want: string): never => {
    throw new ParseError(tool, `${where}: "${field}" is not ${want}`, text);
  };
  return {
    entry,
    fail,
    num: (field, obj = entry) => {
      const v = obj[field];
      if (v === undefined || v === null) return undefined;
      return typeof v === "number" && Number.isFinite(v) ? v : fail(field, "a number");
    },
    str: (field, obj = entry) => {
      const v = obj[field];
      if (v === undefined || v === null) return undefined;
      return typeof v === "string" ? v : fail(field, "a string");
    },
  };
}
