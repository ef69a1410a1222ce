/**
 * A tuned EC2 instance: a VPC with one public subnet, a security group that lets SSH in from one
 * CIDR, a generated key pair, a Debian 12 instance on an ENA instance type whose user data
 * applies a nettune tuning model at first boot (`nettune.cloudInit`: what fits in user data),
 * and a `NetworkTuning` of the same model over SSH that takes it over, applies the rest, shows
 * drift on `pulumi refresh` and restores the originals on `pulumi destroy`.
 *
 * The SSH host key is generated here and installed by cloud-init, so the connection pins it
 * before the instance exists (no trust on first use, no reading the console).
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import * as nettune from "nettune";

/** Debian's AWS account, which publishes the official Debian AMIs. */
export const DEBIAN_AMI_OWNER = "136693071363";

export interface TunedInstanceArgs {
  /** Who may reach SSH (port 22), e.g. `203.0.113.7/32`. Nothing else gets in but ICMP's "fragmentation needed". */
  readonly sshCidr: string;
  /** The tuning model, e.g. `nettune.profiles.apiGatewayEna`; applied by cloud-init and by SSH. */
  readonly profile: nettune.TuningModel;
  /** An instance type with ENA (current generations). Default `c6i.large`. */
  readonly instanceType?: string;
  /** The NIC's name on the instance: Debian names the first ENA interface `ens5`. */
  readonly interface?: string;
  /** The availability zone of the subnet (one where the instance type is offered). Default: AWS picks. */
  readonly availabilityZone?: string;
}

export interface TunedInstance {
  readonly vpc: aws.ec2.Vpc;
  readonly subnet: aws.ec2.Subnet;
  readonly securityGroup: aws.ec2.SecurityGroup;
  /** The client key nettune logs in with (and you, with `pulumi stack output`). */
  readonly sshKey: tls.PrivateKey;
  /** The instance's SSH host key, installed by cloud-init and pinned by the connection. */
  readonly hostKey: tls.PrivateKey;
  readonly keyPair: aws.ec2.KeyPair;
  readonly instance: aws.ec2.Instance;
  /** The connection every nettune resource of the instance uses. */
  readonly connection: nettune.ConnectionArgs;
  readonly tuning: nettune.NetworkTuning;
}

/**
 * The instance's user data: the cloud-config nettune renders, untouched, and a second
 * cloud-config part that installs the SSH host key (cloud-init's `ssh_keys`), as one MIME
 * multipart document. cloud-init merges the two parts; they share no key.
 */
export function userDataWithHostKey(
  tuningConfig: string,
  hostPrivateKey: string,
  hostPublicKey: string,
): string {
  const boundary = "==nettune-user-data==";
  const indented = hostPrivateKey
    .trimEnd()
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");
  const hostKeyConfig = [
    "#cloud-config",
    "ssh_keys:",
    "  ed25519_private: |",
    indented,
    `  ed25519_public: ${hostPublicKey.trim()}`,
    "",
  ].join("\n");
  const part = (body: string) =>
    [
      `--${boundary}`,
      'Content-Type: text/cloud-config; charset="utf-8"',
      "MIME-Version: 1.0",
      "",
      body.endsWith("\n") ? body : `${body}\n`,
    ].join("\n");
  return [
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    "MIME-Version: 1.0",
    "",
    part(tuningConfig) + part(hostKeyConfig) + `--${boundary}--`,
    "",
  ].join("\n");
}

/** The parts of a user data document made by {@link userDataWithHostKey}, in order. */
export function userDataParts(userData: string): string[] {
  const boundary = /boundary="([^"]+)"/.exec(userData)?.[1];
  if (!boundary) throw new Error("not a multipart user data document");
  const [, ...rest] = userData.split(`--${boundary}`);
  return rest.filter((p) => !p.startsWith("--")).map((p) => p.slice(p.indexOf("\n\n") + 2));
}

