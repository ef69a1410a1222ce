/**
 * Ownership records across stacks: the record's text and path, reading records back from a
 * probe's output, the overlap rule, what each kind owns, and the engine's use of one round trip.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import {
  CLAIM_LOCK,
  CLAIM_REFUSED,
  OWNERS_DIR,
  overlaps,
  parseRecords,
  recordPath,
  renderRecord,
  renderRecordClaim,
  renderRecordsRead,
  stackOf,
  takeRecords,
  takeRefusal,
  type OwnedSetting,
  type OwnerRecord,
} from "../../src/host/owners";
import {
  Ownership,
  OwnershipConflict,
  ownershipFailures,
  prefixFirst,
} from "../../src/engine/ownership";
import { ownedSettings } from "../../src/specs/owned";
import type { Command, Transport } from "../../src/transport/types";
import { LocalTransport } from "../../src/transport/local";
import { handle, setTransportFactory } from "../../src/engine/provider";
import { FakeHost } from "../helpers/fakeTransport";
import { checkFailures } from "../helpers/checkErrors";

const A = "proj/alpha/SysctlSet web";
const B = "proj/beta/SysctlSet web";

describe("records", () => {
  test("a record names its owner and each setting with the input that sets it", () => {
    expect(
      renderRecord(A, [
        { id: "sysctl:net.core.somaxconn", input: 'values["net.core.somaxconn"]' },
        { id: "file:/etc/sysctl.d/90-nettune-web.conf", input: "fileName" },
      ]),
    ).toBe(
      "# nettune ownership record: written and removed by nettune, do not edit\n" +
        `owner\t${A}\n` +
        'setting\tsysctl:net.core.somaxconn\tvalues["net.core.somaxconn"]\n' +
        "setting\tfile:/etc/sysctl.d/90-nettune-web.conf\tfileName\n",
    );
  });

  test("the same resource name in two stacks has two records; unsafe names are reduced", () => {
    expect(recordPath(A)).toMatch(/^\/var\/lib\/nettune\/owners\/SysctlSet-web-[0-9a-f]{8}$/);
    expect(recordPath(A)).not.toBe(recordPath(B));
    expect(recordPath("p/s/Mtu ../x y")).toMatch(/^\/var\/lib\/nettune\/owners\/Mtu-\.\.-x-y-/);
    expect(recordPath("p/s/Mtu a b")).not.toBe(recordPath("p/s/Mtu a-b"));
    expect(stackOf(A)).toBe("proj/alpha");
  });

  test("records round-trip through the read script's output, around a probe's own output", async () => {
    const dir = fs.mkdtempSync("/tmp/nettune-owners-");
    fs.writeFileSync(`${dir}/one`, renderRecord(A, [{ id: "mtu:eth0", input: "mtu" }]));
    // No trailing newline, a tab in an input: still one record each.
    fs.writeFileSync(
      `${dir}/two`,
      renderRecord(B, [{ id: "xdp:eth0", input: "in\tterface" }]).trimEnd(),
    );
    fs.writeFileSync(`${dir}/junk`, "not a record\n");
    const script = renderRecordsRead().replace("/var/lib/nettune/owners", dir);
    const t = new LocalTransport();
    const res = await t.exec({ script: `echo before\n${script}\necho after` });
    const got = takeRecords(res.stdout)!;
    expect(got.rest).toBe("before\nafter\n");
    expect(got.records).toEqual<OwnerRecord[]>([
      { path: `${dir}/one`, owner: A, settings: [{ id: "mtu:eth0", input: "mtu" }] },
      { path: `${dir}/two`, owner: B, settings: [{ id: "xdp:eth0", input: "in terface" }] },
    ]);
    fs.rmSync(dir, { recursive: true });
    // No directory: no records, and the output is still whole.
    const none = await t.exec({
      script: renderRecordsRead().replace("/var/lib/nettune/owners", dir),
    });
    expect(takeRecords(none.stdout)).toEqual({ records: [], rest: "" });
    expect(takeRecords("no markers")).toBeUndefined();
    expect(parseRecords("")).toEqual([]);
  });
});

describe("overlaps", () => {
  const theirs: OwnerRecord = {
    path: "/var/lib/nettune/owners/SysctlSet-web-1",
    owner: A,
    settings: [{ id: "sysctl:net.core.somaxconn", input: 'values["net.core.somaxconn"]' }],
  };
  const mine = [
    { id: "sysctl:net.core.somaxconn", input: 'values["net.core.somaxconn"]' },
    { id: "sysctl:net.ipv4.tcp_fin_timeout", input: 'values["net.ipv4.tcp_fin_timeout"]' },
  ];

  test("another stack's setting is refused by field, naming the owner and the setting", () => {
    expect(ownershipFailures(B, mine, [theirs], "root@h:22")).toEqual([
      {
        property: 'values["net.core.somaxconn"]',
        reason:
          `sysctl net.core.somaxconn on root@h:22 is owned by ${A} (${theirs.path}); ` +
          "a setting may have one owner per host: remove it from one of the stacks",
      },
    ]);
  });

  test("the resource's own record and its own stack's records are no overlap", () => {
    expect(overlaps(A, mine, [theirs])).toEqual([]);
    expect(overlaps("proj/alpha/CongestionControl bbr", mine, [theirs])).toEqual([]);
    // Another project with the same stack name is another stack.
    expect(overlaps("other/alpha/SysctlSet web", mine, [theirs])).toHaveLength(1);
  });

  test("disjoint settings are no overlap", () => {
    expect(overlaps(B, [mine[1]!], [theirs])).toEqual([]);
  });
});

describe("what each kind owns", () => {
  test("SysctlSet: its keys, and its file unless runtime only", () => {
    const inputs = { values: { "net.core.somaxconn": 1 }, persist: "both", fileName: "90-x.conf" };
    expect(ownedSettings("SysctlSet", inputs).map((s) => s.id)).toEqual([
      "sysctl:net.core.somaxconn",
      "file:/etc/sysctl.d/90-x.conf",
    ]);
    expect(ownedSettings("SysctlSet", { ...inputs, persist: "runtime" })).toHaveLength(1);
  });

  test("NicOffloads: each feature by its long name, and its unit", () => {
    const s = ownedSettings("NicOffloads", {
      interface: "eth0",
      features: { gro: true },
      persist: true,
      unitName: "nettune-nicoffloads-x.service",
    });
    expect(s).toEqual([
      { id: "feature:eth0:generic-receive-offload", input: "features.gro" },
      { id: "unit:nettune-nicoffloads-x.service", input: "unitName" },
    ]);
  });

  test("CongestionControl: both keys, each root qdisc, its files and units", () => {
    const ids = ownedSettings("CongestionControl", {
      algorithm: "bbr",
      qdisc: "fq",
      interfaces: ["eth0"],
      persist: true,
      resourceName: "bbr",
    }).map((s) => s.id);
    expect(ids).toEqual([
      "sysctl:net.ipv4.tcp_congestion_control",
      "sysctl:net.core.default_qdisc",
      "root-qdisc:eth0",
      "file:/etc/sysctl.d/90-nettune-congestion-bbr.conf",
      "file:/etc/modules-load.d/nettune-bbr.conf",
      "unit:nettune-qdisc-bbr-eth0.service",
    ]);
  });

  test("link kinds own their interface's setting; XDP its unit even without persistence", () => {
    const base = { interface: "eth1", persist: false, unitName: "nettune-k-x.service" };
    expect(ownedSettings("Mtu", { ...base, mtu: 9000, resourceName: "j" })).toEqual([
      { id: "mtu:eth1", input: "mtu" },
    ]);
    expect(ownedSettings("RssQueues", { ...base, combined: 2 })[0]!.id).toBe("channels:eth1");
    expect(ownedSettings("NicRings", base)[0]!.id).toBe("rings:eth1");
    expect(ownedSettings("IrqAffinity", base)[0]!.id).toBe("irq-affinity:eth1");
    expect(ownedSettings("PacketSteering", { ...base, rps: "0" }).map((s) => s.id)).toEqual([
      "rps:eth1",
    ]);
    expect(ownedSettings("XdpProgram", base).map((s) => s.id)).toEqual([
      "xdp:eth1",
      "unit:nettune-k-x.service",
    ]);
    expect(ownedSettings("Unknown", base)).toEqual([]);
  });
});

describe("one round trip", () => {
  test("the prefix runs with the first command only, and its output is taken out", async () => {
    const seen: string[] = [];
    const fake: Transport = {
      target: "t",
      stats: { handshakes: 0, execs: 0 },
      exec: (c: Command) => {
        const text = "script" in c ? c.script : c.join(" ");
        seen.push(text);
        return Promise.resolve({ stdout: `PRE\n${text}\n`, stderr: "", exitCode: 0 });
      },
      close: () => Promise.resolve(),
    };
    let taken = "";
    const t = prefixFirst(fake, "pre", (out) => {
      taken = out;
      return out.replace("PRE\n", "");
    });
    expect(t.used).toBe(false);
    const first = await t.exec(["ethtool", "-k", "eth 0"]);
    await t.exec({ script: "second" });
    expect(t.used).toBe(true);
    expect(seen).toEqual(["pre\nethtool -k 'eth 0'", "second"]);
    expect(taken.startsWith("PRE\n")).toBe(true);
    expect(first.stdout).toBe("pre\nethtool -k 'eth 0'\n");
  });
});

describe("the claim: check again and write, under a lock, before the apply", () => {
  const SOMAXCONN: OwnedSetting = {
    id: "sysctl:net.core.somaxconn",
    input: 'values["net.core.somaxconn"]',
  };
  const FIN: OwnedSetting = {
    id: "sysctl:net.ipv4.tcp_fin_timeout",
    input: 'values["net.ipv4.tcp_fin_timeout"]',
  };
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync("/tmp/nettune-claim-");
    fs.mkdirSync(`${dir}/bin`);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  /** The claim, then `echo applied`, with the owners folder and the lock moved into `dir`. */
  const script = (owner: string, settings: OwnedSetting[], previous?: string) =>
    `${renderRecordClaim(owner, settings, previous)}\necho applied`
      .split(OWNERS_DIR)
      .join(`${dir}/owners`)
      .split(CLAIM_LOCK)
      .join(`${dir}/claim.lock`)
      .split("/run/lock")
      .join(dir);
  const run = (owner: string, settings: OwnedSetting[], previous?: string) =>
    spawnSync("sh", ["-c", script(owner, settings, previous)], { encoding: "utf8" });
  const records = () =>
    fs.existsSync(`${dir}/owners`) ? fs.readdirSync(`${dir}/owners`).sort() : [];
  const file = (owner: string) => `${dir}/owners/${path.basename(recordPath(owner))}`;

  test("no other owner: the record is written and the apply runs", () => {
    const r = run(A, [SOMAXCONN]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("applied\n");
    expect(fs.readFileSync(file(A), "utf8")).toBe(renderRecord(A, [SOMAXCONN]));
  });

  test("another stack's record owns a setting: refused, nothing written, the apply never runs", () => {
    expect(run(A, [SOMAXCONN]).status).toBe(0);
    const r = run(B, [FIN, SOMAXCONN]);
    expect(r.status).toBe(CLAIM_REFUSED);
    expect(r.stdout).not.toContain("applied");
    expect(takeRefusal(r.stdout.split(`${dir}/owners`).join(OWNERS_DIR))).toEqual([
      { id: SOMAXCONN.id, owner: A, path: recordPath(A) },
    ]);
    expect(records()).toEqual([path.basename(recordPath(A))]);
  });

  test("its own record, its own stack's records, and disjoint settings are no conflict", () => {
    expect(run(A, [SOMAXCONN]).status).toBe(0);
    // An update of the same resource.
    expect(run(A, [SOMAXCONN, FIN]).stdout).toBe("applied\n");
    // Another resource of the same stack (the program's own check covers it).
    expect(run("proj/alpha/SysctlSet api", [SOMAXCONN]).status).toBe(0);
    // Another stack, other settings; and an identity that changed drops the old record.
    expect(run(B, [{ id: "mtu:eth0", input: "mtu" }]).status).toBe(0);
    expect(
      run("proj/gamma/Mtu m", [{ id: "mtu:eth1", input: "mtu" }], "proj/gamma/Mtu old").status,
    ).toBe(0);
    expect(records()).toHaveLength(4);
  });

  test("two stacks claiming at the same moment: one wins, the other is refused", async () => {
    // A slow awk widens the window between the check and the write; without the lock both
    // claims would pass the check and both write.
    fs.writeFileSync(`${dir}/bin/awk`, `#!/bin/sh\nsleep 0.3\nexec /usr/bin/awk "$@"\n`, {
      mode: 0o755,
    });
    const start = (owner: string) =>
      new Promise<number | null>((resolve) => {
        const c = spawn("sh", ["-c", script(owner, [SOMAXCONN])], {
          env: { ...process.env, PATH: `${dir}/bin:${process.env.PATH}` },
          stdio: "ignore",
        });
        c.on("exit", (code) => resolve(code));
      });
    for (let i = 0; i < 3; i++) {
      fs.rmSync(`${dir}/owners`, { recursive: true, force: true });
      const codes = await Promise.all([start(A), start(B)]);
      expect(codes.sort()).toEqual([0, CLAIM_REFUSED]);
      expect(records()).toHaveLength(1);
    }
  });

  test("a refused first command is an OwnershipConflict naming the field and the owner", async () => {
    const refusedOutput = `@@nettune-owned\t${SOMAXCONN.id}\t${A}\t${recordPath(A)}\n`;
    const fake: Transport = {
      target: "root@198.18.0.2:22",
      stats: { handshakes: 0, execs: 0 },
      exec: () => Promise.resolve({ stdout: refusedOutput, stderr: "", exitCode: CLAIM_REFUSED }),
      close: () => Promise.resolve(),
    };
    const o = new Ownership(fake, B, [SOMAXCONN]);
    let applied = 0;
    const err = await o
      .writing(async (t) => {
        await t.exec({ script: "true" }, { allowFailure: true });
        applied++;
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OwnershipConflict);
    expect(applied).toBe(0);
    expect((err as Error).message).toContain(
      `values["net.core.somaxconn"]: sysctl net.core.somaxconn on root@198.18.0.2:22 is owned by ${A}`,
    );
    expect((err as Error).message).toContain("two stacks ran up at once; nothing was changed");
  });
});

