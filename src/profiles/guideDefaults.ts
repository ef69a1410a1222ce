import type { TuningModel } from "../resources/networkTuning";
import { profile } from "./model";

/**
 * The guide's example `/etc/sysctl.d/99-network-optimizations.conf` (its section "Kernel
 * Parameter Configuration"), each value through the resource that owns it. Two departures, both
 * from the guide's own advice:
 *
 * - `tcp_congestion_control = bbr` is `congestion`, not a sysctl: CongestionControl owns the key
 *   (it checks that the host offers bbr and loads the module where bbr is one).
 * - `tcp_tw_reuse = 1` is left out: the guide keeps it for hosts that open many connections
 *   (clients, proxies) and warns against it on servers behind NAT; the `apiGateway` and
 *   `cdnEdge` profiles set it, and `sysctls: { "net.ipv4.tcp_tw_reuse": 1 }` adds it here.
 *
 * Kernel parameters only: no NIC, IRQ or XDP part.
 */
export const guideDefaults: TuningModel = profile({
  sysctls: {
    // Accept queue of each listening socket: raised to 65535 so a burst of connections waits
    // for accept() instead of being refused.
    "net.core.somaxconn": 65535,
    // Connections still in the handshake (SYN received) per listener: 16384.
    "net.ipv4.tcp_max_syn_backlog": 16384,
    // The largest buffers a socket may ask for: 32 MiB each way.
    "net.core.rmem_max": 33554432,
    "net.core.wmem_max": 33554432,
    // Buffers a socket gets without asking: 16 MiB each way.
    "net.core.rmem_default": 16777216,
    "net.core.wmem_default": 16777216,
    // TCP's autotuning range [min, default, max]: up to 32 MiB, so a path with a large
    // bandwidth-delay product can keep its window full.
    "net.ipv4.tcp_rmem": [4096, 87380, 33554432],
    "net.ipv4.tcp_wmem": [4096, 65536, 33554432],
    // 30 s in FIN-WAIT-2 instead of the kernel's 60: closed connections give their port back
    // sooner.
    "net.ipv4.tcp_fin_timeout": 30,
    // Ephemeral ports 1024-65535: more outgoing connections before the ports run out.
    "net.ipv4.ip_local_port_range": [1024, 65535],
    // A connection idle for a while keeps its congestion window instead of starting slow
    // again: short exchanges on kept-alive connections go at full speed.
    "net.ipv4.tcp_slow_start_after_idle": 0,
    // Received packets a CPU may queue before the stack takes them: 16384. Kernel-wide: not
    // settable inside a container's network namespace.
    "net.core.netdev_max_backlog": 16384,
  },
  // The file's tcp_congestion_control = bbr. It sets no qdisc, so the preview warns that fq is
  // bbr's recommended pairing: add qdisc "fq" where the kernel has it.
  congestion: { algorithm: "bbr" },
});
