/** Reading the /proc/interrupts captures of test/fixtures/interrupts in the parser tests. */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseProcInterrupts, type ProcInterrupts, type QueueIrq } from "../../src/host/interrupts";

export const DIR = path.join(__dirname, "..", "fixtures", "interrupts");

export function fixture(name: string): string {
  return fs.readFileSync(path.join(DIR, name), "utf8");
}

/** A capture parsed; `cpuColumns` for a fragment without the header line. */
export function parse(name: string, cpuColumns?: number): ProcInterrupts {
  return parseProcInterrupts(fixture(name), cpuColumns === undefined ? {} : { cpuColumns });
}

/** The row with that id; throws when there is none. */
export function line(p: ProcInterrupts, id: string) {
  const l = p.lines.find((x) => x.id === id);
  if (!l) throw new Error(`no row ${id}`);
  return l;
}

/** `role queue:irq` for compact order checks. */
export function brief(irqs: readonly QueueIrq[]): string[] {
  return irqs.map((q) => `${q.role}${q.queue}:${q.irq}`);
}
