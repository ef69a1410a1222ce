/**
 * The /proc/interrupts parser and the queue-IRQ finder. Every fixture in
 * test/fixtures/interrupts is a real capture or a fragment of one posted publicly (see
 * test/fixtures/SOURCES.md); the facts asserted here are read from those captures.
 */
import * as fs from "node:fs";
import { describe, expect, it } from "vitest";

import { ParseError } from "../../src/host/errors";
import { parseProcInterrupts, queueIrqs } from "../../src/host/interrupts";
import { DIR, brief, fixture, line, parse } from "../helpers/interrupts";
import { parsers } from "../../src/parsers";

function msiIrqs(name: string): number[] {
  return fixture(name).trim().split(/\s+/).map(Number);
}

/** Calls `fn` and returns what it threw, failing the test when nothing was thrown. */
function thrown(fn: () => unknown): ParseError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ParseError);
    return e as ParseError;
  }
  throw new Error("expected a ParseError");
}

// [file, CPU columns given for a fragment without header, CPU count, rows]
const CAPTURES: readonly [string, number | undefined, number, number][] = [
  ["machine-virtio-6.18.44-fc-v669.txt", undefined, 2, 35],
  ["vm-virtio-6.1.0-57.txt", undefined, 4, 44],
  ["vm-virtio-6.1.0-57-after-L2.txt", undefined, 4, 44],
  ["ena-4cpu-ec2.txt", undefined, 4, 66],
  ["intel-txrx-16cpu-2.6.38.6.txt", undefined, 16, 48],
  ["igb-4cpu-3.13-excerpt.txt", undefined, 4, 11],
  ["i40e-4cpu-excerpt.txt", undefined, 4, 12],
  ["gicv3-4cpu-excerpt.txt", undefined, 4, 16],
  ["mlx5-12cpu-grep-excerpt.txt", 12, 12, 15],
  ["gve-2cpu-excerpt.txt", 2, 2, 3],
];

describe("parseProcInterrupts on every capture", () => {
  it("covers every /proc/interrupts file in the fixtures", () => {
    const files = fs
      .readdirSync(DIR)
      .filter(
        (f) => f.endsWith(".txt") && !/\.(msi_irqs|ethtool-i|affinity-after-L)\.txt$/.test(f),
      );
    // test/unit/parsers-interrupts-more.test.ts reads these.
    const more = [
      "qlcnic-48cpu.txt",
      "mlx4-bnx2-12cpu.txt",
      "ixgbe-igb-32cpu.txt",
      "i40e-igb-e1000e-4cpu.txt",
      "ice-16cpu-excerpt.txt",
    ];
    expect(files.sort()).toEqual([...CAPTURES.map((c) => c[0]), ...more].sort());
  });

  it.each(CAPTURES)("%s: CPU columns and rows", (file, cols, cpus, rows) => {
    const p = parse(file, cols);
    expect(p.cpus).toHaveLength(cpus);
    expect(p.cpus).toEqual(Array.from({ length: cpus }, (_, i) => i));
    expect(p.header).toBe(cols === undefined);
    expect(p.lines).toHaveLength(rows);
    for (const l of p.lines) {
      if (l.counts.length > 0) expect(l.counts).toHaveLength(cpus);
      expect(l.total).toBe(l.counts.reduce((a, b) => a + b, l.counts.length === 0 ? l.total : 0n));
    }
  });

  it("the public parsers object has it", () => {
    expect(parsers.procInterrupts).toBe(parseProcInterrupts);
  });
});

