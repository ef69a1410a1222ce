import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import * as nettune from "nettune";

const config = new pulumi.Config();

// How to reach the host over SSH: the fields of @pulumi/command's remote.ConnectionArgs, each a
// pulumi.Input (a cloud instance's publicIp works as host). Stored as a secret in the state.
const connection: nettune.ConnectionArgs = {
  host: config.require("host"),
  port: config.getNumber("port") ?? 22,
  user: config.get("user") ?? "root",
  // The key's text, not its path: `pulumi config set --secret privateKey "$(cat key)"`, or read
  // from the file privateKeyPath names.
  privateKey:
    config.getSecret("privateKey") ?? fs.readFileSync(config.require("privateKeyPath"), "utf8"),
  // The host's key, pinned: a host presenting another key is refused.
  hostKey: config.require("hostKey"),
};
const iface = config.get("interface") ?? "eth0";

// Kernel parameters. `pulumi preview` shows each key's change; `pulumi up` applies them
// all-or-nothing and writes /etc/sysctl.d/90-nettune-sysctls-<tag>.conf so they survive a reboot;
// `pulumi destroy` puts back the values the host had.
const sysctls = new nettune.SysctlSet("sysctls", {
  connection,
  values: {
    // Longer accept and SYN queues: bursts of connections wait instead of being refused.
    "net.core.somaxconn": 16384,
    "net.ipv4.tcp_max_syn_backlog": 8192,
    // TCP's buffer autotuning range [min, default, max]: up to 32 MiB for long fat paths.
    "net.ipv4.tcp_rmem": [4096, 87380, 33554432],
    "net.ipv4.tcp_wmem": [4096, 65536, 33554432],
  },
});

// One interface's tuning from a plain model: NetworkTuning creates one resource per part it is
// given (queues, IRQs, rings, offloads, MTU, congestion control, sysctls, XDP), in a safe order.
// A setting has one owner per host, so leave the kernel parameters above out of it.
const nic = new nettune.NetworkTuning(iface, {
  connection,
  interface: iface,
  // GRO and the segmentation offloads on, LRO off (it breaks forwarding and conflicts with GRO).
  offloads: { features: { gro: true, lro: false, tso: true, gso: true } },
  // Or start from one of the guide's scenarios and override parts of it:
  //   profile: nettune.profiles.apiGateway,
  //   sysctls: null,                      // kernel parameters stay with the SysctlSet above
  //   xdp: null,                          // leave out the profile's XDP program
  //   congestion: { algorithm: "bbr", qdisc: "fq" },
});

/** Each key's value before the first `pulumi up`: what destroy puts back. */
export const originalSysctls = sysctls.originals;
/** The resources NetworkTuning created, in the order they are applied. */
export const tuned = nic.resources.map((r) => r.urn);
