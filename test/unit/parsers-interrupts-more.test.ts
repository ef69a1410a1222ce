/**
 * /proc/interrupts of more NIC drivers: qlcnic, mlx4_en with bnx2, ixgbe with igb, i40e with igb
 * and e1000e (whole files from public test data of netutils-linux), and an ice excerpt posted in
 * a pull request. Every fixture is a real capture copied exactly (see the `## interrupts/`
 * section of test/fixtures/SOURCES.md); the facts asserted here are read from those captures and
 * from the `ethtool -i` output published with them.
 */
import { describe, expect, it } from "vitest";

import { queueIrqs } from "../../src/host/interrupts";
import { brief, line, parse } from "../helpers/interrupts";

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

/** `rxtx0:first`, `rxtx1:first+1`, … for `count` queues on consecutive IRQs. */
function rxtxRun(first: number, count: number): string[] {
  return range(0, count - 1).map((q) => `rxtx${q}:${first + q}`);
}

// [file, CPU columns given for a fragment without header, CPU count, rows]
const CAPTURES: readonly [string, number | undefined, number, number][] = [
  ["qlcnic-48cpu.txt", undefined, 48, 47],
  ["mlx4-bnx2-12cpu.txt", undefined, 12, 65],
  ["ixgbe-igb-32cpu.txt", undefined, 32, 180],
  ["i40e-igb-e1000e-4cpu.txt", undefined, 4, 41],
  ["ice-16cpu-excerpt.txt", 16, 16, 5],
];

describe("parseProcInterrupts on the captures", () => {
  it.each(CAPTURES)("%s: CPU columns and rows", (file, cols, cpus, rows) => {
    const p = parse(file, cols);
    expect(p.cpus).toEqual(range(0, cpus - 1));
    expect(p.header).toBe(cols === undefined);
    expect(p.lines).toHaveLength(rows);
    for (const l of p.lines) {
      if (l.counts.length > 0) expect(l.counts).toHaveLength(cpus);
      if (l.counts.length > 0) expect(l.total).toBe(l.counts.reduce((a, b) => a + b, 0n));
    }
  });

  it("qlcnic host (48 CPUs): old chip-and-handler field, counts past 2^31, shared IRQs", () => {
    const p = parse("qlcnic-48cpu.txt");
    expect(line(p, "88")).toMatchObject({
      chip: "IR-PCI-MSI",
      hwirq: null,
      trigger: "edge",
      actions: ["eth0-rx-0"],
    });
    expect(line(p, "88").counts[0]).toBe(3343922568n);
    expect(line(p, "93").counts[0]).toBe(4017789298n);
    expect(line(p, "91").actions).toEqual(["eth0-tx-0-rx-3"]);
    expect(line(p, "3")).toMatchObject({ chip: "IR-IO-APIC", trigger: "edge", actions: [] });
    expect(line(p, "19")).toMatchObject({
      chip: "IR-IO-APIC",
      trigger: "fasteoi",
      actions: ["uhci_hcd:usb3", "hpilo"],
    });
    expect(line(p, "LOC").counts[0]).toBe(2200557554n);
    expect(line(p, "CAL").counts[12]).toBe(9474639n);
    expect(line(p, "ERR").total).toBe(0n);
  });

  it("mlx4 and bnx2 host (12 CPUs): PCI-MSI-edge, a count near 2^32", () => {
    const p = parse("mlx4-bnx2-12cpu.txt");
    expect(line(p, "60")).toMatchObject({
      chip: "PCI-MSI",
      trigger: "edge",
      actions: ["mlx4-comp-0@pci:0000:07:00.0"],
    });
    expect(line(p, "70").counts[0]).toBe(4276756322n);
    expect(line(p, "86").counts).toEqual([
      65176n,
      4125879810n,
      0n,
      0n,
      20984801n,
      0n,
      0n,
      0n,
      0n,
      0n,
      0n,
      0n,
    ]);
    expect(line(p, "22").actions).toEqual(["uhci_hcd:usb4", "uhci_hcd:usb6", "hpilo"]);
  });

  it("ixgbe and igb host (32 CPUs): IR-PCI-MSI-edge, DMAR and HPET chips", () => {
    const p = parse("ixgbe-igb-32cpu.txt");
    expect(line(p, "207")).toMatchObject({
      chip: "IR-PCI-MSI",
      trigger: "edge",
      actions: ["eth2"],
    });
    expect(line(p, "72")).toMatchObject({ chip: "DMAR_MSI", actions: ["dmar0"] });
    expect(line(p, "74")).toMatchObject({ chip: "IR-HPET_MSI", actions: ["hpet2"] });
    expect(line(p, "88").actions).toEqual(["isci-msix"]);
  });

  it("i40e, igb and e1000e host (4 CPUs): an IRQ without action, ERR: 17", () => {
    const p = parse("i40e-igb-e1000e-4cpu.txt");
    expect(line(p, "7")).toMatchObject({
      counts: [17n, 0n, 0n, 0n],
      chip: "IR-IO-APIC",
      actions: [],
    });
    expect(line(p, "37").actions).toEqual(["i40e-0000:01:00.0:fdir-TxRx-0"]);
    expect(line(p, "ERR")).toMatchObject({ counts: [], total: 17n });
  });

  it("ice excerpt (16 CPUs, no header): IR-PCI-MSI with a wide hwirq", () => {
    const p = parse("ice-16cpu-excerpt.txt", 16);
    expect(line(p, "66")).toMatchObject({
      chip: "IR-PCI-MSI",
      hwirq: "52953105",
      trigger: "edge",
      hwirqTrigger: "52953105-edge",
      actions: ["ice-0000:65:00.0:ctrl-TxRx-0"],
    });
    expect(line(p, "79").counts[1]).toBe(609n);
  });
});

