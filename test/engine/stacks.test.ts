/**
 * Ownership across stacks: two stacks of one project on sandbox host 1. A setting one stack
 * owns is refused at the other's preview, naming the owner; stacks with disjoint settings (the
 * same SysctlSet name in both) deploy side by side and, destroyed in either order, leave the
 * host byte-identical: its sysctls, files, units and ownership records.
 */
import { afterAll, beforeAll, expect, test } from "vitest";
import { EngineStack } from "../helpers/engine";
import { namesField } from "../helpers/checkErrors";
import { onHost } from "../helpers/hostShell";
import { direct, sandboxHosts } from "../helpers/sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import type { SetArg } from "../programs/sysctl";
import type { StackOffloadsArg } from "../programs/stacks";

const PROJECT = "nettune-test-stacks";
const KEYS = ["net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_time", "net.core.somaxconn"];

let host: SandboxHost;
let a: EngineStack;
let b: EngineStack;

/** What the stacks may touch, as bytes: sysctls, eth0's features, files, units, records. */
function snapshot(): Promise<string> {
  const sysctls = KEYS.map(
    (k) => `printf '%s=%s\\n' ${k} "$(cat /proc/sys/${k.replace(/\./g, "/")})"`,
  );
  return onHost(
    host,
    [
      ...sysctls,
      "ethtool -k eth0",
      "for d in /etc/sysctl.d /etc/systemd/system /var/lib/nettune; do [ -e $d ] && find $d | sort; done",
      "find /etc/sysctl.d /etc/systemd/system /var/lib/nettune -type f -exec sha256sum {} + 2>/dev/null | sort",
    ].join("\n"),
  );
}

type Args = { sets?: SetArg[]; offloads?: StackOffloadsArg[] };

const argsA = (): Args => ({
  sets: [
    {
      name: "web",
      host: direct(host),
      values: { "net.ipv4.tcp_fin_timeout": 33 },
      fileName: "90-nettune-web-a.conf",
    },
  ],
  offloads: [
    { name: "a-offloads", host: direct(host), interface: "eth0", features: { gro: true } },
  ],
});
const argsB = (): Args => ({
  sets: [
    {
      name: "web",
      host: direct(host),
      values: { "net.ipv4.tcp_keepalive_time": 777 },
      fileName: "90-nettune-web-b.conf",
    },
  ],
  offloads: [
    { name: "b-offloads", host: direct(host), interface: "eth0", features: { tso: false } },
  ],
});

beforeAll(() => {
  host = sandboxHosts()[0]!;
  a = new EngineStack("stacks", "alpha");
  b = new EngineStack("stacks", "beta");
});
afterAll(() => {
  for (const [s, args] of [
    [b, argsB()],
    [a, argsA()],
  ] as const) {
    s.destroy(args);
    s.dispose();
  }
});

test("a setting another stack owns is refused at preview, naming the field and the owner", async () => {
  const before = await snapshot();
  expect(a.up(argsA()).error).toBeUndefined();
  // The engine stops a preview at its first refused resource: one preview per case.
  const [sysctl, feature, unit] = b.previewEach([
    // A key and the file of the other stack's set, under the same set name.
    {
      sets: [
        {
          name: "web",
          host: direct(host),
          values: { "net.ipv4.tcp_fin_timeout": 44 },
          fileName: "90-nettune-web-a.conf",
        },
      ],
    },
    // A feature of the interface the other stack set, under its other name.
    {
      offloads: [
        {
          name: "b-offloads",
          host: direct(host),
          interface: "eth0",
          features: { "generic-receive-offload": false },
        },
      ],
    },
    // Another feature, but the same resource name: its unit would be the other stack's.
    {
      offloads: [
        { name: "a-offloads", host: direct(host), interface: "eth0", features: { tso: false } },
      ],
    },
  ]);
  const text = sysctl!.error ?? "";
  expect(namesField(text, 'values["net.ipv4.tcp_fin_timeout"]')).toBe(true);
  expect(text).toMatch(/sysctl net\.ipv4\.tcp_fin_timeout on \S+ is owned by/);
  expect(text).toContain(`is owned by ${PROJECT}/alpha/SysctlSet web`);
  expect(namesField(text, "fileName")).toBe(true);
  expect(text).toContain("file /etc/sysctl.d/90-nettune-web-a.conf");
  expect(namesField(feature!.error ?? "", "features.generic-receive-offload")).toBe(true);
  expect(feature!.error).toContain(`owned by ${PROJECT}/alpha/NicOffloads a-offloads`);
  expect(namesField(unit!.error ?? "", "unitName")).toBe(true);
  expect(unit!.error).toContain("unit nettune-nicoffloads-a-offloads.service");
  expect(unit!.error).not.toContain("features.tso");
  // Another stack's preview changed nothing; the owner's own preview is not refused.
  expect(a.preview(argsA()).error).toBeUndefined();
  expect(a.destroy(argsA()).error).toBeUndefined();
  expect(await snapshot()).toBe(before);
});

test("disjoint stacks deploy side by side and destroy in either order back to the same bytes", async () => {
  const before = await snapshot();
  for (const order of [
    [a, b],
    [b, a],
  ] as const) {
    expect(a.up(argsA()).error).toBeUndefined();
    expect(b.up(argsB()).error).toBeUndefined();
    const both = await onHost(
      host,
      "cat /proc/sys/net/ipv4/tcp_fin_timeout /proc/sys/net/ipv4/tcp_keepalive_time; ls /etc/sysctl.d /var/lib/nettune/owners",
    );
    expect(both).toMatch(/^33\n777\n/);
    expect(both).toContain("90-nettune-web-a.conf");
    expect(both).toContain("90-nettune-web-b.conf");
    // One record per resource and stack: the same name in two stacks, two records.
    expect(both.match(/^SysctlSet-web-[0-9a-f]{8}$/gm)).toHaveLength(2);
    for (const s of order) expect(s.destroy(s === a ? argsA() : argsB()).error).toBeUndefined();
    expect(await snapshot()).toBe(before);
  }
}, 240_000);
