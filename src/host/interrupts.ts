/**
 * /proc/interrupts on the host: parse it, and find the queue IRQs of one NIC from the action
 * names its driver gives them. No I/O here: `specs/` reads the file and
 * `/sys/class/net/IF/device/msi_irqs` through a transport.
 *
 * Checked against captures of several drivers and kernels in test/fixtures/interrupts.
 */
import { ParseError } from "./errors";
import { assertInterfaceName } from "./ip";

const TOOL = "/proc/interrupts";

/** One row of /proc/interrupts. */
export interface ProcInterruptsLine {
  /** The row's id as printed before the colon: `"35"`, `"NMI"`, `"ERR"`, `"IPI0"`. */
  readonly id: string;
  /** The IRQ number for numbered rows; null for the named rows (NMI, LOC, ERR, …). */
  readonly irq: number | null;
  /**
   * Count per CPU column, in the order of {@link ProcInterrupts.cpus}. Always bigint, since
   * the kernel's counters are u64 and long-running hosts pass 2^53. Empty for the rows that
   * have a single count (`ERR:`, `Err:`, `MIS:`): that count is in `total`.
   */
  readonly counts: readonly bigint[];
  /** Sum of `counts`, or the single count of `ERR:`/`MIS:`. */
  readonly total: bigint;
  /**
   * The interrupt chip: `IO-APIC`, `PCI-MSI`, `IR-PCI-MSI`, `PCI-MSIX-0000:00:03.0`,
   * `IR-PCI-MSIX-0000:01:00.0`, `GICv3`, `Hyper-V PCIe MSI`, `xen-pirq-msi-x`. Old kernels (3.x,
   * 4.x before 4.1) print the chip and the flow handler as one field (`PCI-MSI-edge`): the chip
   * is `PCI-MSI` then. Null for named rows.
   */
  readonly chip: string | null;
  /** The hardware IRQ number as printed (a string: it can be wider than 2^53), or null. */
  readonly hwirq: string | null;
  /**
   * The flow handler or trigger: `edge`, `fasteoi`, `level` after a dash, or `Level`/`Edge` on
   * kernels with GENERIC_IRQ_SHOW_LEVEL (arm, arm64). Null when the row shows none.
   */
  readonly trigger: string | null;
  /** The hwirq and trigger as printed: `1048576-edge`, `36 Level`, `5-edge`, `edge` (old kernels). */
  readonly hwirqTrigger: string | null;
  /** The handlers' names (`virtio0-input.0`, `eth0-TxRx-3`); several for a shared IRQ. */
  readonly actions: readonly string[];
  /** The text of a named row (`Local timer interrupts`), or null. */
  readonly description: string | null;
}

/** /proc/interrupts as a whole. */
export interface ProcInterrupts {
  /**
   * The CPU of each count column, from the header (`CPU0 CPU1 CPU3` → `[0, 1, 3]`): offline CPUs
   * have no column, so column i is not always CPU i.
   */
  readonly cpus: readonly number[];
  /** False when the text had no header and the caller gave the number of CPU columns. */
  readonly header: boolean;
  /** Every row, in file order. */
  readonly lines: readonly ProcInterruptsLine[];
}

/** Options of {@link parseProcInterrupts}. */
export interface ParseProcInterruptsOptions {
  /**
   * For text without the header line, such as `grep eth0 /proc/interrupts`: how many count
   * columns each row has. The columns are then taken to be CPU0…CPU(n-1).
   */
  readonly cpuColumns?: number;
}

// Rows that print one count for the whole machine instead of one per CPU.
const SINGLE_COUNT_ROWS = new Set(["ERR", "Err", "MIS"]);

// Flow handler names that old kernels appended to the chip name (`IO-APIC-fasteoi`).
const OLD_HANDLERS = new Set(["edge", "level", "fasteoi", "simple", "percpu", "bad", "none"]);

