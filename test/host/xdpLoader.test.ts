/**
 * tools/xdp-loader on a real host: the loader built by setup and objects compiled here with
 * clang are copied to an nspawn sandbox host (the machine's kernel, bpf links supported) and
 * attach to its veth eth0, which only joins the host's own namespace to this machine: nothing
 * is attached to this machine's interfaces. The hosts have no bpftool, so what is attached is
 * checked with the loader's `show` and with `ip -d -j link show eth0`.
 *
 * Every program used is XDP_PASS: the test's SSH session runs over that same eth0.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { connectionSchema } from "../../src/schemas/connection";
import { SshTransport } from "../../src/transport/ssh";
import {
  LOADER_BUILD_PATH,
  LOADER_HOST_PATH,
  parseAttach,
  parseDetach,
  parseLoaderOutput,
  parseRestore,
  parseShow,
  parseTakeover,
  pinDirFor,
  renderAttach,
  renderDetach,
  renderRestore,
  renderShow,
  renderTakeover,
  type XdpMode,
} from "../../src/host/xdpLoader";
import { connection, ROOT, sandboxHosts } from "../helpers/sandbox";

const FIXTURES = path.join(ROOT, "test/fixtures/xdp");
const REMOTE = "/tmp/nettune-xdp-test";
const DEV = "eth0";
const PIN = pinDirFor("xdptest");
const SAVE = pinDirFor("xdptest-saved");

let t: SshTransport;
let tmp: string;

/** Compiles a fixture as nettune will on a user's machine. */
function compile(src: string, out: string, defines: string[] = []): void {
  const res = spawnSync(
    "clang",
    [
      "-O2",
      "-g",
      "-target",
      "bpf",
      `-I/usr/include/${os.arch() === "arm64" ? "aarch64" : "x86_64"}-linux-gnu`,
      ...defines,
      "-c",
      path.join(FIXTURES, src),
      "-o",
      path.join(tmp, out),
    ],
    { encoding: "utf8" },
  );
  if (res.status !== 0) throw new Error(`clang ${src} failed: ${res.stderr}`);
}

async function sh(script: string): Promise<string> {
  return (await t.exec({ script })).stdout;
}

/** Copies a local file to the host through the transport (base64 on stdin: no scp needed). */
async function upload(local: string, remote: string, mode = "0644"): Promise<void> {
  const data = fs.readFileSync(local).toString("base64");
  await t.exec(
    {
      script: `mkdir -p "$(dirname '${remote}')" && base64 -d > '${remote}' && chmod ${mode} '${remote}'`,
    },
    { stdin: data },
  );
}

/** Runs the loader; returns its stdout and exit code (failures are results, not throws). */
async function loader(argv: string[]): Promise<{ stdout: string; exitCode: number | null }> {
  const r = await t.exec(argv, { allowFailure: true });
  return { stdout: r.stdout, exitCode: r.exitCode };
}

/** The loader's error code for a command that must fail. */
async function failure(argv: string[]): Promise<{ code: string; extra: Record<string, unknown> }> {
  const r = await loader(argv);
  expect(r.exitCode).toBe(1);
  try {
    parseLoaderOutput(r.stdout);
  } catch (e) {
    const err = e as { code: string; extra: Record<string, unknown> };
    return { code: err.code, extra: err.extra };
  }
  throw new Error(`expected a failure, got ${r.stdout}`);
}

/** What `ip -d -j link show eth0` says is attached: mode (1 drv, 2 skb) and program id. */
async function ipXdp(): Promise<{ mode: number; id: number } | null> {
  const links = JSON.parse(await sh(`ip -d -j link show ${DEV}`)) as {
    xdp?: { mode: number; prog?: { id: number } };
  }[];
  const xdp = links[0]?.xdp;
  return xdp?.prog === undefined ? null : { mode: xdp.mode, id: xdp.prog.id };
}

const show = async () => parseShow((await loader(renderShow(DEV))).stdout);

const attachArgv = (obj: string, mode: XdpMode = "native", extra = {}) =>
  renderAttach({
    dev: DEV,
    obj: `${REMOTE}/${obj}`,
    prog: obj.startsWith("foreign") ? "xdp_foreign" : "xdp_pass_count",
    mode,
    pinDir: PIN,
    ...extra,
  });

