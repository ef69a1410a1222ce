/**
 * The guide's NIC layer for a busy server: GRO on and LRO off (LRO breaks forwarding), TSO and
 * GSO on, one RSS queue per core, the largest rings the driver has. Each setting is checked
 * against the driver at preview, verified after apply, re-applied at boot, and undone by
 * `pulumi destroy`.
 *
 *   pulumi config set host 198.18.1.2
 *   pulumi config set privateKeyPath ~/.ssh/id_ed25519
 *   pulumi config set hostKey "$(ssh-keyscan -t ed25519 198.18.1.2 2>/dev/null | cut -d' ' -f2-)"
 *   pulumi config set interface eth0
 *   pulumi up
 *
 * On a sandbox host (`nettune sandbox up`), whose eth0 is a veth with separate rx/tx channels
 * and no rings, set `channels` to `separate` and `rings` to `false`.
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
export const ringsBefore = rings?.originals;
