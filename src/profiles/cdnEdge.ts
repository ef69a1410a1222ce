import type { TuningModel } from "../resources/networkTuning";
import { profile } from "./model";

/**
 * A CDN edge or caching proxy serving static content to distant clients: the guide's third
 * case (bbr on every node, TIME-WAIT reuse on proxies and origins, buffers per role). Role:
 * proxy (it fetches from origins: tcp_tw_reuse is for it).
 *
 * Jumbo frames, which the case used inside the data centre, are not in the profile: every hop
 * must take them, so add `mtu: { mtu: 9000, verifyPeers: [...] }` on an interface that faces
 * only your own network.
 */
export const cdnEdge: TuningModel = profile({
  sysctls: {
    // Many concurrent client connections: the guide's example file's backlogs.
    "net.core.somaxconn": 65535,
    "net.ipv4.tcp_max_syn_backlog": 16384,
    // The case turned TIME-WAIT reuse on for proxies and origins, against port exhaustion on
    // their connections to origins.
    "net.ipv4.tcp_tw_reuse": 1,
    "net.ipv4.tcp_fin_timeout": 30,
    "net.ipv4.ip_local_port_range": [1024, 65535],
    // The case sized buffers by role, bigger on file servers than on proxies. A proxy gets
    // 16 MiB here, the guide's first step up from the defaults (32 MiB is its large one).
    "net.core.rmem_max": 16777216,
    "net.core.wmem_max": 16777216,
    "net.ipv4.tcp_rmem": [4096, 87380, 16777216],
    "net.ipv4.tcp_wmem": [4096, 65536, 16777216],
    // Kept-alive connections serve objects in bursts: keep the window across idle periods.
    "net.ipv4.tcp_slow_start_after_idle": 0,
    // Internet-facing: SYN cookies stay on (turning them off invites SYN floods).
    "net.ipv4.tcp_syncookies": 1,
  },
  // The case's main change: bbr on every node, for clients far away or on lossy networks;
  // fq paces it at the lowest CPU cost where the host has fq; elsewhere bbr paces by itself.
  congestion: { algorithm: "bbr", qdisc: "fq", qdiscFallback: "none" },
  // Segmentation offloads matter most for a host that sends large objects; LRO off (GRO on).
  offloads: {
    features: { rx: true, tx: true, sg: true, tso: true, gso: true, gro: true, lro: false },
  },
  // One queue per core and each queue interrupt on its own core, the NIC's NUMA node first.
  queues: { combined: "max" },
  irq: { policy: "spread", irqbalance: "ban" },
});
