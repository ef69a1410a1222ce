/** Test program: SysctlSets and CongestionControls together, for the one-owner rule across kinds. */
import sysctl, { type SetArg } from "./sysctl";
import congestion, { type CongestionArg } from "./congestion";

export default function program(args: {
  sets?: SetArg[];
  ccs?: CongestionArg[];
}): Record<string, unknown> {
  return { ...sysctl({ sets: args.sets ?? [] }), ...congestion({ ccs: args.ccs ?? [] }) };
}
