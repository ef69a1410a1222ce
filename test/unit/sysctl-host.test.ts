/**
 * The sysctl scripts and their parsers, and SysctlSet's use of the all-or-nothing steps
 * (src/host/steps.ts): one step per key, the captured originals, the sysctl.d file. The
 * rendered text is pinned by snapshots, and the scripts are also run for real by dash, with
 * /proc/sys and /etc/sysctl.d rewritten into a temporary directory (see
 * test/helpers/fakeTransport.ts), to prove what they do: the all-or-nothing rollback, the
 * read-back check, the atomic persistence file.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import {
  SYSCTL_D,
  SysctlParseError,
  parseFileRead,
  parseSysctlRead,
  renderFileRead,
  renderSysctlConf,
  renderSysctlRead,
  sysctlPath,
} from "../../src/host/sysctl";
import {
  fileRemoveStep,
  fileWriteStep,
  parseSteps,
  renderSteps,
  sysctlWriteStep,
  type Step,
} from "../../src/host/steps";
import { formatSysctl, type SysctlValue } from "../../src/schemas/sysctl";
import { ParseError } from "../../src/host/errors";
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

/** A key to write and what its undo puts back: a value, or null for the one the script captured. */
interface KeyWrite {
  key: string;
  value: SysctlValue | string;
  before: string | null;
}

const STEPS: KeyWrite[] = [
  { key: SOMAXCONN, value: 65535, before: "4096" },
  { key: RMEM, value: [4096, 87380, 33554432], before: "4096 131072 6291456" },
  { key: CC, value: "bbr", before: "cubic" },
];

/** One step per key, as SysctlSet renders them. */
const keySteps = (writes: readonly KeyWrite[]): Step[] =>
  writes.map((w) =>
    sysctlWriteStep(
      `values["${w.key}"]`,
      w.key,
      typeof w.value === "string" ? w.value : formatSysctl(w.value),
      w.before,
    ),
  );
const captured = (writes: readonly KeyWrite[]) => writes.map((w) => ({ ...w, before: null }));

