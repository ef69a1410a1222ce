/**
 * nettune.cloudInit without a host: the user data passes `cloud-init schema` (Debian's
 * cloud-init 22.4, the version of the VM sandbox image) and is parsed with PyYAML as cloud-init
 * parses it; its files are byte for byte those the resources write
 * under the names NetworkTuning's children use, its commands come in NetworkTuning's order,
 * "max" is read from ethtool's own output at boot (a stand-in ethtool printing the captured
 * virtio_net and veth outputs of test/fixtures/ethtool), and what it cannot apply is named.
 * The user data applied on a VM host is compared with a host tuned over SSH in the engine tests.
 */
import { spawnSync } from "node:child_process";
import { gunzipSync } from "node:zlib";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, test } from "vitest";
import * as nettune from "../../src";
import { countsScript, renderCloudInit, USER_DATA_MAX_BYTES } from "../../src/resources/cloudInit";
import { renderSysctlConf } from "../../src/host/sysctl";
import { parseTcQdiscs, rootQdisc } from "../../src/host/tc";
import { saveQdisc } from "../../src/specs/congestionControl";
import {
  parseEthtoolChannels,
  parseEthtoolFeatures,
  parseEthtoolRings,
  resolveFeatureName,
} from "../../src/host/ethtool";
import { defaultUnitName as unitNameOf, stackTag } from "../../src/schemas/names";

/** The stack whose NetworkTuning the renderings below are for, and the tag its names carry. */
const STACK = { project: "shop", stack: "prod" };
const TAG = stackTag(STACK.project, STACK.stack)!;
const defaultUnitName = (kind: string, name: string) => unitNameOf(kind, name, TAG);
import { cloudInitSchema } from "../helpers/cloudInitSchema";

interface CloudConfig {
  write_files?: { path: string; content: string; permissions: string; owner?: string }[];
  runcmd?: string[][];
}

/** User data with each `gz+b64` file's content as its text, for comparing renderings. */
function gunzipped(userData: string): string {
  return userData.replace(
    /^( {4})encoding: "gz\+b64"\n {4}content: "([A-Za-z0-9+/=]*)"$/gm,
    (_m, indent: string, b64: string) =>
      `${indent}content: ${JSON.stringify(gunzipSync(Buffer.from(b64, "base64")).toString())}`,
  );
}

/** The user data as cloud-init reads it (PyYAML's safe_load, as cloud-init does), once valid. */
function parse(userData: string): CloudConfig {
  expect(userData.startsWith("#cloud-config\n")).toBe(true);
  const valid = cloudInitSchema(userData);
  expect(valid.errors, valid.output).toEqual([]);
  expect(valid.ok).toBe(true);
  const r = spawnSync(
    "python3",
    ["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))"],
    { input: userData, encoding: "utf8" },
  );
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as CloudConfig;
}

const FIX = path.join(__dirname, "../fixtures/ethtool");

