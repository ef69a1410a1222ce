/**
 * SysctlSet through the real Pulumi engine against a sandbox host over SSH.
 */
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EngineStack, resourceOps } from "../helpers/engine";
import { namesField } from "../helpers/checkErrors";
import { liveSysctls, onHost, procSysNet } from "../helpers/hostShell";
import { cli, direct, sandboxHosts, SANDBOX } from "../helpers/sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";

const TYPE = "pulumi-nodejs:dynamic/nettune:SysctlSet";
const KEYS = [
  "net.core.somaxconn",
  "net.ipv4.tcp_fin_timeout",
  "net.ipv4.tcp_rmem",
  "net.ipv4.tcp_max_syn_backlog",
];

let host: SandboxHost;
beforeAll(() => {
  host = sandboxHosts()[0]!;
});

function program(values: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { sets: [{ name: "web", host: direct(host), values, ...extra }] };
}

describe("SysctlSet lifecycle", () => {
  const stack = new EngineStack("sysctl", "lifecycle");
  let originals: Record<string, string>;
  afterAll(() => {
    stack.destroy(program({ "net.core.somaxconn": 1 }));
    stack.dispose();
  });

  test("up applies the values, writes the sysctl.d file and records the originals", async () => {
    originals = await liveSysctls(host, KEYS);
    const r = stack.up(
      program({
        "net.core.somaxconn": 65535,
        "net.ipv4.tcp_fin_timeout": 30,
        "net.ipv4.tcp_rmem": [4096, 87380, 33554432],
        "net.ipv4.tcp_max_syn_backlog": 16384,
      }),
    );
    expect(r.error).toBeUndefined();
    expect(r.changes.create).toBe(2);
    expect(await liveSysctls(host, KEYS)).toEqual({
      "net.core.somaxconn": "65535",
      "net.ipv4.tcp_fin_timeout": "30",
      "net.ipv4.tcp_rmem": "4096 87380 33554432",
      "net.ipv4.tcp_max_syn_backlog": "16384",
    });
    // Typed as the values are: numbers, and a triplet as a list.
    expect(r.outputs.web_originals).toEqual({
      "net.core.somaxconn": Number(originals["net.core.somaxconn"]),
      "net.ipv4.tcp_fin_timeout": Number(originals["net.ipv4.tcp_fin_timeout"]),
      "net.ipv4.tcp_rmem": originals["net.ipv4.tcp_rmem"]!.split(" ").map(Number),
      "net.ipv4.tcp_max_syn_backlog": Number(originals["net.ipv4.tcp_max_syn_backlog"]),
    });
    const file = await onHost(host, `cat /etc/sysctl.d/90-nettune-${stack.named("web")}.conf`);
    expect(file).toContain("net.core.somaxconn = 65535");
    expect(file).toContain("net.ipv4.tcp_rmem = 4096 87380 33554432");
  });

  test("a second preview and up change nothing", () => {
    const args = program({
      "net.core.somaxconn": 65535,
      "net.ipv4.tcp_fin_timeout": 30,
      "net.ipv4.tcp_rmem": [4096, 87380, 33554432],
      "net.ipv4.tcp_max_syn_backlog": 16384,
    });
    const p = stack.preview(args);
    expect(p.error).toBeUndefined();
    expect(p.changes).toEqual({ same: 2 });
    const u = stack.up(args);
    expect(u.changes).toEqual({ same: 2 });
  });

  test("editing one value previews exactly that key as old => new", async () => {
    const args = program({
      "net.core.somaxconn": 32768,
      "net.ipv4.tcp_fin_timeout": 30,
      "net.ipv4.tcp_rmem": [4096, 87380, 33554432],
      "net.ipv4.tcp_max_syn_backlog": 16384,
    });
    const p = stack.preview(args);
    expect(p.changes).toEqual({ same: 1, update: 1 });
    // The resource's part of the preview (stack outputs repeat the values below it).
    const resourcePart = p.stdout.split("--outputs:--")[0]!;
    const changed = resourcePart.split("\n").filter((l) => /^\s*[-+~] net\./.test(l));
    expect(changed).toHaveLength(1);
    expect(changed[0]).toMatch(/~ net\.core\.somaxconn\s*: 65535 => 32768/);
    // Preview never changes the host.
    expect((await liveSysctls(host, ["net.core.somaxconn"]))["net.core.somaxconn"]).toBe("65535");
    const u = stack.up(args);
    expect(u.changes).toEqual({ same: 1, update: 1 });
    expect((await liveSysctls(host, ["net.core.somaxconn"]))["net.core.somaxconn"]).toBe("32768");
  });

  test("removing a key restores its original value and drops it from the file", async () => {
    const r = stack.up(
      program({
        "net.core.somaxconn": 32768,
        "net.ipv4.tcp_rmem": [4096, 87380, 33554432],
        "net.ipv4.tcp_max_syn_backlog": 16384,
      }),
    );
    expect(r.error).toBeUndefined();
    const live = await liveSysctls(host, ["net.ipv4.tcp_fin_timeout"]);
    expect(live["net.ipv4.tcp_fin_timeout"]).toBe(originals["net.ipv4.tcp_fin_timeout"]);
    expect(
      await onHost(host, `cat /etc/sysctl.d/90-nettune-${stack.named("web")}.conf`),
    ).not.toContain("tcp_fin_timeout");
  });

  test("a change behind Pulumi's back shows as drift on refresh and is repaired by up", async () => {
    await onHost(host, "sysctl -q -w net.core.somaxconn=1111");
    const args = program({
      "net.core.somaxconn": 32768,
      "net.ipv4.tcp_rmem": [4096, 87380, 33554432],
      "net.ipv4.tcp_max_syn_backlog": 16384,
    });
    const r = stack.refresh(args);
    expect(r.error).toBeUndefined();
    expect(r.changes.update).toBe(1);
    const refreshed = r.events.find((e) => e.type === "outputs" && e.resourceType === TYPE);
    expect((refreshed?.newOutputs?.values as Record<string, unknown>)["net.core.somaxconn"]).toBe(
      1111,
    );
    const p = stack.preview(args);
    expect(p.stdout).toMatch(/~ net\.core\.somaxconn\s*: 1111 => 32768/);
    stack.up(args);
    expect((await liveSysctls(host, ["net.core.somaxconn"]))["net.core.somaxconn"]).toBe("32768");
  });

  test("destroy restores every original value and removes the sysctl.d file", async () => {
    const r = stack.destroy(program({ "net.core.somaxconn": 1 }));
    expect(r.error).toBeUndefined();
    expect(r.changes.delete).toBe(2);
    expect(await liveSysctls(host, KEYS)).toEqual(originals);
    expect((await onHost(host, "ls /etc/sysctl.d/")).split(/\s+/)).not.toContain(
      `90-nettune-${stack.named("web")}.conf`,
    );
  });
});