describe("row contents", () => {
  it("this machine: PCI-MSIX-<bdf> chips, named rows, ERR and MIS with one count", () => {
    const p = parse("machine-virtio-6.18.44-fc-v669.txt");
    const l38 = line(p, "38");
    expect(l38).toMatchObject({
      irq: 38,
      counts: [0n, 21572n],
      chip: "PCI-MSIX-0000:00:03.0",
      hwirq: "1",
      trigger: "edge",
      hwirqTrigger: "1-edge",
      actions: ["virtio2-input.0"],
      description: null,
    });
    expect(line(p, "26")).toMatchObject({
      chip: "IO-APIC",
      hwirqTrigger: "4-edge",
      actions: ["ttyS0"],
    });
    expect(line(p, "LOC")).toMatchObject({
      irq: null,
      counts: [2099783n, 2100153n],
      description: "Local timer interrupts",
      chip: null,
    });
    expect(line(p, "HYP").total).toBe(117n);
    expect(line(p, "ERR")).toMatchObject({ counts: [], total: 0n, description: null });
    expect(line(p, "MIS")).toMatchObject({ counts: [], total: 0n });
    expect(p.lines.map((l) => l.id).filter((id) => !/^\d+$/.test(id))).toEqual([
      "NMI",
      "LOC",
      "SPU",
      "PMI",
      "IWI",
      "RTR",
      "RES",
      "CAL",
      "TLB",
      "TRM",
      "HYP",
      "ERR",
      "MIS",
      "PIN",
      "NPI",
      "PIW",
    ]);
  });

  it("QEMU guest: PCI-MSI with a wide hwirq", () => {
    const p = parse("vm-virtio-6.1.0-57.txt");
    expect(line(p, "42")).toMatchObject({
      counts: [0n, 0n, 1n, 37n],
      chip: "PCI-MSI",
      hwirq: "34078728",
      hwirqTrigger: "34078728-edge",
      actions: ["virtio3-output.3"],
    });
    expect(line(p, "9")).toMatchObject({ chip: "IO-APIC", trigger: "fasteoi", actions: ["acpi"] });
  });

  it("ENA host: counts in the tens of millions and THR/DFR/MCE/MCP rows", () => {
    const p = parse("ena-4cpu-ec2.txt");
    expect(line(p, "28").counts).toEqual([1482671n, 0n, 0n, 35400719n]);
    expect(line(p, "27").actions).toEqual(["ena-mgmnt@pci:0000:00:05.0"]);
    expect(line(p, "MCP").counts).toEqual([22n, 22n, 22n, 22n]);
    expect(line(p, "DFR").description).toBe("Deferred Error APIC interrupts");
  });

  it("2.6.38 with 16 CPUs: the chip and handler in one field, an IRQ without action", () => {
    const p = parse("intel-txrx-16cpu-2.6.38.6.txt");
    expect(line(p, "129")).toMatchObject({
      chip: "PCI-MSI",
      hwirq: null,
      trigger: "edge",
      hwirqTrigger: "edge",
      actions: ["eth0-TxRx-0"],
    });
    expect(line(p, "129").counts[11]).toBe(13559845n);
    expect(line(p, "3")).toMatchObject({ chip: "IO-APIC", trigger: "edge", actions: [] });
    expect(line(p, "18").actions).toEqual(["ehci_hcd:usb1", "uhci_hcd:usb7"]);
    expect(line(p, "LOC").counts[1]).toBe(444958449n);
    // Indented named rows (" NMI:") and ERR with a non-zero count.
    expect(line(p, "ERR").total).toBe(15n);
  });

  it("3.13: IR-PCI-MSI-edge, DMAR_MSI-edge, a count past 2^31", () => {
    const p = parse("igb-4cpu-3.13-excerpt.txt");
    expect(line(p, "30")).toMatchObject({ chip: "IR-IO-APIC", trigger: "fasteoi" });
    expect(line(p, "30").counts[0]).toBe(3361234770n);
    expect(line(p, "64")).toMatchObject({ chip: "DMAR_MSI", actions: ["dmar0"] });
    expect(line(p, "66")).toMatchObject({ chip: "IR-PCI-MSI", actions: ["eth0-TxRx-0"] });
    expect(line(p, "LOC").counts[0]).toBe(2913290785n);
  });

  it("GICv3: the hwirq and Level as two fields, an action with spaces", () => {
    const p = parse("gicv3-4cpu-excerpt.txt");
    expect(line(p, "11")).toMatchObject({
      chip: "GICv3",
      hwirq: "30",
      trigger: "Level",
      hwirqTrigger: "30 Level",
      counts: [2601n, 2030n, 1576n, 1614n],
      actions: ["arch_timer"],
    });
    expect(line(p, "12").actions).toEqual(["kvm guest vtimer"]);
    expect(line(p, "20").hwirq).toBe("128");
  });

  it("mlx5 (grep output, no header): IR-PCI-MSIX-<bdf> chips", () => {
    const p = parse("mlx5-12cpu-grep-excerpt.txt", 12);
    expect(line(p, "118")).toMatchObject({
      chip: "IR-PCI-MSIX-0000:01:00.0",
      hwirqTrigger: "11-edge",
      actions: ["mlx5_comp10@pci:0000:01:00.0"],
    });
    expect(line(p, "114").counts[8]).toBe(1024467n);
  });
});

