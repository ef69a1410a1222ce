/**
 * A recording fake host for the interface resources. Scripts are really run by `sh` (dash, as
 * on Debian hosts), with `/etc/systemd/system` rewritten into a temp directory, and three stubs
 * first on PATH: `ethtool`, `ip` and `systemctl`. Each stub hands its arguments over a Unix
 * socket to this process, where a small model of one or more devices answers.
 *
 * The model starts from the real captured outputs in test/fixtures (veth, virtio_net, tun,
 * bridge, lo, …): its first answers are those files byte for byte (a test checks it), and after
 * a change it prints the same layout with the new values, as ethtool does. What no fixture
 * shows (a NIC with an RSS indirection table, a driver that rounds ring sizes or silently keeps
 * a feature) is added by options, each marked synthetic where it is used.
 */
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

import { renderCommand } from "../../src/transport/quote";
import { LocalTransport } from "../../src/transport/local";
import type {
  Command,
  ExecOptions,
  ExecResult,
  Transport,
  TransportStats,
} from "../../src/transport/types";

const FIXTURES = path.resolve(__dirname, "../fixtures");
const UNIT_DIR = "/etc/systemd/system";
/** nettune's own state on a host (the journals of originals), kept under the fake's root. */
const STATE_DIR = "/var/lib/nettune";

interface Reply {
  stdout: string;
  stderr: string;
  code: number;
}
const ok = (stdout = ""): Reply => ({ stdout, stderr: "", code: 0 });
const fail = (stderr: string, code = 1): Reply => ({ stdout: "", stderr, code });

interface FeatureLine {
  name: string;
  member: boolean;
  on: boolean;
  fixed: boolean;
  requested?: boolean;
}

type Counts = Record<"rx" | "tx" | "other" | "combined", number | null>;
type RingCounts = Record<"rx" | "rxMini" | "rxJumbo" | "tx", number | null>;

/** ethtool's short names (ethtool.c off_flag_def), as the real tool resolves them. */
const SHORT: Record<string, string> = {
  rx: "rx-checksumming",
  tx: "tx-checksumming",
  sg: "scatter-gather",
  tso: "tcp-segmentation-offload",
  gso: "generic-segmentation-offload",
  gro: "generic-receive-offload",
  lro: "large-receive-offload",
  rxvlan: "rx-vlan-offload",
  txvlan: "tx-vlan-offload",
  ntuple: "ntuple-filters",
  rxhash: "receive-hashing",
};

export interface DeviceOptions {
  /** The fixture prefix, e.g. `veth-b` or `virtio_net-eth0`. */
  readonly fixture: string;
  /** The name the device has on the fake host (fixtures are renamed to it). */
  readonly ifname: string;
  /**
   * Synthetic: an RSS indirection table of this many buckets (no captured device has one); the
   * device then answers `ethtool -x/-X` like a NIC with RSS.
   */
  readonly rssTableSize?: number;
  /** Synthetic: channel maximums and current counts replacing the fixture's. */
  readonly channels?: { max: Partial<Counts>; current: Partial<Counts> };
}

/** One device's state. */
class Device {
  readonly ifname: string;
  readonly driverInfo: Reply;
  readonly ipJson: string;
  readonly features: FeatureLine[];
  channels: { max: Counts; current: Counts } | Reply;
  rings: { max: RingCounts; current: RingCounts; extra: string[] } | Reply;
  /** `configured`: set by `-X equal/weight` (kept across `-L`), cleared by `-X default`. */
  rss: { table: number[]; configured: boolean } | Reply;
  /** Features the driver keeps as they are without failing (shown `[requested …]`). */
  readonly stuck = new Set<string>();
  /** Exit code of `-K` when nothing could be changed (drivers differ: 0 or 1). */
  couldNotChangeExit = 1;
  /** Synthetic: the driver stores ring sizes rounded this way. */
  roundRing: (n: number) => number = (n) => n;
  /** Synthetic: the driver accepts `-L` and keeps these counts anyway. */
  channelsStuck = false;

