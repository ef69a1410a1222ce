/**
 * `opts.import` on a nettune resource fails when the resource is declared, saying what to do
 * instead (Pulumi's own error for a dynamic resource is "code must be a string").
 */
import * as pulumi from "@pulumi/pulumi";
import { expect, test } from "vitest";
import * as nettune from "../../src";

const connection = { host: "198.18.1.2", password: "pw" };

test("every resource kind refuses opts.import, naming itself and the way instead", async () => {
  await pulumi.runtime.setMocks(
    {
      newResource: (a) => ({ id: `${a.name}-id`, state: a.inputs as Record<string, unknown> }),
      call: (a) => a.inputs as Record<string, unknown>,
    },
    "project",
    "stack",
  );
  const opts = { import: "198.18.1.2:22/sysctl/90-nettune-web.conf" };
  const declare: [string, () => unknown][] = [
    [
      "SysctlSet",
      () =>
        new nettune.SysctlSet("web", { connection, values: { "net.core.somaxconn": 1024 } }, opts),
    ],
    ["Mtu", () => new nettune.Mtu("m", { connection, interface: "eth0", mtu: 1500 }, opts)],
    [
      "NicOffloads",
      () =>
        new nettune.NicOffloads(
          "o",
          { connection, interface: "eth0", features: { gro: true } },
          opts,
        ),
    ],
    [
      "RssQueues",
      () => new nettune.RssQueues("q", { connection, interface: "eth0", combined: 2 }, opts),
    ],
    ["NicRings", () => new nettune.NicRings("r", { connection, interface: "eth0", rx: 512 }, opts)],
    [
      "CongestionControl",
      () => new nettune.CongestionControl("c", { connection, algorithm: "bbr" }, opts),
    ],
    [
      "IrqAffinity",
      () => new nettune.IrqAffinity("i", { connection, interface: "eth0", policy: "spread" }, opts),
    ],
    [
      "PacketSteering",
      () => new nettune.PacketSteering("p", { connection, interface: "eth0", rps: "0-1" }, opts),
    ],
    [
      "XdpProgram",
      () =>
        new nettune.XdpProgram(
          "x",
          { connection, interface: "eth0", ...nettune.xdp.dropPorts({ tcp: [23] }) },
          opts,
        ),
    ],
  ];
  for (const [kind, make] of declare)
    expect(make, kind).toThrow(
      new RegExp(
        `^${kind} \\w+: opts\\.import is not supported by nettune's resources\\. Declare the resource without it: its create reads the host's current values`,
      ),
    );
});
