/**
 * Test program for upgrades: an Mtu, a CongestionControl and a SysctlSet on one sandbox host,
 * the three kinds whose outputs were renamed. It runs the nettune installed in the folder the
 * stack runs in (its resource classes and its provider), as a user's program runs the release
 * in its node_modules.
 */
import * as path from "node:path";
import type * as Nettune from "nettune";
import { connectionOf, type HostArg } from "./sysctl";

/**
 * The nettune installed in `project`, not this checkout's (which `require("nettune")` from this
 * file finds first, however it is asked: a package resolves its own name to itself).
 */
function installed(project: string): typeof Nettune {
  return require(path.join(project, "node_modules", "nettune")) as typeof Nettune;
}

export interface UpgradeArgs {
  host: HostArg;
  /** An interface of the host the test made for this (a veth), for Mtu and the root qdisc. */
  interface: string;
  /** The project folder whose node_modules has the nettune to run. */
  project: string;
}

export default function program(args: UpgradeArgs): Record<string, unknown> {
  const nettune = installed(args.project);
  const connection = connectionOf(args.host);
  new nettune.Mtu("upg-mtu", {
    connection,
    interface: args.interface,
    mtu: 1400,
    txQueueLength: 2000,
  });
  new nettune.CongestionControl("upg-cc", {
    connection,
    algorithm: "reno",
    qdisc: "pfifo_fast",
    interfaces: [args.interface],
  });
  new nettune.SysctlSet("upg-sysctl", {
    connection,
    values: { "net.ipv4.tcp_fin_timeout": 44, "net.ipv4.tcp_rmem": [4096, 65536, 4194304] },
  });
  // The test reads outputs from the state: their names differ between releases.
  return {};
}