  constructor(opts: DeviceOptions) {
    const { fixture, ifname } = opts;
    this.ifname = ifname;
    const read = (option: string): Reply => {
      const base = path.join(FIXTURES, "ethtool", `${fixture}.${option}`);
      const stdout = fs.readFileSync(`${base}.txt`, "utf8");
      const errFile = path.join(FIXTURES, "ethtool", `${fixture}.${option}.stderr.txt`);
      if (fs.existsSync(errFile)) {
        // Exit codes as recorded in test/fixtures/SOURCES.md.
        return { stdout, stderr: fs.readFileSync(errFile, "utf8"), code: option === "i" ? 71 : 1 };
      }
      return ok(stdout);
    };
    this.driverInfo = read("i");
    // Renamed in the text, not re-serialized: ip prints numbers such as 0.00 that JSON would not.
    const ip = fs.readFileSync(path.join(FIXTURES, "ip", `${fixture}.json`), "utf8");
    this.ipJson = ip.trim().replace(/"ifname":"[^"]*"/, `"ifname":"${ifname}"`) + "\n";
    this.features = read("k")
      .stdout.split("\n")
      .slice(1)
      .filter(Boolean)
      .map((line) => {
        const m = /^(\s*)([^:]+):\s+(on|off)(?: \[(fixed|requested on|requested off)\])?$/.exec(
          line,
        );
        if (!m) throw new Error(`fake host: cannot read fixture line ${line}`);
        return {
          name: m[2]!,
          member: m[1] !== "",
          on: m[3] === "on",
          fixed: m[4] === "fixed",
          ...(m[4]?.startsWith("requested") ? { requested: m[4] === "requested on" } : {}),
        };
      });
    const l = read("l");
    this.channels = l.code === 0 ? parseCounts(l.stdout) : l;
    if (opts.channels) {
      const base = "max" in this.channels ? this.channels : emptyChannels();
      this.channels = {
        max: { ...base.max, ...opts.channels.max },
        current: { ...base.current, ...opts.channels.current },
      };
    }
    const g = read("g");
    this.rings = g.code === 0 ? parseRings(g.stdout) : g;
    const x = read("x");
    this.rss =
      opts.rssTableSize !== undefined
        ? { table: defaultTable(opts.rssTableSize, this.rxCount()), configured: false }
        : x;
  }

  rxCount(): number {
    if (!("max" in this.channels)) return 1;
    return (this.channels.current.combined ?? 0) + (this.channels.current.rx ?? 0);
  }

  /** `ethtool -k` text: group lines read "on" when any member is on, as ethtool prints them. */
  featuresText(): string {
    const lines = [`Features for ${this.ifname}:`];
    this.features.forEach((f, i) => {
      let on = f.on;
      const members: FeatureLine[] = [];
      for (let j = i + 1; j < this.features.length && this.features[j]!.member; j++)
        members.push(this.features[j]!);
      if (!f.member && members.length > 0) on = members.some((m) => m.on);
      const suffix = f.fixed
        ? " [fixed]"
        : f.requested !== undefined && f.requested !== on
          ? ` [requested ${f.requested ? "on" : "off"}]`
          : "";
      lines.push(`${f.member ? "\t" : ""}${f.name}: ${on ? "on" : "off"}${suffix}`);
    });
    return lines.join("\n") + "\n";
  }

  /** The feature lines a name stands for: a group's members, or the line itself. */
  targets(name: string): FeatureLine[] | undefined {
    const long = SHORT[name] ?? name;
    const i = this.features.findIndex((f) => f.name === long);
    if (i < 0) return undefined;
    const members: FeatureLine[] = [];
    for (let j = i + 1; j < this.features.length && this.features[j]!.member; j++)
      members.push(this.features[j]!);
    return members.length > 0 ? members : [this.features[i]!];
  }

