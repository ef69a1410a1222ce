/**
 * The host-tool parsers nettune uses to read NICs and links, public so that programs and tests
 * can read the same output the resources read. They are pure functions of the tool's text: run
 * the command however you like (`remote.Command`, a shell, a recorded file) and pass its stdout.
 *
 * Every parser throws {@link ParseError} (with the tool's name and the text) when the text is
 * not what the tool prints on success, and sets `unsupported: true` on it when the text is the
 * driver's "Operation not supported".
 *
 * @example
 * import { parsers, ParseError } from "nettune";
 *
 * const { features } = parsers.ethtoolFeatures(stdoutOfEthtoolK);
 * if (features["generic-receive-offload"]?.on === false) console.log("GRO is off");
 */
import {
  parseEthtoolChannels,
  parseEthtoolDriverInfo,
  parseEthtoolFeatures,
  parseEthtoolFeaturesJson,
  parseEthtoolRings,
  parseEthtoolRss,
} from "./host/ethtool";
import { parseProcInterrupts, queueIrqs } from "./host/interrupts";
import { parseIpLink } from "./host/ip";
import { parseTcQdiscs } from "./host/tc";

export { ParseError, type ParseErrorOptions } from "./host/errors";
export type {
  EthtoolChannelCounts,
  EthtoolChannels,
  EthtoolDriverInfo,
  EthtoolFeature,
  EthtoolFeatures,
  EthtoolRingSizes,
  EthtoolRings,
  EthtoolRss,
} from "./host/ethtool";
export type {
  NicQueueIrqs,
  ParseProcInterruptsOptions,
  ProcInterrupts,
  ProcInterruptsLine,
  QueueIrq,
  QueueIrqRole,
  SkippedIrq,
} from "./host/interrupts";
export type { IpLink } from "./host/ip";

/** Parsers of `ethtool`, `ip`, `tc` and /proc/interrupts output. */
export const parsers = {
  /**
   * `ethtool -k IF`: every offload feature by its long name, with `on`, `fixed` and (when the
   * kernel was asked for another state) `requested`.
   *
   * @example
   * const { interface: ifname, features } = parsers.ethtoolFeatures(stdout);
   * features["tcp-segmentation-offload"]; // { on: true, fixed: false }
   */
  ethtoolFeatures: parseEthtoolFeatures,

  /**
   * `ethtool --json -k IF`: the same result as `ethtoolFeatures`, from ethtool's JSON output
   * (ethtool 5.17 and later; older versions reject `--json -k`).
   *
   * @example
   * parsers.ethtoolFeaturesJson(stdout).features["large-receive-offload"]?.fixed; // true
   */
  ethtoolFeaturesJson: parseEthtoolFeaturesJson,

  /**
   * `ethtool -l IF`: maximum and current rx, tx, other and combined channel counts, null for
   * `n/a`. Drivers without channels throw a ParseError with `unsupported: true` (pass stderr too).
   *
   * @example
   * const ch = parsers.ethtoolChannels(stdout);
   * ch.max.combined; // 8 on a multi-queue NIC, null on veth (separate rx and tx)
   * ch.current.rx; // 2 on a veth after `ethtool -L b rx 2 tx 2`
   */
  ethtoolChannels: parseEthtoolChannels,

  /**
   * `ethtool -g IF`: maximum and current rx, rx-mini, rx-jumbo and tx ring sizes (null for
   * `n/a`) and the other lines in `extra` / `extraMax`.
   *
   * @example
   * parsers.ethtoolRings(stdout).max.rx; // 4096
   */
  ethtoolRings: parseEthtoolRings,

  /**
   * `ethtool -x IF`: the RSS indirection table (queue of each bucket), the hash key and the
   * hash functions. A device without a table throws a ParseError with `unsupported: true`.
   *
   * @example
   * const { indirection } = parsers.ethtoolRss(stdout);
   * new Set(indirection).size; // queues that receive traffic
   */
  ethtoolRss: parseEthtoolRss,

  /**
   * `ethtool -i IF`: the driver name, version, firmware and bus address.
   *
   * @example
   * parsers.ethtoolDriverInfo(stdout).driver; // "virtio_net"
   */
  ethtoolDriverInfo: parseEthtoolDriverInfo,

  /**
   * `ip -d -j link show [dev IF]`: one entry per link with MTU limits, queue counts, qdisc,
   * state, flags and kind (`veth`, `bridge`, `tun`, …).
   *
   * @example
   * const [link] = parsers.ipLink(stdout);
   * link?.numRxQueues; // 4
   */
  ipLink: parseIpLink,

  /**
   * `tc -j qdisc show [dev IF]`: one entry per qdisc with its kind, handle, parent, whether it
   * is the root, the device and its options.
   *
   * @example
   * const root = parsers.tcQdiscs(stdout).find((q) => q.root);
   * root?.kind; // "pfifo_fast"
   */
  tcQdiscs: parseTcQdiscs,

  /**
   * `/proc/interrupts`: the CPU columns (offline CPUs have none) and every row with its
   * per-CPU counts (bigint: u64 counters), chip, hwirq, trigger and action names, of old
   * (`PCI-MSI-edge`) and newer (`IR-PCI-MSI 524288-edge`) kernels.
   *
   * @example
   * const irqs = parsers.procInterrupts(text);
   * irqs.cpus.length; // 4
   * irqs.lines.find((l) => l.actions.includes("eth0-TxRx-0"))?.irq; // 66
   */
  procInterrupts: parseProcInterrupts,

  /**
   * The queue IRQs of one NIC from parsed /proc/interrupts, by its driver's naming, ordered by
   * queue index, with the IRQs it skipped and why. Pass the numbers in
   * `/sys/class/net/IF/device/msi_irqs` (virtio_net: `…/device/../msi_irqs`) to tell NICs apart.
   *
   * @example
   * const { irqs, skipped } = parsers.queueIrqs(parsers.procInterrupts(text), "eth0", "ena");
   * irqs[0]; // { irq: 28, queue: 0, role: "rxtx", action: "eth0-Tx-Rx-0" }
   */
  queueIrqs,
} as const;
