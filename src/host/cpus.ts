/**
 * CPU sets as the kernel writes them: cpulists (`0-3,8,10-11`, as in `smp_affinity_list`,
 * `/sys/devices/system/node/node0/cpulist`) and hex masks in comma-separated 32-bit words (as in
 * `rps_cpus`, `xps_cpus`, `smp_affinity`). No I/O.
 *
 * nettune takes cpulists from users (no 32-bit words to get wrong) and renders masks itself,
 * exactly as the kernel prints them, so a mask read back compares as text.
 */

/** The largest CPU number Linux can have (NR_CPUS is at most 8192). */
export const MAX_CPU = 8191;

/** Why a cpulist cannot be read, or null. */
export function cpuListProblem(text: string): string | null {
  const t = text.trim();
  if (t === "") return "is empty: name at least one CPU, e.g. 0-3";
  for (const part of t.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) {
      return `"${part.trim()}" is not a CPU or range: write CPUs as a list such as 0-3,8,10-11`;
    }
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo > MAX_CPU || hi > MAX_CPU) return `CPU ${Math.max(lo, hi)} is above ${MAX_CPU}`;
    if (hi < lo) return `range ${part.trim()} goes down: write ${hi}-${lo}`;
  }
  return null;
}

/**
 * A cpulist's CPUs, sorted, each once: `"0-2,8"` → `[0, 1, 2, 8]`. An empty text (the kernel
 * prints an empty line for an empty mask) is `[]`.
 *
 * @throws RangeError when the text is not a cpulist.
 */
export function parseCpuList(text: string): number[] {
  if (text.trim() === "") return [];
  const problem = cpuListProblem(text);
  if (problem) throw new RangeError(`cpulist "${text.trim()}" ${problem}`);
  const cpus = new Set<number>();
  for (const part of text.trim().split(",")) {
    const [a, b] = part.trim().split("-");
    const lo = Number(a);
    const hi = b === undefined ? lo : Number(b);
    for (let c = lo; c <= hi; c++) cpus.add(c);
  }
  return [...cpus].sort((x, y) => x - y);
}

/** CPUs as the kernel prints a cpulist: `[0, 1, 2, 8]` → `"0-2,8"`; `[]` → `""`. */
export function renderCpuList(cpus: Iterable<number>): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

/** A cpulist in the kernel's form: `"2,0-1, 1"` → `"0-2"`. @throws RangeError as parseCpuList. */
export function normalizeCpuList(text: string): string {
  return renderCpuList(parseCpuList(text));
}

/**
 * CPUs as the kernel prints a mask of `nrCpuIds` bits (`%*pb`, `cpumask_pr_args`): hex in
 * 32-bit words, most significant first, separated by commas; every word 8 digits except the
 * first, which has as many as its bits need. 4 CPUs: `"f"`; 40: `"00,0000000f"`; 64:
 * `"00000000,0000000f"`.
 *
 * @throws RangeError when a CPU is not below `nrCpuIds`.
 */
export function renderCpuMask(cpus: Iterable<number>, nrCpuIds: number): string {
  if (!Number.isInteger(nrCpuIds) || nrCpuIds < 1 || nrCpuIds > MAX_CPU + 1) {
    throw new RangeError(`nrCpuIds must be 1..${MAX_CPU + 1}, not ${nrCpuIds}`);
  }
  const words = Array.from({ length: Math.ceil(nrCpuIds / 32) }, () => 0);
  for (const c of cpus) {
    if (!Number.isInteger(c) || c < 0 || c >= nrCpuIds) {
      throw new RangeError(`CPU ${c} is not below nr_cpu_ids (${nrCpuIds})`);
    }
    const w = Math.floor(c / 32);
    words[w] = (words[w]! | (1 << (c % 32))) >>> 0;
  }
  const firstBits = nrCpuIds % 32 === 0 ? 32 : nrCpuIds % 32;
  return words
    .map((word, i) => {
      const digits = i === words.length - 1 ? Math.ceil(firstBits / 4) : 8;
      return word.toString(16).padStart(digits, "0");
    })
    .reverse()
    .join(",");
}

/**
 * The CPUs of a mask as the kernel prints it (`"00,0000000f"` → `[0, 1, 2, 3]`). Words are read
 * from the right; any number of hex digits per word up to 8, as the kernel accepts on write.
 *
 * @throws RangeError when the text is not a mask.
 */
export function parseCpuMask(text: string): number[] {
  const t = text.trim();
  if (!/^[0-9a-fA-F]{1,8}(?:,[0-9a-fA-F]{1,8})*$/.test(t)) {
    throw new RangeError(`"${t}" is not a CPU mask (hex words of up to 8 digits, comma-separated)`);
  }
  const cpus: number[] = [];
  const words = t.split(",").reverse();
  words.forEach((hex, i) => {
    const word = parseInt(hex, 16);
    for (let b = 0; b < 32; b++) if ((word >>> b) & 1) cpus.push(i * 32 + b);
  });
  return cpus;
}