  setFeatures(args: string[]): Reply {
    const wanted: [FeatureLine, boolean][] = [];
    for (let i = 0; i < args.length; i += 2) {
      const t = this.targets(args[i]!);
      if (!t || (args[i + 1] !== "on" && args[i + 1] !== "off"))
        return fail("netlink error: bit name not found (offset 52)\n", 92);
      for (const f of t) wanted.push([f, args[i + 1] === "on"]);
    }
    const actual: string[] = [];
    let changed = 0;
    let refused = 0;
    for (const [f, on] of wanted) {
      if (f.on === on) continue;
      if (f.fixed || this.stuck.has(f.name)) {
        refused++;
        if (!f.fixed) f.requested = on;
        actual.push(`${f.name}: ${f.on ? "on" : "off"} [requested ${on ? "on" : "off"}]`);
        continue;
      }
      f.on = on;
      delete f.requested;
      changed++;
      actual.push(`${f.name}: ${on ? "on" : "off"}`);
    }
    if (refused > 0 && changed === 0) {
      return {
        stdout: `Actual changes:\n${actual.join("\n")}\n`,
        stderr: "Could not change any device features\n",
        code: this.couldNotChangeExit,
      };
    }
    return ok(refused > 0 ? `Actual changes:\n${actual.join("\n")}\n` : "");
  }

  channelsText(): Reply {
    if (!("max" in this.channels)) return this.channels;
    const c = this.channels;
    const v = (n: number | null) => (n === null ? "n/a" : String(n));
    const block = (x: Counts) =>
      `RX:\t\t${v(x.rx)}\nTX:\t\t${v(x.tx)}\nOther:\t\t${v(x.other)}\nCombined:\t${v(x.combined)}\n`;
    return ok(
      `Channel parameters for ${this.ifname}:\nPre-set maximums:\n${block(c.max)}` +
        `Current hardware settings:\n${block(c.current)}`,
    );
  }

  setChannels(args: string[]): Reply {
    if (!("max" in this.channels)) return this.channels;
    const next = { ...this.channels.current };
    for (let i = 0; i < args.length; i += 2) {
      const key = args[i] as keyof Counts;
      const n = Number(args[i + 1]);
      if (!(key in next) || !Number.isInteger(n)) return fail(`ethtool: bad argument ${key}\n`);
      if (n > (this.channels.max[key] ?? 0))
        return fail(
          "netlink error: requested channel count exceeds maximum (offset 32)\nnetlink error: Invalid argument\n",
        );
      next[key] = n;
    }
    if ((next.rx ?? 0) + (next.combined ?? 0) === 0 || (next.tx ?? 0) + (next.combined ?? 0) === 0)
      return fail(
        "netlink error: requested channel counts would result in no RX or TX channel being configured (offset 32)\nnetlink error: Invalid argument\n",
      );
    if (this.channelsStuck) return ok();
    // The kernel refuses fewer queues than a table set by the user points to; a default table
    // follows the new count, as drivers rebuild it.
    const rx = (next.rx ?? 0) + (next.combined ?? 0);
    if ("table" in this.rss && this.rss.configured && Math.max(...this.rss.table) >= rx)
      return fail(
        "netlink error: requested channel counts are too low for existing indirection table settings (offset 32)\nnetlink error: Invalid argument\n",
      );
    this.channels.current = next;
    if ("table" in this.rss && !this.rss.configured)
      this.rss.table = defaultTable(this.rss.table.length, this.rxCount());
    return ok();
  }

  ringsText(): Reply {
    if (!("max" in this.rings)) return this.rings;
    const r = this.rings;
    const v = (n: number | null) => (n === null ? "n/a" : String(n));
    const block = (x: RingCounts) =>
      `RX:\t\t${v(x.rx)}\nRX Mini:\t${v(x.rxMini)}\nRX Jumbo:\t${v(x.rxJumbo)}\nTX:\t\t${v(x.tx)}\n`;
    return ok(
      `Ring parameters for ${this.ifname}:\nPre-set maximums:\n${block(r.max)}` +
        `Current hardware settings:\n${block(r.current)}${r.extra.map((l) => `${l}\n`).join("")}`,
    );
  }