const HEADER = /^\s*CPU\d+(?:\s+CPU\d+)*\s*$/;
const ROW_ID = /^\s*([A-Za-z0-9]+):/;
const COUNT = /\s+(\d+)/y;
/** Newer kernels: chip, then hwirq joined to `-handler` or followed by `Level`/`Edge`. */
const NEW_TAIL = /^(\S.*?)\s+(\d+)?(-[A-Za-z][A-Za-z0-9_]*|\s*\b(?:Level|Edge))(?:\s+(.*))?$/;

/**
 * Parses /proc/interrupts.
 *
 * Reads the CPU columns from the header (offline CPUs have none), every numbered row with its
 * per-CPU counts, chip, hwirq, trigger and actions, and the named rows (NMI, LOC, … with a
 * description; `ERR:`, `Err:` and `MIS:` with one count). Both the old chip-and-handler field
 * (`PCI-MSI-edge      eth0-TxRx-0`) and the newer form (`IR-PCI-MSI 524288-edge      eth0-TxRx-0`)
 * are read.
 *
 * @throws ParseError naming `/proc/interrupts` when the header is missing (and no
 *   `cpuColumns` was given), a row has too few counts, or a row id repeats.
 * @example
 * const { cpus, lines } = parseProcInterrupts(text);
 * lines.find((l) => l.actions.includes("virtio3-input.0"))?.irq; // 35
 */
export function parseProcInterrupts(
  text: string,
  options: ParseProcInterruptsOptions = {},
): ProcInterrupts {
  const raw = text.split(/\r?\n/);
  const numbered = raw.map((line, i) => ({ n: i + 1, line })).filter((l) => l.line.trim() !== "");
  const first = numbered[0];
  if (!first) throw new ParseError(TOOL, "no output", text);

  let cpus: number[];
  let body = numbered;
  const hasHeader = HEADER.test(first.line);
  if (hasHeader) {
    cpus = first.line
      .trim()
      .split(/\s+/)
      .map((c) => Number(c.slice(3)));
    body = numbered.slice(1);
  } else if (options.cpuColumns !== undefined) {
    if (!Number.isInteger(options.cpuColumns) || options.cpuColumns < 1) {
      throw new RangeError(`cpuColumns must be a positive integer, not ${options.cpuColumns}`);
    }
    cpus = Array.from({ length: options.cpuColumns }, (_, i) => i);
  } else {
    throw ParseError.atLine(TOOL, text, first.n, first.line, 'expected the header "CPU0 CPU1 …"');
  }

  const seen = new Set<string>();
  const lines: ProcInterruptsLine[] = [];
  for (const { n, line } of body) {
    const parsed = parseRow(line, cpus.length);
    if (typeof parsed === "string") throw ParseError.atLine(TOOL, text, n, line, parsed);
    if (seen.has(parsed.id)) {
      throw ParseError.atLine(TOOL, text, n, line, `${parsed.id} repeated`);
    }
    seen.add(parsed.id);
    lines.push(parsed);
  }
  return { cpus, header: hasHeader, lines };
}

/** One row, or the reason it cannot be read. */
function parseRow(line: string, columns: number): ProcInterruptsLine | string {
  const idMatch = ROW_ID.exec(line);
  if (!idMatch) return 'expected "ID:" at the start';
  const id = idMatch[1] ?? "";
  const irq = /^\d+$/.test(id) ? Number(id) : null;
  let pos = idMatch[0].length;

  const counts: bigint[] = [];
  COUNT.lastIndex = pos;
  for (let m = COUNT.exec(line); m && counts.length < columns; m = COUNT.exec(line)) {
    // A count must end at a space or the end of the line, or it is the start of a hwirq.
    const end = COUNT.lastIndex;
    if (end < line.length && !/\s/.test(line[end] ?? "")) break;
    counts.push(BigInt(m[1] ?? "0"));
    pos = end;
  }
  const rest = line.slice(pos).trim();

  if (irq === null && SINGLE_COUNT_ROWS.has(id) && counts.length === 1 && rest === "") {
    const total = counts[0] ?? 0n;
    return {
      id,
      irq,
      counts: [],
      total,
      chip: null,
      hwirq: null,
      trigger: null,
      hwirqTrigger: null,
      actions: [],
      description: null,
    };
  }
  if (counts.length !== columns) {
    return `expected ${columns} counts, found ${counts.length}`;
  }
  const total = counts.reduce((a, b) => a + b, 0n);
  if (irq === null) {
    return {
      id,
      irq,
      counts,
      total,
      chip: null,
      hwirq: null,
      trigger: null,
      hwirqTrigger: null,
      actions: [],
      description: rest === "" ? null : rest,
    };
  }
  return { id, irq, counts, total, ...parseTail(rest), description: null };
}