describe("through the provider, on a fake host", () => {
  const CONNECTION = {
    host: "198.18.9.9",
    privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
  };
  const KEY = "net.core.somaxconn";
  let host: FakeHost;
  beforeEach(() => {
    host = new FakeHost({ proc: { [KEY]: "4096", "net.ipv4.tcp_fin_timeout": "60" } });
    setTransportFactory(() => host);
  });
  afterEach(async () => {
    setTransportFactory(undefined);
    await host.close();
  });
  const props = (owner: string, values: Record<string, number>) => ({
    connection: CONNECTION,
    values,
    persist: "runtime",
    fileName: "90-web.conf",
    __nettuneName: "web",
    __nettuneOwner: owner,
  });
  const records = () => {
    const dir = path.join(host.root, "owners");
    return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  };
  const checked = async (p: Record<string, unknown>) =>
    ((await handle("SysctlSet", "check", {}, p)) as { inputs: Record<string, unknown> }).inputs;

  test("check reads the records in the probe's round trip and refuses another stack's key", async () => {
    const inputs = await checked(props(A, { [KEY]: 65535 }));
    expect(inputs.__nettuneOwner).toBe(A);
    const created = (await handle("SysctlSet", "create", inputs)) as {
      outs: Record<string, unknown>;
    };
    expect(created.outs.__nettuneOwner).toBe(A);
    expect(records()).toEqual([path.basename(recordPath(A))]);
    expect(fs.readFileSync(path.join(host.root, "owners", records()[0]!), "utf8")).toBe(
      renderRecord(A, [{ id: `sysctl:${KEY}`, input: `values["${KEY}"]` }]),
    );

    const execs = host.stats.execs;
    const failures = await checkFailures(
      "SysctlSet web",
      handle("SysctlSet", "check", {}, props(B, { [KEY]: 1024, "net.ipv4.tcp_fin_timeout": 30 })),
    );
    expect(failures).toEqual([
      {
        property: `values["${KEY}"]`,
        reason: expect.stringContaining(
          `sysctl ${KEY} on ${host.target} is owned by ${A}`,
        ) as string,
      },
    ]);
    expect(host.stats.execs - execs).toBe(1);
    // The other stack's own check is not refused, and a disjoint key is not either.
    await expect(checked(props(A, { [KEY]: 1 }))).resolves.toBeDefined();
    await expect(checked(props(B, { "net.ipv4.tcp_fin_timeout": 30 }))).resolves.toBeDefined();
  });

  test("create refuses before anything changes, even without a preview", async () => {
    await handle("SysctlSet", "create", await checked(props(A, { [KEY]: 65535 })));
    const inputs = { ...props(B, { [KEY]: 1024 }) };
    await expect(handle("SysctlSet", "create", inputs)).rejects.toThrow(`is owned by ${A}`);
    expect(host.getProc(KEY)?.trim()).toBe("65535");
    expect(records()).toHaveLength(1);
  });

  test("the record is written by the apply's round trip and removed by the release's, with its folder", async () => {
    const inputs = await checked(props(A, { [KEY]: 65535 }));
    const before = host.stats.execs;
    const { id, outs } = (await handle("SysctlSet", "create", inputs)) as {
      id: string;
      outs: Record<string, unknown>;
    };
    const createExecs = host.stats.execs - before;
    const { __nettuneOwner: _o, ...plain } = inputs;
    const other = new FakeHost({ proc: { [KEY]: "4096" } });
    setTransportFactory(() => other);
    await handle("SysctlSet", "create", plain);
    // SysctlSet's create reads nothing before its apply script: the records are read in a round
    // trip of their own there, and the record is written by the apply's.
    expect(createExecs).toBe(other.stats.execs + 1);
    await other.close();
    setTransportFactory(() => host);

    const d0 = host.stats.execs;
    await handle("SysctlSet", "delete", id, outs);
    expect(host.getProc(KEY)?.trim()).toBe("4096");
    expect(fs.existsSync(path.join(host.root, "owners"))).toBe(false);
    const { __nettuneOwner: _p, ...plainOuts } = outs;
    const again = new FakeHost({ proc: { [KEY]: "4096" } });
    setTransportFactory(() => again);
    const made = (await handle("SysctlSet", "create", plain)) as { id: string; outs: object };
    const e0 = again.stats.execs;
    await handle("SysctlSet", "delete", made.id, { ...plainOuts, ...made.outs });
    expect(host.stats.execs - d0).toBe(again.stats.execs - e0);
    await again.close();
  });

  test("an apply that fails leaves no record", async () => {
    host.reject(KEY, "Invalid argument");
    const inputs = await checked(props(A, { [KEY]: 65535 }));
    await expect(handle("SysctlSet", "create", inputs)).rejects.toThrow();
    expect(records()).toEqual([]);
  });
});