  setRings(args: string[]): Reply {
    if (!("max" in this.rings)) return this.rings;
    const keys: Record<string, keyof RingCounts> = {
      rx: "rx",
      "rx-mini": "rxMini",
      "rx-jumbo": "rxJumbo",
      tx: "tx",
    };
    const next = { ...this.rings.current };
    for (let i = 0; i < args.length; i += 2) {
      const key = keys[args[i]!];
      const n = Number(args[i + 1]);
      if (!key || !Number.isInteger(n)) return fail(`ethtool: bad argument ${args[i]}\n`);
      if (n > (this.rings.max[key] ?? 0))
        return fail(
          "netlink error: requested ring size exceeds maximum (offset 36)\nnetlink error: Invalid argument\n",
        );
      next[key] = this.roundRing(n);
    }
    this.rings.current = next;
    return ok();
  }

  rssText(): Reply {
    if (!("table" in this.rss)) return this.rss;
    const t = this.rss.table;
    let out = `RX flow hash indirection table for ${this.ifname} with ${this.rxCount()} RX ring(s):\n`;
    t.forEach((q, i) => {
      if (i % 8 === 0) out += `${String(i).padStart(5)}: `;
      out += ` ${String(q).padStart(5)}`;
      if (i % 8 === 7 || i === t.length - 1) out += "\n";
    });
    return ok(
      out +
        "RSS hash key:\n6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0:d0:ca:2b:cb\n" +
        "RSS hash function:\n    toeplitz: on\n    xor: off\n    crc32: off\n",
    );
  }

  /** `ethtool -X`, filling the table as ethtool's fill_indir_table does. */
  setRss(args: string[]): Reply {
    if (!("table" in this.rss)) return fail("Cannot get RX ring count: Operation not supported\n");
    const size = this.rss.table.length;
    const rings = this.rxCount();
    if (args[0] === "default") {
      this.rss.table = defaultTable(size, rings);
      this.rss.configured = false;
      return ok();
    }
    let weights: number[];
    if (args[0] === "equal") weights = Array.from({ length: Number(args[1]) }, () => 1);
    else if (args[0] === "weight") weights = args.slice(1).map(Number);
    else return fail(`ethtool: bad argument ${args[0]}\n`);
    if (weights.length > rings)
      return fail("Cannot set RX flow hash configuration: Invalid argument\n");
    const sum = weights.reduce((a, b) => a + b, 0);
    const table: number[] = [];
    let j = -1;
    let partial = 0;
    for (let i = 0; i < size; i++) {
      while (i >= (size * partial) / sum) partial += weights[++j]!;
      table.push(j);
    }
    this.rss.table = table;
    this.rss.configured = true;
    return ok();
  }
}

function emptyChannels(): { max: Counts; current: Counts } {
  const none: Counts = { rx: null, tx: null, other: null, combined: null };
  return { max: { ...none }, current: { ...none } };
}

function defaultTable(size: number, rings: number): number[] {
  return Array.from({ length: size }, (_, i) => i % Math.max(rings, 1));
}

function parseCounts(text: string): { max: Counts; current: Counts } {
  const out = emptyChannels();
  let section: Counts | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("Pre-set")) section = out.max;
    else if (line.startsWith("Current")) section = out.current;
    const m = /^(RX|TX|Other|Combined):\s+(\S+)$/.exec(line);
    if (m && section) {
      const key = m[1]!.toLowerCase() as keyof Counts;
      section[key] = m[2] === "n/a" ? null : Number(m[2]);
    }
  }
  return out;
}

function parseRings(text: string): { max: RingCounts; current: RingCounts; extra: string[] } {
  const none = (): RingCounts => ({ rx: null, rxMini: null, rxJumbo: null, tx: null });
  const out = { max: none(), current: none(), extra: [] as string[] };
  const keys: Record<string, keyof RingCounts> = {
    RX: "rx",
    "RX Mini": "rxMini",
    "RX Jumbo": "rxJumbo",
    TX: "tx",
  };
  let section: RingCounts | undefined;
  for (const line of text.split("\n").filter(Boolean)) {
    if (line.startsWith("Pre-set")) section = out.max;
    else if (line.startsWith("Current")) section = out.current;
    else if (line.startsWith("Ring parameters")) continue;
    else {
      const m = /^([^:]+):\s+(\S+)$/.exec(line);
      const key = m ? keys[m[1]!] : undefined;
      if (m && key && section) section[key] = m[2] === "n/a" ? null : Number(m[2]);
      else if (section === out.current) out.extra.push(line);
    }
  }
  return out;
}