interface Tail {
  readonly chip: string | null;
  readonly hwirq: string | null;
  readonly trigger: string | null;
  readonly hwirqTrigger: string | null;
  readonly actions: readonly string[];
}

/** The chip, hwirq, trigger and actions after the counts of a numbered row. */
function parseTail(rest: string): Tail {
  if (rest === "")
    return { chip: null, hwirq: null, trigger: null, hwirqTrigger: null, actions: [] };
  const firstToken = rest.split(/\s+/, 1)[0] ?? "";
  const old = /^(.*\D)-([a-z]+)$/.exec(firstToken);
  // Old kernels: one field `CHIP-handler`; newer chips never end in a handler name.
  if (old && OLD_HANDLERS.has(old[2] ?? "")) {
    return {
      chip: old[1] ?? "",
      hwirq: null,
      trigger: old[2] ?? null,
      hwirqTrigger: old[2] ?? null,
      actions: splitActions(rest.slice(firstToken.length)),
    };
  }
  const m = NEW_TAIL.exec(rest);
  if (m) {
    const hwirq = m[2] ?? null;
    const mode = (m[3] ?? "").trim();
    const trigger = mode.startsWith("-") ? mode.slice(1) : mode;
    return {
      chip: m[1] ?? null,
      hwirq,
      trigger,
      hwirqTrigger: mode.startsWith("-")
        ? `${hwirq ?? ""}${mode}`
        : `${hwirq ?? ""} ${mode}`.trim(),
      actions: splitActions(m[4] ?? ""),
    };
  }
  // Very old kernels (`XT-PIC  timer`, `PCI-MSI-X  eth0`): a chip and the actions.
  return {
    chip: firstToken,
    hwirq: null,
    trigger: null,
    hwirqTrigger: null,
    actions: splitActions(rest.slice(firstToken.length)),
  };
}

function splitActions(text: string): string[] {
  const t = text.trim();
  return t === "" ? [] : t.split(/,\s+/);
}

// ---------------------------------------------------------------------------------------------
// Queue IRQs of one NIC

/** What a queue IRQ serves. */
export type QueueIrqRole = "rxtx" | "rx" | "tx";

/** One queue interrupt of a NIC. */
export interface QueueIrq {
  readonly irq: number;
  /** The queue (or queue pair, notify block or completion vector) index from the name. */
  readonly queue: number;
  readonly role: QueueIrqRole;
  /** The action name it was found by. */
  readonly action: string;
}

/** An IRQ of the NIC that is not a queue IRQ, and why. */
export interface SkippedIrq {
  readonly irq: number;
  readonly action: string;
  readonly reason: string;
}

/** What {@link queueIrqs} found. */
export interface NicQueueIrqs {
  /** Ordered by queue index, then rx before tx, then IRQ number. */
  readonly irqs: readonly QueueIrq[];
  /** The NIC's other IRQs (management, config, link, flow director) and IRQs it cannot place. */
  readonly skipped: readonly SkippedIrq[];
}

interface Rule {
  /** Matches a queue IRQ's action; group `q` is the index, `role` (optional) rx/tx/rxtx text. */
  readonly queue: readonly RegExp[];
  /** Non-queue IRQs of this driver, with why they are skipped. */
  readonly skip: readonly (readonly [RegExp, string])[];
  /** The action carries a PCI address in group `bdf` (mlx5, mlx4, gve) or a virtio device. */
  readonly device?: "pci" | "virtio";
}

