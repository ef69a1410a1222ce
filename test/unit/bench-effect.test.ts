/**
 * The effect benchmark's readers, on real output captured from iperf3 3.12, iputils ping and
 * /proc/net/netstat (test/fixtures/SOURCES.md, effect/), and its report.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, test } from "vitest";
import {
  parseIperf,
  parseNetstat,
  parsePing,
  renderEffectTables,
  type EffectRun,
  type Iperf,
} from "../../bench/effect";

const fixture = (name: string) =>
  fs.readFileSync(path.join(__dirname, "../fixtures/effect", name), "utf8");

describe("parseIperf", () => {
  test("a veth stream: received rate, retransmits, both ends' CPU, the sender's algorithm", () => {
    expect(parseIperf(fixture("iperf3-veth-offloads-off.json"))).toEqual({
      mbits: 4347.339573670035,
      retransmits: 412,
      senderCpu: 25.595786791155824,
      receiverCpu: 40.87953090619123,
      algorithm: "bbr",
    });
  });

  test("streams over the emulated WAN with cubic and with bbr", () => {
    const cubic = parseIperf(fixture("iperf3-wanem-cubic.json"));
    expect(cubic.algorithm).toBe("cubic");
    expect(cubic.mbits).toBeCloseTo(2.6439, 3);
    expect(cubic.retransmits).toBe(28);
    const bbr = parseIperf(fixture("iperf3-wanem-bbr.json"));
    expect(bbr.algorithm).toBe("bbr");
    expect(bbr.mbits).toBeCloseTo(87.8266, 3);
    expect(bbr.retransmits).toBe(1084);
  });

  test("iperf3's own error is the error", () => {
    expect(() => parseIperf(fixture("iperf3-refused.json"))).toThrow(
      "iperf3: unable to connect to server: Connection refused",
    );
    expect(() => parseIperf("{}")).toThrow("iperf3: no end-of-test summary");
  });
});

describe("parsePing", () => {
  test("min/avg/max and loss of ping's summary", () => {
    expect(parsePing(fixture("ping-wanem-50ms.txt"))).toEqual({
      min: 50.78,
      avg: 50.912,
      max: 51.537,
      lossPct: 0,
    });
  });

  test("no summary is an error that shows what ping printed", () => {
    expect(() => parsePing("ping: connect: Network is unreachable\n")).toThrow(
      /ping printed no summary:\nping: connect: Network is unreachable/,
    );
  });
});

describe("parseNetstat", () => {
  test("TcpExt and IpExt counters by name, of the listener after a burst", () => {
    const c = parseNetstat(fixture("proc-net-netstat-listener.txt"));
    expect(c["TcpExt.ListenOverflows"]).toBe(1623);
    expect(c["TcpExt.ListenDrops"]).toBe(1623);
    expect(c["TcpExt.SyncookiesSent"]).toBe(0);
    expect(c["IpExt.InNoRoutes"]).toBe(0);
    expect(Object.keys(c).length).toBeGreaterThan(100);
    expect(Object.values(c).every((v) => Number.isInteger(v))).toBe(true);
  });

  test("the burst's counters match what its client saw", () => {
    const client = JSON.parse(fixture("connect-stdout.txt")) as { failed: number };
    const listener = parseNetstat(fixture("proc-net-netstat-listener.txt"));
    expect(listener["TcpExt.ListenOverflows"]).toBe(client.failed);
    expect(parseNetstat(fixture("proc-net-netstat-client.txt"))["TcpExt.TCPSynRetrans"]).toBe(0);
  });
});

describe("renderEffectTables", () => {
  const ip = (mbits: number, receiverCpu: number, algorithm = "bbr"): Iperf => ({
    mbits,
    retransmits: 7,
    dsackSegs: 5,
    senderCpu: 50,
    receiverCpu,
    algorithm,
  });
  const counters = { packets: 1000, lossDrops: 10, queueDrops: 0, delivered: 990 };
  const run: EffectRun = {
    run: 1,
    rttMs: { min: 50.6, avg: 50.9, max: 51.5, lossPct: 0 },
    defaults: {
      "net.core.somaxconn": "4096",
      "net.ipv4.tcp_max_syn_backlog": "2048",
      "net.ipv4.tcp_rmem": "4096 131072 33554432",
      "net.ipv4.tcp_wmem": "4096 16384 4194304",
    },
    offloadDefaults: { tso: true, gso: true, gro: false },
    lanOff: ip(4000, 40),
    lanOn: ip(12000, 48),
    burstBefore: {
      attempted: 8000,
      established: 6000,
      failed: 2000,
      p99: 0.5,
      listenOverflows: 2000,
      listenDrops: 2000,
      synRetransmits: 0,
    },
    burstAfter: {
      attempted: 8000,
      established: 8000,
      failed: 0,
      p99: 0.7,
      listenOverflows: 0,
      listenDrops: 0,
      synRetransmits: 0,
    },
    wanCubic: ip(2.5, 0.5, "cubic"),
    wanBbrDefaultBuffers: ip(90, 0.8),
    wanTuned: ip(92.5, 1),
    observedAlgorithm: "bbr",
    wanem: { aToB: counters, bToA: counters },
  };

  test("ratios are computed from the measured figures", () => {
    const text = renderEffectTables([run]);
    // 12000 / 4000 Mbit/s; receiver CPU per Gbit/s 4.0 vs 10.0.
    expect(text).toContain("| **on ÷ off** | | **3.00×** | 1.20× | 1.00× | **0.40×** | | |");
    expect(text).toContain("| off | NicOffloads | 4000 | 40.0 | 50.0 | 10.0 | 7 | 5 |");
    expect(text).toContain(
      "| namespace defaults | – | 4096 / 2048 | 6000 | **2000** | 0.5 | 2000 | 2000 | 0 |",
    );
    expect(text).toContain(
      "| guide | SysctlSet | 65535 / 16384 | 8000 | **0** | 0.7 | 0 | 0 | 0 |",
    );
    expect(text).toContain("| 50.6 / 50.9 | 92.5 | 7 | 5 | 1.0 | **37.00×** |");
    expect(text).not.toContain("| Run |");
  });

  test("several runs get a Run column", () => {
    const text = renderEffectTables([run, { ...run, run: 2 }]);
    expect(text).toContain("| Run | TSO, GSO, GRO (both ends) |");
    expect(text).toContain("| 2 | on | NicOffloads | 12000 |");
  });
});