describe("counts beyond 2^53 (synthetic lines)", () => {
  it("keeps u64 counts exact as bigint", () => {
    // Synthetic: no capture has a counter this high; the layout is the 4-CPU ENA host's.
    const text = [
      "           CPU0       CPU1",
      " 28: 18446744073709551615 9007199254740993   PCI-MSI 81921-edge      eth0-Tx-Rx-0",
      "LOC: 9007199254740993          1   Local timer interrupts",
      "ERR: 18446744073709551615",
    ].join("\n");
    const p = parseProcInterrupts(text);
    expect(line(p, "28").counts).toEqual([18446744073709551615n, 9007199254740993n]);
    expect(line(p, "28").total).toBe(18446744073709551615n + 9007199254740993n);
    expect(line(p, "LOC").counts[0]).toBe(9007199254740993n);
    expect(line(p, "ERR").total).toBe(18446744073709551615n);
  });

  it("reads offline CPUs from the header (synthetic header)", () => {
    // Synthetic: CPU2 offline, as the kernel prints it (no column for it).
    const p = parseProcInterrupts(
      "           CPU0       CPU1       CPU3\n 35:  1  2  3   PCI-MSI 34078721-edge      virtio3-input.0\n",
    );
    expect(p.cpus).toEqual([0, 1, 3]);
    expect(line(p, "35").counts).toEqual([1n, 2n, 3n]);
  });
});

describe("malformed input", () => {
  it("empty text", () => {
    const e = thrown(() => parseProcInterrupts(""));
    expect(e.tool).toBe("/proc/interrupts");
    expect(e.message).toContain("no output");
  });

  it("a missing header", () => {
    const e = thrown(() => parseProcInterrupts(fixture("gve-2cpu-excerpt.txt")));
    expect(e.message).toContain("line 1");
    expect(e.message).toContain("CPU0");
  });

  it("too few counts", () => {
    const e = thrown(() =>
      parseProcInterrupts("           CPU0       CPU1\n 24:         65   PCI-MSI 65536-edge  x\n"),
    );
    expect(e.message).toContain("line 2");
    expect(e.message).toContain("expected 2 counts, found 1");
  });

  it("a line without an id", () => {
    const e = thrown(() => parseProcInterrupts("           CPU0\n garbage here\n"));
    expect(e.message).toContain('expected "ID:"');
  });

  it("a repeated id", () => {
    const e = thrown(() =>
      parseProcInterrupts("  CPU0\n 1: 1 IO-APIC 1-edge a\n 1: 2 IO-APIC 1-edge b\n"),
    );
    expect(e.message).toContain("1 repeated");
  });

  it("a bad cpuColumns", () => {
    expect(() => parseProcInterrupts(" 1: 1 x", { cpuColumns: 0 })).toThrow(RangeError);
  });
});

