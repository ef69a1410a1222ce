/**
 * State written before outputs were unified (`originalMtu`, `unit`, CongestionControl's
 * `original*`/`applied*`/`sysctlFile`/`units`, SysctlSet's originals as text) is read in this
 * version's names and types, in one place: the provider's read of the state it is handed.
 */
import { afterEach, describe, expect, it } from "vitest";
import { migrateState } from "../../src/engine/migrate";
import { handle, setTransportFactory } from "../../src/engine/provider";
import { FakeHost } from "../helpers/fakeTransport";

const CONNECTION = { host: "198.18.9.9", port: 22, user: "root", password: "pw" };
const UNITS = "/etc/systemd/system";

/** An Mtu's state as the previous release wrote it. */
const OLD_MTU = {
  connection: CONNECTION,
  interface: "eth0",
  mtu: 1400,
  txQueueLength: 2000,
  verifyPeers: [],
  persist: true,
  rollbackAfter: 60,
  resourceName: "eth0-mtu",
  originalMtu: 1500,
  originalTxQueueLength: 1000,
  carriesSsh: true,
  unit: "nettune-mtu-eth0-mtu.service",
  warnings: [],
};

/** A CongestionControl's state as the previous release wrote it. */
const OLD_CC = {
  connection: CONNECTION,
  algorithm: "reno",
  qdisc: "pfifo_fast",
  interfaces: ["ntcc0"],
  persist: true,
  resourceName: "cc",
  originalAlgorithm: "bbr",
  appliedAlgorithm: "reno",
  originalDefaultQdisc: null,
  appliedDefaultQdisc: null,
  originalQdiscs: { ntcc0: { kind: "tbf", handle: "8022:", params: [], kernelDefault: false } },
  appliedQdisc: "pfifo_fast",
  rootQdiscs: { ntcc0: "pfifo_fast" },
  modules: [],
  sysctlFile: "/etc/sysctl.d/90-nettune-congestion-cc.conf",
  modulesFile: null,
  units: ["nettune-qdisc-cc-ntcc0.service"],
  observedAlgorithm: "reno",
  warnings: [],
};

/** A SysctlSet's state as the previous release wrote it: originals as the kernel's text. */
const OLD_SYSCTL = {
  connection: CONNECTION,
  values: { "net.core.somaxconn": 65535, "net.ipv4.tcp_rmem": [4096, 87380, 16777216] },
  persist: "runtime",
  fileName: "90-web.conf",
  behindNat: false,
  originals: { "net.core.somaxconn": "4096", "net.ipv4.tcp_rmem": "4096 131072 6291456" },
  applied: { "net.core.somaxconn": 65535, "net.ipv4.tcp_rmem": [4096, 87380, 16777216] },
  filePath: null,
  warnings: [],
};