describe("SysctlSet all-or-nothing", () => {
  test("a key the kernel rejects leaves the host exactly as before and the error names it", async () => {
    const stack = new EngineStack("sysctl", "atomic");
    try {
      const before = await procSysNet(host);
      const files = await onHost(host, "ls /etc/sysctl.d/");
      // ip_default_ttl accepts 1-255; the kernel refuses 300 with EINVAL after the first keys were written.
      const r = stack.up(
        program({
          "net.core.somaxconn": 12345,
          "net.ipv4.tcp_fin_timeout": 17,
          "net.ipv4.ip_default_ttl": 300,
          "net.ipv4.tcp_max_syn_backlog": 4321,
        }),
      );
      expect(r.ok).toBe(false);
      expect(r.error).toMatch(/sysctl net\.ipv4\.ip_default_ttl: the kernel rejected the value/);
      expect(r.error).toMatch(/Invalid argument/);
      expect(r.error).toMatch(/nothing was changed/);
      expect(await procSysNet(host)).toEqual(before);
      expect(await onHost(host, "ls /etc/sysctl.d/")).toEqual(files);
    } finally {
      stack.destroy(program({ "net.core.somaxconn": 1 }));
      stack.dispose();
    }
  });
});

describe("SysctlSet persistence across a real reboot", () => {
  test.each([
    ["both", true],
    ["runtime", false],
  ] as const)("persist %s: after reboot the declared values are %s", async (persist, kept) => {
    const h = sandboxHosts()[1]!;
    const stack = new EngineStack("sysctl", `persist-${persist}`);
    const args = {
      sets: [
        {
          name: "boot",
          host: direct(h),
          values: { "net.core.somaxconn": 23456, "net.ipv4.tcp_fin_timeout": 21 },
          persist,
        },
      ],
    };
    try {
      const defaults = await liveSysctls(h, ["net.core.somaxconn", "net.ipv4.tcp_fin_timeout"]);
      expect(stack.up(args).error).toBeUndefined();
      cli(["sandbox", "reboot", "host2", "--name", SANDBOX]);
      const after = await liveSysctls(h, ["net.core.somaxconn", "net.ipv4.tcp_fin_timeout"]);
      if (kept)
        expect(after).toEqual({ "net.core.somaxconn": "23456", "net.ipv4.tcp_fin_timeout": "21" });
      else expect(after).toEqual(defaults);
      const d = stack.destroy(args);
      expect(d.error).toBeUndefined();
      // Destroy plus reboot gives the kernel defaults back.
      cli(["sandbox", "reboot", "host2", "--name", SANDBOX]);
      expect(await liveSysctls(h, ["net.core.somaxconn", "net.ipv4.tcp_fin_timeout"])).toEqual(
        defaults,
      );
    } finally {
      stack.dispose();
    }
  });
});

