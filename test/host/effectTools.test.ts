/**
 * The effect benchmark's instruments on this machine, in two network namespaces of the test's
 * own (198.18.252.0/30 and 198.18.253.0/30, nothing else reachable): wanem's delay, loss and
 * bottleneck, and burst.py's failed connects against the listener's real accept queue.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parseIperf, parseNetstat, parsePing } from "../../bench/effect";

const ROOT = path.resolve(__dirname, "../..");
const WANEM = path.join(ROOT, ".tools/bin/wanem");
const BURST = path.join(ROOT, "bench/effect/burst.py");
const A = `ntfx${process.pid}a`;
const B = `ntfx${process.pid}b`;

function sh(argv: string[], timeoutMs = 30_000): string {
  const res = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: timeoutMs });
  if (res.status !== 0) {
    throw new Error(`${argv.join(" ")} failed (${res.status ?? res.signal}): ${res.stderr}`);
  }
  return res.stdout;
}
const inNs = (ns: string, argv: string[], timeoutMs?: number) =>
  sh(["ip", "netns", "exec", ns, ...argv], timeoutMs);

let wanem: ChildProcess | undefined;
let wanemOut = "";

/** Starts wanem between A and B and addresses wan0 on both sides. */
async function startWanem(args: string[]): Promise<void> {
  wanemOut = "";
  const child = spawn(
    WANEM,
    ["--ns-a", `/run/netns/${A}`, "--ns-b", `/run/netns/${B}`, "--duration", "60s", ...args],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  wanem = child;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("wanem printed no ready")), 10_000);
    child.stdout.on("data", (d: Buffer) => {
      wanemOut += d.toString();
      if (wanemOut.includes("ready\n")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("exit", (code) => reject(new Error(`wanem exited with ${code}`)));
  });
  sh(["ip", "-n", A, "addr", "add", "198.18.253.1/30", "dev", "wan0"]);
  sh(["ip", "-n", B, "addr", "add", "198.18.253.2/30", "dev", "wan0"]);
  sh(["ip", "-n", A, "link", "set", "wan0", "up"]);
  sh(["ip", "-n", B, "link", "set", "wan0", "up"]);
}

/** Stops wanem and returns its counters. */
async function stopWanem(): Promise<Record<string, Record<string, number>>> {
  const child = wanem!;
  wanem = undefined;
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  child.kill("SIGTERM");
  await exited;
  return JSON.parse(wanemOut.trim().split("\n").pop()!) as Record<string, Record<string, number>>;
}

function ping(count: number, interval: string) {
  const out = spawnSync(
    "ip",
    [
      "netns",
      "exec",
      A,
      "ping",
      "-n",
      "-q",
      "-c",
      String(count),
      "-i",
      interval,
      "-W",
      "1",
      "198.18.253.2",
    ],
    { encoding: "utf8", timeout: 60_000 },
  ).stdout;
  return parsePing(out);
}