const BDF = "(?<bdf>[0-9a-fA-F]{4,}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7])";

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Intel-style `[drv-]IF-TxRx-N`, `IF-rx-N`, `IF-tx-N` (ixgbe, igb, igc, i40e, ice, bnxt, idpf, qlcnic). */
function pairedNames(ifre: string, prefix: string): RegExp[] {
  return [
    new RegExp(`^(?:${prefix})?${ifre}-(?<role>TxRx|Tx-Rx|rx|tx|Rx|Tx)-(?<q>\\d+)$`),
    // qlcnic: a vector that serves tx ring N and rx ring M (`eth0-tx-0-rx-3`), by its rx ring.
    new RegExp(`^(?:${prefix})?${ifre}-(?<role>tx-\\d+-rx)-(?<q>\\d+)$`),
  ];
}

function rulesFor(driver: string, ifname: string): Rule {
  const ifre = escapeRe(ifname);
  const intelLink: [RegExp, string] = [
    new RegExp(`^(?:(?:i40e|ice|iavf|igb|igc|ixgbe|idpf)-)?${BDF}(?::misc)?$`),
    "link and admin (misc) interrupt",
  ];
  const bareLink: [RegExp, string] = [new RegExp(`^${ifre}$`), "link and other causes, no queue"];
  const fdir: [RegExp, string] = [new RegExp(`fdir.*${ifre}|${ifre}.*fdir`, "i"), "flow director"];
  // i40e and ice name their flow director and control vectors by PCI address.
  const bdfSideband: [RegExp, string] = [
    new RegExp(`^(?:[a-z0-9]+-)?${BDF}:(?:fdir|ctrl)-TxRx-\\d+$`),
    "flow director or control vector, no queue",
  ];
  switch (driver) {
    case "virtio_net":
      return {
        queue: [/^(?<dev>virtio\d+)-(?<role>input|output)\.(?<q>\d+)$/],
        skip: [
          [/^(?<dev>virtio\d+)-config$/, "configuration changes, no queue"],
          [/^(?<dev>virtio\d+)-virtqueues$/, "all virtqueues share one IRQ (no per-queue MSI-X)"],
          [/^(?<dev>virtio\d+)-control$/, "control virtqueue"],
        ],
        device: "virtio",
      };
    case "ena":
      return {
        queue: [new RegExp(`^${ifre}-(?<role>Tx-Rx)-(?<q>\\d+)$`)],
        skip: [[new RegExp(`^ena-mgmnt@pci:${BDF}$`), "management (admin and event queues)"]],
        device: "pci",
      };
    case "mlx5_core":
      return {
        queue: [new RegExp(`^mlx5_comp(?<q>\\d+)@pci:${BDF}$`), new RegExp(`^${ifre}-(?<q>\\d+)$`)],
        skip: [
          [new RegExp(`^mlx5_async\\d*@pci:${BDF}$`), "asynchronous events, no queue"],
          [new RegExp(`^mlx5_(?:pages_eq|cmd_eq|ctrl\\d*)@pci:${BDF}$`), "control, no queue"],
          [/^mlx5_(?:pages_eq|cmd_eq|async\d*)$/, "control, no queue"],
        ],
        device: "pci",
      };
    case "mlx4_en":
    case "mlx4_core":
      return {
        queue: [
          new RegExp(`^mlx4-(?<q>\\d+)@pci:${BDF}$`),
          new RegExp(`^mlx4-(?<q>\\d+)@${BDF}$`),
          new RegExp(`^${ifre}-(?<q>\\d+)$`),
        ],
        skip: [[new RegExp(`^mlx4-async@pci:${BDF}$`), "asynchronous events, no queue"]],
        device: "pci",
      };
    case "gve":
      return {
        queue: [
          new RegExp(`^gve-ntfy-blk(?<q>\\d+)@pci:${BDF}$`),
          new RegExp(`^(?:${ifre}|eth%d)-ntfy-block\\.(?<q>\\d+)$`),
        ],
        skip: [
          [new RegExp(`^gve-mgmnt@pci:${BDF}$`), "management, no queue"],
          [new RegExp(`^(?:${ifre}|eth%d)-mgmnt$`), "management, no queue"],
        ],
        device: "pci",
      };
    case "i40e":
    case "ice":
    case "iavf":
    case "ixgbe":
    case "ixgbevf":
    case "igb":
    case "igbvf":
    case "igc":
      return {
        queue: pairedNames(ifre, `${escapeRe(driver)}-`),
        skip: [fdir, bdfSideband, intelLink, bareLink],
      };
    case "idpf":
      return {
        queue: pairedNames(ifre, "idpf-"),
        skip: [[/^idpf-Mailbox-\d+$/, "mailbox, no queue"], bareLink],
      };
    case "bnxt_en":
    case "qlcnic":
    case "qede":
      return { queue: pairedNames(ifre, ""), skip: [bareLink] };
    default:
      return {
        // The interface name, a separator, and a number at the end (`eth2` must not match `eth21`).
        queue: [new RegExp(`^(?:.*[^A-Za-z0-9])?${ifre}[^A-Za-z0-9](?:.*[^0-9])?(?<q>\\d+)$`)],
        skip: [bareLink],
      };
  }
}

