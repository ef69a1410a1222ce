/**
 * examples/aws-tuned-instance under Pulumi's mocks (`pulumi.runtime.setMocks`): the resource
 * graph the program registers, without a cloud. The AWS and TLS providers never run: the mocks
 * answer for them (an instance gets a public IP, a key gets key text, getAmi an image id). What
 * is checked is what the program sends: the instance's user data is nettune's cloud-init
 * rendering of the profile plus the host key, the tuning connects to the instance's public IP
 * as "admin" with the generated key (secret) and pins the generated host key, NetworkTuning
 * and its children depend on the instance, SSH is open to the configured CIDR only, and nothing
 * else is created. These are the project's only mocked tests (docs/cloud.md says why).
 */
import * as pulumi from "@pulumi/pulumi";
import { MockMonitor } from "@pulumi/pulumi/runtime/mocks";
import { deserializeProperties } from "@pulumi/pulumi/runtime/rpc";
import { beforeAll, describe, expect, test, vi } from "vitest";
import { cloudInit } from "../../src/resources/cloudInit";
import { TUNING_ORDER, checkTuning, type TuningModel } from "../../src/resources/networkTuning";
import * as example from "../../examples/aws-tuned-instance/tunedInstance";
import { profiles } from "../../src/profiles";
import { apiGatewayEna, ENA_LIMITS } from "../../src/profiles/ena";

// The example imports the package by name, as a user's program does; here that is the source.
vi.mock("nettune", () => vi.importActual("../../src/index"));

const SIG = "4dabf18193072939515e22adb298388d";
const SSH_CIDR = "203.0.113.7/32";
const PUBLIC_IP = "198.51.100.20";
const AMI = "ami-0d3b1a2c4e5f60789";

/** Key text the mocked tls.PrivateKey returns, per resource name. */
const keyText = (name: string) => ({
  privateKeyOpenssh: `-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA${name}\n-----END OPENSSH PRIVATE KEY-----\n`,
  publicKeyOpenssh: `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${Buffer.from(name).toString("base64")}\n`,
});

interface Registration {
  type: string;
  name: string;
  urn: string;
  parent: string;
  dependencies: string[];
  /** Inputs with secrets unwrapped. */
  inputs: Record<string, unknown>;
  /** The input fields that were sent as secrets. */
  secretFields: string[];
}
const registrations: Registration[] = [];
const calls: { token: string; args: Record<string, unknown> }[] = [];

function unwrap(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(unwrap);
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (SIG in o && "value" in o) return unwrap(o.value);
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, unwrap(x)]));
  }
  return v;
}
const isSecretValue = (v: unknown) => v !== null && typeof v === "object" && SIG in v;

function urnOf(parent: string, type: string, name: string): string {
  const qualified = parent ? `${parent.split("::")[2]!.split("$").pop()}$${type}` : type;
  return `urn:pulumi:stack::project::${qualified}::${name}`;
}

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getDependenciesList(): string[];
  getObject(): unknown;
}

/** Records every registration as the engine would get it (the mocks hide dependencies). */
function recordRegistrations(): void {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called on its monitor below
  const original = MockMonitor.prototype.registerResource;
  MockMonitor.prototype.registerResource = function (
    this: MockMonitor,
    req: RegisterRequest,
    callback: unknown,
  ) {
    const object = req.getObject() as Parameters<typeof deserializeProperties>[0];
    const { __provider: _p, ...raw } = deserializeProperties(object) as Record<string, unknown>;
    registrations.push({
      type: req.getType(),
      name: req.getName(),
      urn: urnOf(req.getParent(), req.getType(), req.getName()),
      parent: req.getParent(),
      dependencies: req.getDependenciesList(),
      inputs: unwrap(raw) as Record<string, unknown>,
      secretFields: Object.keys(raw).filter((k) => isSecretValue(raw[k])),
    });
    return (original as (r: unknown, c: unknown) => Promise<void>).call(this, req, callback);
  };
}

function valueOf<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

const one = (type: string) => {
  const found = registrations.filter((r) => r.type === type);
  expect(found, type).toHaveLength(1);
  return found[0]!;
};
const named = (name: string) => {
  const r = registrations.find((x) => x.name === name);
  if (!r) throw new Error(`${name} was not registered`);
  return r;
};

let tuned: example.TunedInstance;
const PROFILE: TuningModel = apiGatewayEna;

