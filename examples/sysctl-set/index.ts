/**
 * A SysctlSet for a busy API server, as in the guide's "API gateway" scenario.
 *
 *   pulumi config set host 198.18.1.2
 *   pulumi config set privateKeyPath ~/.ssh/id_ed25519
 *   pulumi config set hostKey "$(ssh-keyscan -t ed25519 198.18.1.2 2>/dev/null | cut -d' ' -f2-)"
 *   pulumi up
 */
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import * as nettune from "nettune";

const config = new pulumi.Config();

const connection = {
  host: config.require("host"),
  user: config.get("user") ?? "root",
  privateKey: fs.readFileSync(config.require("privateKeyPath"), "utf8"),
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
    "net.ipv4.tcp_congestion_control": "bbr",
  },
  // The gateway is reached directly, not through NAT; set true if it is.
  behindNat: false,
});

export const originals = gateway.originals;
export const file = gateway.filePath;