/** The `virtioN` whose IRQs newer kernels show on the chip `PCI-MSIX-<bdf>`. */
function virtioDeviceAt(interrupts: ProcInterrupts, bdf: string): string | undefined {
  const ids = new Set<string>();
  for (const l of interrupts.lines) {
    if (l.chip?.toLowerCase().endsWith(bdf) !== true) continue;
    for (const a of l.actions) {
      const m = /^(virtio\d+)-/.exec(a);
      if (m?.[1] !== undefined) ids.add(m[1]);
    }
  }
  return ids.size === 1 ? [...ids][0] : undefined;
}

function roleOf(text: string | undefined, action: string): QueueIrqRole {
  const t = (text ?? action).toLowerCase();
  if (/tx.?rx|rx.?tx|tx-\d+-rx|comp|ntfy/.test(t)) return "rxtx";
  if (/(?:^|[^a-z])(?:rx|input)(?:[^a-z]|$)/.test(t) || t === "rx" || t === "input") return "rx";
  if (/(?:^|[^a-z])(?:tx|output)(?:[^a-z]|$)/.test(t) || t === "tx" || t === "output") return "tx";
  return "rxtx";
}

const ROLE_ORDER: Record<QueueIrqRole, number> = { rxtx: 0, rx: 1, tx: 2 };

/**
 * The queue IRQs of one NIC, found by the names its driver gives them in /proc/interrupts.
 *
 * `msiIrqs` are the IRQ numbers in `/sys/class/net/IF/device/msi_irqs` (for virtio_net, in
 * the `msi_irqs` of the PCI device above `virtioN`, i.e. `/sys/class/net/IF/device/../msi_irqs`).
 * With them only that device's IRQs are considered and every one that is not a queue IRQ is
 * reported in `skipped`; virtio_net, mlx5, mlx4 and gve name the device, not the interface,
 * so two such NICs can only be told apart with them (or with `pciAddress`, the `bus-info` of
 * `ethtool -i`). Without either, a driver whose names carry no interface name is resolved only
 * when one device of it is present; otherwise every candidate is returned in `skipped`.
 *
 * gve's notify blocks serve tx queues first and rx queues after; they are reported as `rxtx`
 * with the block index, since the split needs the queue counts (`ethtool -l`).
 *
 * @param driver the driver as `ethtool -i` names it (`virtio_net`, `ena`, `mlx5_core`, …); any
 *   other falls back to actions that contain the interface name and end in a number.
 * @throws RangeError for an invalid interface name.
 * @example
 * const { irqs } = queueIrqs(parseProcInterrupts(text), "eth0", "virtio_net", [34, 35, 36]);
 * irqs.map((q) => `${q.role}${q.queue}:${q.irq}`); // ["rx0:35", "tx0:36"]
 */