/** SysctlSet's sysctl.d file step: loaded by `sysctl -p` before it is moved into place. */
const confStep = (path: string, content: string, reload: boolean) =>
  fileWriteStep("persist", path, content, {
    load: reload ? (tmp) => `sysctl -q -p ${tmp}` : undefined,
  });

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

  it("steps writing keys, each read back and undone to a known value", () => {
    expect(renderSteps(keySteps(STEPS))).toMatchSnapshot();
  });

  it("steps of a create: originals captured first, keys undone to them, the file loaded before the move", () => {
    const content = renderSysctlConf("90-web.conf", { [SOMAXCONN]: 65535 });
    const steps = [...keySteps(captured(STEPS)), confStep(WEB_CONF, content, true)];
    const text = renderSteps(steps, { capture: [SOMAXCONN, RMEM, CC] });
    expect(text.indexOf("cat /proc/sys/")).toBeLessThan(text.indexOf("tee /proc/sys/"));
    expect(text).toContain("sysctl -q -p /etc/sysctl.d/.90-web.conf.nettune-tmp && mv -f");
    expect(text).toMatchSnapshot();
  });

  it("steps of a delete: a key put back, the file removed", () => {
    const text = renderSteps([
      ...keySteps([{ key: SOMAXCONN, value: "4096", before: "65535" }]),
      fileRemoveStep("persist", WEB_CONF),
    ]);
    expect(text).toContain("rm -f /etc/sysctl.d/90-web.conf");
    expect(text).toMatchSnapshot();
  });

  it("a file step alone touches no key", () => {
    const text = renderSteps([confStep(CONF, "x = 1\n", false)]);
    expect(text).not.toContain("/proc/sys");
    expect(text).not.toContain("sysctl -q -p");
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

  it("parseSteps: each outcome a SysctlSet script can print", () => {
    expect(parseSteps("applied\n", 0)).toEqual({ ok: true, captured: {}, journal: {}, after: "" });
    expect(parseSteps("captured\tnet.core.somaxconn\t4096\napplied\n", 0)).toEqual({
      ok: true,
      captured: { "net.core.somaxconn": "4096" },
      journal: {},
      after: "",
    });
    expect(
      parseSteps(
        "captured\tnet.core.somaxconn\t4096\njournal\tnet.core.somaxconn\t128\napplied\n",
        0,
      ),
    ).toEqual({
      ok: true,
      captured: { "net.core.somaxconn": "4096" },
      journal: { "net.core.somaxconn": "128" },
      after: "",
    });
    expect(
      parseSteps("failed\t-1\t7\tcannot write the journal of originals /x: denied\n", 7),
    ).toEqual({
      ok: false,
      kind: "failed",
      index: -1,
      status: 7,
      reason: "cannot write the journal of originals /x: denied",
    });
    expect(parseSteps("unreadable\tnet.core.x\t/proc/sys/net/core/x: No such file\n", 6)).toEqual({
      ok: false,
      kind: "unreadable",
      key: "net.core.x",
      reason: "/proc/sys/net/core/x: No such file",
    });
    expect(parseSteps(`failed\t2\t1\tInvalid argument\n`, 3)).toEqual({
      ok: false,
      kind: "failed",
      index: 2,
      status: 1,
      reason: "Invalid argument",
    });
    expect(parseSteps(`failed\t0\t2\t4096 87380 6291456\n`, 3)).toEqual({
      ok: false,
      kind: "failed",
      index: 0,
      status: 2,
      reason: "4096 87380 6291456",
    });
  });

  it("parseSteps refuses output without a result", () => {
    const refused = (stdout: string, code: number | null, message: RegExp) => {
      expect(() => parseSteps(stdout, code)).toThrow(ParseError);
      expect(() => parseSteps(stdout, code)).toThrow(message);
    };
    refused("", 0, /exit code 0 and no result/);
    refused("", null, /exit code null and no result/);
    // "applied" only counts with exit code 0: a script killed after it is not a success.
    refused("applied\n", 1, /exit code 1/);
    refused("sh: 1: tee: not found\n", 127, /exit code 127/);
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
    const text = renderSteps([...keySteps(STEPS), confStep(CONF, "", true)]);
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
    const res = await run(renderSteps(keySteps(STEPS)));
    expect(res).toMatchObject({ exitCode: 0, stdout: "applied\n" });
    expect(parseSteps(res.stdout, res.exitCode)).toEqual({
      ok: true,
      captured: {},
      journal: {},
      after: "",
    });
    expect(host.getProc(SOMAXCONN)).toBe("65535\n");
    expect(host.getProc(RMEM)).toBe("4096 87380 33554432\n");
    expect(host.getProc(CC)).toBe("bbr\n");
    expect(host.getProc(FIN)).toBe("60\n");
  });

  it("apply with capture: reads the originals first, reports them, then writes", async () => {
    const res = await run(
      renderSteps(keySteps(captured(STEPS)), { capture: [SOMAXCONN, RMEM, CC] }),
    );
    expect(res.exitCode).toBe(0);
    expect(res.stdout).toBe(
      `captured\t${SOMAXCONN}\t4096\ncaptured\t${RMEM}\t4096 131072 6291456\ncaptured\t${CC}\tcubic\napplied\n`,
    );
    expect(parseSteps(res.stdout, res.exitCode)).toEqual({
      ok: true,
      captured: { [SOMAXCONN]: "4096", [RMEM]: "4096 131072 6291456", [CC]: "cubic" },
      journal: {},
      after: "",
    });
    expect(host.getProc(SOMAXCONN)).toBe("65535\n");
    expect(host.getProc(CC)).toBe("bbr\n");
  });

  it("apply with a journal: written before the first write; a later apply reads it back instead", async () => {
    const journal = "/var/lib/nettune/originals/sysctl-90-nettune-web.conf";
    const file = path.join(host.root, "originals", "sysctl-90-nettune-web.conf");
    const first = await run(
      renderSteps(keySteps(captured(STEPS)), { capture: [SOMAXCONN, RMEM, CC], journal }),
    );
    expect(first.exitCode).toBe(0);
    expect(fs.readFileSync(file, "utf8")).toBe(
      `${SOMAXCONN}\t4096\n${RMEM}\t4096 131072 6291456\n${CC}\tcubic\n`,
    );
    // Run again on the tuned host (an apply whose answer was lost): the journal's values win.
    const again = await run(
      renderSteps(keySteps(captured(STEPS)), { capture: [SOMAXCONN, RMEM, CC], journal }),
    );
    expect(parseSteps(again.stdout, again.exitCode)).toMatchObject({
      ok: true,
      captured: { [SOMAXCONN]: "65535", [CC]: "bbr" },
      journal: { [SOMAXCONN]: "4096", [RMEM]: "4096 131072 6291456", [CC]: "cubic" },
    });
    expect(fs.readFileSync(file, "utf8")).toContain(`${SOMAXCONN}\t4096\n`);
  });

  it("apply with a journal it cannot write changes nothing (exit 7)", async () => {
    // A file where the journal's folder should be: mkdir fails.
    fs.writeFileSync(path.join(host.root, "originals"), "");
    const res = await run(
      renderSteps(keySteps(captured(STEPS)), {
        capture: [SOMAXCONN, RMEM, CC],
        journal: "/var/lib/nettune/originals/sysctl-x.conf",
      }),
    );
    expect(res.exitCode).toBe(7);
    expect(parseSteps(res.stdout, res.exitCode)).toMatchObject({
      ok: false,
      kind: "failed",
      status: 7,
      reason: expect.stringMatching(
        /^cannot write the journal of originals \S+\/originals\/sysctl-x\.conf: mkdir: /,
      ) as string,
    });
    expect(host.getProc(SOMAXCONN)).toBe("4096\n");
    expect(host.getProc(CC)).toBe("cubic\n");
    fs.rmSync(path.join(host.root, "originals"));
  });

  it("apply with a journal that fails: the journal it wrote goes with the rest; one it found stays", async () => {
    const file = path.join(host.root, "originals", "sysctl-x.conf");
    // CC cannot be written: its third step fails.
    fs.rmSync(host.procPath(CC));
    fs.mkdirSync(host.procPath(CC));
    const refused = renderSteps(
      keySteps([
        { key: SOMAXCONN, value: 65535, before: null },
        { key: RMEM, value: [4096, 87380, 33554432], before: null },
        { key: CC, value: "bbr", before: "cubic" },
      ]),
      { capture: [SOMAXCONN, RMEM], journal: "/var/lib/nettune/originals/sysctl-x.conf" },
    );
    expect((await run(refused)).exitCode).toBe(3);
    expect(fs.existsSync(path.join(host.root, "originals"))).toBe(false);
    // A journal an earlier apply left knows what this one cannot: it stays.
    fs.mkdirSync(path.join(host.root, "originals"));
    fs.writeFileSync(file, `${SOMAXCONN}\t128\n`);
    expect((await run(refused)).exitCode).toBe(3);
    expect(fs.readFileSync(file, "utf8")).toBe(`${SOMAXCONN}\t128\n`);
    expect(host.getProc(SOMAXCONN)).toBe("4096\n");
  });

  it("apply with capture: a refused key puts the earlier ones back to the values read (exit 3)", async () => {
    fs.rmSync(host.procPath(CC));
    fs.mkdirSync(host.procPath(CC));
    const writes: KeyWrite[] = [
      { key: SOMAXCONN, value: 65535, before: null },
      { key: RMEM, value: [4096, 87380, 33554432], before: null },
      { key: CC, value: "bbr", before: "cubic" },
    ];
    const res = await run(renderSteps(keySteps(writes), { capture: [SOMAXCONN, RMEM] }));
    expect(res.exitCode).toBe(3);
    expect(parseSteps(res.stdout, res.exitCode)).toMatchObject({ kind: "failed", index: 2 });
    expect(host.getProc(SOMAXCONN)).toBe("4096\n");
    expect(host.getProc(RMEM)).toBe("4096 131072 6291456\n");
  });

  it("apply with capture: a key that cannot be read stops it before any write (exit 6)", async () => {
    const capture = [SOMAXCONN, RMEM, "net.nettune.missing", CC];
    const res = await run(renderSteps(keySteps(captured(STEPS)), { capture }));
    expect(res.exitCode).toBe(6);
    expect(parseSteps(res.stdout, res.exitCode)).toEqual({
      ok: false,
      kind: "unreadable",
      key: "net.nettune.missing",
      reason: "/proc/sys/net/nettune/missing: No such file or directory",
    });
    expect(host.getProc(SOMAXCONN)).toBe("4096\n");
    expect(host.getProc(CC)).toBe("cubic\n");
  });

  it("a step that undoes to a value not captured is refused when rendering", () => {
    const steps = keySteps([{ key: SOMAXCONN, value: 1, before: null }]);
    expect(() => renderSteps(steps)).toThrow(
      "renderSteps: net.core.somaxconn = 1 undoes to a value of net.core.somaxconn it does not read",
    );
    expect(() => renderSteps(steps, { capture: [RMEM] })).toThrow(/it does not read/);
  });

  it("apply: a key refused in the middle puts every earlier key back (exit 3)", async () => {
    // A directory cannot be written: tee fails with the errno text, as the kernel's EINVAL would.
    fs.rmSync(host.procPath(CC));
    fs.mkdirSync(host.procPath(CC));
    const res = await run(renderSteps(keySteps([...STEPS, { key: FIN, value: 30, before: "60" }])));
    expect(res.exitCode).toBe(3);
    expect(res.stdout).toBe(`failed\t2\t1\tIs a directory\n`);
    expect(parseSteps(res.stdout, res.exitCode)).toEqual({
      ok: false,
      kind: "failed",
      index: 2,
      status: 1,
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
    const res = await run(renderSteps(keySteps(STEPS)));
    expect(res.exitCode).toBe(3);
    expect(res.stdout).toBe(`failed\t0\t1\tInvalid argument\n`);
    expect(host.procSnapshot()).toEqual(before);
  });

  it("apply: a write the kernel ignores is caught on read-back, all undone (exit 3, status 2)", async () => {
    // A write into /dev/null succeeds and reads back empty: a kernel that silently ignored it.
    fs.rmSync(host.procPath(CC));
    fs.symlinkSync("/dev/null", host.procPath(CC));
    const res = await run(renderSteps(keySteps([...STEPS, { key: FIN, value: 30, before: "60" }])));
    expect(res.exitCode).toBe(3);
    expect(res.stdout).toBe(`failed\t2\t2\t\n`);
    expect(parseSteps(res.stdout, res.exitCode)).toEqual({
      ok: false,
      kind: "failed",
      index: 2,
      status: 2,
      reason: "",
    });
    // Each key is read back right after its write: the earlier ones are put back, the later
    // one never written.
    expect(host.getProc(SOMAXCONN)).toBe("4096\n");
    expect(host.getProc(RMEM)).toBe("4096 131072 6291456\n");
    expect(host.getProc(FIN)).toBe("60\n");
  });

  it("apply: a clamped value is reported with what the kernel kept (exit 3, status 2)", async () => {
    host.clamp(RMEM, "4096\t87380\t6291456");
    const res = await run(renderSteps(keySteps(STEPS)));
    expect(res.exitCode).toBe(3);
    expect(parseSteps(res.stdout, res.exitCode)).toEqual({
      ok: false,
      kind: "failed",
      index: 1,
      status: 2,
      reason: "4096 87380 6291456",
    });
    expect(host.getProc(SOMAXCONN)).toBe("4096\n");
    expect(host.getProc(RMEM)).toBe("4096 131072 6291456\n");
    expect(host.getProc(CC)).toBe("cubic\n");
  });

  it("apply: values are data, never shell text", async () => {
    const evil = "x'; touch PWNED; echo '$(touch PWNED2) `touch PWNED3`";
    host.setProc("net.core.generic", "1");
    const res = await run(
      renderSteps(keySteps([{ key: "net.core.generic", value: evil, before: evil }])),
    );
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
    const res = await run(renderSteps([...keySteps(STEPS), confStep(WEB_CONF, content, true)]));
    expect(res).toMatchObject({ exitCode: 0, stdout: "applied\n" });
    expect(host.sysctlD()).toEqual({ "90-web.conf": content, "10-other.conf": "keep = 1\n" });
    const names = fs.readdirSync(path.join(host.root, "sysctl.d"));
    expect(names.filter((f) => f.includes("nettune-"))).toEqual([]);
    expect(fs.statSync(conf("90-web.conf")).mode & 0o777).toBe(0o644);
    expect(host.sysctlCalls()).toEqual(["-q -p /etc/sysctl.d/.90-web.conf.nettune-tmp"]);
  });

  it("persist: the directory is created when the host has none", async () => {
    fs.rmSync(path.join(host.root, "sysctl.d"), { recursive: true });
    const res = await run(renderSteps([confStep(WEB_CONF, "a = 1\n", false)]));
    expect(res.stdout).toBe("applied\n");
    expect(host.sysctlD()).toEqual({ "90-web.conf": "a = 1\n" });
    expect(host.sysctlCalls()).toEqual([]);
  });

  it("persist: a file that cannot be written undoes the keys (exit 3)", async () => {
    // A plain file where the directory should be: mkdir -p fails as on a broken host.
    fs.writeFileSync(path.join(host.root, "sysctl.d", "sub"), "");
    const steps = [...keySteps(STEPS), confStep(`${SYSCTL_D}/sub/90-web.conf`, "a", true)];
    const res = await run(renderSteps(steps));
    expect(res.exitCode).toBe(3);
    const out = parseSteps(res.stdout, res.exitCode);
    expect(out).toMatchObject({ ok: false, kind: "failed", index: 3 });
    expect((out as { reason: string }).reason).toMatch(/exists|Not a directory/i);
    expect(host.getProc(SOMAXCONN)).toBe("4096\n");
    expect(host.getProc(RMEM)).toBe("4096 131072 6291456\n");
    expect(host.getProc(CC)).toBe("cubic\n");
    expect(host.sysctlCalls()).toEqual([]);
  });

  const failedReload = async () => {
    fs.writeFileSync(conf("90-web.conf"), "old = 1\n");
    host.failReload("sysctl: cannot open: Permission denied");
    return run(renderSteps([...keySteps(STEPS), confStep(WEB_CONF, "a = 1\n", true)]));
  };

  it("persist: a failed reload undoes the keys and reports it (exit 3)", async () => {
    const res = await failedReload();
    expect(res.exitCode).toBe(3);
    expect(parseSteps(res.stdout, res.exitCode)).toEqual({
      ok: false,
      kind: "failed",
      index: 3,
      status: 255,
      reason: "sysctl: cannot open: Permission denied",
    });
    expect(host.getProc(SOMAXCONN)).toBe("4096\n");
    expect(host.getProc(RMEM)).toBe("4096 131072 6291456\n");
    expect(host.getProc(CC)).toBe("cubic\n");
  });

  it("persist: a failed reload also leaves the previous file in place", async () => {
    await failedReload();
    expect(host.sysctlD()).toEqual({ "90-web.conf": "old = 1\n" });
  });

  it("persist: a later failure puts the previous file back", async () => {
    fs.writeFileSync(conf("90-web.conf"), "old = 1\n");
    host.reject(FIN, "Invalid argument");
    const steps = [
      confStep(WEB_CONF, "a = 1\n", false),
      ...keySteps([{ key: FIN, value: 30, before: "60" }]),
    ];
    const res = await run(renderSteps(steps));
    expect(res.exitCode).toBe(3);
    expect(host.sysctlD()).toEqual({ "90-web.conf": "old = 1\n" });
  });

  it("persist: removing the file, and an absent file is no error", async () => {
    fs.writeFileSync(conf("90-web.conf"), "a = 1\n");
    const remove = renderSteps([
      ...keySteps([{ key: SOMAXCONN, value: "1024", before: "4096" }]),
      fileRemoveStep("persist", WEB_CONF),
    ]);
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
