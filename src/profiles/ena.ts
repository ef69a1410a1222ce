import type { TuningModel } from "../resources/networkTuning";
import { apiGateway } from "./apiGateway";
import { profileWithLazy } from "./model";

/**
 * What Amazon's Elastic Network Adapter (ENA, the NIC of current EC2 instances: `ens5` on
 * Debian) allows, as the ENA variant below uses it. Sources: the ENA driver's best-practices
 * guide (amzn-drivers, ENA_Linux_Best_Practices.rst), the EC2 user guide's MTU page, and the
 * in-tree driver's XDP checks (drivers/net/ethernet/amazon/ena/ena_xdp.h, as in Debian 12's 6.1).
 */
export const ENA_LIMITS = Object.freeze({
  /** The MTU EC2's DHCP gives an instance in a VPC (jumbo frames), kept inside the VPC. */
  vpcMtu: 9001,
  /** Traffic through an internet gateway, a VPN or between regions is limited to 1500. */
  internetMtu: 1500,
  /**
   * Native XDP's MTU limit on 4 KiB pages: PAGE_SIZE - 14 Ethernet - 4 FCS - 4 VLAN - 256
   * headroom - 320 skb_shared_info (the figure XdpProgram checks at preview for `ena`).
   */
  xdpMaxMtu: 3498,
  /** The default ring size, rx and tx; rx goes up to 16384 where the instance allows it. */
  defaultRing: 1024,
});

// apiGateway's parts without its XDP program: a rest pattern never reads the lazy `xdp`, so
// loading this module does not need the compiled program either.
const { xdp: _xdp, offloads: _offloads, ...gateway } = apiGateway;

/**
 * The API gateway profile (`apiGateway`) fitted to ENA, for an instance serving the internet:
 *
 * - **offloads**: ENA has no TSO (`tx-tcp-segmentation: off [fixed]` in `ethtool -k`) and LRO is
 *   fixed off, so the profile asks for what ENA can change: checksums, scatter-gather, GSO and
 *   GRO on (GSO does the segmentation in software), LRO off (its fixed state).
 * - **queues** `"max"`: ENA exposes min(vCPUs, the ENI's queue limit: 8 on most instance
 *   types, up to 32 on network-optimised ones) combined channels; one per vCPU is AWS's advice,
 *   and more needs another ENI. Where vCPUs outnumber the queues, add RPS (`steering.rps`) on
 *   the same NUMA node as the queue interrupts.
 * - **irq**: `spread` with irqbalance `ban`: irqbalance keeps running for the other interrupts,
 *   as AWS advises (ENA gives no affinity hints, so a device reset with irqbalance stopped can
 *   leave several queue interrupts on one core).
 * - **rings** rx 4096: ENA's default is 1024; a larger rx ring absorbs short CPU stalls without
 *   drops (the size AWS's guide uses as its example; ENA takes powers of two, and current instance
 *   types report 8192 or 16384 as the rx maximum: NicRings refuses a size above the driver's
 *   maximum at preview). tx stays at the default, which is ENA's tx maximum.
 * - **MTU** not set: the interface keeps what the VPC's DHCP gives (9001 on current instance
 *   types). TCP to the internet negotiates its segment size from the 1500-byte path, so an
 *   internet-facing host works at 9001. Inside a VPC only, override with
 *   `mtu: { mtu: 9001, verifyPeers: [...] }` to pin jumbo frames.
 * - **xdp** the same SYN-flood filter, in `generic` mode: native XDP on ENA (the in-tree driver
 *   of Debian 12) needs the MTU at most 3498 **and** at most half of the maximum channels,
 *   which `"max"` queues and the VPC's 9001 rule out. Generic mode runs on any MTU and queue
 *   count, after the driver builds the packet's skb but before TCP sees it. For native mode,
 *   override all three: `{ mtu: 3498, queues: { combined: <half of ethtool -l's maximum> },
 *   xdp: { ...profiles.apiGatewayEna.xdp, mode: "native" } }`.
 *
 * Role: proxy, as `apiGateway`.
 */
export const apiGatewayEna: TuningModel = profileWithLazy(
  {
    ...gateway,
    offloads: { features: { rx: true, tx: true, sg: true, gso: true, gro: true, lro: false } },
    queues: { combined: "max" },
    rings: { rx: 4096 },
  },
  "xdp",
  () => ({ ...apiGateway.xdp!, mode: "generic" }),
);