describe("effect benchmark instruments", () => {
  beforeAll(() => {
    for (const ns of [A, B]) {
      sh(["ip", "netns", "add", ns]);
      sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    sh(["ip", "link", "add", "lan0", "netns", A, "type", "veth", "peer", "lan0", "netns", B]);
    sh(["ip", "-n", A, "addr", "add", "198.18.252.1/30", "dev", "lan0"]);
    sh(["ip", "-n", B, "addr", "add", "198.18.252.2/30", "dev", "lan0"]);
    sh(["ip", "-n", A, "link", "set", "lan0", "up"]);
    sh(["ip", "-n", B, "link", "set", "lan0", "up"]);
  });
  afterAll(() => {
    wanem?.kill("SIGKILL");
    for (const ns of [A, B]) spawnSync("ip", ["netns", "del", ns]);
  });

  test("wanem refuses bad flags by name, before touching any namespace", () => {
    const res = spawnSync(
      WANEM,
      ["--ns-a", "/run/netns/x", "--ns-b", "/run/netns/y", "--loss", "1.5"],
      {
        encoding: "utf8",
      },
    );
    expect(res.status).toBe(2);
    expect(res.stderr).toContain("--loss must be in [0, 1), got 1.5");
    const missing = spawnSync(
      WANEM,
      ["--ns-a", `/run/netns/${A}`, "--ns-b", "/run/netns/nonexistent"],
      {
        encoding: "utf8",
      },
    );
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain("open namespace /run/netns/nonexistent");
  });

  test("wanem adds its delay each way and loses nothing when told so", async () => {
    await startWanem(["--delay", "20ms"]);
    const r = ping(10, "0.1");
    const counters = await stopWanem();
    expect(r.lossPct).toBe(0);
    expect(r.min).toBeGreaterThanOrEqual(40);
    expect(r.avg).toBeLessThan(60);
    expect(counters.aToB!.lossDrops).toBe(0);
    expect(counters.aToB!.delivered).toBeGreaterThanOrEqual(10);
    // The devices go with the process.
    expect(spawnSync("ip", ["-n", A, "link", "show", "wan0"]).status).not.toBe(0);
  });

  test("wanem loses about the share of packets it is told to, each way", async () => {
    await startWanem(["--delay", "1ms", "--loss", "0.3", "--seed", "7"]);
    const r = ping(200, "0.01");
    const c = await stopWanem();
    const share = c.aToB!.lossDrops! / c.aToB!.packets!;
    expect(c.aToB!.packets).toBeGreaterThanOrEqual(200);
    expect(share).toBeGreaterThan(0.2);
    expect(share).toBeLessThan(0.4);
    expect(c.bToA!.lossDrops).toBeGreaterThan(0);
    // A ping is lost when its request or its reply is: 1 - 0.7².
    expect(r.lossPct).toBeGreaterThan(35);
    expect(r.lossPct).toBeLessThan(67);
  });

  test("wanem's bottleneck holds a TCP stream to its rate", async () => {
    await startWanem(["--delay", "2ms", "--rate-mbit", "20", "--queue", "20ms"]);
    inNs(B, ["iperf3", "-s", "-1", "-D", "-B", "198.18.253.2", "-p", "5301"]);
    let out = "";
    for (let i = 0; i < 20 && !out; i++) {
      const res = spawnSync(
        "ip",
        // A loss-based algorithm fills the queue until it overflows; bbr may stay below it.
        [
          ...["netns", "exec", A, "iperf3", "-c", "198.18.253.2", "-p", "5301", "-t", "4", "-J"],
          ...["-C", "cubic"],
        ],
        { encoding: "utf8", timeout: 30_000 },
      );
      if (res.status === 0) out = res.stdout;
      else await new Promise((r) => setTimeout(r, 100));
    }
    const c = await stopWanem();
    const { mbits } = parseIperf(out);
    expect(mbits).toBeGreaterThan(14);
    expect(mbits).toBeLessThan(20.5);
    expect(c.aToB!.queueDrops).toBeGreaterThan(0);
  });

  const burst = async (port: number, somaxconn: number) => {
    inNs(B, ["sysctl", "-q", "-w", `net.core.somaxconn=${somaxconn}`]);
    const overflows = () =>
      parseNetstat(inNs(B, ["cat", "/proc/net/netstat"]))["TcpExt.ListenOverflows"]!;
    const before = overflows();
    const listener = spawn(
      "ip",
      [
        "netns",
        "exec",
        B,
        "python3",
        BURST,
        "listen",
        "--host",
        "198.18.252.2",
        "--port",
        String(port),
        "--rate",
        "4000",
        "--seconds",
        "3",
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let lout = "";
    listener.stdout.on("data", (d: Buffer) => (lout += d.toString()));
    const done = new Promise<void>((resolve) => listener.on("exit", () => resolve()));
    for (let i = 0; i < 50 && !lout.includes("listening"); i++)
      await new Promise((r) => setTimeout(r, 100));
    const client = JSON.parse(
      inNs(A, [
        "python3",
        BURST,
        "connect",
        "--host",
        "198.18.252.2",
        "--port",
        String(port),
        "--count",
        "1500",
        "--deadline",
        "1",
      ]),
    ) as { attempted: number; established: number; failed: number };
    await done;
    const accepted = (JSON.parse(lout.trim().split("\n").pop()!) as { accepted: number }).accepted;
    return { ...client, accepted, overflows: overflows() - before };
  };

  test("burst.py: a small accept queue fails connects, and the kernel counts each as an overflow", async () => {
    const small = await burst(9101, 256);
    expect(small.attempted).toBe(1500);
    expect(small.failed).toBeGreaterThan(100);
    expect(small.established + small.failed).toBe(1500);
    expect(small.accepted).toBe(small.established);
    expect(small.overflows).toBe(small.failed);
    const large = await burst(9102, 4096);
    expect(large.failed).toBe(0);
    expect(large.overflows).toBe(0);
    expect(large.accepted).toBe(1500);
  });
});
