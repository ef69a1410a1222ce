/**
 * One host tuned from one of the guide's profiles: the API gateway's by default, with the
 * overrides a site needs. NetworkTuning creates only the resources the profile sets, in a safe
 * order (queues, IRQs, offloads, qdisc and congestion control, sysctls, XDP), each depending on
 * the ones before, and `pulumi destroy` undoes them in reverse.
 *
 *   pulumi config set host 10.0.0.1
 *   pulumi config set privateKeyPath ~/.ssh/id_ed25519
 *   pulumi config set hostKey "ssh-ed25519 AAAA..."
 *   pulumi config set interface eth0       # optional; default eth0
 *   pulumi config set profile cdnEdge      # optional: apiGateway (default), streamingIngest,
 *                                          # cdnEdge, lowLatency, guideDefaults
 *   pulumi config set somaxconn 32768      # optional: replaces the profile's value
 *   pulumi config set xdp false            # optional: leave out the profile's XDP program
 *   pulumi config set channels separate    # for NICs with separate rx/tx channels (veth)
 *   pulumi up
 */
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import * as nettune from "nettune";

const config = new pulumi.Config();

const profileName = config.get("profile") ?? "apiGateway";
if (!(profileName in nettune.profiles)) {
  throw new Error(
    `profile: no profile ${profileName}; the profiles are ${Object.keys(nettune.profiles).join(", ")}`,
  );
}
const profile = nettune.profiles[profileName as nettune.ProfileName];

const tuning = new nettune.NetworkTuning("host-1", {
  connection: {
    host: config.require("host"),
    user: config.get("user") ?? "root",
    privateKey: fs.readFileSync(config.require("privateKeyPath"), "utf8"),
    hostKey: config.require("hostKey"),
  },
  interface: config.get("interface") ?? "eth0",
  profile,
  // Merged key by key into the profile's sysctls: unset (undefined), the profile's value stays.
  sysctls: { "net.core.somaxconn": config.getNumber("somaxconn") },
  // null drops a part of the profile; undefined keeps it.
  xdp: config.getBoolean("xdp") === false ? null : undefined,
  // A veth or an older NIC has separate rx and tx channels instead of combined ones.
  queues:
    config.get("channels") === "separate" && profile.queues ? { rx: "max", tx: "max" } : undefined,
});

/** The resources created, in the order they are applied. */
export const resources = tuning.resources.map((r) => r.urn);
/** What the host chose where the profile leaves it to the host: queue counts, IRQ CPUs, modules. */
export const chosen = tuning.chosen;