describe("queueIrqs", () => {
  it("virtio_net in the QEMU guest, by the msi_irqs of the PCI device above virtio3", () => {
    const p = parse("vm-virtio-6.1.0-57.txt");
    const r = queueIrqs(p, "eth0", "virtio_net", msiIrqs("vm-virtio-6.1.0-57.msi_irqs.txt"));
    expect(brief(r.irqs)).toEqual([
      "rx0:35",
      "tx0:36",
      "rx1:37",
      "tx1:38",
      "rx2:39",
      "tx2:40",
      "rx3:41",
      "tx3:42",
    ]);
    expect(r.irqs[0]?.action).toBe("virtio3-input.0");
    expect(r.skipped).toEqual([
      { irq: 34, action: "virtio3-config", reason: "configuration changes, no queue" },
    ]);
  });

  it("virtio_net after ethtool -L combined 2: the same IRQs and names", () => {
    const before = queueIrqs(
      parse("vm-virtio-6.1.0-57.txt"),
      "eth0",
      "virtio_net",
      msiIrqs("vm-virtio-6.1.0-57.msi_irqs.txt"),
    );
    const after = queueIrqs(
      parse("vm-virtio-6.1.0-57-after-L2.txt"),
      "eth0",
      "virtio_net",
      msiIrqs("vm-virtio-6.1.0-57-after-L2.msi_irqs.txt"),
    );
    expect(after).toEqual(before);
  });

  it("virtio_net without msi_irqs: one NIC-like virtio device is found alone", () => {
    const r = queueIrqs(parse("vm-virtio-6.1.0-57.txt"), "eth0", "virtio_net");
    expect(r.irqs).toHaveLength(8);
    // Only virtio3 has input/output queues; the other devices' IRQs are not this NIC's.
    expect(r.skipped.map((s) => s.irq)).toEqual([34]);
  });

  it("virtio_net on this machine, by msi_irqs and by the PCI address in the chip", () => {
    const p = parse("machine-virtio-6.18.44-fc-v669.txt");
    const byMsi = queueIrqs(
      p,
      "eth0",
      "virtio_net",
      msiIrqs("machine-virtio-6.18.44-fc-v669.msi_irqs.txt"),
    );
    expect(brief(byMsi.irqs)).toEqual(["rx0:38", "tx0:39"]);
    expect(byMsi.skipped.map((s) => s.action)).toEqual(["virtio2-config"]);
    const bus = /bus-info: (\S+)/.exec(
      fixture("machine-virtio-6.18.44-fc-v669.ethtool-i.txt"),
    )?.[1];
    expect(bus).toBe("0000:00:03.0");
    expect(queueIrqs(p, "eth0", "virtio_net", undefined, bus)).toEqual(byMsi);
  });

  it("virtio_net with all virtqueues on one vector", () => {
    const r = queueIrqs(parse("i40e-4cpu-excerpt.txt"), "eth0", "virtio_net", [5, 6]);
    expect(r.irqs).toEqual([]);
    expect(r.skipped.map((s) => [s.irq, s.reason])).toEqual([
      [5, "configuration changes, no queue"],
      [6, "all virtqueues share one IRQ (no per-queue MSI-X)"],
    ]);
  });

  it("ena with three NICs: each by its name, ena-mgmnt skipped with msi_irqs", () => {
    const p = parse("ena-4cpu-ec2.txt");
    expect(brief(queueIrqs(p, "eth1", "ena").irqs)).toEqual([
      "rxtx0:33",
      "rxtx1:34",
      "rxtx2:35",
      "rxtx3:36",
    ]);
    expect(queueIrqs(p, "eth1", "ena").skipped).toEqual([]);
    const r = queueIrqs(p, "eth0", "ena", [27, 28, 29, 30, 31]);
    expect(brief(r.irqs)).toEqual(["rxtx0:28", "rxtx1:29", "rxtx2:30", "rxtx3:31"]);
    expect(r.skipped).toEqual([
      {
        irq: 27,
        action: "ena-mgmnt@pci:0000:00:05.0",
        reason: "management (admin and event queues)",
      },
    ]);
    expect(
      queueIrqs(p, "eth2", "ena", undefined, "0000:00:07.0").skipped.map((s) => s.irq),
    ).toEqual([52]);
  });

  it("mlx5 with two ports: needs the PCI address or msi_irqs", () => {
    const p = parse("mlx5-12cpu-grep-excerpt.txt", 12);
    const ambiguous = queueIrqs(p, "enp1s0f0np0", "mlx5_core");
    expect(ambiguous.irqs).toEqual([]);
    expect(ambiguous.skipped).toHaveLength(13);
    expect(ambiguous.skipped[0]?.reason).toContain("2 mlx5_core devices");
    const port0 = queueIrqs(p, "enp1s0f0np0", "mlx5_core", undefined, "0000:01:00.0");
    // The post's mlnx-tools run found the same IRQs for enp1s0f0np0.
    expect(port0.irqs.map((q) => q.irq)).toEqual([
      99, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119,
    ]);
    expect(port0.irqs.map((q) => q.queue)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(port0.irqs.every((q) => q.role === "rxtx")).toBe(true);
    expect(port0.skipped).toEqual([
      { irq: 98, action: "mlx5_async0@pci:0000:01:00.0", reason: "asynchronous events, no queue" },
    ]);
    const port1 = queueIrqs(p, "enp1s0f1np1", "mlx5_core", [101, 102]);
    expect(brief(port1.irqs)).toEqual(["rxtx0:102"]);
    expect(port1.skipped.map((s) => s.irq)).toEqual([101]);
  });

  it("i40e: i40e-IF-TxRx-N, the misc IRQ skipped", () => {
    const p = parse("i40e-4cpu-excerpt.txt");
    const r = queueIrqs(p, "enP1s15", "i40e", [9, 10, 11, 12]);
    expect(brief(r.irqs)).toEqual(["rxtx0:10", "rxtx1:11", "rxtx2:12"]);
    expect(r.skipped).toEqual([
      { irq: 9, action: "i40e-0001:00:0f.0:misc", reason: "link and admin (misc) interrupt" },
    ]);
    expect(queueIrqs(p, "enP1s15", "i40e").skipped).toEqual([]);
    expect(
      queueIrqs(p, "enP1s15", "i40e", undefined, "0001:00:0f.0").skipped.map((s) => s.irq),
    ).toEqual([9]);
  });

  it("ixgbe-style names on 2.6.38 with 16 CPUs: eight queues, the bare link IRQ skipped", () => {
    const r = queueIrqs(parse("intel-txrx-16cpu-2.6.38.6.txt"), "eth0", "ixgbe");
    expect(r.irqs.map((q) => q.irq)).toEqual([129, 130, 131, 132, 133, 134, 135, 136]);
    expect(r.irqs.map((q) => q.queue)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(r.skipped).toEqual([
      { irq: 128, action: "eth0", reason: "link and other causes, no queue" },
    ]);
  });

  it("igb on 3.13", () => {
    const r = queueIrqs(parse("igb-4cpu-3.13-excerpt.txt"), "eth0", "igb");
    expect(brief(r.irqs)).toEqual(["rxtx0:66", "rxtx1:67", "rxtx2:68", "rxtx3:69"]);
    expect(r.skipped.map((s) => s.irq)).toEqual([65]);
  });

  it("gve: notify blocks in order, gve-mgmnt skipped", () => {
    const p = parse("gve-2cpu-excerpt.txt", 2);
    const r = queueIrqs(p, "ens4", "gve");
    expect(brief(r.irqs)).toEqual(["rxtx0:24", "rxtx1:25"]);
    expect(r.skipped).toEqual([
      { irq: 26, action: "gve-mgmnt@pci:0000:00:04.0", reason: "management, no queue" },
    ]);
  });

  it("with msi_irqs, an IRQ of the device that no rule names is reported", () => {
    const r = queueIrqs(parse("ena-4cpu-ec2.txt"), "eth0", "ena", [24, 28]);
    expect(brief(r.irqs)).toEqual(["rxtx0:28"]);
    expect(r.skipped).toEqual([{ irq: 24, action: "nvme0q0", reason: "not a ena queue IRQ name" }]);
  });

  it("an unknown driver falls back to names with the interface and a number", () => {
    const r = queueIrqs(parse("ena-4cpu-ec2.txt"), "eth2", "some_driver");
    expect(brief(r.irqs)).toEqual(["rxtx0:53", "rxtx1:54", "rxtx2:55", "rxtx3:56"]);
    expect(queueIrqs(parse("ena-4cpu-ec2.txt"), "eth", "some_driver").irqs).toEqual([]);
    const virtio = queueIrqs(parse("vm-virtio-6.1.0-57.txt"), "eth0", "some_driver");
    expect(virtio.irqs).toEqual([]);
  });

  it("rejects a hostile interface name", () => {
    expect(() => queueIrqs(parse("ena-4cpu-ec2.txt"), "eth0;rm -rf /", "ena")).toThrow(RangeError);
  });
});