/** Runs `argv` (["sh", "-c", script]) with a stand-in ethtool; returns the `-L`/`-G` it ran. */
function runWithEthtool(
  argv: readonly string[],
  l: string,
  g: string,
): { set: string; code: number; stderr: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-ethtool-"));
  try {
    fs.writeFileSync(
      path.join(dir, "ethtool"),
      [
        "#!/bin/sh",
        `case "$1" in`,
        `  -l) cat ${JSON.stringify(path.join(FIX, l))} ;;`,
        `  -g) cat ${JSON.stringify(path.join(FIX, g))} ;;`,
        `  *) echo "$@" >> ${JSON.stringify(path.join(dir, "set"))} ;;`,
        "esac",
      ].join("\n"),
      { mode: 0o755 },
    );
    const r = spawnSync(argv[0]!, argv.slice(1), {
      encoding: "utf8",
      env: { ...process.env, PATH: `${dir}:${process.env.PATH}` },
    });
    const setFile = path.join(dir, "set");
    return {
      set: fs.existsSync(setFile) ? fs.readFileSync(setFile, "utf8").trim() : "",
      code: r.status ?? -1,
      stderr: r.stderr,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe("nettune.cloudInit", () => {
  test("apiGateway: the resources' own files under their children's names, in NetworkTuning's order", () => {
    const r = renderCloudInit({
      stack: STACK,
      name: "gw",
      interface: "ens5",
      profile: nettune.profiles.apiGateway,
    });
    expect(r.rendered).toEqual(["queues", "irq", "offloads", "congestion", "sysctls"]);
    expect(r.leftOver.map((l) => l.field)).toEqual(["xdp"]);
    expect(r.userData).not.toMatch(/^# Left to NetworkTuning gw over SSH: irq/m);
    expect(r.userData).toMatch(/^# Left to NetworkTuning gw over SSH: xdp \(/m);
    const cc = parse(r.userData);
    const files = Object.fromEntries(cc.write_files!.map((f) => [f.path, f]));
    const irqUnit = defaultUnitName("IrqAffinity", "gw-irqs");
    const irqBase = irqUnit.replace(/\.service$/, "");
    expect(Object.keys(files)).toEqual([
      `/etc/systemd/system/${defaultUnitName("RssQueues", "gw-queues")}`,
      // IrqAffinity's script (planned on the instance at boot), unit and udev rule.
      `/usr/local/lib/nettune/${irqBase}.sh`,
      `/etc/systemd/system/${irqUnit}`,
      `/etc/udev/rules.d/90-${irqBase}.rules`,
      `/etc/systemd/system/${defaultUnitName("NicOffloads", "gw-offloads")}`,
      `/etc/modules-load.d/nettune-gw-congestion-${TAG}.conf`,
      `/etc/sysctl.d/90-nettune-congestion-gw-congestion-${TAG}.conf`,
      `/etc/sysctl.d/90-nettune-gw-sysctls-${TAG}.conf`,
    ]);
    // SysctlSet's file, byte for byte.
    expect(files[`/etc/sysctl.d/90-nettune-gw-sysctls-${TAG}.conf`]!.content).toBe(
      renderSysctlConf(`90-nettune-gw-sysctls-${TAG}.conf`, nettune.profiles.apiGateway.sysctls!),
    );
    expect(files[`/etc/sysctl.d/90-nettune-congestion-gw-congestion-${TAG}.conf`]!.content).toMatch(
      /^net\.core\.default_qdisc = fq\nnet\.ipv4\.tcp_congestion_control = bbr\n$/m,
    );
    const offloads = files[`/etc/systemd/system/${defaultUnitName("NicOffloads", "gw-offloads")}`]!;
    expect(offloads.content).toContain(
      "ethtool -K ens5 rx on tx on sg on tso on gso on gro on lro off",
    );
    expect(offloads.permissions).toBe("0644");
    // Units started in order, then modules before the sysctls that name them.
    expect(cc.runcmd).toEqual([
      ["systemctl", "daemon-reload"],
      [
        "systemctl",
        "enable",
        defaultUnitName("RssQueues", "gw-queues"),
        irqUnit,
        defaultUnitName("NicOffloads", "gw-offloads"),
      ],
      // One after the other: a channel change resets virtio_net's IRQ affinity, so the pins
      // come after the queues.
      ["systemctl", "start", defaultUnitName("RssQueues", "gw-queues")],
      ["systemctl", "start", irqUnit],
      ["systemctl", "start", defaultUnitName("NicOffloads", "gw-offloads")],
      ["sh", "-c", "modprobe -q tcp_bbr || true"],
      ["sh", "-c", "modprobe -q sch_fq || true"],
      ["sysctl", "-q", "-p", `/etc/sysctl.d/90-nettune-congestion-gw-congestion-${TAG}.conf`],
      ["sysctl", "-q", "-p", `/etc/sysctl.d/90-nettune-gw-sysctls-${TAG}.conf`],
    ]);
    // The instance's own values go to the journals first, once per instance: the queues', the
    // offloads' (below), the congestion control's and the SysctlSet's.
    const bootcmd = (cc as { bootcmd?: string[][] }).bootcmd!;
    expect(bootcmd.map((c) => c[2])).toEqual([
      `nettune-journal-rss-ens5-nettune-rssqueues-gw-queues-${TAG}`,
      `nettune-journal-offloads-ens5-nettune-nicoffloads-gw-offloads-${TAG}`,
      `nettune-journal-cc-gw-congestion-${TAG}`,
      `nettune-journal-90-nettune-gw-sysctls-${TAG}.conf`,
    ]);
    expect(bootcmd[3]!.slice(0, 5)).toEqual([
      "cloud-init-per",
      "instance",
      `nettune-journal-90-nettune-gw-sysctls-${TAG}.conf`,
      "sh",
      "-c",
    ]);
    expect(bootcmd[3]![5]).toContain(
      `/var/lib/nettune/originals/sysctl-90-nettune-gw-sysctls-${TAG}.conf`,
    );
    expect(Buffer.byteLength(r.userData)).toBeLessThan(USER_DATA_MAX_BYTES);
    expect(
      nettune.cloudInit({
        name: "gw",
        interface: "ens5",
        profile: nettune.profiles.apiGateway,
        stack: STACK,
      }),
    ).toBe(r.userData);
  });

  test("another stack's rendering differs only in the tag its names carry", () => {
    const of = (stack: { project: string; stack: string }) =>
      nettune.cloudInit({
        name: "gw",
        interface: "ens5",
        profile: nettune.profiles.apiGateway,
        stack,
      });
    // Compressed files (the IRQ script) as their text.
    const prod = gunzipped(of(STACK));
    const staging = gunzipped(of({ project: "shop", stack: "staging" }));
    const other = stackTag("shop", "staging")!;
    expect(other).toMatch(/^[0-9a-f]{6}$/);
    expect(other).not.toBe(TAG);
    expect(staging).not.toBe(prod);
    expect(staging).toBe(prod.replaceAll(`-${TAG}`, `-${other}`));
    expect(() =>
      renderCloudInit({
        name: "gw",
        interface: "ens5",
        stack: { project: "shop" } as unknown as { project: string; stack: string },
      }),
    ).toThrow(/stack must be \{ project, stack \}/);
  });

  test('"max" is read from ethtool at boot: the driver\'s pre-set maximum, or a clear failure', () => {
    const channels = countsScript(
      "-l",
      "eth0",
      { combined: "max" },
      {
        combined: ["Combined", "combined"],
      },
    );
    expect(
      runWithEthtool(channels, "virtio_net-eth0.l.txt", "virtio_net-eth0.g.txt"),
    ).toMatchObject({
      set: "-L eth0 combined 1",
      code: 0,
    });
    const rings = countsScript(
      "-g",
      "eth0",
      { rx: "max", tx: 128 },
      {
        rx: ["RX", "rx"],
        tx: ["TX", "tx"],
      },
    );
    expect(runWithEthtool(rings, "virtio_net-eth0.l.txt", "virtio_net-eth0.g.txt")).toMatchObject({
      set: "-G eth0 rx 256 tx 128",
      code: 0,
    });
    // veth has no combined channels: its maximum is n/a, and nothing is set.
    const none = runWithEthtool(channels, "veth-a.l.txt", "veth-a.g.txt");
    expect(none).toMatchObject({ set: "", code: 1 });
    expect(none.stderr).toContain("ethtool -l eth0: no maximum for Combined (n/a)");
    // Fixed counts are the resource's own command.
    expect(
      countsScript("-l", "eth0", { combined: 4 }, { combined: ["Combined", "combined"] }),
    ).toEqual(["ethtool", "-L", "eth0", "combined", "4"]);
    // One line, no single quote: it sits inside a unit's single-quoted ExecStart.
    expect(channels[2]).not.toMatch(/[\n']/);
  });

  test("overrides, persist: false, and fixed MTU and rings as the resources render them", () => {
    const r = renderCloudInit({
      stack: STACK,
      name: "edge",
      interface: "eth0",
      profile: nettune.profiles.cdnEdge,
      queues: null,
      irq: null,
      mtu: 9000,
      rings: { rx: 512, tx: 512 },
      offloads: { features: { gro: true }, persist: false },
      sysctls: { "net.core.somaxconn": 1024 },
    });
    expect(r.leftOver).toEqual([]);
    const cc = parse(r.userData);
    const paths = cc.write_files!.map((f) => f.path);
    expect(paths).toContain(`/etc/systemd/system/${defaultUnitName("NicRings", "edge-rings")}`);
    expect(paths).toContain(`/etc/systemd/system/nettune-mtu-edge-mtu-${TAG}.service`);
    expect(paths.some((p) => p.includes("nicoffloads"))).toBe(false);
    expect(cc.runcmd).toContainEqual(["sh", "-c", "ethtool -K eth0 gro on"]);
    const mtu = cc.write_files!.find((f) =>
      f.path.endsWith(`nettune-mtu-edge-mtu-${TAG}.service`),
    )!;
    expect(mtu.content).toContain("ip link set dev eth0 mtu 9000");
    const sysctls = cc.write_files!.find(
      (f) => f.path === `/etc/sysctl.d/90-nettune-edge-sysctls-${TAG}.conf`,
    )!;
    expect(sysctls.content).toContain("net.core.somaxconn = 1024\n");
  });

  test("lowLatency: RFS in PacketSteering's unit, written at boot for the queues the instance has", () => {
    const r = renderCloudInit({
      stack: STACK,
      name: "ll",
      interface: "eth0",
      profile: nettune.profiles.lowLatency,
    });
    expect(r.rendered).toContain("steering");
    expect(r.leftOver.map((l) => l.field)).not.toContain("steering");
    const cc = parse(r.userData);
    const unit = defaultUnitName("PacketSteering", "ll-steering");
    const file = cc.write_files!.find((f) => f.path === `/etc/systemd/system/${unit}`)!;
    // The boot script, its journal named as PacketSteering's create names it.
    expect(file.content).toContain("rps_flow_cnt");
    expect(file.content).toContain(
      `/var/lib/nettune/originals/steering-eth0-${unit.replace(/\.service$/, "")}`,
    );
    // Started after the IRQ pins, as NetworkTuning orders its children.
    const starts = cc.runcmd!.filter((c) => c[0] === "systemctl" && c[1] === "start");
    const order = starts.map((c) => c[2]);
    expect(order).toContain(defaultUnitName("IrqAffinity", "ll-irqs"));
    expect(order.indexOf(unit)).toBeGreaterThan(
      order.indexOf(defaultUnitName("IrqAffinity", "ll-irqs")),
    );
    expect(cloudInitSchema(r.userData).errors).toEqual([]);
  });

  test("bad args fail naming the field, as NetworkTuning's do; too large a rendering names EC2's limit", () => {
    expect(() => renderCloudInit({ name: "bad name", interface: "eth0" })).toThrow(/name must be/);
    expect(() => renderCloudInit({ name: "x", interface: "eth0", mtu: { mtu: -1 } })).toThrow(
      /nettune\.cloudInit x:\n {2}mtu\.mtu: /,
    );
    expect(() =>
      renderCloudInit({
        name: "x",
        interface: "eth0",
        congestion: { algorithm: "bbr" },
        sysctls: { "net.ipv4.tcp_congestion_control": "reno" },
      }),
    ).toThrow(
      /congestion\.algorithm: net\.ipv4\.tcp_congestion_control is also set by sysctls\["net\.ipv4\.tcp_congestion_control"\]/,
    );
    const many = Object.fromEntries(
      Array.from({ length: 300 }, (_, i) => [`net.ipv4.conf.nettune${i}.accept_source_route`, 0]),
    );
    expect(() => renderCloudInit({ name: "x", interface: "eth0", sysctls: many })).toThrow(
      /the user data is \d+ bytes; EC2 takes at most 16384/,
    );
  });
});

describe("journals of originals at first boot", () => {
  test("each link part's journal holds the instance's own values, as the resource's parsers read them from the same ethtool output", () => {
    const r = renderCloudInit({
      stack: STACK,
      name: "gw",
      interface: "eth0",
      profile: nettune.profiles.apiGateway,
      rings: { rx: 128 },
      mtu: { mtu: 9000, verifyPeers: ["198.18.0.1"] },
      // With eth0's root qdisc too, so its journal row is there.
      congestion: { algorithm: "bbr", qdisc: "fq", interfaces: ["eth0"] },
    });
    const cc = JSON.parse(
      spawnSync(
        "python3",
        ["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))"],
        { input: r.userData, encoding: "utf8" },
      ).stdout,
    ) as { bootcmd: string[][] };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-journal-"));
    try {
      const orig = path.join(dir, "originals");
      const sys = path.join(dir, "sys");
      fs.mkdirSync(sys);
      fs.writeFileSync(path.join(sys, "mtu"), "1500\n");
      fs.writeFileSync(path.join(sys, "tx_queue_len"), "1000\n");
      fs.writeFileSync(
        path.join(dir, "ethtool"),
        [
          "#!/bin/sh",
          `case "$1" in`,
          ...(["k", "l", "g"] as const).map(
            (f) => `  -${f}) cat ${JSON.stringify(path.join(FIX, `virtio_net-eth0.${f}.txt`))} ;;`,
          ),
          "  *) exit 1 ;;",
          "esac",
        ].join("\n"),
        { mode: 0o755 },
      );
      // `tc qdisc show dev eth0 root` as a new veth showed it (a kernel default).
      fs.writeFileSync(
        path.join(dir, "tc"),
        `#!/bin/sh\ncat ${JSON.stringify(path.join(FIX, "../tc/veth-default.txt"))}\n`,
        { mode: 0o755 },
      );
      // Every bootcmd runs (as cloud-init-per would, once), with this machine's paths moved into
      // the temp folder: the journals, and /sys/class/net/eth0 for the MTU.
      const tags: string[] = [];
      for (const cmd of cc.bootcmd) {
        expect(cmd.slice(0, 2)).toEqual(["cloud-init-per", "instance"]);
        tags.push(cmd[2]!);
        const script = cmd[5]!
          .replaceAll("/var/lib/nettune/originals", orig)
          .replaceAll("/sys/class/net/eth0", sys);
        const res = spawnSync("sh", ["-c", script], {
          encoding: "utf8",
          env: { ...process.env, PATH: `${dir}:${process.env.PATH}` },
        });
        expect(res.stderr).toBe("");
        expect(res.status).toBe(0);
      }
      expect(tags).toEqual([
        `nettune-journal-rss-eth0-nettune-rssqueues-gw-queues-${TAG}`,
        `nettune-journal-rings-eth0-nettune-nicrings-gw-rings-${TAG}`,
        `nettune-journal-offloads-eth0-nettune-nicoffloads-gw-offloads-${TAG}`,
        "nettune-journal-mtu-eth0",
        `nettune-journal-cc-gw-congestion-${TAG}`,
        `nettune-journal-90-nettune-gw-sysctls-${TAG}.conf`,
      ]);
      const journal = (name: string) =>
        Object.fromEntries(
          fs
            .readFileSync(path.join(orig, name), "utf8")
            .trim()
            .split("\n")
            .map((l) => l.split("\t") as [string, string]),
        );
      const read = (f: string) =>
        fs.readFileSync(path.join(FIX, `virtio_net-eth0.${f}.txt`), "utf8");
      const features = parseEthtoolFeatures(read("k")).features;
      const offloads = nettune.profiles.apiGateway.offloads!.features;
      expect(journal(`offloads-eth0-nettune-nicoffloads-gw-offloads-${TAG}`)).toEqual(
        Object.fromEntries(
          Object.keys(offloads).map((f) => {
            const long = resolveFeatureName(f);
            return [long, JSON.stringify(features[long]!.on)];
          }),
        ),
      );
      expect(journal(`rss-eth0-nettune-rssqueues-gw-queues-${TAG}`)).toEqual({
        combined: JSON.stringify(parseEthtoolChannels(read("l")).current.combined),
      });
      expect(journal(`rings-eth0-nettune-nicrings-gw-rings-${TAG}`)).toEqual({
        rx: JSON.stringify(parseEthtoolRings(read("g")).current.rx),
      });
      expect(journal("mtu-eth0")).toEqual({ mtu: "1500", txqlen: "1000" });
      // CongestionControl's: this machine's algorithm and default qdisc (read only), and the
      // root qdisc `tc` shows (a captured kernel default), as the resource saves it.
      const live = (k: string) =>
        fs.readFileSync(`/proc/sys/${k.replaceAll(".", "/")}`, "utf8").trim();
      const defaultRoot = saveQdisc(
        rootQdisc(
          parseTcQdiscs(fs.readFileSync(path.join(FIX, "../tc/veth-default.json"), "utf8")),
          "ntcc0",
        )!,
      );
      expect(journal(`cc-gw-congestion-${TAG}`)).toEqual({
        algorithm: live("net.ipv4.tcp_congestion_control"),
        defaultQdisc: live("net.core.default_qdisc"),
        "qdisc eth0": JSON.stringify(defaultRoot),
      });
      // Once there, a journal is never rewritten: a later boot keeps the first values.
      fs.writeFileSync(path.join(sys, "mtu"), "9000\n");
      const mtu = cc.bootcmd.find((c) => c[2] === "nettune-journal-mtu-eth0")!;
      spawnSync("sh", [
        "-c",
        mtu[5]!
          .replaceAll("/var/lib/nettune/originals", orig)
          .replaceAll("/sys/class/net/eth0", sys),
      ]);
      expect(journal("mtu-eth0")).toEqual({ mtu: "1500", txqlen: "1000" });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
