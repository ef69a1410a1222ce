/**
 * XdpProgram through the real Pulumi engine on nspawn sandbox host 1, whose eth0 is a veth that
 * carries the SSH connection itself: only XDP_PASS programs go on it (pass_count.c counts and
 * passes). Attach native as a pinned bpf_link, a second up that changes nothing, an edited
 * source that previews as an update and swaps the program in the same link, re-attach after a
 * real reboot, drift, destroy that leaves nothing behind; commit-confirmed: a drop-all program
 * (drop_all.c, which cuts the SSH session) detached by the host itself within rollbackAfter,
 * and an update to it rolled back to the previous program through the same link; a foreign
 * program refused at preview and left attached, too large an MTU refused at preview (a veth pair created inside the host,
 * its peer at MTU 9000), and a compile error at preview.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EngineStack } from "../helpers/engine";
import { onHost } from "../helpers/hostShell";
import { cli, connection, direct, ROOT, sandboxHosts, SANDBOX } from "../helpers/sandbox";
import { connectionSchema } from "../../src/schemas/connection";
import { SshTransport } from "../../src/transport/ssh";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import { parseShow, LOADER_HOST_PATH } from "../../src/host/xdpLoader";
import type { XdpArg, XdpProgramArgs } from "../programs/xdp";

const FIXTURES = path.join(ROOT, "test/fixtures/xdp");
const NAME = "xdp-count";
/** The main stack's unit and pin folder: named after the resource, tagged with the stack. */
const MAIN = new EngineStack("xdp", "xdp");
const UNIT = `nettune-xdpprogram-${MAIN.named(NAME)}.service`;
const PIN_DIR = `/sys/fs/bpf/nettune/nettune-xdpprogram-${MAIN.named(NAME)}`;
const XDP = "pulumi-nodejs:dynamic/nettune:XdpProgram";

let host: SandboxHost;
let tmp: string;
let source: string;
let dropSource: string;
let passSource: string;

/** Everything XdpProgram may leave on the host besides the attachment. */
const FILES =
  "ls /sys/fs/bpf /usr/local/lib /etc/systemd/system 2>/dev/null | grep -i nettune || true; " +
  "ls /usr/local/lib/nettune 2>/dev/null || true";

/** What `ip -d -j link show eth0` reports attached: mode (1 drv, 2 skb), program id and name. */
async function ipXdp(dev = "eth0"): Promise<{ mode: number; id: number; name: string } | null> {
  const links = JSON.parse(await onHost(host, `ip -d -j link show ${dev}`)) as {
    xdp?: { mode: number; prog?: { id: number; name: string } };
  }[];
  const x = links[0]?.xdp;
  return x?.prog ? { mode: x.mode, id: x.prog.id, name: x.prog.name } : null;
}

const show = async () =>
  parseShow(await onHost(host, `${LOADER_HOST_PATH} show --dev eth0; true`)).attached;

function arg(extra: Partial<XdpArg> = {}): XdpArg {
  return {
    name: NAME,
    host: direct(host),
    interface: "eth0",
    source,
    programName: "xdp_pass_count",
    ...extra,
  };
}
const args = (extra: Partial<XdpArg> = {}): XdpProgramArgs => ({ xdps: [arg(extra)] });

/** The lines of a preview that mark a changed property. */
function changedLines(stdout: string): string[] {
  return stdout
    .split("--outputs:--")[0]!
    .split("\n")
    .filter((l) => /^\s*[-+~] /.test(l) && !l.includes("pulumi-nodejs:dynamic"))
    .filter((l) => !/^\s*[-+~] \d+ to /.test(l));
}

/** Compiles the foreign program here and copies it to the host's /tmp (a reboot empties it). */
async function uploadForeign(): Promise<void> {
  const obj = path.join(tmp, "foreign.o");
  const cc = spawnSync(
    "clang",
    [
      "-O2",
      "-g",
      "-target",
      "bpf",
      "-I/usr/include/x86_64-linux-gnu",
      "-c",
      path.join(FIXTURES, "foreign_pass.c"),
      "-o",
      obj,
    ],
    { encoding: "utf8" },
  );
  expect(cc.status, cc.stderr).toBe(0);
  const data = fs.readFileSync(obj).toString("base64");
  const t = new SshTransport(connectionSchema.parse(connection(host)));
  try {
    await t.exec({ script: "base64 -d > /tmp/foreign.o" }, { stdin: data });
  } finally {
    await t.close();
  }
}

