/**
 * Jumbo frames inside a data centre (the guide's CDN scenario): MTU 9000 on the storage-facing
 * interface, verified end to end against the peers that must agree. When the SSH session runs
 * over that interface (as on a sandbox host), the change is applied commit-confirmed: a host
 * that stops answering at the new MTU puts the old one back by itself.
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
 *   pulumi config set interface eth1                      # default eth0 (a sandbox host's)
 *   pulumi config set --path 'peers[0]' 10.0.0.2          # optional: peers that must carry 9000
 *
 * Leave `peers` unset on a sandbox host: the other end of its veth (198.18.1.1) keeps MTU 1500,
 * so a 9000-byte ping to it fails and the change is rolled back.
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

const jumbo = new nettune.Mtu("storage-jumbo", {
  connection,
  interface: config.get("interface") ?? "eth0",
  mtu: 9000,
  txQueueLength: 10000,
  // Pinged with the don't-fragment bit at the new size after the change; none by default.
  verifyPeers: config.getObject<string[]>("peers") ?? [],
});

/** What destroy puts back. */
export const originals = jumbo.originals;
/** true when the SSH session ran over the interface, so the change was commit-confirmed. */
export const appliedCommitConfirmed = jumbo.carriesSsh;
