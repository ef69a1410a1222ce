/**
 * What preview does with values it cannot know yet and with hosts it cannot read, and where it
 * reads the host: a new resource in check, a changed one in diff (the engine's parallel phase).
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EngineStack } from "../helpers/engine";
import { liveSysctls, onHost, procSysNet } from "../helpers/hostShell";
import { direct, ROOT, sandboxHosts } from "../helpers/sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";

const SOMAXCONN = "net.core.somaxconn";
const FIN = "net.ipv4.tcp_fin_timeout";

let host: SandboxHost;
let other: SandboxHost;
beforeAll(() => {
  [host, other] = sandboxHosts() as [SandboxHost, SandboxHost];
});

/** The lines of a result that mention a ZodError or a stack trace: none may reach the user. */
const internals = (text: string) =>
  text.split("\n").filter((l) => /ZodError|at .*\.js:\d+|"code":\s*"invalid/.test(l));

describe("values unknown at preview", () => {
  const stack = new EngineStack("sysctl", "unknowns");
  afterAll(() => {
    stack.destroy({ sets: [] });
    stack.dispose();
  });

  test("an existing resource whose values now come from a new resource's output previews as an update, then applies", async () => {
    const before = await liveSysctls(host, [SOMAXCONN, FIN]);
    const first = stack.up({
      sets: [{ name: "fed", host: direct(host), values: { [SOMAXCONN]: 4001 } }],
    });
    expect(first.error).toBeUndefined();

    const second = {
      sets: [
        { name: "feeder", host: direct(host), values: { [FIN]: 31 } },
        { name: "fed", host: direct(host), values: { [SOMAXCONN]: 4002 }, valuesFrom: "feeder" },
      ],
    };
    const p = stack.preview(second);
    expect(p.error).toBeUndefined();
    expect(internals(p.stdout)).toEqual([]);
    expect(p.changes).toEqual({ create: 1, update: 1, same: 1 });
    const fed = p.events.find((e) => e.type === "pre" && e.urn?.endsWith("::fed"));
    expect(fed?.op).toBe("update");
    // Preview changed nothing on the host.
    expect(await liveSysctls(host, [SOMAXCONN])).toEqual({ [SOMAXCONN]: "4001" });

    const up = stack.up(second);
    expect(up.error).toBeUndefined();
    expect(await liveSysctls(host, [SOMAXCONN, FIN])).toEqual({
      [SOMAXCONN]: "4002",
      [FIN]: "31",
    });
    expect(stack.destroy(second).error).toBeUndefined();
    expect(await liveSysctls(host, [SOMAXCONN, FIN])).toEqual(before);
  });
});

describe("a changed resource is checked against its host at preview", () => {
  const stack = new EngineStack("sysctl", "diffcheck");
  afterAll(() => {
    stack.destroy({ sets: [] });
    stack.dispose();
  });

  test("adding a key the host lacks to an existing set fails preview naming the key; the host is untouched", async () => {
    const ok = { sets: [{ name: "web", host: direct(host), values: { [SOMAXCONN]: 4003 } }] };
    expect(stack.up(ok).error).toBeUndefined();
    const bad = {
      sets: [
        {
          name: "web",
          host: direct(host),
          values: { [SOMAXCONN]: 4004, "net.ipv4.tcp_no_such_key_here": 1 },
        },
      ],
    };
    const p = stack.preview(bad);
    expect(p.ok).toBe(false);
    const errors = p.events
      .filter((e) => e.type === "diagnostic" && e.severity === "error")
      .map((e) => e.message ?? "")
      .join("\n");
    expect(errors).toMatch(
      /values\["net\.ipv4\.tcp_no_such_key_here"\]: no such key on root@[\d.]+:\d+/,
    );
    expect(internals(errors)).toEqual([]);
    expect(await liveSysctls(host, [SOMAXCONN])).toEqual({ [SOMAXCONN]: "4003" });
    // An unchanged resource costs preview no round trip and no failure.
    expect(stack.preview(ok).changes).toEqual({ same: 2 });
  });
});

describe("a host preview cannot read is named, and preview goes on", () => {
  const stack = new EngineStack("sysctl", "unreadable");
  afterAll(() => stack.dispose());

  const cases: Array<[string, () => Record<string, unknown>, RegExp]> = [
    [
      "connection refused",
      () => ({ ...direct(host), port: 9 }),
      /could not read root@[\d.]+:9 to check this resource at preview: .*refused/i,
    ],
    [
      "the wrong host key",
      () => ({ ...direct(host), hostKey: other.hostKey }),
      /could not read root@[\d.]+:\d+ to check this resource at preview: .*host key/i,
    ],
  ];
  for (const [what, hostArg, message] of cases) {
    test(`${what}: preview warns naming the host and the reason`, () => {
      const p = stack.preview({
        sets: [{ name: "far", host: hostArg(), values: { [SOMAXCONN]: 4005 } }],
      });
      expect(p.error).toBeUndefined();
      expect(p.changes).toEqual({ create: 2 });
      const warnings = p.events
        .filter((e) => e.type === "diagnostic")
        .map((e) => e.message ?? "")
        .join("\n");
      expect(warnings).toMatch(message);
      expect(warnings).toContain("SysctlSet");
    });
  }
});

describe("NETTUNE_PREVIEW_HOST_CHECKS=changed: no host read in Check", () => {
  const stack = new EngineStack("sysctl", "changedonly", ROOT, {
    NETTUNE_PREVIEW_HOST_CHECKS: "changed",
  });
  afterAll(() => {
    stack.destroy({ sets: [] });
    stack.dispose();
  });

  test("a new set with a key the host lacks previews, then up refuses it before writing anything", async () => {
    const before = await liveSysctls(host, [SOMAXCONN]);
    const bad = {
      sets: [
        {
          name: "lazy",
          host: direct(host),
          values: { [SOMAXCONN]: 4006, "net.ipv4.tcp_no_such_key_here": 1 },
        },
      ],
    };
    const p = stack.preview(bad);
    expect(p.error).toBeUndefined();
    expect(p.changes).toEqual({ create: 2 });
    const up = stack.up(bad);
    expect(up.error).toMatch(/net\.ipv4\.tcp_no_such_key_here/);
    expect(await liveSysctls(host, [SOMAXCONN])).toEqual(before);
    expect(await onHost(host, "ls /etc/sysctl.d")).not.toContain(stack.named("lazy"));
  });
});

describe("one owner per setting on a host, across resource kinds", () => {
  const stack = new EngineStack("owners", "owners");
  afterAll(() => stack.dispose());

  test("a SysctlSet and a CongestionControl both setting the algorithm fail preview naming both, however the host is spelled", async () => {
    const before = await procSysNet(host);
    const r = stack.preview({
      sets: [
        {
          name: "web",
          host: direct(host),
          values: { "net.ipv4.tcp_congestion_control": "bbr", [SOMAXCONN]: 4007 },
        },
      ],
      ccs: [
        {
          name: "cc",
          host: { ...direct(host), address: ` ${host.hostAddress} ` },
          algorithm: "reno",
        },
      ],
    });
    expect(r.ok).toBe(false);
    expect(`${r.error}\n${r.stdout}`).toMatch(
      /CongestionControl cc: algorithm is also set by SysctlSet web \(values\["net\.ipv4\.tcp_congestion_control"\]\)/,
    );
    expect(await procSysNet(host)).toEqual(before);
  });

  test("two SysctlSets writing one sysctl.d file fail preview naming the file's input", () => {
    const r = stack.preview({
      sets: [
        {
          name: "a",
          host: direct(host),
          values: { [SOMAXCONN]: 4008 },
          fileName: "90-nettune-x.conf",
        },
        { name: "b", host: direct(host), values: { [FIN]: 33 }, fileName: "90-nettune-x.conf" },
      ],
    });
    expect(r.ok).toBe(false);
    expect(`${r.error}\n${r.stdout}`).toMatch(
      /SysctlSet b: fileName is also set by SysctlSet a \(fileName\)/,
    );
  });
});

describe("check errors read as written", () => {
  test("bad input fails preview naming the resource, the field and the reason, not Pulumi's {<nil>} form", () => {
    const stack = new EngineStack("sysctl", "checkerrors");
    try {
      const h = direct(host);
      const p = stack.preview({
        sets: [{ name: "bad-rmem", host: h, values: { "net.ipv4.tcp_rmem": [9000, 100, 50] } }],
      });
      expect(p.ok).toBe(false);
      const text = `${p.error ?? ""}\n${p.stdout}`;
      expect(text).toContain(
        'error: SysctlSet bad-rmem: values["net.ipv4.tcp_rmem"]: must satisfy min <= default <= max (got [9000,100,50])',
      );
      expect(text).not.toMatch(/has a problem|\{<nil>\}/);
      expect(internals(text)).toEqual([]);
      // A key the host lacks, found by the host check of a new resource: the same form.
      const q = stack.preview({
        sets: [{ name: "no-key", host: h, values: { "net.ipv4.tcp_nettune_nope": 1 } }],
      });
      expect(`${q.error ?? ""}\n${q.stdout}`).toMatch(
        /error: SysctlSet no-key: values\["net\.ipv4\.tcp_nettune_nope"\]: no such key on /,
      );
    } finally {
      stack.dispose();
    }
  });
});
