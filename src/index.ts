/**
 * nettune: Pulumi resources that tune the Linux network stack of real hosts over SSH.
 */
export { SysctlSet, type SysctlSetArgs, type SysctlValues } from "./resources/sysctlSet";
export { Mtu, type MtuArgs } from "./resources/mtu";
export { NicOffloads, type NicOffloadsArgs, type NicFeatures } from "./resources/nicOffloads";
export { RssQueues, type RssQueuesArgs, type RssIndirection } from "./resources/rssQueues";
export { NicRings, type NicRingsArgs } from "./resources/nicRings";
export {
  IrqAffinity,
  type IrqAffinityArgs,
  type IrqPolicy,
  type IrqPin,
} from "./resources/irqAffinity";
export {
  PacketSteering,
  type PacketSteeringArgs,
  type QueueCpuList,
  type RfsArgs,
  type XpsArgs,
} from "./resources/packetSteering";
export {
  CongestionControl,
  type CongestionControlArgs,
  type SavedQdisc,
} from "./resources/congestionControl";
export {
  XdpProgram,
  type XdpProgramArgs,
  type XdpProgramSource,
  type XdpAttached,
  type XdpConstants,
  type XdpConstantValue,
} from "./resources/xdpProgram";
/** The XDP program library: `nettune.xdp.synFlood(…)`, `dropPorts(…)`, `allowList(…)`. */
export * as xdp from "./resources/xdpLibrary";
export {
  NetworkTuning,
  mergeTuning,
  checkTuning,
  TUNING_ORDER,
  type NetworkTuningArgs,
  type TuningModel,
  type TuningOverrides,
  type SysctlOverrides,
  type TuningPart,
  type TuningField,
  type TuningKind,
  type TuningStep,
  type TuningProblem,
  type TuningChoices,
} from "./resources/networkTuning";
export {
  cloudInit,
  renderCloudInit,
  USER_DATA_MAX_BYTES,
  type CloudInitArgs,
  type CloudInitRendering,
} from "./resources/cloudInit";
/** Tuning profiles from the guide's scenarios: `nettune.profiles.apiGateway`, … */
export { profiles, type ProfileName } from "./profiles";
export type { ConnectionArgs, ProxyConnectionArgs } from "./resources/connection";
export type { SysctlValue } from "./schemas/publicTypes";
export { SYSCTL_CATALOGUE, type SysctlKeyInfo } from "./resources/sysctlCatalogue";
export {
  parsers,
  ParseError,
  type EthtoolFeatures,
  type EthtoolFeature,
  type EthtoolChannels,
  type EthtoolChannelCounts,
  type EthtoolRings,
  type EthtoolRingSizes,
  type EthtoolRss,
  type EthtoolDriverInfo,
  type IpLink,
} from "./parsers";
export type { TcQdisc } from "./host/tc";