beforeAll(async () => {
  recordRegistrations();
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const inputs = args.inputs as Record<string, unknown>;
        const state: Record<string, unknown> = { ...inputs };
        if (args.type === "aws:ec2/instance:Instance") {
          Object.assign(state, { publicIp: PUBLIC_IP, privateIp: "10.80.1.10" });
        }
        if (args.type === "tls:index/privateKey:PrivateKey")
          Object.assign(state, keyText(args.name));
        if (args.type === "aws:ec2/keyPair:KeyPair") state.keyName = `${args.name}-0123`;
        return { id: `${args.name}-id`, state };
      },
      call(args) {
        calls.push({ token: args.token, args: args.inputs as Record<string, unknown> });
        if (args.token === "aws:ec2/getAmi:getAmi") {
          return { id: AMI, imageId: AMI, name: "debian-12-amd64-20260101-2000" };
        }
        return args.inputs as Record<string, unknown>;
      },
    },
    "project",
    "stack",
    false,
  );
  tuned = example.tunedInstance("edge", { sshCidr: SSH_CIDR, profile: PROFILE });
  const all: pulumi.Resource[] = [
    tuned.vpc,
    tuned.subnet,
    tuned.securityGroup,
    tuned.sshKey,
    tuned.hostKey,
    tuned.keyPair,
    tuned.instance,
    tuned.tuning,
    ...tuned.tuning.resources,
  ];
  await Promise.all(all.map((r) => valueOf(r.urn)));
  await valueOf(tuned.instance.userData);
});

describe("the instance", () => {
  test("user data: nettune's cloud-init rendering of the profile, unchanged, then the host key", async () => {
    const userData = (await valueOf(tuned.instance.userData))!;
    const sent = one("aws:ec2/instance:Instance").inputs.userData as string;
    expect(sent).toBe(userData);
    const [tuning, hostKeyPart, ...rest] = example.userDataParts(userData);
    expect(rest).toEqual([]);
    // Under the NetworkTuning's name: the rendering's files and units are its children's.
    const rendering = cloudInit({ name: "edge-tuning", interface: "ens5", profile: PROFILE });
    expect(tuning).toBe(rendering.endsWith("\n") ? rendering : `${rendering}\n`);
    const host = keyText("edge-host-key");
    const indented = host.privateKeyOpenssh
      .trimEnd()
      .split("\n")
      .map((l) => `    ${l}`)
      .join("\n");
    expect(hostKeyPart).toBe(
      `#cloud-config\nssh_keys:\n  ed25519_private: |\n${indented}\n` +
        `  ed25519_public: ${host.publicKeyOpenssh.trim()}\n`,
    );
    // It holds the host's private key: sent as a secret, so the state keeps it encrypted.
    expect(one("aws:ec2/instance:Instance").secretFields).toContain("userData");
  });

  test("Debian 12 from Debian's account, on an ENA instance type, with the generated key pair", () => {
    const inst = one("aws:ec2/instance:Instance").inputs;
    expect(inst.ami).toBe(AMI);
    expect(inst.instanceType).toBe("c6i.large");
    expect(inst.keyName).toBe("edge-key-0123");
    expect(inst.subnetId).toBe("edge-subnet-id");
    expect(inst.vpcSecurityGroupIds).toEqual(["edge-sg-id"]);
    expect(inst.metadataOptions).toMatchObject({ httpTokens: "required" });
    // Booted once its subnet routes to the internet, so SSH reaches it.
    expect(one("aws:ec2/instance:Instance").dependencies).toContain(
      one("aws:ec2/routeTableAssociation:RouteTableAssociation").urn,
    );
    const ami = calls.filter((c) => c.token === "aws:ec2/getAmi:getAmi");
    expect(ami).toHaveLength(1);
    expect(ami[0]!.args).toMatchObject({
      mostRecent: true,
      owners: [example.DEBIAN_AMI_OWNER],
      filters: expect.arrayContaining([
        { name: "name", values: ["debian-12-amd64-*"] },
        { name: "architecture", values: ["x86_64"] },
      ]) as unknown,
    });
    expect(one("aws:ec2/keyPair:KeyPair").inputs.publicKey).toBe(
      keyText("edge-ssh-key").publicKeyOpenssh,
    );
    for (const k of registrations.filter((r) => r.type === "tls:index/privateKey:PrivateKey"))
      expect(k.inputs.algorithm).toBe("ED25519");
  });

  test("the security group lets SSH in from the configured CIDR only", () => {
    const sg = one("aws:ec2/securityGroup:SecurityGroup").inputs;
    const ingress = sg.ingress as {
      protocol: string;
      fromPort: number;
      toPort: number;
      cidrBlocks: string[];
    }[];
    const ssh = ingress.filter(
      (r) => (r.protocol === "tcp" || r.protocol === "-1") && r.fromPort <= 22 && r.toPort >= 22,
    );
    expect(ssh).toHaveLength(1);
    expect(ssh[0]).toMatchObject({ protocol: "tcp", fromPort: 22, toPort: 22 });
    expect(ssh[0]!.cidrBlocks).toEqual([SSH_CIDR]);
    // The only other rule: ICMP "fragmentation needed" (type 3, code 4) for path MTU discovery.
    expect(ingress.filter((r) => r !== ssh[0])).toEqual([
      expect.objectContaining({ protocol: "icmp", fromPort: 3, toPort: 4 }),
    ]);
    expect(sg.vpcId).toBe("edge-vpc-id");
  });
});

