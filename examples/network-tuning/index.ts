/**
 * One host tuned from one of the guide's profiles: the API gateway's by default, with the
 * overrides a site needs. NetworkTuning creates only the resources the profile sets, in a safe
 * order (queues, IRQs, offloads, qdisc and congestion control, sysctls, XDP), each depending on
 * the ones before, and `pulumi destroy` undoes them in reverse.
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
 *   pulumi config set interface eth0       # optional; default eth0
 *   pulumi config set profile cdnEdge      # optional: apiGateway (default), streamingIngest,
 *                                          # cdnEdge, lowLatency, guideDefaults, apiGatewayEna
 *   pulumi config set somaxconn 32768      # optional: replaces the profile's value
 *   pulumi config set xdp false            # optional: leave out the profile's XDP program
 *   pulumi config set irq false            # optional: leave out the profile's IRQ pinning
 *   pulumi config set qdisc pfifo_fast     # optional: replaces the qdisc of the profile's
 *                                          # congestion control, and is set as the
 *                                          # interface's root qdisc
 *   pulumi config set channels separate    # for NICs with separate rx/tx channels (veth)
 *
 * A sandbox host (`nettune sandbox up`) has a veth (separate channels, no queue interrupts, no
 * XDP object built unless `npm run setup` ran) and a kernel without fq: there set
 * `channels separate`, `irq false`, `xdp false` and `qdisc pfifo_fast`. A VM sandbox host
 * (`nettune sandbox up --vm`) has a virtio NIC with queue interrupts and fq.
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

const profileName = config.get("profile") ?? "apiGateway";
if (!(profileName in nettune.profiles)) {
  throw new Error(
    `profile: no profile ${profileName}; the profiles are ${Object.keys(nettune.profiles).join(", ")}`,
  );
}
const profile = nettune.profiles[profileName as nettune.ProfileName];
const iface = config.get("interface") ?? "eth0";
const qdisc = config.get("qdisc");

const tuning = new nettune.NetworkTuning("host-1", {
  connection,
  interface: iface,
  profile,
  // Merged key by key into the profile's sysctls: unset (undefined), the profile's value stays.
  sysctls: { "net.core.somaxconn": config.getNumber("somaxconn") },
  // null drops a part of the profile; undefined keeps it.
  xdp: config.getBoolean("xdp") === false ? null : undefined,
  irq: config.getBoolean("irq") === false ? null : undefined,
  // Another qdisc for the profile's congestion control, set as the interface's root qdisc too
  // (inside a container's network namespace there is no default qdisc to set).
  congestion:
    qdisc && profile.congestion ? { ...profile.congestion, qdisc, interfaces: [iface] } : undefined,
  // A veth or an older NIC has separate rx and tx channels instead of combined ones.
  queues:
    config.get("channels") === "separate" && profile.queues ? { rx: "max", tx: "max" } : undefined,
});

/** The resources created, in the order they are applied. */
export const resources = tuning.resources.map((r) => r.urn);
/** What the host chose where the profile leaves it to the host: queue counts, IRQ CPUs, modules. */
export const chosen = tuning.chosen;