/** A tuned Debian 12 instance on ENA; see the module's comment. */
export function tunedInstance(name: string, args: TunedInstanceArgs): TunedInstance {
  const iface = args.interface ?? "ens5";
  const tags = { Name: name };

  const vpc = new aws.ec2.Vpc(`${name}-vpc`, {
    cidrBlock: "10.80.0.0/16",
    enableDnsHostnames: true,
    tags,
  });
  const gateway = new aws.ec2.InternetGateway(`${name}-igw`, { vpcId: vpc.id, tags });
  const subnet = new aws.ec2.Subnet(`${name}-subnet`, {
    vpcId: vpc.id,
    cidrBlock: "10.80.1.0/24",
    availabilityZone: args.availabilityZone,
    mapPublicIpOnLaunch: true,
    tags,
  });
  const routes = new aws.ec2.RouteTable(`${name}-routes`, {
    vpcId: vpc.id,
    routes: [{ cidrBlock: "0.0.0.0/0", gatewayId: gateway.id }],
    tags,
  });
  const association = new aws.ec2.RouteTableAssociation(`${name}-routes-subnet`, {
    subnetId: subnet.id,
    routeTableId: routes.id,
  });
  const securityGroup = new aws.ec2.SecurityGroup(`${name}-sg`, {
    vpcId: vpc.id,
    // Fixed: a changed description would replace the group.
    description: "SSH from one CIDR, ICMP for path MTU discovery",
    ingress: [
      {
        description: "SSH (nettune and you)",
        protocol: "tcp",
        fromPort: 22,
        toPort: 22,
        cidrBlocks: [args.sshCidr],
      },
      // Path MTU discovery: the instance runs at the VPC's 9001 and learns the smaller MTU of
      // a path from ICMP "fragmentation needed" (type 3, code 4), as AWS's MTU guide advises.
      {
        description: "ICMP fragmentation needed (path MTU discovery)",
        protocol: "icmp",
        fromPort: 3,
        toPort: 4,
        cidrBlocks: ["0.0.0.0/0"],
      },
    ],
    egress: [{ protocol: "-1", fromPort: 0, toPort: 0, cidrBlocks: ["0.0.0.0/0"] }],
    tags,
  });

  const sshKey = new tls.PrivateKey(`${name}-ssh-key`, { algorithm: "ED25519" });
  const hostKey = new tls.PrivateKey(`${name}-host-key`, { algorithm: "ED25519" });
  const keyPair = new aws.ec2.KeyPair(`${name}-key`, { publicKey: sshKey.publicKeyOpenssh, tags });

  const ami = aws.ec2.getAmiOutput({
    mostRecent: true,
    owners: [DEBIAN_AMI_OWNER],
    filters: [
      { name: "name", values: ["debian-12-amd64-*"] },
      { name: "architecture", values: ["x86_64"] },
      { name: "virtualization-type", values: ["hvm"] },
    ],
  });

  // The same model twice: rendered for cloud-init here, applied over SSH below. The rendering's
  // files and units carry the NetworkTuning's name, so the tuning takes them over as its own.
  const tuningName = `${name}-tuning`;
  const tuningConfig = nettune.cloudInit({
    name: tuningName,
    interface: iface,
    profile: args.profile,
  });
  // A secret: it holds the host's private key, so the state keeps it encrypted.
  const userData = pulumi.secret(
    pulumi.all([hostKey.privateKeyOpenssh, hostKey.publicKeyOpenssh]).apply(([priv, pub]) => {
      const doc = userDataWithHostKey(tuningConfig, priv, pub);
      const size = Buffer.byteLength(doc);
      if (size > nettune.USER_DATA_MAX_BYTES) {
        throw new Error(
          `${name}: the user data is ${size} bytes; EC2 takes at most ${nettune.USER_DATA_MAX_BYTES}`,
        );
      }
      return doc;
    }),
  );

  const instance = new aws.ec2.Instance(
    `${name}-instance`,
    {
      ami: ami.id,
      instanceType: args.instanceType ?? "c6i.large",
      subnetId: subnet.id,
      vpcSecurityGroupIds: [securityGroup.id],
      keyName: keyPair.keyName,
      userData,
      // A new model means a new first boot: cloud-init applies user data once per instance.
      userDataReplaceOnChange: true,
      metadataOptions: { httpTokens: "required" },
      tags,
    },
    // Reachable over SSH as soon as it boots: the subnet routes to the internet gateway first.
    { dependsOn: [association] },
  );

  const connection: nettune.ConnectionArgs = {
    host: instance.publicIp,
    // Debian's cloud images log in as "admin", with passwordless sudo.
    user: "admin",
    sudo: true,
    privateKey: pulumi.secret(sshKey.privateKeyOpenssh),
    hostKey: hostKey.publicKeyOpenssh,
    // The first dials happen while the instance boots ...
    dialErrorLimit: 40,
    // ... and nothing is read before cloud-init has applied the user data: the tuning then finds
    // what cloud-init set in place, and changes only what user data cannot carry (IRQs, XDP).
    waitForCloudInit: true,
  };

  const tuning = new nettune.NetworkTuning(
    tuningName,
    { connection, interface: iface, profile: args.profile },
    { dependsOn: [instance] },
  );

  return { vpc, subnet, securityGroup, sshKey, hostKey, keyPair, instance, connection, tuning };
}
