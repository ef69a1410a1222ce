/** How the demo's parts print: numbered bold steps and plain aligned tables. */

export const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

export function step(n: number, title: string): void {
  process.stdout.write(`\n${bold(`== ${n}. ${title}`)}\n`);
}

export const say = (s: string) => process.stdout.write(`${s}\n`);

/** Columns padded to their widest cell, a dashed line under the head. */
export function table(rows: ReadonlyArray<readonly string[]>, head: readonly string[]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: readonly string[]) => r.map((c, i) => c.padEnd(w[i]!)).join("  ");
  return [line(head), line(w.map((n) => "-".repeat(n))), ...rows.map(line)].join("\n") + "\n";
}
