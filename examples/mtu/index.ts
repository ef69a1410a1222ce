/**
 * Jumbo frames inside a data centre (the guide's CDN scenario): MTU 9000 on the storage-facing
 * interface, verified end to end against the peers that must agree.
 *
 *   pulumi config set host 10.0.0.1
 *   pulumi config set privateKeyPath ~/.ssh/id_ed25519
 *   pulumi config set hostKey "ssh-ed25519 AAAA..."
 *   pulumi config set --path 'peers[0]' 10.0.0.2
 */
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import * as nettune from "nettune";

const config = new pulumi.Config();

const jumbo = new nettune.Mtu("storage-jumbo", {
  connection: {
    host: config.require("host"),
    privateKey: fs.readFileSync(config.require("privateKeyPath"), "utf8"),
    hostKey: config.require("hostKey"),
  },
  interface: config.get("interface") ?? "eth1",
  mtu: 9000,
  txQueueLength: 10000,
  verifyPeers: config.requireObject<string[]>("peers"),
});

export const originalMtu = jumbo.originalMtu;
export const appliedCommitConfirmed = jumbo.carriesSsh;