async function attach(obj: string, mode: XdpMode = "native", extra = {}) {
  const r = await loader(attachArgv(obj, mode, extra));
  expect(r.exitCode, r.stdout).toBe(0);
  return parseAttach(r.stdout);
}

/** Leaves eth0 without XDP and the test's pins gone, whatever a failed run left. */
async function clean(): Promise<void> {
  await loader(renderDetach(DEV, PIN));
  await sh(`ip link set dev ${DEV} xdp off; rm -rf '${PIN}' '${SAVE}'`);
}

describe("xdp-loader on an nspawn host", () => {
  beforeAll(async () => {
    const local = path.join(ROOT, LOADER_BUILD_PATH);
    expect(fs.existsSync(local), `${local}: run scripts/setup.sh`).toBe(true);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-xdp-"));
    compile("pass_count.c", "pass1.o", ["-DSTEP=1"]);
    compile("pass_count.c", "pass2.o", ["-DSTEP=2"]);
    compile("foreign_pass.c", "foreign.o");
    t = new SshTransport(connectionSchema.parse(connection(sandboxHosts()[0]!)));
    await upload(local, LOADER_HOST_PATH, "0755");
    for (const f of ["pass1.o", "pass2.o", "foreign.o"]) {
      await upload(path.join(tmp, f), `${REMOTE}/${f}`);
    }
    await clean();
  });

  afterAll(async () => {
    if (t !== undefined) {
      await clean();
      await sh(`rm -rf ${REMOTE}`);
      await t.close();
    }
    if (tmp !== undefined) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test("show: nothing attached, veth, bpffs mounted", async () => {
    expect(await show()).toMatchObject({ attached: null, driver: "veth", bpffs: true, mtu: 1500 });
  });

  test("attach native makes a pinned bpf_link; an update swaps the program, the link stays", async () => {
    const first = await attach("pass1.o");
    expect(first).toMatchObject({
      mode: "native",
      via: "link",
      updated: false,
      maps: ["pkt_count"],
    });
    expect(first.linkId).toBeGreaterThan(0);
    expect(await ipXdp()).toEqual({ mode: 1, id: first.progId }); // 1 = XDP_ATTACHED_DRV
    expect((await show()).attached).toEqual({
      progId: first.progId,
      name: "xdp_pass_count",
      tag: first.tag,
      mode: "native",
      linkId: first.linkId,
      pinned: `${PIN}/link`,
    });
    expect((await sh(`ls ${PIN} ${PIN}/maps`)).split(/\s+/)).toEqual(
      expect.arrayContaining(["link", "maps", "pkt_count"]),
    );

    const second = await attach("pass2.o", "native", { expectLinkId: first.linkId! });
    expect(second).toMatchObject({
      linkId: first.linkId,
      updated: true,
      previousProgId: first.progId,
      reusedMaps: ["pkt_count"],
    });
    expect(second.progId).not.toBe(first.progId);
    expect(second.tag).not.toBe(first.tag);
    expect(await ipXdp()).toEqual({ mode: 1, id: second.progId });

    // A mode change is not atomic, so it is refused; a wrong expected link id too.
    expect((await failure(attachArgv("pass1.o", "generic"))).code).toBe("mode-change");
    expect((await failure(attachArgv("pass1.o", "native", { expectLinkId: 1 }))).code).toBe(
      "link-mismatch",
    );
    expect(await ipXdp()).toEqual({ mode: 1, id: second.progId });
  });

  test("detach removes what the pin dir holds and leaves nothing pinned; twice is fine", async () => {
    const before = await show();
    const d = parseDetach((await loader(renderDetach(DEV, PIN))).stdout);
    expect(d).toMatchObject({ detached: true, progId: before.attached!.progId });
    expect(await ipXdp()).toBeNull();
    expect((await show()).attached).toBeNull();
    expect(await sh(`test -e ${PIN} && echo present || echo gone`)).toBe("gone\n");
    expect(parseDetach((await loader(renderDetach(DEV, PIN))).stdout)).toMatchObject({
      detached: false,
      alreadyGone: true,
    });
  });

  test("a program attached by hand is refused and stays attached", async () => {
    await sh(`ip link set dev ${DEV} xdpgeneric obj ${REMOTE}/foreign.o sec xdp`);
    const foreign = (await show()).attached!;
    expect(foreign).toMatchObject({ name: "xdp_foreign", mode: "generic", linkId: null });
    for (const mode of ["native", "generic"] as const) {
      const f = await failure(attachArgv("pass1.o", mode));
      expect(f.code).toBe("foreign-program");
      expect(f.extra).toMatchObject({ progId: foreign.progId, mode: "generic" });
    }
    expect(await ipXdp()).toEqual({ mode: 2, id: foreign.progId }); // 2 = XDP_ATTACHED_SKB
    expect(await sh(`test -e ${PIN} && echo present || echo gone`)).toBe("gone\n");
    // Detach with our (absent) pin dir does not touch it either.
    await loader(renderDetach(DEV, PIN));
    expect(await ipXdp()).toEqual({ mode: 2, id: foreign.progId });
  });

  test("takeover, atomic replace, update, atomic restore: the foreign program comes back", async () => {
    const foreign = (await show()).attached!;
    const saved = parseTakeover((await loader(renderTakeover(DEV, SAVE))).stdout);
    expect(saved).toMatchObject({ progId: foreign.progId, mode: "generic", saveDir: SAVE });
    expect(JSON.parse(await sh(`readlink ${SAVE}/meta`))).toMatchObject({
      progId: foreign.progId,
      mode: "generic",
    });

    const ours = await attach("pass1.o", "generic", { replaceProgId: foreign.progId });
    expect(ours).toMatchObject({ via: "netlink", updated: true, previousProgId: foreign.progId });
    expect(await ipXdp()).toEqual({ mode: 2, id: ours.progId });
    const updated = await attach("pass2.o", "generic");
    expect(updated).toMatchObject({ via: "netlink", updated: true, previousProgId: ours.progId });
    expect((await show()).attached).toMatchObject({
      progId: updated.progId,
      pinned: `${PIN}/prog`,
    });

    const back = parseRestore((await loader(renderRestore(DEV, SAVE, PIN))).stdout);
    expect(back).toMatchObject({
      restored: true,
      progId: foreign.progId,
      replaced: updated.progId,
    });
    expect(await ipXdp()).toEqual({ mode: 2, id: foreign.progId });
    expect(await sh(`ls -d ${PIN} ${SAVE} 2>/dev/null | wc -l`)).toBe("0\n");
  });

  test("takeover, detach by hand, restore 'only if none' re-attaches in the original mode", async () => {
    const foreign = (await show()).attached!;
    parseTakeover((await loader(renderTakeover(DEV, SAVE))).stdout);
    await sh(`ip link set dev ${DEV} xdpgeneric off`);
    expect(await ipXdp()).toBeNull();
    const back = parseRestore((await loader(renderRestore(DEV, SAVE))).stdout);
    expect(back).toMatchObject({ restored: true, progId: foreign.progId, mode: "generic" });
    expect(await ipXdp()).toEqual({ mode: 2, id: foreign.progId });
    expect(await sh(`test -e ${SAVE} && echo present || echo gone`)).toBe("gone\n");
    await sh(`ip link set dev ${DEV} xdpgeneric off`);
  });

  test("the netlink path (as on kernels without XDP links): attach, update, detach", async () => {
    const first = await attach("pass1.o", "native", { noLink: true });
    expect(first).toMatchObject({ via: "netlink", linkId: null, linkFallback: "--no-link" });
    expect(await ipXdp()).toEqual({ mode: 1, id: first.progId });
    const second = await attach("pass2.o");
    expect(second).toMatchObject({ via: "netlink", updated: true, previousProgId: first.progId });
    expect(await ipXdp()).toEqual({ mode: 1, id: second.progId });
    expect(parseDetach((await loader(renderDetach(DEV, PIN))).stdout)).toMatchObject({
      detached: true,
      progId: second.progId,
    });
    expect(await ipXdp()).toBeNull();
    expect(
      await sh(`ls ${pinDirFor("x").replace(/\/x$/, "")} 2>/dev/null | grep -c xdptest || true`),
    ).toBe("0\n");
  });

  test("errors: unknown program, missing device", async () => {
    const f = await failure(
      renderAttach({
        dev: DEV,
        obj: `${REMOTE}/pass1.o`,
        prog: "nope",
        mode: "native",
        pinDir: PIN,
      }),
    );
    expect(f).toEqual({ code: "no-such-program", extra: { programs: ["xdp_pass_count"] } });
    expect((await failure(renderShow("nosuch0"))).code).toBe("no-such-device");
    expect(await sh(`test -e ${PIN} && echo present || echo gone`)).toBe("gone\n");
  });
});
