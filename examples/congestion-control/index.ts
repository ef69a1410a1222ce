/**
 * bbr for a server that sends to distant clients (the guide's WAN scenario): bbr as the
 * algorithm of new connections, and `qdisc` as the default qdisc and the root qdisc of the
 * internet-facing interface: fq, bbr's recommended pairing, unless configured otherwise.
 *
 * `qdisc` must be one the host's kernel has; preview fails on one it lacks, listing those it
 * has. A sandbox host (`nettune sandbox up`) has no fq: there set `qdisc` to pfifo_fast, and
 * bbr paces by itself (nothing warns: the kernel offers no fq to pair it with). VM sandbox hosts
 * (`nettune sandbox up --vm`) have fq.
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
 *   pulumi config set qdisc pfifo_fast                    # default fq; pfifo_fast on a sandbox
 *   pulumi config set interface eth1                      # default eth0
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

const bbr = new nettune.CongestionControl("wan-bbr", {
  connection,
  algorithm: "bbr",
  qdisc: config.get("qdisc") ?? "fq",
  // Inside a container's network namespace (a sandbox host) net.core.default_qdisc does not
  // exist: only the interfaces listed here get the qdisc.
  interfaces: [config.get("interface") ?? "eth0"],
});

/** What a TCP connection opened on the host after the change got: "bbr". */
export const observedAlgorithm = bbr.observedAlgorithm;
/** What destroy puts back. */
export const originals = bbr.originals;
