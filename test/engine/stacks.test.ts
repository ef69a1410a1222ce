/**
 * Ownership across stacks: two stacks of one project on sandbox host 1. A setting one stack
 * owns is refused at the other's preview, naming the owner; stacks with disjoint settings (a
 * SysctlSet and a NicOffloads of the same names in both: each stack's files and units carry its
 * own tag) deploy side by side and, destroyed in either order, leave the host byte-identical:
 * its sysctls, files, units and ownership records.
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

// The same resource names in both stacks, default file and unit names.
const argsA = (): Args => ({
  sets: [{ name: "web", host: direct(host), values: { "net.ipv4.tcp_fin_timeout": 33 } }],
  offloads: [{ name: "offloads", host: direct(host), interface: "eth0", features: { gro: true } }],
});
const argsB = (): Args => ({
  sets: [{ name: "web", host: direct(host), values: { "net.ipv4.tcp_keepalive_time": 777 } }],
  offloads: [{ name: "offloads", host: direct(host), interface: "eth0", features: { tso: false } }],
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
  const fileA = `/etc/sysctl.d/90-nettune-${a.named("web")}.conf`;
  const [sysctl, file, feature] = b.previewEach([
    // A key of the other stack's set, under the same set name.
    { sets: [{ name: "web", host: direct(host), values: { "net.ipv4.tcp_fin_timeout": 44 } }] },
    // Another key, in the file of the other stack's set, named by hand.
    {
      sets: [
        {
          name: "web",
          host: direct(host),
          values: { "net.ipv4.tcp_keepalive_time": 777 },
          fileName: fileA.slice("/etc/sysctl.d/".length),
        },
      ],
    },
    // A feature of the interface the other stack set, under its other name.
    {
      offloads: [
        {
          name: "offloads",
          host: direct(host),
          interface: "eth0",
          features: { "generic-receive-offload": false },
        },
      ],
    },
  ]);
  const text = sysctl!.error ?? "";
  expect(namesField(text, 'values["net.ipv4.tcp_fin_timeout"]')).toBe(true);
  expect(text).toMatch(/sysctl net\.ipv4\.tcp_fin_timeout on \S+ is owned by/);
  expect(text).toContain(`is owned by ${PROJECT}/alpha/SysctlSet web`);
  // Its own file has its own stack's name: not refused.
  expect(namesField(text, "fileName")).toBe(false);
  expect(namesField(file!.error ?? "", "fileName")).toBe(true);
  expect(file!.error).toContain(`file ${fileA}`);
  expect(file!.error).toContain(`owned by ${PROJECT}/alpha/SysctlSet web`);
  expect(namesField(feature!.error ?? "", "features.generic-receive-offload")).toBe(true);
  expect(feature!.error).toContain(`owned by ${PROJECT}/alpha/NicOffloads offloads`);
  // The same NicOffloads name: its unit is its own stack's, so no unit is refused.
  expect(feature!.error).not.toContain("unitName");
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
    // The same resource names, each stack's own file, unit and journal.
    expect(both).toContain(`90-nettune-${a.named("web")}.conf`);
    expect(both).toContain(`90-nettune-${b.named("web")}.conf`);
    const units = await onHost(
      host,
      `systemctl is-enabled ${[a, b].map((s) => `nettune-nicoffloads-${s.named("offloads")}.service`).join(" ")}; ls /var/lib/nettune/originals`,
    );
    expect(units).toMatch(/^enabled\nenabled\n/);
    for (const s of [a, b])
      expect(units).toContain(`offloads-eth0-nettune-nicoffloads-${s.named("offloads")}`);
    // One record per resource and stack: the same name in two stacks, two records.
    expect(both.match(/^SysctlSet-web-[0-9a-f]{8}$/gm)).toHaveLength(2);
    expect(both.match(/^NicOffloads-offloads-[0-9a-f]{8}$/gm)).toHaveLength(2);
    for (const s of order) expect(s.destroy(s === a ? argsA() : argsB()).error).toBeUndefined();
    expect(await snapshot()).toBe(before);
  }
}, 240_000);

test("two stacks running up at the same moment on one key: one wins, the other changes nothing", async () => {
  const before = await snapshot();
  const key = "net.ipv4.tcp_fin_timeout";
  const on = (value: number): Args => ({
    sets: [{ name: "race", host: direct(host), values: { [key]: value } }],
  });
  // Both checks read the host before either apply claims the key: the claim, under a lock on
  // the host, is what refuses the second.
  const [[ra], [rb]] = await Promise.all([
    a.runStepsAsync([{ op: "up", args: on(41) }]),
    b.runStepsAsync([{ op: "up", args: on(42) }]),
  ]);
  const results = [ra!, rb!];
  const won = results.filter((r) => r.error === undefined);
  const lost = results.filter((r) => r.error !== undefined);
  expect(won).toHaveLength(1);
  expect(lost).toHaveLength(1);
  // Refused at its check (the winner's record was there) or at its claim (it was not yet).
  expect(lost[0]!.error).toMatch(
    /sysctl net\.ipv4\.tcp_fin_timeout on \S+ is owned by nettune-test-stacks\/(alpha|beta)\/SysctlSet race/,
  );
  const winner = won[0] === ra ? a : b;
  const value = winner === a ? 41 : 42;
  expect((await onHost(host, `cat /proc/sys/net/ipv4/tcp_fin_timeout`)).trim()).toBe(String(value));
  expect(await onHost(host, "ls /var/lib/nettune/owners")).toMatch(
    /^SysctlSet-race-[0-9a-f]{8}\n$/,
  );
  // The loser's state has nothing; each stack's destroy leaves the host as it was.
  for (const s of [a, b]) expect(s.destroy(on(s === a ? 41 : 42)).error).toBeUndefined();
  expect(await snapshot()).toBe(before);
}, 240_000);
