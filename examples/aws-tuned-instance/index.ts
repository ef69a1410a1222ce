/**
 * A Debian 12 instance on an ENA instance type, tuned with nettune: cloud-init applies the
 * tuning at first boot, and NetworkTuning keeps it over SSH. The graph is in tunedInstance.ts.
 *
 *   pulumi config set aws:region us-east-1
 *   pulumi config set sshCidr 203.0.113.7/32        # your address: the only one SSH accepts
 *   pulumi config set instanceType c6in.large       # optional; default c6i.large
 *   pulumi config set availabilityZone us-east-1a   # optional; one that offers the type
 *   pulumi config set profile lowLatency            # optional; default apiGatewayEna
 *   pulumi up
 */
import * as pulumi from "@pulumi/pulumi";
import * as nettune from "nettune";
import { tunedInstance } from "./tunedInstance";

const config = new pulumi.Config();

// ENA's variant of the API gateway profile by default; any of nettune.profiles by name.
const profileName = config.get("profile") ?? "apiGatewayEna";
if (!(profileName in nettune.profiles)) {
  throw new Error(
    `profile: no profile ${profileName}; the profiles are ${Object.keys(nettune.profiles).join(", ")}`,
  );
}

const tuned = tunedInstance("edge", {
  sshCidr: config.require("sshCidr"),
  instanceType: config.get("instanceType"),
  availabilityZone: config.get("availabilityZone"),
  profile: nettune.profiles[profileName as nettune.ProfileName],
});

export const publicIp = tuned.instance.publicIp;
export const ssh = pulumi.interpolate`ssh -i edge.key admin@${tuned.instance.publicIp}`;
/** `pulumi stack output sshPrivateKey --show-secrets > edge.key && chmod 600 edge.key` */
export const sshPrivateKey = pulumi.secret(tuned.sshKey.privateKeyOpenssh);
/** The pinned host key: add it to known_hosts to ssh without a prompt. */
export const hostKey = tuned.hostKey.publicKeyOpenssh;
/** What the instance chose where the profile leaves it to the host ("max" queues, IRQ CPUs). */
export const chosen = tuned.tuning.chosen;
