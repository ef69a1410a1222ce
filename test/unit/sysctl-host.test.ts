/**
 * The sysctl scripts and their parsers. The rendered text is pinned by snapshots, and the
 * scripts are also run for real by dash, with /proc/sys and /etc/sysctl.d rewritten into a
 * temporary directory (see test/helpers/fakeTransport.ts), to prove what they do: the
 * all-or-nothing rollback, the read-back check, the atomic persistence file.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import {
  SYSCTL_D,
  SysctlParseError,
  parseFileRead,
  parseSysctlApply,
  parseSysctlRead,
  renderFileRead,
  renderSysctlApply,
  renderSysctlConf,
  renderSysctlRead,
  sysctlPath,
  type ApplyStep,
} from "../../src/host/sysctl";
import { FakeHost, rewriteHostPaths } from "../helpers/fakeTransport";

const RMEM = "net.ipv4.tcp_rmem";
const SOMAXCONN = "net.core.somaxconn";
const CC = "net.ipv4.tcp_congestion_control";
const FIN = "net.ipv4.tcp_fin_timeout";
const CONF = "/etc/sysctl.d/a.conf";
const WEB_CONF = "/etc/sysctl.d/90-web.conf";
const RESERVED = "net.ipv4.ip_local_reserved_ports";
const RMEM_READ = { key: RMEM, ok: true, value: "4096 131072 6291456", writable: true };

/** Live values as a 6.x kernel prints them. */
const LIVE = {
  [SOMAXCONN]: "4096",
  [RMEM]: "4096\t131072\t6291456",
  [CC]: "cubic",
  [FIN]: "60",
};

const STEPS: ApplyStep[] = [
  { key: SOMAXCONN, value: 65535, rollback: "4096" },
  { key: RMEM, value: [4096, 87380, 33554432], rollback: "4096 131072 6291456" },
  { key: CC, value: "bbr", rollback: "cubic" },
];

function expectParseError(fn: () => unknown, message: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SysctlParseError);
  expect((err as Error).name).toBe("ParseError");
  expect((err as Error).message).toMatch(/^sysctl: /);
  expect((err as Error).message).toMatch(message);
}

describe("rendered scripts (snapshots)", () => {
  it("sysctlPath maps dots to directories", () => {
    expect(sysctlPath(RMEM)).toBe("net/ipv4/tcp_rmem");
    expect(sysctlPath("fs.file-max")).toBe("fs/file-max");
  });

  it("renderSysctlRead: one line per key, one script for all", () => {
    const text = renderSysctlRead([SOMAXCONN, RMEM, "net.ipv4.conf.br-lan.rp_filter"]);
    expect(text.split("\n")).toHaveLength(4);
    expect(text).toMatchSnapshot();
  });

  it("renderSysctlApply without a persistence file", () => {
    expect(renderSysctlApply(STEPS)).toMatchSnapshot();
  });

  it("renderSysctlApply writing a persistence file, without and with reload", () => {
    const persist = {
      path: "/etc/sysctl.d/90-web.conf",
      content: renderSysctlConf("90-web.conf", { [SOMAXCONN]: 65535 }),
    };
    expect(renderSysctlApply(STEPS, { ...persist, reload: false })).toMatchSnapshot();
    const reload = renderSysctlApply(STEPS, { ...persist, reload: true });
    expect(reload).toContain("sysctl -q -p /etc/sysctl.d/.90-web.conf.nettune-tmp && mv -f");
    expect(reload).toMatchSnapshot();
  });

  it("renderSysctlApply removing the persistence file (delete)", () => {
    const text = renderSysctlApply([{ key: SOMAXCONN, value: "4096", rollback: "65535" }], {
      path: "/etc/sysctl.d/90-web.conf",
      content: undefined,
      reload: false,
    });
    expect(text).toContain("rm -f /etc/sysctl.d/90-web.conf");
    expect(text).toMatchSnapshot();
  });

  it("renderSysctlApply with no steps only handles the file", () => {
    const text = renderSysctlApply([], {
      path: "/etc/sysctl.d/a.conf",
      content: "x = 1\n",
      reload: false,
    });
    expect(text).not.toContain("/proc/sys");
    expect(text).toMatchSnapshot();
  });

  it("renderSysctlConf: a header naming the owner, then sorted key = value lines", () => {
    const text = renderSysctlConf("90-web.conf", {
      [RMEM]: [4096, 87380, 33554432],
      [SOMAXCONN]: 65535,
      [CC]: "bbr",
      "net.ipv4.ip_local_port_range": [1024, 65535],
    });
    expect(text.endsWith("\n")).toBe(true);
    expect(text.split("\n").slice(1, -1)).toEqual([
      "net.core.somaxconn = 65535",
      "net.ipv4.ip_local_port_range = 1024 65535",
      "net.ipv4.tcp_congestion_control = bbr",
      "net.ipv4.tcp_rmem = 4096 87380 33554432",
    ]);
    expect(text).toMatchSnapshot();
  });

  it("renderFileRead", () => {
    expect(renderFileRead("/etc/sysctl.d/90-web.conf")).toMatchSnapshot();
  });
});

