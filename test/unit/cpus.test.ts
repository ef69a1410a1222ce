/**
 * CPU lists and masks (src/host/cpus.ts) against the kernel's own format: `%*pb` with
 * nr_cpu_ids bits (lib/vsprintf.c bitmap_string: 32-bit chunks, most significant first, comma
 * separated, each 8 hex digits zero-padded except the first, which has as many digits as its
 * bits need), checked on masks captured on real machines of 2 to 96 CPUs
 * (test/fixtures/cpumask/, sources in test/fixtures/SOURCES.md).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import {
  cpuListProblem,
  normalizeCpuList,
  parseCpuList,
  parseCpuMask,
  renderCpuList,
  renderCpuMask,
} from "../../src/host/cpus";

const FIXTURES = path.resolve(__dirname, "../fixtures/cpumask");
const fixture = (name: string) => fs.readFileSync(path.join(FIXTURES, name), "utf8");

/** The output line after the line that ends with `command` in a transcript. */
function after(text: string, command: string): string {
  const lines = text.split("\n");
  const i = lines.findIndex((l) => l.trimEnd().endsWith(command));
  if (i < 0 || lines[i + 1] === undefined) throw new Error(`no output of ${command}`);
  return lines[i + 1]!;
}
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("renderCpuMask: the kernel's %*pb at nr_cpu_ids bits", () => {
  it.each<[number, number[], string]>([
    [2, [], "0"],
    [2, [0, 1], "3"],
    [2, [1], "2"],
    [4, range(0, 3), "f"],
    [4, [0, 2], "5"],
    [8, [0], "01"],
    [12, range(0, 11), "fff"],
    [32, range(0, 31), "ffffffff"],
    [32, [0], "00000001"],
    [32, [31], "80000000"],
    [33, [32], "1,00000000"],
    [40, [], "00,00000000"],
    [40, range(0, 39), "ff,ffffffff"],
    [40, [39], "80,00000000"],
    [40, [0, 35], "08,00000001"],
    [64, [], "00000000,00000000"],
    [64, range(0, 63), "ffffffff,ffffffff"],
    [64, [32], "00000001,00000000"],
    [64, [63], "80000000,00000000"],
    [65, [], "0,00000000,00000000"],
    [65, [64], "1,00000000,00000000"],
    [65, range(0, 64), "1,ffffffff,ffffffff"],
    [128, [], "00000000,00000000,00000000,00000000"],
    [128, [127, 0], "80000000,00000000,00000000,00000001"],
    [128, range(64, 95), "00000000,ffffffff,00000000,00000000"],
  ])("%i CPUs, %j → %s", (nr, cpus, mask) => {
    expect(renderCpuMask(cpus, nr)).toBe(mask);
    expect(parseCpuMask(mask)).toEqual(cpus.slice().sort((a, b) => a - b));
  });

  it("the first word has ceil((nr % 32 or 32) / 4) digits, every other word 8", () => {
    for (let nr = 1; nr <= 200; nr++) {
      const words = renderCpuMask([], nr).split(",");
      expect(words).toHaveLength(Math.ceil(nr / 32));
      const bits = nr % 32 === 0 ? 32 : nr % 32;
      expect(words[0]).toHaveLength(Math.ceil(bits / 4));
      for (const w of words.slice(1)) expect(w).toBe("00000000");
      // Every CPU below nr_cpu_ids round-trips.
      expect(parseCpuMask(renderCpuMask([nr - 1], nr))).toEqual([nr - 1]);
    }
  });

  it("refuses a CPU at or above nr_cpu_ids, and a width out of range", () => {
    expect(() => renderCpuMask([2], 2)).toThrow(/CPU 2 is not below nr_cpu_ids \(2\)/);
    expect(() => renderCpuMask([-1], 2)).toThrow(RangeError);
    expect(() => renderCpuMask([], 0)).toThrow(/nrCpuIds must be/);
    expect(() => renderCpuMask([], 8193)).toThrow(/nrCpuIds must be/);
  });
});

