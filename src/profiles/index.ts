/**
 * Tuning profiles from the guide's scenarios: plain, frozen tuning models to pass as
 * NetworkTuning's `profile` or to spread and override (`{ ...profiles.apiGateway, mtu: 9000 }`).
 * Each knob says why in a comment; docs/NetworkTuning.md lists them with the guide's figures.
 */
import { apiGateway } from "./apiGateway";
import { cdnEdge } from "./cdnEdge";
import { apiGatewayEna } from "./ena";
import { guideDefaults } from "./guideDefaults";
import { lowLatency } from "./lowLatency";
import { streamingIngest } from "./streamingIngest";

export const profiles = Object.freeze({
  apiGateway,
  streamingIngest,
  cdnEdge,
  lowLatency,
  guideDefaults,
  apiGatewayEna,
});

export type ProfileName = keyof typeof profiles;

/**
 * Who each profile is for. A "proxy" opens many outgoing connections (upstreams, origins) and
 * is where tcp_tw_reuse belongs; a "server" mainly accepts them, and may sit behind NAT, where
 * the guide warns tcp_tw_reuse can break connections.
 */
export const PROFILE_ROLES: Readonly<Record<ProfileName, "server" | "proxy">> = Object.freeze({
  apiGateway: "proxy",
  streamingIngest: "server",
  cdnEdge: "proxy",
  lowLatency: "server",
  guideDefaults: "server",
  apiGatewayEna: "proxy",
});
export { apiGatewayEna, ENA_LIMITS } from "./ena";