export function queueIrqs(
  interrupts: ProcInterrupts,
  ifname: string,
  driver: string,
  msiIrqs?: readonly number[],
  pciAddress?: string,
): NicQueueIrqs {
  assertInterfaceName(ifname);
  const rule = rulesFor(driver, ifname);
  const msi = msiIrqs === undefined ? null : new Set(msiIrqs);
  const bdf = pciAddress?.toLowerCase();

  interface Hit {
    readonly irq: number;
    readonly action: string;
    readonly device: string | undefined;
    readonly queue?: number;
    readonly role?: QueueIrqRole;
    readonly reason?: string;
  }
  const hits: Hit[] = [];
  const unmatched: Hit[] = [];
  for (const line of interrupts.lines) {
    if (line.irq === null) continue;
    if (msi && !msi.has(line.irq)) continue;
    let hit: Hit | undefined;
    for (const action of line.actions) {
      for (const re of rule.queue) {
        const m = re.exec(action);
        if (!m) continue;
        const g = m.groups ?? {};
        hit = {
          irq: line.irq,
          action,
          device: g["bdf"]?.toLowerCase() ?? g["dev"],
          queue: Number(g["q"]),
          role: roleOf(g["role"], action),
        };
        break;
      }
      if (hit) break;
      for (const [re, reason] of rule.skip) {
        const m = re.exec(action);
        if (!m) continue;
        const g = m.groups ?? {};
        hit = { irq: line.irq, action, device: g["bdf"]?.toLowerCase() ?? g["dev"], reason };
        break;
      }
      if (hit) break;
    }
    if (hit) hits.push(hit);
    else if (msi) {
      unmatched.push({
        irq: line.irq,
        action: line.actions.join(", "),
        device: undefined,
        reason: `not a ${driver} queue IRQ name`,
      });
    }
  }

  // Which device is this NIC, when the names carry a device rather than the interface.
  let kept = hits;
  const skipped: SkippedIrq[] = [];
  if (!msi) {
    let device: string | undefined;
    let why = "";
    if (rule.device === undefined) {
      // Only the link IRQ names a device here (`i40e-0000:3b:00.0:misc`): it is this NIC's
      // when it carries the NIC's address.
      device = bdf;
    } else {
      const devices = new Set(
        hits.filter((h) => h.device !== undefined && h.queue !== undefined).map((h) => h.device),
      );
      if (bdf !== undefined && rule.device === "pci") device = bdf;
      else if (bdf !== undefined) device = virtioDeviceAt(interrupts, bdf);
      else if (devices.size === 1) device = [...devices][0];
      why =
        devices.size > 1
          ? `${devices.size} ${driver} devices here and the names do not say which is ${ifname}: pass msiIrqs or the PCI address`
          : `cannot tell which ${driver} device is ${ifname}: pass msiIrqs or the PCI address`;
    }
    kept = [];
    for (const h of hits) {
      if (h.device === undefined || h.device === device) kept.push(h);
      else if (device === undefined && rule.device !== undefined && h.queue !== undefined) {
        skipped.push({ irq: h.irq, action: h.action, reason: why });
      }
    }
  }

  const irqs: QueueIrq[] = [];
  for (const h of kept) {
    if (h.queue !== undefined && h.role !== undefined) {
      irqs.push({ irq: h.irq, queue: h.queue, role: h.role, action: h.action });
    } else {
      skipped.push({ irq: h.irq, action: h.action, reason: h.reason ?? "not a queue IRQ" });
    }
  }
  for (const u of unmatched) skipped.push({ irq: u.irq, action: u.action, reason: u.reason ?? "" });
  irqs.sort(
    (a, b) => a.queue - b.queue || ROLE_ORDER[a.role] - ROLE_ORDER[b.role] || a.irq - b.irq,
  );
  skipped.sort((a, b) => a.irq - b.irq);
  return { irqs, skipped };
}