beforeAll(async () => {
  host = sandboxHosts()[0]!;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-xdp-engine-"));
  source = path.join(tmp, "pass_count.c");
  fs.copyFileSync(path.join(FIXTURES, "pass_count.c"), source);
  dropSource = path.join(tmp, "drop_all.c");
  fs.copyFileSync(path.join(FIXTURES, "drop_all.c"), dropSource);
  passSource = path.join(tmp, "pass_count_upd.c");
  fs.copyFileSync(path.join(FIXTURES, "pass_count.c"), passSource);
  expect(await ipXdp()).toBeNull();
});

afterAll(async () => {
  await onHost(
    host,
    "ip link set dev eth0 xdpgeneric off; ip link del xt0 2>/dev/null; rm -f /tmp/foreign.o; true",
  );
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe("XdpProgram lifecycle on a veth", () => {
  const stack = MAIN;
  let files: string;
  afterAll(() => {
    stack.destroy(args());
    stack.dispose();
  });

  test("up attaches native as a pinned bpf_link; a second up is a no-op", async () => {
    files = await onHost(host, FILES);
    const p = stack.preview(args());
    expect(p.error).toBeUndefined();
    expect(p.changes).toEqual({ create: 2 });
    expect(await ipXdp()).toBeNull();

    const up = stack.up(args());
    expect(up.error).toBeUndefined();
    const attached = up.outputs[`${NAME}_attached`] as {
      progId: number;
      linkId: number;
      tag: string;
    };
    expect(attached).toMatchObject({ name: "xdp_pass_count", mode: "native", via: "link" });
    expect(attached.linkId).toBeGreaterThan(0);
    expect(up.outputs[`${NAME}_maps`]).toEqual(["pkt_count"]);
    expect(up.outputs[`${NAME}_pinDir`]).toBe(PIN_DIR);
    expect(up.outputs[`${NAME}_unitPath`]).toBe(`/etc/systemd/system/${UNIT}`);
    expect(await ipXdp()).toEqual({ mode: 1, id: attached.progId, name: "xdp_pass_count" });
    expect(await show()).toMatchObject({
      progId: attached.progId,
      linkId: attached.linkId,
      pinned: `${PIN_DIR}/link`,
    });
    expect((await onHost(host, `systemctl is-enabled ${UNIT}`)).trim()).toBe("enabled");
    // The map counts the packets of this very SSH session.
    expect(await onHost(host, `ls ${PIN_DIR}/maps`)).toBe("pkt_count\n");

    expect(stack.preview(args()).changes).toEqual({ same: 2 });
    const again = stack.up(args());
    expect(again.changes).toEqual({ same: 2 });
    expect((await ipXdp())?.id).toBe(attached.progId);
  });

  test("an edited source previews as an update of objectSha256 and swaps the program atomically", async () => {
    const before = (await show())!;
    fs.writeFileSync(
      source,
      fs.readFileSync(source, "utf8").replace("#define STEP 1", "#define STEP 2"),
    );
    const p = stack.preview(args());
    expect(p.error).toBeUndefined();
    expect(p.changes).toEqual({ same: 1, update: 1 });
    const lines = changedLines(p.stdout);
    expect(lines.some((l) => /~ objectSha256\s*:/.test(l))).toBe(true);
    // The blob is never printed.
    expect(p.stdout).not.toMatch(/f0VMR/);
    expect((await show())?.progId).toBe(before.progId);

    const up = stack.up(args());
    expect(up.error).toBeUndefined();
    const after = (await show())!;
    expect(after.linkId).toBe(before.linkId);
    expect(after.progId).not.toBe(before.progId);
    expect(after.tag).not.toBe(before.tag);
    expect(up.outputs[`${NAME}_attached`]).toMatchObject({
      progId: after.progId,
      linkId: before.linkId,
    });
    expect(stack.preview(args()).changes).toEqual({ same: 2 });
  });

  test("after a real reboot the unit attaches it again; refresh finds no drift; a detach by hand is drift and up re-attaches", async () => {
    cli(["sandbox", "reboot", host.name, "--name", SANDBOX]);
    await onHost(
      host,
      `for i in $(seq 60); do systemctl is-active --quiet ${UNIT} && break; sleep 0.5; done`,
    );
    const back = await ipXdp();
    expect(back).toMatchObject({ mode: 1, name: "xdp_pass_count" });
    expect(await show()).toMatchObject({ progId: back!.id, pinned: `${PIN_DIR}/link` });
    const r = stack.refresh(args());
    expect(r.error).toBeUndefined();
    expect(r.changes).toEqual({ same: 2 });
    expect(stack.preview(args()).changes).toEqual({ same: 2 });

    // By hand: unpinning the link drops its last reference, and the kernel detaches it.
    await onHost(host, `rm -rf ${PIN_DIR}`);
    expect(await ipXdp()).toBeNull();
    const drift = stack.refresh(args());
    expect(drift.error).toBeUndefined();
    expect(drift.changes).toEqual({ same: 1, update: 1 });
    const refreshed = drift.events.find((e) => e.type === "outputs" && e.resourceType === XDP);
    expect(refreshed?.newOutputs?.objectSha256).toBe("none");
    expect(refreshed?.newOutputs?.attached).toBeUndefined();
    expect(stack.preview(args()).changes).toEqual({ same: 1, update: 1 });
    const up = stack.up(args());
    expect(up.error).toBeUndefined();
    expect(await ipXdp()).toMatchObject({ mode: 1, name: "xdp_pass_count" });
    expect(stack.preview(args()).changes).toEqual({ same: 2 });
  });

  test("destroy detaches and leaves nothing pinned, no unit, no files", async () => {
    const d = stack.destroy(args());
    expect(d.error).toBeUndefined();
    expect(await ipXdp()).toBeNull();
    expect(await onHost(host, FILES)).toBe(files);
    // Only the kernel's own preload iterators (maps.debug, progs.debug) may be there.
    expect(await onHost(host, "ls -A /sys/fs/bpf | grep -v '[.]debug$'; true")).toBe("");
  });
});

describe("commit-confirmed on eth0, which carries the SSH session", () => {
  /** A drop-all program cuts the session; the host's timer fires after ROLLBACK s. */
  const ROLLBACK = 10;
  const CUT_TIMEOUT_MS = 240_000;
  const ROLLBACK_MESSAGE = new RegExp(
    `XDP program xdp_drop_all on eth0 cut the SSH connection to .*The host undid the change by itself after ${ROLLBACK} s \\(commit-confirmed rollback\\) and is reachable again`,
    "s",
  );
  const bpffs = () => onHost(host, "ls -A /sys/fs/bpf | grep -v '[.]debug$'; true");

  test(
    "a drop-all program: the host detaches it by itself, up fails saying so; no unit, pins or files are left",
    async () => {
      const files = await onHost(host, FILES);
      const stack = new EngineStack("xdp", "xdpdrop");
      const a = args({
        name: "xdp-drop",
        source: dropSource,
        programName: "xdp_drop_all",
        rollbackAfter: ROLLBACK,
      });
      try {
        const started = Date.now();
        const up = stack.up(a);
        const took = (Date.now() - started) / 1000;
        expect(up.ok).toBe(false);
        const message = up.error ?? up.stdout;
        expect(message).toMatch(ROLLBACK_MESSAGE);
        expect(message).toMatch(
          /The rollback detached the program and removed its boot unit and object/,
        );
        // Reachable again (onHost opens a new connection), and nothing of the attach is left.
        expect(await ipXdp()).toBeNull();
        expect(await onHost(host, FILES)).toBe(files);
        expect(await bpffs()).toBe("");
        expect(await onHost(host, "ls /run | grep -c nettune-xdp; true")).toBe("0\n");
        console.log(`drop-all create rolled back; up took ${took.toFixed(1)} s`);
        // Nothing went into the state: the next preview would create it again.
        expect(stack.preview(a).changes).toEqual({ same: 1, create: 1 });
      } finally {
        stack.destroy(a);
        stack.dispose();
      }
    },
    CUT_TIMEOUT_MS,
  );

  test(
    "an update to a drop-all program: the host puts the previous program back through the same link, with its unit",
    async () => {
      const files = await onHost(host, FILES);
      const stack = new EngineStack("xdp", "xdpupd");
      const name = "xdp-upd";
      const unitFile = `/etc/systemd/system/nettune-xdpprogram-${stack.named(name)}.service`;
      const pass = args({ name, source: passSource, rollbackAfter: ROLLBACK });
      const drop = args({
        name,
        source: dropSource,
        programName: "xdp_drop_all",
        rollbackAfter: ROLLBACK,
      });
      try {
        const up = stack.up(pass);
        expect(up.error).toBeUndefined();
        const before = (await show())!;
        expect(before).toMatchObject({ name: "xdp_pass_count", mode: "native" });
        const unitBefore = await onHost(host, `cat ${unitFile}`);
        const objSha = up.outputs[`${name}_objectSha256`] as string;

        const p = stack.preview(drop);
        expect(p.error).toBeUndefined();
        expect(p.changes).toEqual({ same: 1, update: 1 });
        const started = Date.now();
        const upd = stack.up(drop);
        const took = (Date.now() - started) / 1000;
        expect(upd.ok).toBe(false);
        const message = upd.error ?? upd.stdout;
        expect(message).toMatch(ROLLBACK_MESSAGE);
        expect(message).toMatch(
          new RegExp(`attached the previous program \\(xdp_pass_count, tag ${before.tag}\\) again`),
        );

        // The same link, the previous object's program (same tag; a new load, so a new id).
        const after = (await show())!;
        expect(after).toMatchObject({
          linkId: before.linkId,
          tag: before.tag,
          name: "xdp_pass_count",
          mode: "native",
          pinned: before.pinned,
        });
        expect(await onHost(host, `cat ${unitFile}`)).toBe(unitBefore);
        expect(
          await onHost(
            host,
            `ls /usr/local/lib/nettune/xdp; sha256sum /usr/local/lib/nettune/xdp/nettune-xdpprogram-${stack.named(name)}.o | cut -c1-64`,
          ),
        ).toBe(`nettune-xdpprogram-${stack.named(name)}.o\n${objSha}\n`);
        console.log(
          `drop-all update rolled back to program ${after.progId} (was ${before.progId}, tag ${before.tag}) on link ${after.linkId}; up took ${took.toFixed(1)} s`,
        );
        // The state still holds the pass program, which is what runs: no change.
        expect(stack.preview(pass).changes).toEqual({ same: 2 });
        expect(stack.destroy(pass).error).toBeUndefined();
        expect(await ipXdp()).toBeNull();
        expect(await onHost(host, FILES)).toBe(files);
        expect(await bpffs()).toBe("");
      } finally {
        stack.destroy(pass);
        stack.dispose();
      }
    },
    CUT_TIMEOUT_MS,
  );
});

describe("refused at preview", () => {
  test("a program attached by hand is named and stays attached", async () => {
    await uploadForeign();
    await onHost(host, "ip link set dev eth0 xdpgeneric obj /tmp/foreign.o sec xdp");
    const foreign = (await ipXdp())!;
    expect(foreign).toMatchObject({ mode: 2, name: "xdp_foreign" });
    const stack = new EngineStack("xdp", "xdpforeign");
    try {
      const p = stack.preview(args());
      expect(p.ok).toBe(false);
      expect(p.error ?? p.stdout).toMatch(
        new RegExp(
          `interface.*program ${foreign.id} "xdp_foreign" \\(tag [0-9a-f]{16}, generic mode\\).*nettune did not attach.*takeOver`,
          "s",
        ),
      );
      expect(stack.up(args()).ok).toBe(false);
      expect(await ipXdp()).toEqual(foreign);
    } finally {
      stack.destroy(args());
      stack.dispose();
      await onHost(host, "ip link set dev eth0 xdpgeneric off");
    }
  });

  test("too large an MTU: a veth pair inside the host, its peer at MTU 9000, fails with the limit", async () => {
    await onHost(
      host,
      "ip link add xt0 type veth peer name xt1 && ip link set xt1 mtu 9000 && ip link set xt0 up && ip link set xt1 up",
    );
    const stack = new EngineStack("xdp", "xdpmtu");
    try {
      const a = args({ name: "xdp-mtu", interface: "xt0" });
      const p = stack.preview(a);
      expect(p.ok).toBe(false);
      expect(p.error ?? p.stdout).toMatch(
        /native XDP on xt0 \(driver veth\) needs its peer xt1's MTU of at most 3506.*xt1 has MTU 9000/s,
      );
      // Generic mode has no such limit.
      const generic = stack.preview(args({ name: "xdp-mtu", interface: "xt0", mode: "generic" }));
      expect(generic.error).toBeUndefined();
    } finally {
      stack.dispose();
      await onHost(host, "ip link del xt0");
    }
  });

  test("a compile error names the resource and shows clang's message", () => {
    const bad = path.join(tmp, "bad.c");
    fs.writeFileSync(
      bad,
      "#include <linux/bpf.h>\nint xdp_bad(struct xdp_md *ctx) { return nope; }\n",
    );
    const stack = new EngineStack("xdp", "xdpbad");
    try {
      const p = stack.preview(args({ name: "xdp-bad", source: bad }));
      expect(p.ok).toBe(false);
      expect(p.error ?? p.stdout).toMatch(
        /XdpProgram xdp-bad: clang could not compile.*bad\.c.*use of undeclared identifier 'nope'/s,
      );
    } finally {
      stack.dispose();
    }
  });
});
