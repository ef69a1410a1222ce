/**
 * The XDP program library (nettune.xdp) through the real Pulumi engine on nspawn sandbox host 2,
 * whose eth0 is a veth carrying the SSH session: a TCP listener on port 8080 in the host, TCP
 * connections to it from this machine's side of the veth (the test process), SSH on port 22
 * untouched by every program.
 *
 * dropPorts drops 8080 at the interface; synFlood then replaces it in the same bpf_link and
 * holds one source to its burst and rate; a change of its constants alone previews as an update
 * of `constants` and swaps the program in the link; the counters are read on the host. Then
 * takeOver: a program attached by hand is replaced, named in the outputs, and put back by
 * destroy.
 */
import * as net from "node:net";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EngineStack, stackNamed } from "../helpers/engine";
import { onHost } from "../helpers/hostShell";
import { connection, direct, ROOT, sandboxHosts } from "../helpers/sandbox";
import { connectionSchema } from "../../src/schemas/connection";
import { SshTransport } from "../../src/transport/ssh";
import { readXdpCounters } from "../../src/host/xdpProgram";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import type { XdpArg, XdpProgramArgs } from "../programs/xdp";

const PORT = 8080;
const NAME = "xdp-lib";
/** The pin folder of stack xdplib's program (its name carries the stack's tag). */
const PIN_DIR = `/sys/fs/bpf/nettune/nettune-xdpprogram-${stackNamed("xdp", "xdplib", NAME)}`;
let host: SandboxHost;

/** Connects to the host's port from this machine; true when the handshake completed in time. */
function connects(timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: host.hostAddress, port: PORT });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

/** n connection attempts one after the other; how many got through. */
async function attempts(n: number, timeoutMs: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) if (await connects(timeoutMs)) ok++;
  return ok;
}

async function counters(map: string): Promise<number[]> {
  const t = new SshTransport(connectionSchema.parse(connection(host)));
  try {
    return await readXdpCounters(t, PIN_DIR, map);
  } finally {
    await t.close();
  }
}

/** The program on eth0 as `ip -d -j link` shows it (the loader is gone once nothing is ours). */
async function attachedOn(): Promise<{ progId: number; name: string; tag: string } | null> {
  const links = JSON.parse(await onHost(host, "ip -d -j link show eth0")) as {
    xdp?: { prog?: { id: number; name: string; tag: string } };
  }[];
  const p = links[0]?.xdp?.prog;
  return p ? { progId: p.id, name: p.name, tag: p.tag } : null;
}

function arg(library: XdpArg["library"], extra: Partial<XdpArg> = {}): XdpProgramArgs {
  return { xdps: [{ name: NAME, host: direct(host), interface: "eth0", library, ...extra }] };
}

/** The lines of a preview that mark a changed property. */
function changedProps(stdout: string): string[] {
  return stdout
    .split("--outputs:--")[0]!
    .split("\n")
    .filter((l) => /^\s*[-+~] \w+\s*:/.test(l))
    .map((l) => l.trim().split(/\s*:/)[0]!.slice(2));
}

beforeAll(async () => {
  host = sandboxHosts()[1]!;
  // A listener that accepts and closes, for 15 minutes at most.
  await onHost(
    host,
    `setsid timeout 900 python3 -c 'import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", ${PORT})); s.listen(1024)
while True:
    c, _ = s.accept(); c.close()' </dev/null >/dev/null 2>&1 &
for i in $(seq 50); do ss -Hltn "sport = :${PORT}" | grep -q . && break; sleep 0.1; done`,
  );
  expect(await connects(2000)).toBe(true);
});

afterAll(async () => {
  await onHost(host, `pkill -f 'bind\\(\\("0.0.0.0", ${PORT}\\)' ; true`);
});