// A stub on PATH: hands the tool's name and arguments to the test process and prints its reply.
const FORWARDER = `
const net = require("node:net");
const [tool, ...args] = process.argv.slice(2);
const s = net.connect(process.env.NETTUNE_FAKE_SOCK);
let buf = "";
s.on("data", (d) => (buf += d));
s.on("end", () => {
  const r = JSON.parse(buf);
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  process.exitCode = r.code;
});
s.end(JSON.stringify({ tool, args }));
`;

export interface FakeLinkHostOptions {
  readonly devices: readonly DeviceOptions[];
  readonly target?: string;
}

export class FakeLinkHost implements Transport {
  readonly target: string;
  readonly stats: TransportStats = { handshakes: 0, execs: 0 };
  /** Every command as the caller sent it, in order. */
  readonly commands: string[] = [];
  /** Every emulated tool call, as an argument list, in order. */
  readonly calls: string[][] = [];
  readonly root: string;
  readonly devices = new Map<string, Device>();
  /** Units enabled with `systemctl enable`. */
  readonly enabled = new Set<string>();
  private readonly local = new LocalTransport({ commandTimeoutMs: 20_000 });
  private readonly server: net.Server;

  private constructor(options: FakeLinkHostOptions, server: net.Server, root: string) {
    this.target = options.target ?? "root@198.18.9.9:22";
    this.root = root;
    this.server = server;
    for (const d of options.devices) this.devices.set(d.ifname, new Device(d));
  }

  static async create(options: FakeLinkHostOptions): Promise<FakeLinkHost> {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-fakelink-"));
    if (!/^[A-Za-z0-9_./-]+$/.test(root)) throw new Error(`fake host: ${root} is not a plain path`);
    for (const d of ["bin", "systemd"]) fs.mkdirSync(path.join(root, d));
    fs.writeFileSync(path.join(root, "forward.cjs"), FORWARDER);
    for (const tool of ["ethtool", "ip", "systemctl"]) {
      fs.writeFileSync(
        path.join(root, "bin", tool),
        `#!/bin/sh\nexec ${process.execPath} ${root}/forward.cjs ${tool} "$@"\n`,
        { mode: 0o755 },
      );
    }
    // The server answers for the host made once it listens.
    const ref: { host?: FakeLinkHost } = {};
    const server = net.createServer((sock) => {
      let buf = "";
      sock.on("data", (d: Buffer) => (buf += d.toString()));
      sock.on("end", () => {
        const req = JSON.parse(buf) as { tool: string; args: string[] };
        sock.end(JSON.stringify(ref.host!.run(req.tool, req.args)));
      });
    });
    await new Promise<void>((resolve) => server.listen(path.join(root, "tool.sock"), resolve));
    ref.host = new FakeLinkHost(options, server, root);
    return ref.host;
  }

  device(ifname: string): Device {
    const d = this.devices.get(ifname);
    if (!d) throw new Error(`fake host: no device ${ifname}`);
    return d;
  }