describe("parsers", () => {
  it("parseSysctlRead: values normalized, writability, errors kept, every key answered", () => {
    const out =
      "ok\tnet.core.somaxconn\t4096\trw\n" +
      "ok\tnet.ipv4.tcp_rmem\t4096 131072 6291456\trw\n" +
      "ok\tnet.core.rmem_max\t212992\tro\n" +
      "err\tnet.x.y\t/proc/sys/net/x/y: No such file or directory\n" +
      "ok\tnet.ipv4.ip_local_reserved_ports\t\trw\n\n";
    const keys = [SOMAXCONN, RMEM, "net.core.rmem_max", "net.x.y", RESERVED];
    const res = parseSysctlRead(out, keys);
    expect(res.get(SOMAXCONN)).toEqual({ key: SOMAXCONN, ok: true, value: "4096", writable: true });
    expect(res.get(RMEM)).toEqual(RMEM_READ);
    // A kernel-wide key seen from inside a network namespace.
    expect(res.get("net.core.rmem_max")).toEqual({
      key: "net.core.rmem_max",
      ok: true,
      value: "212992",
      writable: false,
    });
    expect(res.get("net.x.y")).toEqual({
      key: "net.x.y",
      ok: false,
      error: "/proc/sys/net/x/y: No such file or directory",
    });
    expect(res.get(RESERVED)).toEqual({
      key: RESERVED,
      ok: true,
      value: "",
      writable: true,
    });
  });

  it("parseSysctlRead still reads the older three-field lines", () => {
    const res = parseSysctlRead("ok\tnet.ipv4.tcp_rmem\t4096 131072\t6291456 \n", [RMEM]);
    expect(res.get(RMEM)).toEqual(RMEM_READ);
  });

  it("parseSysctlRead refuses malformed output", () => {
    for (const junk of ["sh: 1: cat: not found\n", "ok\n", "maybe\tnet.core.somaxconn\t1\n"]) {
      expectParseError(() => parseSysctlRead(junk, [SOMAXCONN]), /unexpected line/);
    }
    expectParseError(() => parseSysctlRead("", [SOMAXCONN]), /no result for net\.core\.somaxconn/);
    expectParseError(
      () => parseSysctlRead("ok\tnet.core.somaxconn\t1\n", [SOMAXCONN, RMEM]),
      /no result for net\.ipv4\.tcp_rmem/,
    );
    const err = (() => {
      try {
        parseSysctlRead("garbage\n", []);
      } catch (e) {
        return e as SysctlParseError;
      }
    })();
    expect(err?.output).toBe("garbage\n");
  });

  it("parseSysctlApply: each outcome the script can print", () => {
    expect(parseSysctlApply("applied\n", 0)).toEqual({ ok: true, originals: {} });
    expect(parseSysctlApply("orig\tnet.core.somaxconn\t4096\napplied\n", 0)).toEqual({
      ok: true,
      originals: { "net.core.somaxconn": "4096" },
    });
    expect(
      parseSysctlApply("unreadable\tnet.core.x\t/proc/sys/net/core/x: No such file\n", 6),
    ).toEqual({
      ok: false,
      kind: "unreadable",
      key: "net.core.x",
      reason: "/proc/sys/net/core/x: No such file",
    });
    expect(parseSysctlApply(`failed\t${FIN}\tInvalid argument\n`, 3)).toEqual({
      ok: false,
      kind: "failed",
      key: FIN,
      reason: "Invalid argument",
    });
    expect(parseSysctlApply(`failed\t${FIN}\t\n`, 3)).toMatchObject({
      reason: "rejected by the kernel",
    });
    const mismatch = `mismatch\t${RMEM}\t4096 87380 33554432\t4096 87380 6291456\n`;
    expect(parseSysctlApply(mismatch, 4)).toEqual({
      ok: false,
      kind: "mismatch",
      key: RMEM,
      wrote: "4096 87380 33554432",
      got: "4096 87380 6291456",
    });
    expect(parseSysctlApply("persist\t/etc/sysctl.d/a.conf\tRead-only file system\n", 5)).toEqual({
      ok: false,
      kind: "persist",
      key: "/etc/sysctl.d/a.conf",
      reason: "Read-only file system",
    });
  });

  it("parseSysctlApply refuses output without a result", () => {
    expectParseError(() => parseSysctlApply("", 0), /exit code 0 and no result/);
    expectParseError(() => parseSysctlApply("", null), /exit code null and no result/);
    // "applied" only counts with exit code 0: a script killed after it is not a success.
    expectParseError(() => parseSysctlApply("applied\n", 1), /exit code 1/);
    expectParseError(() => parseSysctlApply("sh: 1: tee: not found\n", 127), /exit code 127/);
  });

  it("parseFileRead: present, present and empty, absent, garbage", () => {
    expect(parseFileRead("present\nnet.core.somaxconn = 1\n")).toBe("net.core.somaxconn = 1\n");
    expect(parseFileRead("present\n")).toBe("");
    expect(parseFileRead("present")).toBe("");
    expect(parseFileRead("absent\n")).toBeUndefined();
    expectParseError(() => parseFileRead(""), /unexpected file read output/);
    expectParseError(() => parseFileRead("cat: x: Permission denied\n"), /unexpected file read/);
  });
});

