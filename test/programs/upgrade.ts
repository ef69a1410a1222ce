/**
 * Test program for upgrades: an Mtu, a CongestionControl and a SysctlSet on one sandbox host,
 * the three kinds whose outputs were renamed. Its resources' inputs are the same in every
 * release; the provider that runs them is the nettune installed where the stack runs.
 */
import * as nettune from "nettune";
import { connectionOf, type HostArg } from "./sysctl";

export interface UpgradeArgs {
  host: HostArg;
  /** An interface of the host the test made for this (a veth), for Mtu and the root qdisc. */
  interface: string;
}

export default function program(args: UpgradeArgs): Record<string, unknown> {
  const connection = connectionOf(args.host);
  const mtu = new nettune.Mtu("upg-mtu", {
    connection,
    interface: args.interface,
    mtu: 1400,
    txQueueLength: 2000,
  });
  const cc = new nettune.CongestionControl("upg-cc", {
    connection,
    algorithm: "reno",
    qdisc: "pfifo_fast",
    interfaces: [args.interface],
  });
  const sysctl = new nettune.SysctlSet("upg-sysctl", {
    connection,
    values: { "net.ipv4.tcp_fin_timeout": 44, "net.ipv4.tcp_rmem": [4096, 65536, 4194304] },
  });
  return {
    mtuOriginals: mtu.originals,
    mtuUnitPath: mtu.unitPath,
    ccOriginals: cc.originals,
    ccUnitPaths: cc.unitPaths,
    ccFilePath: cc.filePath,
    sysctlOriginals: sysctl.originals,
  };
}
