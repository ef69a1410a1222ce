import type { TuningModel } from "../resources/networkTuning";
import { profile } from "./model";

/**
 * A server where response time matters more than throughput (interactive APIs, trading,
 * games): short queues, no slow restarts, packets handled on the core that consumes them.
 * Role: server (no tcp_tw_reuse).
 *
 * Buffers are left at the kernel's defaults on purpose: the guide warns that very large
 * buffers add queueing delay (bufferbloat).
 */
export const lowLatency: TuningModel = profile({
  sysctls: {
    // TCP Fast Open carries data in the SYN, saving a round trip on short, frequent
    // connections; 3 turns it on as client and server (the application opts in per socket).
    "net.ipv4.tcp_fastopen": 3,
    // No return to slow start after an idle period: the first reply after a pause is not
    // held back.
    "net.ipv4.tcp_slow_start_after_idle": 0,
  },
  // bbr keeps the bottleneck queue short by measuring bandwidth and minimum RTT instead of
  // filling buffers until loss; the guide cites lower latency with it. fq paces its packets
  // where the host has fq; elsewhere bbr paces by itself (preview says so).
  congestion: { algorithm: "bbr", qdisc: "fq", qdiscFallback: "none" },
  // LRO off: it conflicts with GRO and merges packets in the NIC.
  offloads: { features: { gro: true, lro: false } },
  // One queue per core and each interrupt on its own core of the NIC's NUMA node first: no
  // queue waits behind another, and interrupts stay near the NIC's memory.
  queues: { combined: "max" },
  irq: { policy: "spread", irqbalance: "ban" },
  // RFS steers each flow to the CPU where the thread reading it runs, for cache locality; 32768
  // flow entries suit a moderately loaded server. Needs the host's own network namespace (not
  // a container's).
  steering: { rfs: { flowEntries: 32768 } },
});