describe("migrateState", () => {
  it("Mtu: originalMtu and originalTxQueueLength become originals, the unit's name a unitPath", () => {
    const s = migrateState("Mtu", OLD_MTU);
    expect(s).toMatchObject({
      originals: { mtu: 1500, txQueueLength: 1000 },
      unitPath: `${UNITS}/nettune-mtu-eth0-mtu.service`,
    });
    for (const old of ["originalMtu", "originalTxQueueLength", "unit"])
      expect(s).not.toHaveProperty(old);
    // A state in this version's shape is left as it is.
    expect(migrateState("Mtu", s)).toEqual(s);
    expect(migrateState("Mtu", { ...OLD_MTU, persist: false, unit: null }).unitPath).toBeNull();
  });

  it("CongestionControl: one originals and one applied object, filePath, unitPaths", () => {
    const s = migrateState("CongestionControl", OLD_CC);
    expect(s).toMatchObject({
      originals: { algorithm: "bbr", defaultQdisc: null, qdiscs: OLD_CC.originalQdiscs },
      applied: { algorithm: "reno", defaultQdisc: null, qdisc: "pfifo_fast" },
      filePath: OLD_CC.sysctlFile,
      modulesFilePath: null,
      unitPaths: [`${UNITS}/nettune-qdisc-cc-ntcc0.service`],
    });
    for (const old of ["originalAlgorithm", "appliedQdisc", "sysctlFile", "modulesFile", "units"])
      expect(s).not.toHaveProperty(old);
    expect(migrateState("CongestionControl", s)).toEqual(s);
  });

  it("SysctlSet: originals typed as the values are; text that would not print back is kept", () => {
    const s = migrateState("SysctlSet", {
      ...OLD_SYSCTL,
      originals: { ...OLD_SYSCTL.originals, "net.ipv4.tcp_congestion_control": "cubic" },
    });
    expect(s.originals).toEqual({
      "net.core.somaxconn": 4096,
      "net.ipv4.tcp_rmem": [4096, 131072, 6291456],
      "net.ipv4.tcp_congestion_control": "cubic",
    });
    expect(s.originalsText).toEqual({});
    expect(migrateState("SysctlSet", s)).toEqual(s);
    const odd = migrateState("SysctlSet", { ...OLD_SYSCTL, originals: { "x.y": "0755" } });
    expect(odd).toMatchObject({ originals: { "x.y": 755 }, originalsText: { "x.y": "0755" } });
  });

  it("other kinds pass through", () => {
    const state = { connection: CONNECTION, unitPath: null, originals: { rx: 256 } };
    expect(migrateState("NicRings", state)).toBe(state);
  });
});

describe("the provider reads old state in the new shape", () => {
  afterEach(() => setTransportFactory(undefined));

  it("diff of an old state against the same inputs is no change, for each kind", async () => {
    const inputs = (s: Record<string, unknown>, drop: string[]) =>
      Object.fromEntries(Object.entries(s).filter(([k]) => !drop.includes(k)));
    const mtu = inputs(OLD_MTU, [
      "originalMtu",
      "originalTxQueueLength",
      "carriesSsh",
      "unit",
      "warnings",
    ]);
    const cc = inputs(OLD_CC, [
      ...Object.keys(OLD_CC).filter((k) => /^(original|applied)/.test(k)),
      "rootQdiscs",
      "modules",
      "sysctlFile",
      "modulesFile",
      "units",
      "observedAlgorithm",
      "warnings",
    ]);
    const sysctl = inputs(OLD_SYSCTL, ["originals", "applied", "filePath", "warnings"]);
    for (const [kind, olds, news] of [
      ["Mtu", OLD_MTU, mtu],
      ["CongestionControl", OLD_CC, cc],
      ["SysctlSet", OLD_SYSCTL, sysctl],
    ] as const) {
      const diff = (await handle(kind, "diff", "id", olds, news)) as { changes: boolean };
      expect({ kind, changes: diff.changes }).toEqual({ kind, changes: false });
    }
  });

  it("refresh reports the new outputs; delete of an old SysctlSet state puts the originals back", async () => {
    const host = new FakeHost({
      proc: { "net.core.somaxconn": "65535", "net.ipv4.tcp_rmem": "4096\t87380\t16777216" },
    });
    setTransportFactory(() => host);
    try {
      const read = (await handle("SysctlSet", "read", "id", OLD_SYSCTL)) as {
        props: Record<string, unknown>;
      };
      expect(read.props.originals).toEqual({
        "net.core.somaxconn": 4096,
        "net.ipv4.tcp_rmem": [4096, 131072, 6291456],
      });
      expect(read.props.originalsText).toEqual({});

      await handle("SysctlSet", "delete", "id", OLD_SYSCTL);
      expect(host.getProc("net.core.somaxconn")).toBe("4096\n");
      expect(host.getProc("net.ipv4.tcp_rmem")?.trim().split(/\s+/)).toEqual([
        "4096",
        "131072",
        "6291456",
      ]);
    } finally {
      await host.close();
    }
  });
});