describe("masks captured on real machines", () => {
  it("96 CPUs (Kunpeng 920, 4 NUMA nodes of 24): xps_cpus and smp_affinity of hns3 queues", () => {
    const t = fixture("xps_cpus-96cpu-kunpeng920-hns3.txt");
    const masks = t.split("\n").filter((l) => /^[0-9a-f]+(,[0-9a-f]+)+$/.test(l));
    expect(masks).toHaveLength(12);
    // The NIC is on node 2 (CPUs 48-71): queue 0 on CPU 48, queue 24 on CPU 0 before the patch
    // and on CPU 72 (node 3) after it, queue 48 on CPU 24.
    expect(parseCpuMask(after(t, "tx-0/xps_cpus"))).toEqual([48]);
    expect(parseCpuMask(after(t, "#IRQ24"))).toEqual([0]);
    expect(parseCpuMask(after(t, "tx-48/xps_cpus"))).toEqual([24]);
    const afterPatch = t.slice(t.indexOf("After this patch"));
    expect(parseCpuMask(after(afterPatch, "tx-24/xps_cpus"))).toEqual([72]);
    // Each one is exactly what nettune writes for that CPU on a 96-CPU host.
    for (const m of masks) expect(renderCpuMask(parseCpuMask(m), 96)).toBe(m);
    expect(renderCpuMask([48], 96)).toBe("00000000,00010000,00000000");
  });

  it("56 CPUs: an empty rps_cpus is 6 + 8 digits", () => {
    const m = fixture("rps_cpus-56cpu-vyos-router.txt").trim();
    expect(m).toBe("000000,00000000");
    expect(parseCpuMask(m)).toEqual([]);
    expect(renderCpuMask([], 56)).toBe(m);
  });

  it("48 CPUs: smp_affinity of two SR-IOV VF IRQs (the same %*pb format)", () => {
    const t = fixture("smp_affinity-48cpu-sriov-vf.txt");
    expect(parseCpuMask(after(t, "174/smp_affinity"))).toEqual([1]);
    expect(parseCpuMask(after(t, "175/smp_affinity"))).toEqual([2]);
    expect(renderCpuMask([1], 48)).toBe("0000,00000002");
    expect(renderCpuMask([2], 48)).toBe("0000,00000004");
  });

  it("12 CPUs: a veth's rps_cpus before (000) and after writing fff", () => {
    const t = fixture("veth-12cpu-excerpt.txt");
    const [before, written] = t.split("\n").filter((l) => /^[0-9a-f]+$/.test(l));
    expect(before).toBe(renderCpuMask([], 12));
    expect(written).toBe(renderCpuMask(range(0, 11), 12));
  });

  it("192 bits: an InfiniBand port's local_cpus (every odd CPU of 1-19) and its empty rps_cpus", () => {
    const t = fixture("ipoib-local_cpus-192bit-excerpt.txt");
    const local = after(t, "device/local_cpus");
    expect(renderCpuList(parseCpuMask(local))).toBe("1,3,5,7,9,11,13,15,17,19");
    expect(renderCpuMask(parseCpuMask(local), 192)).toBe(local);
    expect(parseCpuMask(after(t, "rx-0/rps_cpus"))).toEqual([]);
  });

  it("an older kernel printed rps_cpus at NR_CPUS (256) where smp_affinity has nr_cpu_ids (144): masks compare as CPU sets", () => {
    const t = fixture("ixgbe-32cpu-nr_cpus256-excerpt.txt");
    const irq = after(t, "101/smp_affinity");
    const rps = after(t, "rx-0/rps_cpus");
    expect(irq.split(",")).toHaveLength(5);
    expect(rps.split(",")).toHaveLength(8);
    expect(parseCpuMask(irq)).toEqual([31]);
    expect(renderCpuMask([31], 144)).toBe(irq);
    // Not the text nettune would write at nr_cpu_ids, but the same (empty) set of CPUs.
    expect(parseCpuMask(rps)).toEqual([]);
    expect(renderCpuMask([], 144)).not.toBe(rps);
    expect(renderCpuMask([], 256)).toBe(rps);
  });

  it("this machine's sandbox hosts: an nspawn host (2 CPUs) and a QEMU VM host (4 vCPUs)", () => {
    const nspawn = fixture("nspawn-veth-2cpu-6.18.44.txt");
    expect(after(nspawn, "rx-0/rps_cpus")).toBe(renderCpuMask([], 2));
    expect(after(nspawn, "tx-1/xps_cpus after writing 3")).toBe(renderCpuMask([0, 1], 2));
    expect(after(nspawn, "rx-0/rps_flow_cnt after writing 100")).toBe("128");
    const vm = fixture("vm-virtio_net-4cpu-6.1.0.txt");
    // virtio_net pins each tx queue to its own CPU by itself (virtnet_set_affinity).
    for (const q of [0, 1, 2, 3]) {
      expect(after(vm, `tx-${q}/xps_cpus`)).toBe(renderCpuMask([q], 4));
    }
    expect(after(vm, "rx-0/rps_cpus")).toBe(renderCpuMask([], 4));
  });
});

describe("parseCpuMask", () => {
  it("takes fewer digits than the kernel prints, as the kernel's bitmap_parse does", () => {
    expect(parseCpuMask("1,0")).toEqual([32]);
    expect(parseCpuMask("f\n")).toEqual([0, 1, 2, 3]);
    expect(parseCpuMask("FF")).toEqual(range(0, 7));
  });
  it.each(["", "0x3", "g", "1,,0", "123456789", " , "])("refuses %j", (t) => {
    expect(() => parseCpuMask(t)).toThrow(/is not a CPU mask/);
  });
});

describe("cpulists", () => {
  it("parse, sort, merge and render as the kernel's cpulist", () => {
    expect(parseCpuList("0-2,8")).toEqual([0, 1, 2, 8]);
    expect(parseCpuList(" 3, 1-2 ,1 ")).toEqual([1, 2, 3]);
    expect(parseCpuList("")).toEqual([]);
    expect(renderCpuList([8, 0, 1, 2, 2, 10, 11])).toBe("0-2,8,10-11");
    expect(renderCpuList([])).toBe("");
    expect(normalizeCpuList("2,0-1, 1")).toBe("0-2");
    expect(normalizeCpuList("0,1,2,3")).toBe("0-3");
  });
  it.each<[string, RegExp]>([
    ["", /is empty/],
    ["  ", /is empty/],
    ["0-", /"0-" is not a CPU or range/],
    ["a", /"a" is not a CPU or range/],
    ["1,,2", /"" is not a CPU or range/],
    ["0x3", /not a CPU or range/],
    ["3-1", /range 3-1 goes down: write 1-3/],
    ["8192", /CPU 8192 is above 8191/],
    ["0-9000", /CPU 9000 is above 8191/],
  ])("%j: %s", (text, why) => {
    expect(cpuListProblem(text)).toMatch(why);
  });
  it("a good list has no problem", () => {
    expect(cpuListProblem("0-3,8,10-11")).toBeNull();
    expect(cpuListProblem("8191")).toBeNull();
  });
  it("parseCpuList throws a RangeError naming the list", () => {
    expect(() => parseCpuList("3-1")).toThrow(/cpulist "3-1" range 3-1 goes down/);
  });
});
