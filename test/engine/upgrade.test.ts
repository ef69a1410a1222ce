/**
 * Upgrade safety: resources created with one nettune build, then a newer build installed.
 * Preview shows no changes (the provider text in state is the same), and destroy runs the
 * newer code, not a copy frozen in the old state. A stack created by the previous release
 * (built from its revision) refreshes, previews and is destroyed by this one, whose outputs
 * have other names and types, and the host gets its true originals back.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, expect, test } from "vitest";
import { EngineStack } from "../helpers/engine";
import { liveSysctls, onHost, procSysNet } from "../helpers/hostShell";
import { direct, ROOT, sandboxHosts } from "../helpers/sandbox";

const MARKER = "/run/nettune-upgraded-delete-ran";
const work = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-upgrade-"));
afterAll(() => {
  if (!process.env.KEEP_UPGRADE) fs.rmSync(work, { recursive: true, force: true });
});

/**
 * The previous release: main before outputs were unified (Mtu `originalMtu` and `unit`,
 * CongestionControl `originalAlgorithm`, `sysctlFile` and `units`, SysctlSet originals as text).
 */
const PREVIOUS_RELEASE = "f0b88ed84c1d56b592aa733c0d2cdd03933aa341";

/** Builds `src/` of `revision` of this repository; returns its dist/src folder. */
function buildRevision(revision: string): string {
  const dir = path.join(work, `rev-${revision.slice(0, 12)}`);
  fs.mkdirSync(dir, { recursive: true });
  const tar = execFileSync("git", ["-C", ROOT, "archive", revision, "src", "tsconfig.json"], {
    maxBuffer: 256 * 1024 * 1024,
  });
  execFileSync("tar", ["-x", "-C", dir], { input: tar });
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  fs.writeFileSync(
    path.join(dir, "tsconfig.build.json"),
    JSON.stringify({
      extends: "./tsconfig.json",
      include: ["src"],
      compilerOptions: { declaration: false, sourceMap: false, inlineSources: false },
    }),
  );
  execFileSync(
    process.execPath,
    [path.join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"],
    { cwd: dir, stdio: "pipe" },
  );
  return path.join(dir, "dist/src");
}

/** A project folder with nettune installed in node_modules from this checkout's build. */
function install(
  name: string,
  patch?: (handlerJs: string) => string,
  dist = path.join(ROOT, "dist/src"),
): string {
  const project = path.join(work, name);
  const mods = path.join(project, "node_modules");
  const pkg = path.join(mods, "nettune");
  fs.mkdirSync(pkg, { recursive: true });
  fs.copyFileSync(path.join(ROOT, "package.json"), path.join(pkg, "package.json"));
  fs.cpSync(dist, path.join(pkg, "dist/src"), { recursive: true });
  // What the package carries beside its code: the XDP library's objects and the loader.
  for (const d of ["dist/xdp", "dist/bin"]) {
    if (fs.existsSync(path.join(ROOT, d))) fs.symlinkSync(path.join(ROOT, d), path.join(pkg, d));
  }
  // nettune's own dependencies come from the checkout's node_modules.
  for (const dep of fs.readdirSync(path.join(ROOT, "node_modules"))) {
    if (dep === "nettune" || dep.startsWith(".")) continue;
    fs.symlinkSync(path.join(ROOT, "node_modules", dep), path.join(mods, dep));
  }
  if (patch) {
    const file = path.join(pkg, "dist/src/specs/sysctlSet.js");
    const before = fs.readFileSync(file, "utf8");
    const after = patch(before);
    expect(after).not.toBe(before);
    fs.writeFileSync(file, after);
  }
  return project;
}

test("a newer nettune shows no changes in preview and its own code runs on destroy", async () => {
  const host = sandboxHosts()[0]!;
  const oldBuild = install("old");
  // The "new version": its delete (the spec's release) leaves a marker on the host first.
  const newBuild = install("new", (js) =>
    js.replace(
      /async release\(ctx, facts, olds\) \{/,
      `async release(ctx, facts, olds) { await ctx.transport.exec({ script: "touch ${MARKER}" });`,
    ),
  );
  await onHost(host, `rm -f ${MARKER}`);
  const args = {
    sets: [{ name: "upg", host: direct(host), values: { "net.ipv4.tcp_fin_timeout": 44 } }],
  };
  const stack = new EngineStack("sysctl", "upgrade", oldBuild);
  try {
    const original = (await liveSysctls(host, ["net.ipv4.tcp_fin_timeout"]))[
      "net.ipv4.tcp_fin_timeout"
    ];
    expect(stack.up(args).error).toBeUndefined();
    const providerBefore = /"__provider":\s*"([^"]|\\")*"/.exec(stack.stateText())?.[0];
    expect(providerBefore).toBeDefined();

    stack.cwd = newBuild;
    const p = stack.preview(args);
    expect(p.error).toBeUndefined();
    expect(p.changes).toEqual({ same: 2 });
    const r = stack.refresh(args);
    expect(r.changes).toEqual({ same: 2 });
    expect(/"__provider":\s*"([^"]|\\")*"/.exec(stack.stateText())?.[0]).toBe(providerBefore);

    const d = stack.destroy(args);
    expect(d.error).toBeUndefined();
    expect((await onHost(host, `test -e ${MARKER} && echo ran || echo not-run`)).trim()).toBe(
      "ran",
    );
    expect(
      (await liveSysctls(host, ["net.ipv4.tcp_fin_timeout"]))["net.ipv4.tcp_fin_timeout"],
    ).toBe(original);
  } finally {
    await onHost(host, `rm -f ${MARKER}`);
    stack.dispose();
  }
});

