// A user's program as `pulumi new typescript` lays it out (index.ts beside the template's
// tsconfig.json), tuning a host that the same program creates: the cloud use case. Machine
// stands in for a cloud instance and its generated key (`aws.ec2.Instance`'s `publicIp`,
// `tls.PrivateKey`'s `privateKeyOpenssh`): outputs known only once it is created, and secret.
// The test compiles it against nettune as `npm pack` ships it (test/engine/newproject.test.ts).
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import * as nettune from "nettune";

interface MachineInputs {
  address: string;
  keyFile: string;
}

const machineProvider: pulumi.dynamic.ResourceProvider = {
  create: (inputs: MachineInputs) =>
    Promise.resolve({
      id: `machine-${inputs.address}`,
      outs: {
        ...inputs,
        publicIp: inputs.address,
        privateKeyOpenssh: fs.readFileSync(inputs.keyFile, "utf8"),
      },
    }),
};

class Machine extends pulumi.dynamic.Resource {
  declare public readonly publicIp: pulumi.Output<string>;
  declare public readonly privateKeyOpenssh: pulumi.Output<string>;

  constructor(
    name: string,
    args: { address: pulumi.Input<string>; keyFile: pulumi.Input<string> },
  ) {
    super(
      machineProvider,
      name,
      { ...args, publicIp: undefined, privateKeyOpenssh: undefined },
      {
        additionalSecretOutputs: ["publicIp", "privateKeyOpenssh"],
      },
    );
  }
}

const config = new pulumi.Config();
const machine = new Machine("vm", {
  address: config.require("address"),
  keyFile: config.require("keyFile"),
});

// Connection fields straight from another resource's outputs, beside plain values.
const connection: nettune.ConnectionArgs = {
  host: machine.publicIp,
  port: config.requireNumber("port"),
  user: config.get("user") ?? "root",
  privateKey: machine.privateKeyOpenssh,
  hostKey: config.require("hostKey"),
};

const tuned = new nettune.SysctlSet("tuned", {
  connection,
  values: {
    "net.core.somaxconn": config.requireNumber("somaxconn"),
    "net.ipv4.tcp_rmem": [4096, 87380, 33554432],
  },
});

// A second set of the same key on the same host: the one-owner rule must see that both
// connections name one host, though the host is an Output.
if (config.getBoolean("duplicate")) {
  new nettune.SysctlSet("again", {
    connection: pulumi.output(connection),
    values: { "net.core.somaxconn": 1024 },
  });
}

export const applied = tuned.applied;
export const originals = tuned.originals;
