/**
 * nettune: Pulumi resources that tune the Linux network stack of real hosts over SSH.
 */
export { SysctlSet, type SysctlSetArgs, type SysctlValues } from "./resources/sysctlSet";
export type { ConnectionArgs } from "./schemas/connection";
export type { SysctlValue } from "./schemas/sysctl";
export { SYSCTL_CATALOGUE } from "./schemas/sysctl";
