/**
 * A SysctlSet for a busy API server, as in the guide's "API gateway" scenario: longer accept
 * and SYN queues, ports freed sooner. `pulumi destroy` puts back the values the host had.
 *
 * The connection comes from the stack's configuration; the defaults are host1 of
 * `nettune sandbox up` (README.md says how to set them for another host):
 *
 *   pulumi config set hostKey "ssh-ed25519 AAAA..."       # required: the host's key, pinned
 *   pulumi config set host 198.18.1.2                     # default 198.18.1.2
 *   pulumi config set port 22                             # default 22
 *   pulumi config set user root                           # default root
 *   pulumi config set privateKeyPath ~/.ssh/id_ed25519    # default: the sandbox's key
 *   pulumi config set --secret privateKey "$(cat key)"    # instead of privateKeyPath
 */
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import * as nettune from "nettune";

const config = new pulumi.Config();

const connection: nettune.ConnectionArgs = {
  host: config.get("host") ?? "198.18.1.2",
  port: config.getNumber("port") ?? 22,
  user: config.get("user") ?? "root",
  // The key's text, not its path: a secret in the configuration, or read from a file here.
  privateKey:
    config.getSecret("privateKey") ??
    fs.readFileSync(
      config.get("privateKeyPath") ?? "/var/lib/nettune/sandbox/nettune/id_ed25519",
      "utf8",
    ),
  hostKey: config.require("hostKey"),
};

const gateway = new nettune.SysctlSet("api-gateway", {
  connection,
  values: {
    // Connection-refused under load: longer accept and SYN queues.
    "net.core.somaxconn": 16384,
    "net.ipv4.tcp_max_syn_backlog": 8192,
    // Many short connections: free ports faster.
    "net.ipv4.tcp_tw_reuse": 1,
    "net.ipv4.tcp_fin_timeout": 30,
    "net.ipv4.ip_local_port_range": [1024, 65535],
    // The congestion control algorithm is not set here: CongestionControl owns
    // net.ipv4.tcp_congestion_control (examples/congestion-control), and a setting has one
    // owner per host.
  },
  // The gateway is reached directly, not through NAT; set true if it is.
  behindNat: false,
});

/** What destroy puts back: each key's value before the first `pulumi up`. */
export const originals = gateway.originals;
/** The sysctl.d file that re-applies the values at boot. */
export const file = gateway.filePath;