describe("SysctlSet bad input fails at preview with the host untouched", () => {
  const bad: Array<[string, Record<string, unknown>, string]> = [
    ["string for integer", { "net.core.somaxconn": "lots" }, 'values["net.core.somaxconn"]'],
    ["negative", { "net.core.somaxconn": -1 }, 'values["net.core.somaxconn"]'],
    [
      "zero backlog",
      { "net.ipv4.tcp_max_syn_backlog": 0 },
      'values["net.ipv4.tcp_max_syn_backlog"]',
    ],
    ["float", { "net.core.somaxconn": 1.5 }, 'values["net.core.somaxconn"]'],
    ["too large", { "net.core.somaxconn": 2 ** 40 }, 'values["net.core.somaxconn"]'],
    ["tw_reuse 3", { "net.ipv4.tcp_tw_reuse": 3 }, 'values["net.ipv4.tcp_tw_reuse"]'],
    ["bool for 0/1", { "net.ipv4.tcp_sack": true }, 'values["net.ipv4.tcp_sack"]'],
    ["sack 2", { "net.ipv4.tcp_sack": 2 }, 'values["net.ipv4.tcp_sack"]'],
    ["fin_timeout 0", { "net.ipv4.tcp_fin_timeout": 0 }, 'values["net.ipv4.tcp_fin_timeout"]'],
    [
      "fin_timeout 9999",
      { "net.ipv4.tcp_fin_timeout": 9999 },
      'values["net.ipv4.tcp_fin_timeout"]',
    ],
    [
      "rmem min > default",
      { "net.ipv4.tcp_rmem": [90000, 87380, 33554432] },
      'values["net.ipv4.tcp_rmem"]',
    ],
    [
      "rmem default > max",
      { "net.ipv4.tcp_rmem": [4096, 87380, 8192] },
      'values["net.ipv4.tcp_rmem"]',
    ],
    ["rmem two numbers", { "net.ipv4.tcp_rmem": [4096, 87380] }, 'values["net.ipv4.tcp_rmem"]'],
    [
      "wmem as string",
      { "net.ipv4.tcp_wmem": "4096 65536 33554432" },
      'values["net.ipv4.tcp_wmem"]',
    ],
    ["tcp_mem negative", { "net.ipv4.tcp_mem": [-1, 2, 3] }, 'values["net.ipv4.tcp_mem"]'],
    [
      "port range reversed",
      { "net.ipv4.ip_local_port_range": [65535, 1024] },
      'values["net.ipv4.ip_local_port_range"]',
    ],
    [
      "port range equal",
      { "net.ipv4.ip_local_port_range": [2000, 2000] },
      'values["net.ipv4.ip_local_port_range"]',
    ],
    [
      "port above 65535",
      { "net.ipv4.ip_local_port_range": [1024, 70000] },
      'values["net.ipv4.ip_local_port_range"]',
    ],
    ["fastopen flags", { "net.ipv4.tcp_fastopen": 0x1000 }, 'values["net.ipv4.tcp_fastopen"]'],
    [
      "algorithm with shell",
      { "net.ipv4.tcp_congestion_control": "bbr; reboot" },
      'values["net.ipv4.tcp_congestion_control"]',
    ],
    [
      "algorithm not on host",
      { "net.ipv4.tcp_congestion_control": "vegas" },
      'values["net.ipv4.tcp_congestion_control"]',
    ],
    ["path traversal key", { "net/../../vm/swappiness": 1 }, 'values["net/../../vm/swappiness"]'],
    ["dotdot key", { "net..core.somaxconn": 1 }, 'values["net..core.somaxconn"]'],
    ["slash key", { "net.ipv4/conf.all.forwarding": 1 }, 'values["net.ipv4/conf.all.forwarding"]'],
    ["command substitution key", { "net.core.$(reboot)": 1 }, 'values["net.core.$(reboot)"]'],
    ["backtick key", { "net.core.`id`": 1 }, 'values["net.core.`id`"]'],
    ["space key", { "net.core.somaxconn 1": 1 }, 'values["net.core.somaxconn 1"]'],
    [
      "semicolon value",
      { "net.ipv4.conf.all.rp_filter": "1; reboot" },
      'values["net.ipv4.conf.all.rp_filter"]',
    ],
    [
      "newline value",
      { "net.ipv4.conf.all.rp_filter": "1\nreboot" },
      'values["net.ipv4.conf.all.rp_filter"]',
    ],
    [
      "pipe value",
      { "net.ipv4.conf.all.rp_filter": "1|id" },
      'values["net.ipv4.conf.all.rp_filter"]',
    ],
    [
      "unknown key on host",
      { "net.ipv4.tcp_no_such_knob": 1 },
      'values["net.ipv4.tcp_no_such_knob"]',
    ],
    ["object value", { "net.core.somaxconn": { a: 1 } }, 'values["net.core.somaxconn"]'],
    ["read-only in a namespace", { "net.core.rmem_max": 33554432 }, 'values["net.core.rmem_max"]'],
    [
      "global key absent in a namespace",
      { "net.core.netdev_max_backlog": 16384 },
      'values["net.core.netdev_max_backlog"]',
    ],
    ["empty values", {}, "values"],
  ];
  const extraBad: Array<[string, Record<string, unknown>, string]> = [
    ["persist word", { persist: "forever" }, "persist"],
    ["file name with slash", { fileName: "../../etc/passwd.conf" }, "fileName"],
    ["file name without .conf", { fileName: "nettune" }, "fileName"],
  ];

  test(`${bad.length + extraBad.length} bad inputs each fail preview naming the field; /proc/sys/net unchanged`, async () => {
    const before = await procSysNet(host);
    const filesBefore = await onHost(host, "ls -la /etc/sysctl.d/");
    const cases = [
      ...bad.map(([label, values, field]) => ({ label, set: { values }, field })),
      ...extraBad.map(([label, extra, field]) => ({
        label,
        set: { values: { "net.core.somaxconn": 1000 }, ...extra },
        field,
      })),
    ];
    // The engine stops a preview at the first failed check, so each bad input gets its own.
    const stack = new EngineStack("sysctl", "bad");
    try {
      const results = stack.previewEach(
        cases.map((c) => ({ sets: [{ name: "bad", host: direct(host), ...c.set }] })),
      );
      for (const [i, c] of cases.entries()) {
        const r = results[i]!;
        expect(r.ok, `${c.label} should fail`).toBe(false);
        const errors = r.events
          .filter((e) => e.type === "diagnostic" && e.severity === "error")
          .map((e) => e.message ?? "");
        // `SysctlSet bad: <field>: <reason>`, or one indented `<field>: <reason>` line each.
        const text = errors.join("\n");
        expect(namesField(text, c.field), `${c.label} should fail naming ${c.field}: ${text}`).toBe(
          true,
        );
        expect(resourceOps(r, TYPE)).not.toContain("create");
      }
    } finally {
      stack.dispose();
    }
    expect(await procSysNet(host)).toEqual(before);
    expect(await onHost(host, "ls -la /etc/sysctl.d/")).toEqual(filesBefore);
  });
});

