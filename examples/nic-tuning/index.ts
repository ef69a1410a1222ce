/**
 * The guide's NIC layer for a busy server: GRO on and LRO off (LRO breaks forwarding), TSO and
 * GSO on, one RSS queue per core, the largest rings the driver has. Each setting is checked
 * against the driver at preview, verified after apply, re-applied at boot, and undone by
 * `pulumi destroy`.
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
 *   pulumi config set interface eth0                      # default eth0
 *
 * On a sandbox host (`nettune sandbox up`), whose eth0 is a veth with separate rx/tx channels
 * and no rings, set `channels` to `separate` and `rings` to `false`:
 *
 *   pulumi config set channels separate
 *   pulumi config set rings false
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
const iface = config.get("interface") ?? "eth0";

// Receive merging in software, segmentation offloaded: fewer, larger packets through the stack.
const offloads = new nettune.NicOffloads(`${iface}-offloads`, {
  connection,
  interface: iface,
  features: { gro: true, lro: false, tso: true, gso: true, sg: true },
});

// One queue per core spreads interrupts and softirq work over every CPU. Most NICs have
// combined channels; veth and some older NICs have separate rx and tx ones.
const queues =
  config.get("channels") === "separate"
    ? new nettune.RssQueues(`${iface}-rss`, { connection, interface: iface, rx: "max", tx: "max" })
    : new nettune.RssQueues(`${iface}-rss`, { connection, interface: iface, combined: "max" });

// Larger rings absorb bursts that would otherwise be dropped at the NIC. Resizing resets the
// queues on many drivers: the link blinks once.
const rings =
  config.getBoolean("rings") === false
    ? undefined
    : new nettune.NicRings(
        `${iface}-rings`,
        { connection, interface: iface, rx: "max", tx: "max" },
        { dependsOn: [queues] },
      );

export const driver = offloads.driver;
export const offloadsBefore = offloads.originals;
export const channelsBefore = queues.originals;
export const channelsNow = queues.applied;
// null, not undefined, when rings are left alone (`rings: false`): Pulumi drops an undefined
// stack output with the warning "Undefined value (ringsBefore) will not show as a stack output".
export const ringsBefore = rings ? rings.originals : null;