describe("the tuning", () => {
  test("connects to the instance's public IP as admin, with the generated key and the pinned host key", async () => {
    const expected = {
      host: PUBLIC_IP,
      user: "admin",
      sudo: true,
      privateKey: keyText("edge-ssh-key").privateKeyOpenssh,
      hostKey: keyText("edge-host-key").publicKeyOpenssh,
      waitForCloudInit: true,
    };
    const children = registrations.filter((r) => r.parent === named("edge-tuning").urn);
    expect(children.length).toBeGreaterThan(0);
    for (const c of children) {
      expect(c.inputs.connection, c.name).toMatchObject(expected);
      // nettune stores the whole connection as a secret.
      expect(c.secretFields, c.name).toContain("connection");
    }
    // The private key is a secret before nettune sees it.
    expect(await pulumi.isSecret(pulumi.output(tuned.connection.privateKey))).toBe(true);
  });

  test("the profile's parts, one child each, on ens5", () => {
    const children = registrations.filter((r) => r.parent === named("edge-tuning").urn);
    const steps = TUNING_ORDER.filter((s) => s.fields.some((f) => PROFILE[f] !== undefined));
    expect(children.map((c) => c.name)).toEqual(steps.map((s) => `edge-tuning-${s.child}`));
    for (const c of children.filter((x) => "interface" in x.inputs))
      expect(c.inputs.interface, c.name).toBe("ens5");
  });

  test("NetworkTuning and each of its children depend on the instance", () => {
    const instance = one("aws:ec2/instance:Instance");
    expect(named("edge-tuning").dependencies).toContain(instance.urn);
    for (const c of registrations.filter((r) => r.parent === named("edge-tuning").urn))
      expect(c.dependencies, c.name).toContain(instance.urn);
  });
});

test("nothing else is created", () => {
  const steps = TUNING_ORDER.filter((s) => s.fields.some((f) => PROFILE[f] !== undefined));
  const expected = [
    "aws:ec2/vpc:Vpc edge-vpc",
    "aws:ec2/internetGateway:InternetGateway edge-igw",
    "aws:ec2/subnet:Subnet edge-subnet",
    "aws:ec2/routeTable:RouteTable edge-routes",
    "aws:ec2/routeTableAssociation:RouteTableAssociation edge-routes-subnet",
    "aws:ec2/securityGroup:SecurityGroup edge-sg",
    "tls:index/privateKey:PrivateKey edge-ssh-key",
    "tls:index/privateKey:PrivateKey edge-host-key",
    "aws:ec2/keyPair:KeyPair edge-key",
    "aws:ec2/instance:Instance edge-instance",
    "nettune:index:NetworkTuning edge-tuning",
    ...steps.map((s) => `pulumi-nodejs:dynamic/nettune:${s.kind} edge-tuning-${s.child}`),
  ];
  const made = registrations
    .filter((r) => !r.type.startsWith("pulumi:providers:"))
    .map((r) => `${r.type} ${r.name}`);
  expect([...made].sort()).toEqual([...expected].sort());
  expect(calls.map((c) => c.token)).toEqual(["aws:ec2/getAmi:getAmi"]);
});

describe("profiles.apiGatewayEna", () => {
  test("passes NetworkTuning's checks and every child's schema", () => {
    expect(
      checkTuning("ena", {
        connection: { host: "192.0.2.1" },
        interface: "ens5",
        profile: apiGatewayEna,
      }).problems,
    ).toEqual([]);
  });

  test("asks ENA only for what it can change, and keeps XDP within ENA's limits", () => {
    const features = apiGatewayEna.offloads?.features as Record<string, unknown>;
    // TSO is fixed off on ENA; LRO only in its fixed state.
    expect(features).not.toHaveProperty("tso");
    expect(features.lro).toBe(false);
    expect(features.gro).toBe(true);
    expect(apiGatewayEna.queues).toEqual({ combined: "max" });
    const rx = apiGatewayEna.rings?.rx as number;
    expect(Math.log2(rx) % 1).toBe(0); // ENA takes powers of two
    expect(rx).toBeGreaterThan(ENA_LIMITS.defaultRing);
    // Native XDP on ENA needs the MTU at most 3498 and at most half the channels: with "max"
    // queues the program runs in generic mode, which has neither limit.
    const xdp = apiGatewayEna.xdp!;
    expect(xdp.mode).toBe("generic");
    expect(xdp.programName).toBe(profiles.apiGateway.xdp!.programName);
    expect(xdp.constants).toEqual(profiles.apiGateway.xdp!.constants);
    const mtu = apiGatewayEna.mtu;
    if (xdp.mode === "native") {
      expect(typeof mtu === "object" ? mtu.mtu : mtu).toBeLessThanOrEqual(ENA_LIMITS.xdpMaxMtu);
    } else expect(mtu).toBeUndefined(); // the VPC's 9001 stays: jumbo inside, TCP's MSS outside
    // The rest is the API gateway's.
    expect(apiGatewayEna.sysctls).toEqual(profiles.apiGateway.sysctls);
    expect(apiGatewayEna.congestion).toEqual(profiles.apiGateway.congestion);
    expect(apiGatewayEna.irq).toEqual(profiles.apiGateway.irq);
    expect(Object.isFrozen(apiGatewayEna)).toBe(true);
  });
});