describe("nettune.xdp programs on a veth", () => {
  const stack = new EngineStack("xdp", "xdplib");
  let first: { progId: number; linkId: number };
  afterAll(async () => {
    stack.destroy(arg({ name: "dropPorts", config: { tcp: [PORT] } }));
    stack.dispose();
    expect(await attachedOn()).toBeNull();
    expect(await onHost(host, "ls /sys/fs/bpf/nettune 2>/dev/null; true")).toBe("");
  });

  test("dropPorts: TCP 8080 dropped at the interface, SSH untouched, its counters on the host", async () => {
    const a = arg({ name: "dropPorts", config: { tcp: [PORT] } });
    const up = stack.up(a);
    expect(up.error).toBeUndefined();
    expect(up.outputs[`${NAME}_constants`]).toEqual({
      cfg_tcp_count: 1,
      cfg_tcp_ports: [PORT],
      cfg_udp_count: 0,
      cfg_udp_ports: [],
    });
    expect(up.outputs[`${NAME}_maps`]).toEqual(["drop_stats"]);
    first = up.outputs[`${NAME}_attached`] as typeof first;
    expect(first).toMatchObject({ name: "xdp_drop_ports", via: "link" });
    expect(await connects(1000)).toBe(false);
    const [droppedTcp, droppedUdp] = await counters("drop_stats");
    // One SYN at least (the kernel may have retransmitted it within the second).
    expect(droppedTcp).toBeGreaterThanOrEqual(1);
    expect(droppedUdp).toBe(0);
    expect(stack.preview(a).changes).toEqual({ same: 2 });
  });

  test("synFlood replaces it in the same link and holds one source to its burst, then its rate", async () => {
    const a = arg({ name: "synFlood", config: { perSourceRate: 1, burst: 2, ports: [PORT] } });
    const up = stack.up(a);
    expect(up.error).toBeUndefined();
    const now = up.outputs[`${NAME}_attached`] as typeof first;
    expect(now.linkId).toBe(first.linkId);
    expect(now.progId).not.toBe(first.progId);
    expect(up.outputs[`${NAME}_maps`]).toEqual(["syn_buckets", "syn_stats", "syn_total"]);
    // Ten handshakes in quick succession: the burst (2) and the first SYN pass, one more may
    // as the bucket refills (1 per second) while the refused ones wait out their 200 ms.
    const ok = await attempts(10, 200);
    expect(ok).toBeGreaterThanOrEqual(3);
    expect(ok).toBeLessThanOrEqual(4);
    const [seen, passed, perSource, total] = await counters("syn_stats");
    expect({ seen, passed, perSource, total }).toEqual({
      seen: 10,
      passed: ok,
      perSource: 10 - ok,
      total: 0,
    });
    first = now;
  });

  test("a change of its constants alone previews as an update of constants and swaps the program in the link", async () => {
    const a = arg({ name: "synFlood", config: { perSourceRate: 1000, burst: 200, ports: [PORT] } });
    const p = stack.preview(a);
    expect(p.error).toBeUndefined();
    expect(p.changes).toEqual({ same: 1, update: 1 });
    // The constants that changed, under `constants`, and nothing else.
    expect(changedProps(p.stdout).sort()).toEqual(["cfg_burst", "cfg_rate", "constants"]);
    expect(p.stdout).toMatch(/~ cfg_rate\s*: 1 => 1000/);
    const up = stack.up(a);
    expect(up.error).toBeUndefined();
    const now = up.outputs[`${NAME}_attached`] as typeof first;
    expect(now.linkId).toBe(first.linkId);
    expect(now.progId).not.toBe(first.progId);
    // The buckets and counters are kept (the maps are reused); the new limits hold at once.
    expect(await attempts(10, 1000)).toBe(10);
    const [seen, passed] = await counters("syn_stats");
    expect(seen - passed).toBeGreaterThanOrEqual(6);
    expect(passed).toBeGreaterThanOrEqual(13);
  });
});

describe("takeOver through the engine", () => {
  const stack = new EngineStack("xdp", "xdptake");
  const FOREIGN = path.join(ROOT, "test/fixtures/xdp/foreign_pass.c");
  const a = (takeOver: boolean): XdpProgramArgs => ({
    xdps: [
      {
        name: "xdp-take",
        host: direct(host),
        interface: "eth0",
        library: { name: "dropPorts", config: { tcp: [PORT] } },
        mode: "generic",
        takeOver,
      },
    ],
  });
  let foreign: { progId: number; tag: string };
  beforeAll(async () => {
    // The foreign program, compiled here and attached by hand in generic mode.
    const { spawnSync } = await import("node:child_process");
    const cc = spawnSync(
      "clang",
      ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", FOREIGN, "-o", "-"],
      { maxBuffer: 1 << 22 },
    );
    expect(cc.status, String(cc.stderr)).toBe(0);
    const t = new SshTransport(connectionSchema.parse(connection(host)));
    try {
      await t.exec(
        {
          script:
            "base64 -d > /tmp/foreign.o && ip link set dev eth0 xdpgeneric obj /tmp/foreign.o sec xdp",
        },
        { stdin: cc.stdout.toString("base64") },
      );
    } finally {
      await t.close();
    }
    const shown = (await attachedOn())!;
    expect(shown.name).toBe("xdp_foreign");
    foreign = { progId: shown.progId, tag: shown.tag };
  });
  afterAll(async () => {
    stack.dispose();
    await onHost(host, "ip link set dev eth0 xdpgeneric off; rm -f /tmp/foreign.o; true");
  });

  test("without takeOver preview refuses; with it, up replaces the foreign program, destroy puts it back", async () => {
    const refused = stack.preview(a(false));
    expect(refused.ok).toBe(false);
    expect(refused.error ?? refused.stdout).toMatch(/xdp_foreign.*nettune did not attach/s);

    const up = stack.up(a(true));
    expect(up.error).toBeUndefined();
    expect(up.outputs["xdp-take_takenOver"]).toEqual({
      progId: foreign.progId,
      name: "xdp_foreign",
      tag: foreign.tag,
      mode: "generic",
    });
    expect((await attachedOn())?.name).toBe("xdp_drop_ports");
    expect(await connects(1000)).toBe(false);
    expect(stack.preview(a(true)).changes).toEqual({ same: 2 });

    const down = stack.destroy(a(true));
    expect(down.error).toBeUndefined();
    const back = (await attachedOn())!;
    expect(back).toMatchObject({ progId: foreign.progId, name: "xdp_foreign", tag: foreign.tag });
    expect(await connects(2000)).toBe(true);
    expect(await onHost(host, "ls /sys/fs/bpf/nettune 2>/dev/null; true")).toBe("");
  });
});