describe("SysctlSet on an interface with a dot in its name", () => {
  // sysctl(8) writes eth0.100's keys as net.ipv4.conf.eth0/100.*; so do SysctlSet's users.
  const KEY = "net.ipv4.conf.lan0/5.rp_filter";
  const PROC = "/proc/sys/net/ipv4/conf/lan0.5/rp_filter";
  const stack = new EngineStack("sysctl", "dotted");
  afterAll(async () => {
    stack.destroy(program({ [KEY]: 2 }));
    stack.dispose();
    await onHost(host, "ip link del lan0.5 2>/dev/null || true");
  });

  test("up sets it, the sysctl.d file loads it, destroy restores it", async () => {
    await onHost(host, "ip link add lan0.5 type veth peer name x.y");
    const original = (await onHost(host, `cat ${PROC}`)).trim();
    expect(original).toBe("0");
    const up = stack.up(program({ [KEY]: 2 }));
    expect(up.error).toBeUndefined();
    expect(up.outputs.web_originals).toEqual({ [KEY]: 0 });
    expect((await onHost(host, `cat ${PROC}`)).trim()).toBe("2");
    const file = `/etc/sysctl.d/90-nettune-${stack.named("web")}.conf`;
    expect(await onHost(host, `cat ${file}`)).toContain(`${KEY} = 2`);
    // The file is what the host applies at boot: sysctl reads the key in the same form.
    await onHost(host, `echo 0 > ${PROC}; sysctl -q -p ${file}`);
    expect((await onHost(host, `cat ${PROC}`)).trim()).toBe("2");
    expect(stack.up(program({ [KEY]: 2 })).changes).toEqual({ same: 2 });
    const d = stack.destroy(program({ [KEY]: 2 }));
    expect(d.error).toBeUndefined();
    expect((await onHost(host, `cat ${PROC}`)).trim()).toBe("0");
    expect((await onHost(host, "ls /etc/sysctl.d/")).split(/\s+/)).not.toContain(
      `90-nettune-${stack.named("web")}.conf`,
    );
  });
});