describe("the scripts, run by dash against a stand-in /proc/sys", () => {
  let host: FakeHost;
  beforeEach(() => {
    host = new FakeHost({ proc: LIVE });
  });
  afterEach(async () => {
    await host.close();
  });

  /** Runs a rendered script; failures are results, as the handler asks for. */
  const run = (script: string) => host.exec({ script }, { allowFailure: true });
  const conf = (name: string) => path.join(host.root, "sysctl.d", name);

  it("the rewrite reaches every host path, or the script is refused", () => {
    const text = renderSysctlApply(STEPS, { path: CONF, content: "", reload: true });
    const out = rewriteHostPaths(text, host.root);
    expect(out).not.toMatch(/\/proc\/sys|\/etc\//);
    expect(() => rewriteHostPaths("cat /etc/passwd", host.root)).toThrow(/cannot redirect/);
  });

  it("read: values normalized, a missing key and a directory reported as errors", async () => {
    fs.mkdirSync(host.procPath("net.ipv4.conf"), { recursive: true });
    const keys = [SOMAXCONN, RMEM, "net.nettune.missing", "net.ipv4.conf"];
    const res = await run(renderSysctlRead(keys));
    expect(res.exitCode).toBe(0);
    expect(res.stdout).toBe(
      "ok\tnet.core.somaxconn\t4096\trw\n" +
        "ok\tnet.ipv4.tcp_rmem\t4096 131072 6291456\trw\n" +
        "err\tnet.nettune.missing\t/proc/sys/net/nettune/missing: No such file or directory\n" +
        "err\tnet.ipv4.conf\t/proc/sys/net/ipv4/conf: Is a directory\n",
    );
    const parsed = parseSysctlRead(res.stdout, keys);
    expect(parsed.get(RMEM)).toEqual(RMEM_READ);
    expect(parsed.get("net.nettune.missing")).toMatchObject({ ok: false });
  });

  it("apply: writes every value, checks it, prints applied", async () => {
    const res = await run(renderSysctlApply(STEPS));
    expect(res).toMatchObject({ exitCode: 0, stdout: "applied\n" });
    expect(parseSysctlApply(res.stdout, res.exitCode)).toEqual({ ok: true, originals: {} });
    expect(host.getProc(SOMAXCONN)).toBe("65535\n");
    expect(host.getProc(RMEM)).toBe("4096 87380 33554432\n");
    expect(host.getProc(CC)).toBe("bbr\n");
    expect(host.getProc(FIN)).toBe("60\n");
  });

  it("apply with capture: reads the originals first, reports them, then writes", async () => {
    const steps = STEPS.map((s) => ({ ...s, rollback: null }));
    const res = await run(renderSysctlApply(steps, undefined, [SOMAXCONN, RMEM, CC]));
    expect(res.exitCode).toBe(0);
    expect(res.stdout).toBe(
      `orig\t${SOMAXCONN}\t4096\norig\t${RMEM}\t4096 131072 6291456\norig\t${CC}\tcubic\napplied\n`,
    );
    expect(parseSysctlApply(res.stdout, res.exitCode)).toEqual({
      ok: true,
      originals: { [SOMAXCONN]: "4096", [RMEM]: "4096 131072 6291456", [CC]: "cubic" },
    });
    expect(host.getProc(SOMAXCONN)).toBe("65535\n");
    expect(host.getProc(CC)).toBe("bbr\n");
  });

  it("apply with capture: a refused key puts the earlier ones back to the values read (exit 3)", async () => {
    fs.rmSync(host.procPath(CC));
    fs.mkdirSync(host.procPath(CC));
    const steps: ApplyStep[] = [
      { key: SOMAXCONN, value: 65535, rollback: null },
      { key: RMEM, value: [4096, 87380, 33554432], rollback: null },
      { key: CC, value: "bbr", rollback: "cubic" },
    ];
    const res = await run(renderSysctlApply(steps, undefined, [SOMAXCONN, RMEM]));
    expect(res.exitCode).toBe(3);
    expect(parseSysctlApply(res.stdout, res.exitCode)).toMatchObject({ kind: "failed", key: CC });
    expect(host.getProc(SOMAXCONN)).toBe("4096\n");
    expect(host.getProc(RMEM)).toBe("4096 131072 6291456\n");
  });

  it("apply with capture: a key that cannot be read stops it before any write (exit 6)", async () => {
    const steps = STEPS.map((s) => ({ ...s, rollback: null }));
    const capture = [SOMAXCONN, RMEM, "net.nettune.missing", CC];
    const res = await run(renderSysctlApply(steps, undefined, capture));
    expect(res.exitCode).toBe(6);
    expect(parseSysctlApply(res.stdout, res.exitCode)).toEqual({
      ok: false,
      kind: "unreadable",
      key: "net.nettune.missing",
      reason: "/proc/sys/net/nettune/missing: No such file or directory",
    });
    expect(host.getProc(SOMAXCONN)).toBe("4096\n");
    expect(host.getProc(CC)).toBe("cubic\n");
  });

  it("a step that rolls back to a value not captured is refused when rendering", () => {
    expect(() => renderSysctlApply([{ key: SOMAXCONN, value: 1, rollback: null }])).toThrow(
      "renderSysctlApply: net.core.somaxconn rolls back to a value it does not read",
    );
  });

  it("apply: a key refused in the middle puts every earlier key back (exit 3)", async () => {
    // A directory cannot be written: tee fails with the errno text, as the kernel's EINVAL would.
    fs.rmSync(host.procPath(CC));
    fs.mkdirSync(host.procPath(CC));
    const steps: ApplyStep[] = [...STEPS, { key: FIN, value: 30, rollback: "60" }];
    const res = await run(renderSysctlApply(steps));
    expect(res.exitCode).toBe(3);
    expect(res.stdout).toBe(`failed\t${CC}\tIs a directory\n`);
    expect(parseSysctlApply(res.stdout, res.exitCode)).toEqual({
      ok: false,
      kind: "failed",
      key: CC,
      reason: "Is a directory",
    });
    expect(host.getProc(SOMAXCONN)).toBe("4096\n");
    expect(host.getProc(RMEM)).toBe("4096 131072 6291456\n");
    // Never reached.
    expect(host.getProc(FIN)).toBe("60\n");
  });

  it("apply: the first key refused changes nothing at all", async () => {
    host.reject(SOMAXCONN, "Invalid argument");
    const before = host.procSnapshot();
    const res = await run(renderSysctlApply(STEPS));
    expect(res.exitCode).toBe(3);
    expect(res.stdout).toBe(`failed\t${SOMAXCONN}\tInvalid argument\n`);
    expect(host.procSnapshot()).toEqual(before);
  });

  it("apply: a write the kernel ignores is caught on read-back, all undone (exit 4)", async () => {
    // A write into /dev/null succeeds and reads back empty: a kernel that silently ignored it.
    fs.rmSync(host.procPath(CC));
    fs.symlinkSync("/dev/null", host.procPath(CC));
    const res = await run(renderSysctlApply([...STEPS, { key: FIN, value: 30, rollback: "60" }]));
    expect(res.exitCode).toBe(4);
    expect(res.stdout).toBe(`mismatch\t${CC}\tbbr\t\n`);
    expect(parseSysctlApply(res.stdout, res.exitCode)).toEqual({
      ok: false,
      kind: "mismatch",
      key: CC,
      wrote: "bbr",
      got: "",
    });
    // Every key was written before the read-back, so every key is put back, the last one too.
    expect(host.getProc(SOMAXCONN)).toBe("4096\n");
    expect(host.getProc(RMEM)).toBe("4096 131072 6291456\n");
    expect(host.getProc(FIN)).toBe("60\n");
  });

  it("apply: a clamped value is reported with what the kernel kept (exit 4)", async () => {
    host.clamp(RMEM, "4096\t87380\t6291456");
    const res = await run(renderSysctlApply(STEPS));
    expect(res.exitCode).toBe(4);
    expect(parseSysctlApply(res.stdout, res.exitCode)).toEqual({
      ok: false,
      kind: "mismatch",
      key: RMEM,
      wrote: "4096 87380 33554432",
      got: "4096 87380 6291456",
    });
    expect(host.getProc(SOMAXCONN)).toBe("4096\n");
    expect(host.getProc(RMEM)).toBe("4096 131072 6291456\n");
    expect(host.getProc(CC)).toBe("cubic\n");
  });

  it("apply: values are data, never shell text", async () => {
    const evil = "x'; touch PWNED; echo '$(touch PWNED2) `touch PWNED3`";
    host.setProc("net.core.generic", "1");
    const steps = [{ key: "net.core.generic", value: evil, rollback: evil }];
    const res = await run(renderSysctlApply(steps));
    expect(res.exitCode).toBe(0);
    expect(host.getProc("net.core.generic")).toBe(`${evil}\n`);
    for (const f of ["PWNED", "PWNED2", "PWNED3"]) {
      expect(fs.existsSync(path.join(process.cwd(), f))).toBe(false);
      expect(fs.existsSync(path.join(host.root, f))).toBe(false);
    }
  });

  it("persist: the file is written whole through a temp file that does not stay", async () => {
    fs.writeFileSync(conf("90-web.conf"), "old = 1\n");
    fs.writeFileSync(conf("10-other.conf"), "keep = 1\n");
    const content = renderSysctlConf("90-web.conf", {
      [SOMAXCONN]: 65535,
      [RMEM]: [4096, 87380, 33554432],
    });
    const res = await run(
      renderSysctlApply(STEPS, { path: "/etc/sysctl.d/90-web.conf", content, reload: true }),
    );
    expect(res).toMatchObject({ exitCode: 0, stdout: "applied\n" });
    expect(host.sysctlD()).toEqual({ "90-web.conf": content, "10-other.conf": "keep = 1\n" });
    const names = fs.readdirSync(path.join(host.root, "sysctl.d"));
    expect(names.filter((f) => f.includes("nettune-tmp"))).toEqual([]);
    expect(fs.statSync(conf("90-web.conf")).mode & 0o777).toBe(0o644);
    expect(host.sysctlCalls()).toEqual(["-q -p /etc/sysctl.d/.90-web.conf.nettune-tmp"]);
  });

  it("persist: the directory is created when the host has none", async () => {
    fs.rmSync(path.join(host.root, "sysctl.d"), { recursive: true });
    const res = await run(
      renderSysctlApply([], { path: WEB_CONF, content: "a = 1\n", reload: false }),
    );
    expect(res.stdout).toBe("applied\n");
    expect(host.sysctlD()).toEqual({ "90-web.conf": "a = 1\n" });
    expect(host.sysctlCalls()).toEqual([]);
  });

  it("persist: a file that cannot be written undoes the keys (exit 5)", async () => {
    // A plain file where the directory should be: mkdir -p fails as on a broken host.
    fs.writeFileSync(path.join(host.root, "sysctl.d", "sub"), "");
    const res = await run(
      renderSysctlApply(STEPS, { path: `${SYSCTL_D}/sub/90-web.conf`, content: "a", reload: true }),
    );
    expect(res.exitCode).toBe(5);
    const out = parseSysctlApply(res.stdout, res.exitCode);
    expect(out).toMatchObject({ ok: false, kind: "persist", key: "/etc/sysctl.d/sub/90-web.conf" });
    expect((out as { reason: string }).reason).toMatch(/exists|Not a directory/i);
    expect(host.getProc(SOMAXCONN)).toBe("4096\n");
    expect(host.getProc(RMEM)).toBe("4096 131072 6291456\n");
    expect(host.getProc(CC)).toBe("cubic\n");
    expect(host.sysctlCalls()).toEqual([]);
  });

  const failedReload = async () => {
    fs.writeFileSync(conf("90-web.conf"), "old = 1\n");
    host.failReload("sysctl: cannot open: Permission denied");
    return run(renderSysctlApply(STEPS, { path: WEB_CONF, content: "a = 1\n", reload: true }));
  };

  it("persist: a failed reload undoes the keys and reports it (exit 5)", async () => {
    const res = await failedReload();
    expect(res.exitCode).toBe(5);
    expect(parseSysctlApply(res.stdout, res.exitCode)).toEqual({
      ok: false,
      kind: "persist",
      key: "/etc/sysctl.d/90-web.conf",
      reason: "sysctl: cannot open: Permission denied",
    });
    expect(host.getProc(SOMAXCONN)).toBe("4096\n");
    expect(host.getProc(RMEM)).toBe("4096 131072 6291456\n");
    expect(host.getProc(CC)).toBe("cubic\n");
  });

  // Known bug: the script moves the new file into place before `sysctl -p` runs, so a failed
  // reload leaves the new file behind while the handler reports that nothing was changed.
  // Drop `.fails` once the reload reads the temp file before the move.
  it("persist: a failed reload also leaves the previous file in place", async () => {
    await failedReload();
    expect(host.sysctlD()).toEqual({ "90-web.conf": "old = 1\n" });
  });

  it("persist: content undefined removes the file, and an absent file is no error", async () => {
    fs.writeFileSync(conf("90-web.conf"), "a = 1\n");
    const remove = renderSysctlApply([{ key: SOMAXCONN, value: "1024", rollback: "4096" }], {
      path: "/etc/sysctl.d/90-web.conf",
      content: undefined,
      reload: true,
    });
    const res = await run(remove);
    expect(res.stdout).toBe("applied\n");
    expect(host.sysctlD()).toEqual({});
    expect(host.getProc(SOMAXCONN)).toBe("1024\n");
    // Removal never reloads: the values are being put back one by one.
    expect(host.sysctlCalls()).toEqual([]);
    expect((await run(remove)).stdout).toBe("applied\n");
  });

  it("file read: present with its content, or absent", async () => {
    fs.writeFileSync(conf("90-web.conf"), "net.core.somaxconn = 65535\n");
    const present = await run(renderFileRead("/etc/sysctl.d/90-web.conf"));
    expect(parseFileRead(present.stdout)).toBe("net.core.somaxconn = 65535\n");
    const absent = await run(renderFileRead("/etc/sysctl.d/none.conf"));
    expect(parseFileRead(absent.stdout)).toBeUndefined();
  });
});