/** The outputs of the stack's resource of `kind`, as its current state file holds them. */
function outputsOf(stack: EngineStack, kind: string): Record<string, unknown> {
  const dir = path.join(stack.stateDir, ".pulumi", "stacks");
  const file = fs
    .readdirSync(dir, { recursive: true, encoding: "utf8" })
    .find((f) => f.endsWith(`${stack.stack}.json`));
  expect(file).toBeDefined();
  const state = JSON.parse(fs.readFileSync(path.join(dir, file!), "utf8")) as {
    checkpoint: { latest: { resources: { type: string; outputs: Record<string, unknown> }[] } };
  };
  const res = state.checkpoint.latest.resources.find((r) => r.type.endsWith(`:${kind}`));
  expect(res).toBeDefined();
  return res!.outputs;
}

test("a stack created by the previous release refreshes, previews and is destroyed by this one", async () => {
  const host = sandboxHosts()[0]!;
  const dev = "ntup0";
  await onHost(
    host,
    `ip link del ${dev} 2>/dev/null; ip link add ${dev} type veth peer name ntup1 && ` +
      `ip link set ${dev} up && ip link set ntup1 up`,
  );
  const previous = install("previous", undefined, buildRevision(PREVIOUS_RELEASE));
  const current = install("current");
  const args = (project: string) => ({ host: direct(host), interface: dev, project });
  /** What the three resources touch, and what nettune leaves on the host. */
  const hostState = async () => ({
    algorithm: (await onHost(host, "cat /proc/sys/net/ipv4/tcp_congestion_control")).trim(),
    net: await procSysNet(host),
    link: await onHost(
      host,
      `ip -o link show ${dev} | sed 's/ state .*//'; cat /sys/class/net/${dev}/tx_queue_len`,
    ),
    qdisc: await onHost(host, `tc qdisc show dev ${dev}`),
    files: await onHost(
      host,
      "ls /etc/systemd/system /etc/sysctl.d /etc/modules-load.d /var/lib/nettune 2>/dev/null | grep -i nettune; true",
    ),
  });
  const before = await hostState();
  const stack = new EngineStack("upgrade", "previous", previous);
  try {
    const up = stack.up(args(previous));
    expect(up.error).toBeUndefined();
    expect(up.changes).toEqual({ create: 4 });
    // The previous release wrote its own output names.
    expect(outputsOf(stack, "Mtu")).toMatchObject({
      originalMtu: 1500,
      unit: "nettune-mtu-upg-mtu.service",
    });
    expect(outputsOf(stack, "CongestionControl")).toHaveProperty("sysctlFile");
    expect(outputsOf(stack, "SysctlSet")).toMatchObject({
      originals: { "net.ipv4.tcp_fin_timeout": "60" },
    });
    const applied = await hostState();
    expect(applied.link).toContain("mtu 1400");
    expect(applied.qdisc).toContain("pfifo_fast");

    stack.cwd = current;
    const preview = stack.preview(args(current));
    expect(preview.error).toBeUndefined();
    expect(preview.changes).toEqual({ same: 4 });

    const refresh = stack.refresh(args(current));
    expect(refresh.error).toBeUndefined();
    // Refresh rewrites the outputs in this version's names; nothing on the host changes.
    const mtu = outputsOf(stack, "Mtu");
    expect(mtu).toMatchObject({
      originals: { mtu: 1500, txQueueLength: 1000 },
      unitPath: "/etc/systemd/system/nettune-mtu-upg-mtu.service",
    });
    expect(mtu).not.toHaveProperty("originalMtu");
    expect(mtu).not.toHaveProperty("unit");
    const cc = outputsOf(stack, "CongestionControl");
    expect(cc).toMatchObject({
      originals: { algorithm: before.algorithm, defaultQdisc: null },
      applied: { algorithm: "reno", qdisc: "pfifo_fast" },
      filePath: "/etc/sysctl.d/90-nettune-congestion-upg-cc.conf",
      unitPaths: ["/etc/systemd/system/nettune-qdisc-upg-cc-ntup0.service"],
    });
    for (const old of ["originalAlgorithm", "sysctlFile", "units"])
      expect(cc).not.toHaveProperty(old);
    expect(outputsOf(stack, "SysctlSet")).toMatchObject({
      originals: { "net.ipv4.tcp_fin_timeout": 60 },
      originalsText: {},
    });
    expect(await hostState()).toEqual(applied);

    const again = stack.preview(args(current));
    expect(again.error).toBeUndefined();
    expect(again.changes).toEqual({ same: 4 });

    const destroy = stack.destroy(args(current));
    expect(destroy.error).toBeUndefined();
    expect(await hostState()).toEqual(before);
  } finally {
    stack.dispose();
    await onHost(host, `ip link del ${dev} 2>/dev/null; true`);
  }
});
