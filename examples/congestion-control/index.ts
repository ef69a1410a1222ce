/**
 * bbr for a server that sends to distant clients (the guide's WAN scenario): bbr as the
 * algorithm of new connections, fq as the default qdisc and as the root qdisc of the
 * internet-facing interface. On a kernel without fq, set `qdisc` to one it has (preview lists
 * them): bbr then paces by itself.
 *
 *   pulumi config set host 10.0.0.1
 *   pulumi config set privateKeyPath ~/.ssh/id_ed25519
 *   pulumi config set hostKey "ssh-ed25519 AAAA..."
 *   pulumi config set interface eth1      # optional; default eth0
 */
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import * as nettune from "nettune";

const config = new pulumi.Config();

const bbr = new nettune.CongestionControl("wan-bbr", {
  connection: {
    host: config.require("host"),
    privateKey: fs.readFileSync(config.require("privateKeyPath"), "utf8"),
    hostKey: config.require("hostKey"),
  },
  algorithm: "bbr",
  qdisc: config.get("qdisc") ?? "fq",
  interfaces: [config.get("interface") ?? "eth0"],
});

/** What a TCP connection opened on the host after the change got: "bbr". */
export const observedAlgorithm = bbr.observedAlgorithm;
/** What destroy puts back. */
export const originalAlgorithm = bbr.originalAlgorithm;
export const originalQdiscs = bbr.originalQdiscs;
