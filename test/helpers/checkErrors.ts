/**
 * Check's failures as a test reads them: the provider throws them as one error,
 * `Kind name: field: reason` (or one indented line per field); this turns it back into
 * `{ property, reason }`s, checking that the error names the kind. No error: no failures.
 */
export interface CheckFailure {
  property: string;
  reason: string;
}

export async function checkFailures(kind: string, run: Promise<unknown>): Promise<CheckFailure[]> {
  try {
    await run;
    return [];
  } catch (err) {
    const text = (err as Error).message;
    if (!text.startsWith(kind)) throw new Error(`check error does not name ${kind}: ${text}`);
    const body = text.slice(text.indexOf(":") + 1);
    const lines = body.startsWith("\n") ? body.slice(1).split("\n") : [body.trim()];
    return lines.map((l) => {
      const line = l.trim();
      const i = line.indexOf(": ");
      return { property: line.slice(0, i), reason: line.slice(i + 2) };
    });
  }
}

/**
 * Whether a check error (as the engine shows it) names `field`: `Kind name: field: reason`, or
 * one of its indented `field: reason` lines; never Pulumi's `property X value {<nil>}` form.
 */
export function namesField(text: string, field: string): boolean {
  if (/has a problem|\{<nil>\}/.test(text)) return false;
  return text.split("\n").some((line) => {
    const l = line.trimStart();
    return l.startsWith(`${field}: `) || l.includes(`: ${field}: `);
  });
}
