import type { TuningModel } from "../resources/networkTuning";
import { profile } from "./model";

/**
 * A node that receives heavy streams (a Kafka broker): the guide's second case, up to 20 Gbit/s
 * inbound per node, with packets dropped on receive (`rx_dropped`) and the per-CPU backlog
 * overflowing. Role: server (long-lived incoming connections; no tcp_tw_reuse).
 */
export const streamingIngest: TuningModel = profile({
  sysctls: {
    // The case raised the per-CPU queue of received packets to 65535 against its backlog
    // overflows. Kernel-wide: not settable inside a container's network namespace.
    "net.core.netdev_max_backlog": 65535,
    // The case's receive buffers: up to 32 MiB, so bursts are buffered rather than dropped.
    "net.core.rmem_max": 33554432,
    "net.ipv4.tcp_rmem": [4096, 87380, 33554432],
    // The case also tuned the send side for its producers; the guide's example file's values.
    "net.core.wmem_max": 33554432,
    "net.ipv4.tcp_wmem": [4096, 65536, 33554432],
    // Streams pause between batches: keep the congestion window across the pause.
    "net.ipv4.tcp_slow_start_after_idle": 0,
  },
  // GRO merges received segments before the stack sees them: fewer packets per second to
  // process at these rates. LRO off: it conflicts with GRO.
  offloads: {
    features: { rx: true, tx: true, sg: true, tso: true, gso: true, gro: true, lro: false },
  },
  // The case set as many RSS queues as the NIC offers, to match the cores: "max", resolved on
  // the host when applied.
  queues: { combined: "max" },
  // ... and pinned the queue interrupts by hand to avoid contention: one core per queue, the
  // NIC's NUMA node first, irqbalance kept off them.
  irq: { policy: "spread", irqbalance: "ban" },
  // Receive drops at the NIC are the symptom here: the largest receive ring the driver has
  // absorbs bursts (more memory, a little more latency: the right trade for ingest).
  rings: { rx: "max" },
});