describe("SysctlSet program-level checks and secrets", () => {
  test("two SysctlSets setting the same key on one host fail preview naming both", async () => {
    const stack = new EngineStack("sysctl", "dup");
    try {
      const before = await procSysNet(host);
      const r = stack.preview({
        sets: [
          { name: "first", host: direct(host), values: { "net.core.somaxconn": 1000 } },
          {
            name: "second",
            host: direct(host),
            values: { "net.core.somaxconn": 2000, "net.ipv4.tcp_fin_timeout": 20 },
          },
        ],
      });
      expect(r.ok).toBe(false);
      expect(`${r.error}\n${r.stdout}`).toMatch(
        /SysctlSet second: values\["net\.core\.somaxconn"\] is also set by SysctlSet first/,
      );
      expect(await procSysNet(host)).toEqual(before);
    } finally {
      stack.dispose();
    }
  });

  test("the guide's risky settings draw warnings at preview, safe ones do not", () => {
    const stack = new EngineStack("sysctl", "warn");
    try {
      const r = stack.preview({
        sets: [
          {
            name: "risky",
            host: direct(host),
            behindNat: true,
            values: {
              "net.ipv4.tcp_syncookies": 0,
              "net.ipv4.tcp_timestamps": 0,
              "net.ipv4.tcp_sack": 0,
              "net.ipv4.tcp_tw_reuse": 1,
            },
          },
          {
            name: "safe",
            host: direct(sandboxHosts()[1]!),
            values: { "net.ipv4.tcp_syncookies": 1 },
          },
        ],
      });
      expect(r.error).toBeUndefined();
      const warnings = r.events.filter((e) => e.type === "diagnostic" && e.severity === "warning");
      const risky = warnings.filter((w) => w.urn?.endsWith("::risky")).map((w) => w.message ?? "");
      expect(risky.some((m) => m.includes("tcp_syncookies = 0") && m.includes("SYN flood"))).toBe(
        true,
      );
      expect(risky.some((m) => m.includes("tcp_timestamps = 0") && m.includes("PAWS"))).toBe(true);
      expect(risky.some((m) => m.includes("tcp_sack = 0"))).toBe(true);
      expect(risky.some((m) => m.includes("tcp_tw_reuse = 1") && m.includes("NAT"))).toBe(true);
      expect(warnings.filter((w) => w.urn?.endsWith("::safe"))).toEqual([]);
    } finally {
      stack.dispose();
    }
  });

  test("a value the kernel reads back differently fails with wrote X, kernel reports Y, host unchanged", async () => {
    const stack = new EngineStack("sysctl", "readback");
    try {
      const before = await procSysNet(host);
      // The kernel parses a leading 0 as octal: 0300 is stored as 192.
      const r = stack.up(
        program({ "net.core.somaxconn": 5555, "net.ipv4.tcp_reordering": "0300" }),
      );
      expect(r.ok).toBe(false);
      expect(r.error).toMatch(/sysctl net\.ipv4\.tcp_reordering: wrote 0300, kernel reports 192/);
      expect(await procSysNet(host)).toEqual(before);
    } finally {
      stack.destroy(program({ "net.core.somaxconn": 1 }));
      stack.dispose();
    }
  });

  test("the private key is in no state file, engine output or error, in plain text", () => {
    const stack = new EngineStack("sysctl", "secrets");
    const key = fs.readFileSync(host.privateKeyPath, "utf8");
    const marker = key.split("\n")[1]!.slice(0, 40);
    try {
      const outputs: string[] = [];
      const up = stack.up(program({ "net.ipv4.tcp_fin_timeout": 33 }));
      // Everything a user sees: the printed output, errors, and every event but the SDK's own
      // debug lines (shown only with --debug; Pulumi prints decrypted resource outputs there).
      const shown = (r: typeof up) =>
        JSON.stringify(
          r.events.filter((e) => !(e.type === "diagnostic" && e.severity === "debug")),
        );
      outputs.push(up.stdout, up.error ?? "", shown(up));
      // A failing operation too: its error must not carry the key either.
      const bad = stack.up(
        program({ "net.ipv4.tcp_fin_timeout": 33, "net.ipv4.ip_default_ttl": 999 }),
      );
      expect(bad.ok).toBe(false);
      outputs.push(bad.stdout, bad.error ?? "", shown(bad));
      const state = stack.stateText();
      // The connection is stored encrypted by the stack's secrets provider.
      expect(state).toContain('"secrets_providers":{"type":"passphrase"');
      expect(state).toMatch(
        /"connection":\{"4dabf18193072939515e22adb298388d":"1b47061264138c4ac30d75fd1eb44270","ciphertext"/,
      );
      expect(state).not.toContain(marker);
      expect(state).not.toContain("PRIVATE KEY");
      for (const o of outputs) {
        expect(o).not.toContain(marker);
        expect(o).not.toContain("PRIVATE KEY");
      }
    } finally {
      stack.destroy(program({ "net.core.somaxconn": 1 }));
      stack.dispose();
    }
  });
});

describe("warnings show under their resource", () => {
  const KEY = "net.ipv4.tcp_fin_timeout";
  const stack = new EngineStack("sysctl", "warnings");
  afterAll(() => stack.dispose());

  test("destroy's warning about a value changed outside nettune is the resource's, not the stack's", async () => {
    const before = (await liveSysctls(host, [KEY]))[KEY]!;
    try {
      expect(stack.up(program({ [KEY]: 33 })).error).toBeUndefined();
      await onHost(host, `sysctl -q -w ${KEY}=37`);
      const d = stack.destroy(program({ [KEY]: 33 }));
      expect(d.error).toBeUndefined();
      const warnings = d.events.filter(
        (e) =>
          e.type === "diagnostic" &&
          e.severity === "warning" &&
          (e.message ?? "").includes("changed outside nettune"),
      );
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.message).toMatch(
        /^net\.ipv4\.tcp_fin_timeout: left at 37 on .*: it was changed outside nettune after it was set to 33/,
      );
      // Under the resource, as the engine shows a provider's own log messages.
      expect(warnings[0]!.urn).toMatch(/::pulumi-nodejs:dynamic\/nettune:SysctlSet::web$/);
    } finally {
      await onHost(host, `sysctl -q -w ${KEY}=${before}`);
    }
  });
});