  /** The unit files as the host would see them: name -> content. */
  units(): Record<string, string> {
    const dir = path.join(this.root, "systemd");
    return Object.fromEntries(
      fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f), "utf8")]),
    );
  }

  /** The emulated ethtool calls that change something (`-K`, `-L`, `-G`, `-X`). */
  setCalls(): string[] {
    return this.calls
      .filter((c) => c[0] === "ethtool" && /^-[KLGX]$/.test(c[1] ?? ""))
      .map((c) => c.join(" "));
  }

  /** The journals of originals as the host would see them: file name -> content. */
  journals(): Record<string, string> {
    const dir = path.join(this.root, "state", "originals");
    if (!fs.existsSync(dir)) return {};
    return Object.fromEntries(
      fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f), "utf8")]),
    );
  }

  /** Whether /var/lib/nettune exists on the host (it should not once everything is deleted). */
  hasStateDir(): boolean {
    return fs.existsSync(path.join(this.root, "state"));
  }

  /** Forgets the commands and calls so far (after a setup step). */
  resetLog(): void {
    this.commands.length = 0;
    this.calls.length = 0;
    this.stats.execs = 0;
  }

  run(tool: string, args: string[]): Reply {
    this.calls.push([tool, ...args]);
    if (tool === "systemctl") return this.systemctl(args);
    if (tool === "ip") {
      const dev = args.indexOf("dev");
      const name = dev >= 0 ? args[dev + 1] : undefined;
      const d = name === undefined ? undefined : this.devices.get(name);
      if (args.join(" ").startsWith("-d -j link show") && d) return ok(d.ipJson);
      return fail(`Device "${name}" does not exist.\n`);
    }
    const [option, ifname, ...rest] = args;
    const d = ifname === undefined ? undefined : this.devices.get(ifname);
    if (!d) {
      return option === "-i"
        ? fail("Cannot get driver information: No such device\n", 71)
        : fail(
            "netlink error: no device matches name (offset 24)\nnetlink error: No such device\n",
          );
    }
    switch (option) {
      case "-i":
        return d.driverInfo;
      case "-k":
        return ok(d.featuresText());
      case "-K":
        return d.setFeatures(rest);
      case "-l":
        return d.channelsText();
      case "-L":
        return d.setChannels(rest);
      case "-g":
        return d.ringsText();
      case "-G":
        return d.setRings(rest);
      case "-x":
        return d.rssText();
      case "-X":
        return d.setRss(rest);
      default:
        return fail(`fake ethtool: option ${option} is not modelled\n`, 2);
    }
  }

  private systemctl(args: string[]): Reply {
    const [verb, ...rest] = args.filter((a) => a !== "--quiet" && a !== "--no-reload");
    if (verb === "daemon-reload") return ok();
    const name = rest[0] ?? "";
    if (verb === "enable") {
      if (!fs.existsSync(path.join(this.root, "systemd", name)))
        return fail(`Failed to enable unit: Unit file ${name} does not exist.\n`);
      this.enabled.add(name);
      return ok();
    }
    if (verb === "disable") {
      this.enabled.delete(name);
      return ok();
    }
    return fail(`fake systemctl: ${verb} is not modelled\n`, 2);
  }

  async exec(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    this.stats.execs++;
    const text = Array.isArray(command)
      ? renderCommand(command as readonly string[])
      : (command as { script: string }).script;
    this.commands.push(text);
    const rewritten = text
      .split(UNIT_DIR)
      .join(`${this.root}/systemd`)
      .split(STATE_DIR)
      .join(`${this.root}/state`);
    // Unit files name /sys/class/net inside their text only; anything else would reach this machine.
    if (/\/etc\/|\/var\//.test(rewritten.replace(/ExecStart=[^\n]*/g, "")))
      throw new Error(`fake host: script names a host path it cannot redirect:\n${text}`);
    const script =
      `NETTUNE_FAKE_SOCK=${this.root}/tool.sock; export NETTUNE_FAKE_SOCK; ` +
      `PATH=${this.root}/bin:$PATH; export PATH\n${rewritten}`;
    const res = await this.local.exec({ script }, options);
    const back = (s: string) =>
      s.split(`${this.root}/systemd`).join(UNIT_DIR).split(`${this.root}/state`).join(STATE_DIR);
    return { ...res, stdout: back(res.stdout), stderr: back(res.stderr) };
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** A fixture file's text, for comparing the model's first answers with the real ones. */
export function fixtureText(kind: "ethtool" | "ip", file: string): string {
  return fs.readFileSync(path.join(FIXTURES, kind, file), "utf8");
}