describe("queueIrqs on the captures", () => {
  it("mlx4_en: the per-ring eth2-N vectors in ring order, mlx4-async skipped", () => {
    const p = parse("mlx4-bnx2-12cpu.txt");
    const r = queueIrqs(p, "eth2", "mlx4_en");
    expect(brief(r.irqs)).toEqual(rxtxRun(64, 8));
    expect(r.irqs.map((q) => q.action)).toEqual(range(0, 7).map((q) => `eth2-${q}`));
    expect(r.skipped).toEqual([]);

    // By the PCI address of `ethtool -i eth2` (bus-info 0000:07:00.0).
    const byBdf = queueIrqs(p, "eth2", "mlx4_en", undefined, "0000:07:00.0");
    expect(byBdf.irqs).toEqual(r.irqs);
    expect(byBdf.skipped).toEqual([
      { irq: 63, action: "mlx4-async@pci:0000:07:00.0", reason: "asynchronous events, no queue" },
    ]);

    // With the device's IRQs, the completion-pool vectors mlx4-comp-N are not taken as queues.
    const byMsi = queueIrqs(p, "eth2", "mlx4_en", range(60, 71));
    expect(byMsi.irqs).toEqual(r.irqs);
    expect(byMsi.skipped.map((s) => s.irq)).toEqual([60, 61, 62, 63]);
    expect(byMsi.skipped[3]?.reason).toBe("asynchronous events, no queue");
  });

  it("bnx2 (no rule of its own): eth0-N and eth1-N by the interface name", () => {
    const p = parse("mlx4-bnx2-12cpu.txt");
    expect(brief(queueIrqs(p, "eth0", "bnx2").irqs)).toEqual(rxtxRun(77, 8));
    expect(brief(queueIrqs(p, "eth1", "bnx2").irqs)).toEqual(rxtxRun(86, 8));
    // eth2's vectors are mlx4's, not bnx2's eth0/eth1.
    expect(queueIrqs(p, "eth0", "bnx2").skipped).toEqual([]);
  });

  it("ixgbe with 32 queues: IF-TxRx-N in order, the bare link IRQ after them skipped", () => {
    const p = parse("ixgbe-igb-32cpu.txt");
    // ethtool -i: eth2 and eth3 are ixgbe 4.0.1-k on 0000:81:00.0/1, eth4 and eth5 on 0000:04:00.1/0.
    for (const [ifname, first] of [
      ["eth2", 175],
      ["eth3", 208],
      ["eth4", 142],
      ["eth5", 109],
    ] as const) {
      const r = queueIrqs(p, ifname, "ixgbe");
      expect(brief(r.irqs)).toEqual(rxtxRun(first, 32));
      expect(r.irqs[31]?.action).toBe(`${ifname}-TxRx-31`);
      expect(r.skipped).toEqual([
        { irq: first + 32, action: ifname, reason: "link and other causes, no queue" },
      ]);
    }
  });

  it("igb next to ixgbe: eth0-TxRx-N, the bare link IRQ before them skipped", () => {
    const p = parse("ixgbe-igb-32cpu.txt");
    const r = queueIrqs(p, "eth0", "igb");
    expect(brief(r.irqs)).toEqual(rxtxRun(92, 8));
    expect(r.skipped).toEqual([
      { irq: 91, action: "eth0", reason: "link and other causes, no queue" },
    ]);
    expect(brief(queueIrqs(p, "eth1", "igb").irqs)).toEqual(rxtxRun(101, 8));
  });

  it("i40e 1.5.10-k: i40e-IF-TxRx-N; the misc IRQ by the PCI address", () => {
    const p = parse("i40e-igb-e1000e-4cpu.txt");
    const r = queueIrqs(p, "eth0", "i40e");
    expect(brief(r.irqs)).toEqual(rxtxRun(33, 4));
    const byBdf = queueIrqs(p, "eth0", "i40e", undefined, "0000:01:00.0");
    expect(byBdf.irqs).toEqual(r.irqs);
    expect(byBdf.skipped).toContainEqual({
      irq: 32,
      action: "i40e-0000:01:00.0:misc",
      reason: "link and admin (misc) interrupt",
    });
    // The flow director vector (fdir-TxRx-0) is not a queue of eth0.
    expect(r.irqs.map((q) => q.irq)).not.toContain(37);
    // eth1 (0000:01:00.1) has no queue IRQ in this capture, only misc and fdir.
    expect(queueIrqs(p, "eth1", "i40e", undefined, "0000:01:00.1").irqs).toEqual([]);
  });

  it("qlcnic: eth0-rx-N and the vector that serves tx ring 0 and rx ring 3 (eth0-tx-0-rx-3)", () => {
    const p = parse("qlcnic-48cpu.txt");
    const r = queueIrqs(p, "eth0", "qlcnic");
    expect(brief(r.irqs)).toEqual(["rx0:88", "rx1:89", "rx2:90", "rxtx3:91"]);
    expect(queueIrqs(p, "eth0", "qlcnic", [88, 89, 90, 91]).irqs).toEqual(r.irqs);
    expect(queueIrqs(p, "eth1", "qlcnic").irqs.at(-1)).toEqual({
      irq: 96,
      queue: 3,
      role: "rxtx",
      action: "eth1-tx-0-rx-3",
    });
  });

  it("i40e and ice: the flow director and control vectors, named by PCI address, are skipped as such", () => {
    const i40e = queueIrqs(
      parse("i40e-igb-e1000e-4cpu.txt"),
      "eth0",
      "i40e",
      undefined,
      "0000:01:00.0",
    );
    expect(i40e.skipped).toContainEqual({
      irq: 37,
      action: "i40e-0000:01:00.0:fdir-TxRx-0",
      reason: "flow director or control vector, no queue",
    });
    const ice = queueIrqs(
      parse("ice-16cpu-excerpt.txt", 16),
      "lan0",
      "ice",
      undefined,
      "0000:65:00.0",
    );
    expect(ice.irqs).toEqual([]);
    expect(ice.skipped).toContainEqual({
      irq: 66,
      action: "ice-0000:65:00.0:ctrl-TxRx-0",
      reason: "flow director or control vector, no queue",
    });
  });

  it("igb on the i40e host: eth3-TxRx-N after the bare eth3", () => {
    const p = parse("i40e-igb-e1000e-4cpu.txt");
    const r = queueIrqs(p, "eth3", "igb");
    expect(brief(r.irqs)).toEqual(rxtxRun(62, 4));
    expect(r.skipped).toEqual([
      { irq: 61, action: "eth3", reason: "link and other causes, no queue" },
    ]);
  });

  it("ice: ice-IF-TxRx-N; misc by the PCI address; the ctrl vector is no queue", () => {
    const p = parse("ice-16cpu-excerpt.txt", 16);
    const r = queueIrqs(p, "lan1", "ice");
    expect(brief(r.irqs)).toEqual(rxtxRun(78, 3));
    expect(r.irqs[0]?.action).toBe("ice-lan1-TxRx-0");
    const byBdf = queueIrqs(p, "lan1", "ice", undefined, "0000:65:00.1");
    expect(byBdf.irqs).toEqual(r.irqs);
    expect(byBdf.skipped).toEqual([
      { irq: 77, action: "ice-0000:65:00.1:misc", reason: "link and admin (misc) interrupt" },
    ]);
    const byMsi = queueIrqs(p, "lan1", "ice", [77, 78, 79, 80]);
    expect(byMsi).toEqual(byBdf);
    // The other port's flow-director control vector is not a queue of lan0.
    expect(queueIrqs(p, "lan0", "ice", undefined, "0000:65:00.0").irqs).toEqual([]);
  });
});
