import type { TuningModel } from "../resources/networkTuning";
import { synFlood } from "../resources/xdpLibrary";
import { profileWithLazy } from "./model";

/**
 * A web or API server that also opens connections to its upstreams (a reverse proxy, an API
 * gateway): the guide's first case, gateways on 4-vCPU, 10 Gbit/s instances that refused
 * connections at about 50,000 requests per second while their listen backlog overflowed.
 * Role: proxy (it opens many outgoing connections, which is what tcp_tw_reuse is for).
 */
export const apiGateway: TuningModel = profileWithLazy(
  {
    sysctls: {
      // The case's fix for refused connections: accept queue raised from 128 to 16384 ...
      "net.core.somaxconn": 16384,
      // ... and half-open connections per listener from 1024 to 8192.
      "net.ipv4.tcp_max_syn_backlog": 8192,
      // Short upstream connections leave many sockets in TIME-WAIT: reuse them for new
      // outgoing connections. It only acts on connections the host opens, which is why the
      // guide keeps it for clients and proxies (and warns against it on servers behind NAT).
      "net.ipv4.tcp_tw_reuse": 1,
      // With tw_reuse in the case: 30 s in FIN-WAIT-2, so ports come back sooner.
      "net.ipv4.tcp_fin_timeout": 30,
      // The guide's ephemeral port range: room for many upstream connections at once.
      "net.ipv4.ip_local_port_range": [1024, 65535],
      // SYN cookies stay on: the guide names turning them off as the way to fall to a SYN flood.
      "net.ipv4.tcp_syncookies": 1,
    },
    // The case set bbr for its clients across the WAN; fq is bbr's recommended qdisc (its
    // pacing at lower CPU cost). Both are loaded as modules where the kernel has them as such;
    // where the host cannot take fq, bbr runs alone (it paces by itself) and preview says so.
    congestion: { algorithm: "bbr", qdisc: "fq", qdiscFallback: "none" },
    // The case's `ethtool -K`: checksums, scatter-gather, TSO, GSO and GRO on, which took much
    // of the segmentation and reassembly work off the CPU; LRO off, as it conflicts with GRO.
    offloads: {
      features: { rx: true, tx: true, sg: true, tso: true, gso: true, gro: true, lro: false },
    },
    // One queue per core, up to what the NIC has: "max" is the driver's maximum, read on the
    // host when applied.
    queues: { combined: "max" },
    // The case kept irqbalance running and pinned the RSS queues to different vCPUs by hand:
    // "spread" gives each queue interrupt its own core (the NIC's NUMA node first), "ban" keeps
    // irqbalance off those interrupts while it balances the rest.
    irq: { policy: "spread", irqbalance: "ban" },
  },
  // The case's XDP program dropped SYN-flood packets in the driver before they reached the
  // stack. Only the web ports are filtered, so SSH never is. A carrier NAT puts many clients
  // behind one address, so the per-source limit is far above what one client needs; SYN
  // cookies remain the defence behind it.
  "xdp",
  () => synFlood({ ports: [80, 443], perSourceRate: 1000, burst: 2000 }),
);
