/**
 * A fake host for CongestionControl unit tests. Scripts are really run by `sh` (dash, as on
 * Debian hosts), with every host path in them (/proc/sys, /proc/config.gz, /proc/modules,
 * /lib/modules, /boot, /sys/class/net, /etc) first rewritten into a temporary directory, and
 * stubs first on a PATH that holds no sbin directory (so this machine's own tc and modprobe are
 * out of reach) standing in for what only a real host does:
 *
 * - `tc`: qdiscs per device kept in a JSON file; prints JSON and text in tc's own formats
 *   (test/fixtures/tc) and fails with tc's own messages;
 * - `modprobe`: loads what modules.dep lists (into /proc/modules and, for tcp_*, into
 *   tcp_available_congestion_control), fails like kmod otherwise;
 * - `tee`: the kernel's rules for the two keys written: an unknown algorithm or qdisc is ENOENT,
 *   an algorithm outside tcp_allowed_congestion_control inside a namespace is EPERM;
 * - `ss`: one listener (a real TCP server of the test) and, for the connection a script opens to
 *   it, the recorded `ss -tine` line of a sandbox host with this fake's algorithm in it;
 * - `systemctl`: logged.
 *
 * Files a real kernel shows read-only are listed in `readonly`: `[ -w FILE ]` is false for them
 * (the tests run as root, for whom the file mode alone would not do).
 */
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { gzipSync } from "node:zlib";

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

/** Host path prefix -> directory under the fake's root. */
const REWRITES: ReadonlyArray<readonly [string, string]> = [
  ["/proc/sys/", "proc-sys/"],
  ["/proc/config.gz", "proc/config.gz"],
  ["/proc/modules", "proc/modules"],
  ["/lib/modules", "lib/modules"],
  ["/boot/", "boot/"],
  ["/sys/class/net/", "sys-class-net/"],
  ["/etc/", "etc/"],
  ["/var/lib/nettune", "var-lib-nettune"],
];

export interface FakeQdisc {
  kind: string;
  handle: string;
  root?: boolean;
  parent?: string;
  refcnt?: number;
  options: Record<string, unknown>;
}

export interface FakeNetHostOptions {
  /** net.ipv4.tcp_congestion_control. */
  algorithm: string;
  /** net.ipv4.tcp_available_congestion_control. */
  available: string;
  /** net.ipv4.tcp_allowed_congestion_control. */
  allowed: string;
  /** Inside a network namespace: allowed is read-only, only allowed algorithms can be set, no default_qdisc. */
  namespace: boolean;
  /** net.core.default_qdisc (ignored in a namespace). */
  defaultQdisc?: string;
  /** Kernel configuration lines (written to /proc/config.gz), if any. */
  config?: string;
  /** modules.dep entries (paths); undefined: no modules directory for the kernel. */
  loadable?: string[];
  /** modules.builtin entries (paths). */
  builtin?: string[];
  /** /proc/modules lines; undefined: no /proc/modules. */
  loaded?: string[];
  /** Qdisc kinds the fake kernel knows. */
  kinds: string[];
  /** Devices and their qdiscs in tc's order (root first). */
  devices: Record<string, FakeQdisc[]>;
  /** The root the kernel attaches to a device by itself; default: its first qdisc when that has handle 0:, else noqueue. */
  defaults?: Record<string, FakeQdisc>;
  /** Leave modprobe out of PATH. */
  noModprobe?: boolean;
  readonly target?: string;
}

const tcStub = (node: string) => `#!${node}
const fs = require("fs");
const f = process.env.NETTUNE_FAKE + "/tc.json";
const s = JSON.parse(fs.readFileSync(f, "utf8"));
const save = () => fs.writeFileSync(f, JSON.stringify(s));
let a = process.argv.slice(2);
let json = false;
while (a[0] && a[0].startsWith("-")) { if (a[0] === "-j") json = true; a = a.slice(1); }
const die = (msg, code) => { process.stderr.write(msg + "\\n"); process.exit(code); };
const fail = s.fail || {};
fs.appendFileSync(process.env.NETTUNE_FAKE + "/tc.log", process.argv.slice(2).join(" ") + "\\n");
if (a[0] !== "qdisc") die("fake tc: unsupported " + a.join(" "), 99);
const op = a[1];
const dev = a[2] === "dev" ? a[3] : undefined;
const rest = dev ? a.slice(4) : a.slice(2);
if (dev && !s.devs[dev]) die('Cannot find device "' + dev + '"', 1);
const text = (q, d) => ["qdisc", q.kind, q.handle, d ? "dev " + d : "", q.root ? "root" : "parent " + q.parent, "refcnt 2"].filter(Boolean).join(" ") + " ";
if (op === "show") {
  const devs = dev ? [dev] : Object.keys(s.devs);
  const rootOnly = rest[0] === "root";
  const out = [];
  for (const d of devs)
    for (const q of s.devs[d])
      if (!rootOnly || q.root) out.push(dev ? q : { kind: q.kind, handle: q.handle, dev: d, ...q });
  if (json) process.stdout.write(JSON.stringify(out));
  else process.stdout.write(out.map((q) => text(q, dev ? undefined : q.dev) + "\\n").join(""));
  process.exit(0);
}
if (fail[op + " " + dev]) die(fail[op + " " + dev], 2);
if (op === "del") {
  const root = s.devs[dev][0];
  if (root.handle === "0:") die("Error: Cannot delete qdisc with handle of zero.", 2);
  s.devs[dev] = [s.defaults[dev]];
  save();
  process.exit(0);
}
if (op === "replace") {
  let r = rest.slice(1);
  let handle;
  if (r[0] === "handle") { handle = r[1]; r = r.slice(2); }
  const kind = r[0];
  const params = r.slice(1);
  if (!s.kinds.includes(kind)) die("Error: Specified qdisc kind is unknown.", 2);
  if (kind === "tbf" && !params.includes("rate")) die('tbf: the "rate" parameter is mandatory.', 1);
  const cur = s.devs[dev][0];
  if (handle && cur.handle === handle && cur.kind !== kind) die("Error: Invalid qdisc name: must match existing qdisc.", 2);
  const o = {};
  for (let i = 0; i + 1 < params.length; i += 2) {
    const [k, v] = [params[i], params[i + 1]];
    const n = parseInt(v, 10);
    if (k === "latency") o.lat = n; else if (k === "default") o.default = v; else o[k] = n;
  }
  if (kind === "tbf") { o.burst_raw = "8000"; if (o.limit === undefined) o.limit = 6512144; if (o.lat === undefined) o.lat = 50000; }
  if ((kind === "pfifo" || kind === "pfifo_head_drop") && o.limit === undefined) o.limit = 1000;
  if (kind === "pfifo_fast") Object.assign(o, { bands: 3, priomap: [1,2,2,2,1,2,0,0,1,1,1,1,1,1,1,1], multiqueue: false });
  const h = handle || (s.next++).toString(16) + ":";
  s.devs[dev] = [{ kind, handle: h, root: true, refcnt: 5, options: o }];
  save();
  process.exit(0);
}
die("fake tc: unsupported " + a.join(" "), 99);
`;

const modprobeStub = `#!/bin/sh
f=$NETTUNE_FAKE
printf '%s\\n' "$*" >> "$f/modprobe.log"
remove=; for a in "$@"; do case "$a" in -r) remove=1;; -*) ;; *) m=$a;; esac; done
dep="$f/lib/modules/$(uname -r)/modules.dep"
if [ -n "$remove" ]; then
  grep -v "^$m " "$f/proc/modules" > "$f/proc/modules.new"; mv "$f/proc/modules.new" "$f/proc/modules"
  case "$m" in tcp_*) a=$(cat "$f/proc-sys/net/ipv4/tcp_available_congestion_control" | tr ' ' '\\n' | grep -vx "\${m#tcp_}" | tr '\\n' ' '); echo $a > "$f/proc-sys/net/ipv4/tcp_available_congestion_control";; esac
  exit 0
fi
if [ -f "$f/modprobe.fail" ]; then cat "$f/modprobe.fail" >&2; exit 1; fi
if ! [ -r "$dep" ] || ! grep -q "/$m\\.ko[.a-z]*:" "$dep"; then
  echo "modprobe: FATAL: Module $m not found in directory /lib/modules/$(uname -r)" >&2; exit 1
fi
grep -q "^$m " "$f/proc/modules" 2>/dev/null && exit 0
echo "$m 16384 0 - Live 0x0000000000000000" >> "$f/proc/modules"
case "$m" in tcp_*) echo "$(cat "$f/proc-sys/net/ipv4/tcp_available_congestion_control") \${m#tcp_}" > "$f/proc-sys/net/ipv4/tcp_available_congestion_control";; esac
exit 0
`;

const teeStub = `#!/bin/sh
f=$NETTUNE_FAKE
v=$(cat)
for p in "$@"; do
  case "$p" in
    */proc-sys/net/ipv4/tcp_congestion_control)
      if ! tr ' ' '\\n' < "$f/proc-sys/net/ipv4/tcp_available_congestion_control" | grep -qx "$v"; then
        echo "tee: /proc/sys/net/ipv4/tcp_congestion_control: No such file or directory" >&2; exit 1; fi
      if [ -f "$f/namespace" ] && ! tr ' ' '\\n' < "$f/proc-sys/net/ipv4/tcp_allowed_congestion_control" | grep -qx "$v"; then
        echo "tee: /proc/sys/net/ipv4/tcp_congestion_control: Operation not permitted" >&2; exit 1; fi;;
    */proc-sys/net/core/default_qdisc)
      if ! node -e 'process.exit(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).kinds.includes(process.argv[2]) ? 0 : 1)' "$f/tc.json" "$v"; then
        echo "tee: /proc/sys/net/core/default_qdisc: No such file or directory" >&2; exit 1; fi;;
  esac
done
printf '%s\\n' "$v" | /usr/bin/tee "$@"
`;

const ssStub = `#!/bin/sh
f=$NETTUNE_FAKE
case "$*" in
  *-Htln*) echo "LISTEN 0      128    127.0.0.1:$(cat "$f/listen-port") 0.0.0.0:*";;
  *-Htine*)
    ino=$(readlink /proc/$$/fd/3 2>/dev/null || readlink /proc/$PPID/fd/3 2>/dev/null)
    ino=$(echo "$ino" | tr -dc 0-9)
    alg=$(cat "$f/observe" 2>/dev/null || cat "$f/proc-sys/net/ipv4/tcp_congestion_control")
    sed -n '2,3p' "$f/ss-template.txt" | sed -e "s/ino:[0-9]*/ino:$ino/" -e "s/ sack bbr / sack $alg /" -e "s/bbr:(/$alg:(/";;
esac
`;

const systemctlStub = `#!/bin/sh
printf '%s\\n' "$*" >> "$NETTUNE_FAKE/systemctl.log"
if [ -f "$NETTUNE_FAKE/systemctl.fail" ]; then cat "$NETTUNE_FAKE/systemctl.fail" >&2; exit 1; fi
exit 0
`;

export class FakeNetHost implements Transport {
  readonly target: string;
  readonly stats: TransportStats = { handshakes: 0, execs: 0 };
  /** Every command as the caller sent it (before any rewriting), in order. */
  readonly commands: string[] = [];
  readonly root: string;
  private readonly local = new LocalTransport({ commandTimeoutMs: 20_000 });
  private server: net.Server | undefined;

  constructor(readonly options: FakeNetHostOptions) {
    this.target = options.target ?? "root@198.18.9.9:22";
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-fakenet-"));
    if (!/^[A-Za-z0-9_./-]+$/.test(this.root)) {
      throw new Error(`fake host: temp directory ${this.root} is not a plain path`);
    }
    const r = this.root;
    const mk = (p: string) => fs.mkdirSync(path.join(r, p), { recursive: true });
    for (const d of [
      "proc-sys/net/ipv4",
      "proc-sys/net/core",
      "proc",
      "etc/systemd/system",
      "bin",
      "sys-class-net",
    ])
      mk(d);
    this.setProc("net.ipv4.tcp_congestion_control", options.algorithm);
    this.setProc("net.ipv4.tcp_available_congestion_control", options.available);
    this.setProc("net.ipv4.tcp_allowed_congestion_control", options.allowed);
    if (options.namespace) {
      fs.writeFileSync(path.join(r, "namespace"), "");
      fs.writeFileSync(
        path.join(r, "readonly"),
        `${path.join(r, "proc-sys/net/ipv4/tcp_allowed_congestion_control")}\n`,
      );
    } else {
      fs.writeFileSync(path.join(r, "readonly"), "");
      this.setProc("net.core.default_qdisc", options.defaultQdisc ?? "pfifo_fast");
    }
    if (options.config !== undefined) {
      fs.writeFileSync(path.join(r, "proc/config.gz"), gzipSync(options.config));
    }
    const modDir = path.join(r, "lib/modules", os.release());
    if (options.loadable !== undefined || options.builtin !== undefined) {
      fs.mkdirSync(modDir, { recursive: true });
      fs.writeFileSync(
        path.join(modDir, "modules.dep"),
        (options.loadable ?? []).map((m) => `${m}:\n`).join(""),
      );
      fs.writeFileSync(path.join(modDir, "modules.builtin"), (options.builtin ?? []).join("\n"));
    }
    if (options.loaded !== undefined) {
      fs.writeFileSync(path.join(r, "proc/modules"), options.loaded.map((l) => `${l}\n`).join(""));
    }
    for (const dev of Object.keys(options.devices)) mk(`sys-class-net/${dev}`);
    const noqueue: FakeQdisc = {
      kind: "noqueue",
      handle: "0:",
      root: true,
      refcnt: 2,
      options: {},
    };
    const defaults = Object.fromEntries(
      Object.entries(options.devices).map(([d, qs]) => [
        d,
        options.defaults?.[d] ?? (qs[0]?.handle === "0:" ? qs[0] : noqueue),
      ]),
    );
    fs.writeFileSync(
      path.join(r, "tc.json"),
      JSON.stringify({ devs: options.devices, defaults, kinds: options.kinds, next: 0x8100 }),
    );
    const stub = (name: string, text: string) =>
      fs.writeFileSync(path.join(r, "bin", name), text, { mode: 0o755 });
    stub("tc", tcStub(process.execPath));
    if (!options.noModprobe) stub("modprobe", modprobeStub);
    stub("tee", teeStub);
    stub("ss", ssStub);
    stub("systemctl", systemctlStub);
    stub("node", `#!/bin/sh\nexec ${process.execPath} "$@"\n`);
    fs.copyFileSync(
      path.join(FIXTURES, "congestion/ss-tine-bbr.txt"),
      path.join(r, "ss-template.txt"),
    );
    fs.writeFileSync(path.join(r, "listen-port"), "1");
  }

  /** Starts the TCP listener a script's connection check reaches. */
  async listen(): Promise<void> {
    const server = net.createServer((s) => s.on("error", () => undefined).end());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    this.server = server;
    const port = (server.address() as net.AddressInfo).port;
    fs.writeFileSync(path.join(this.root, "listen-port"), String(port));
  }

  procPath(key: string): string {
    return path.join(this.root, "proc-sys", ...key.split("."));
  }
  setProc(key: string, text: string): void {
    fs.writeFileSync(this.procPath(key), `${text}\n`);
  }
  proc(key: string): string | undefined {
    const p = this.procPath(key);
    return fs.existsSync(p) ? fs.readFileSync(p, "utf8").trim() : undefined;
  }

  /** The qdiscs of each device, as the fake tc keeps them. */
  qdiscs(): Record<string, FakeQdisc[]> {
    return (
      JSON.parse(fs.readFileSync(path.join(this.root, "tc.json"), "utf8")) as {
        devs: Record<string, FakeQdisc[]>;
      }
    ).devs;
  }
  /** Replaces a device's root qdisc behind the resource's back. */
  setRoot(dev: string, q: FakeQdisc): void {
    const f = path.join(this.root, "tc.json");
    const s = JSON.parse(fs.readFileSync(f, "utf8")) as { devs: Record<string, FakeQdisc[]> };
    s.devs[dev] = [q];
    fs.writeFileSync(f, JSON.stringify(s));
  }
  /** Makes `tc qdisc <op> dev <dev> …` fail with `message`. */
  failTc(op: "replace" | "del", dev: string, message: string): void {
    const f = path.join(this.root, "tc.json");
    const s = JSON.parse(fs.readFileSync(f, "utf8")) as { fail?: Record<string, string> };
    s.fail = { ...s.fail, [`${op} ${dev}`]: message };
    fs.writeFileSync(f, JSON.stringify(s));
  }
  /** Makes every later `systemctl` fail with `message`. */
  failSystemctl(message: string): void {
    fs.writeFileSync(path.join(this.root, "systemctl.fail"), `${message}\n`);
  }
  /** Makes the connection check report `algorithm` whatever the kernel's default is. */
  observeAs(algorithm: string): void {
    fs.writeFileSync(path.join(this.root, "observe"), algorithm);
  }
  /** Lines a stub logged (`tc`, `modprobe`, `systemctl`). */
  log(tool: "tc" | "modprobe" | "systemctl"): string[] {
    const f = path.join(this.root, `${tool}.log`);
    return fs.existsSync(f) ? fs.readFileSync(f, "utf8").split("\n").filter(Boolean) : [];
  }

  /** Files under the fake /etc, by host path, with host paths in their text. */
  etc(): Record<string, string> {
    const out: Record<string, string> = {};
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else
          out[`/etc/${path.relative(path.join(this.root, "etc"), p)}`] = this.back(
            fs.readFileSync(p, "utf8"),
          );
      }
    };
    walk(path.join(this.root, "etc"));
    return out;
  }

  /** nettune's journals of originals (/var/lib/nettune/originals), by name. */
  journals(): Record<string, string> {
    const dir = path.join(this.root, "var-lib-nettune", "originals");
    if (!fs.existsSync(dir)) return {};
    return Object.fromEntries(
      fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f), "utf8")]),
    );
  }

  /** Writes a journal of originals, as an earlier apply (or cloud-init) left it. */
  setJournal(name: string, text: string): void {
    const dir = path.join(this.root, "var-lib-nettune", "originals");
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }

  /** Everything a change could touch: the two keys, qdiscs, /etc, modules, journals. */
  snapshot(): unknown {
    return {
      journals: this.journals(),
      stateDir: fs.existsSync(path.join(this.root, "var-lib-nettune")),
      algorithm: this.proc("net.ipv4.tcp_congestion_control"),
      available: this.proc("net.ipv4.tcp_available_congestion_control"),
      defaultQdisc: this.proc("net.core.default_qdisc"),
      qdiscs: this.qdiscs(),
      etc: this.etc(),
      modules: fs.existsSync(path.join(this.root, "proc/modules"))
        ? fs.readFileSync(path.join(this.root, "proc/modules"), "utf8")
        : undefined,
    };
  }

  private rewrite(script: string): string {
    let out = script;
    for (const [from, to] of REWRITES) out = out.split(from).join(`${this.root}/${to}`);
    const rest = out.split(`${this.root}/`).join("@");
    if (
      /\/proc\/sys|\/proc\/config|\/proc\/modules|\/etc\/|\/lib\/modules|\/sys\/class|\/boot\/|\/var\/lib\//.test(
        rest,
      )
    ) {
      throw new Error(`fake host: script names a host path it cannot redirect:\n${out}`);
    }
    // A file the kernel shows read-only is not writable, even for root.
    return out.split("[ -w ").join("nt_w ");
  }

  private back(text: string): string {
    let out = text;
    for (const [from, to] of REWRITES) out = out.split(`${this.root}/${to}`).join(from);
    return out;
  }

  async exec(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    this.stats.execs++;
    const text = Array.isArray(command)
      ? renderCommand(command as readonly string[])
      : (command as { script: string }).script;
    this.commands.push(text);
    const prelude = [
      `NETTUNE_FAKE=${this.root}; export NETTUNE_FAKE`,
      `PATH=${this.root}/bin:/usr/bin:/bin; export PATH`,
      "unset SSH_CONNECTION",
      `nt_w() { grep -qxF "$1" "$NETTUNE_FAKE/readonly" && return 1; [ -w "$1" ]; }`,
    ].join("\n");
    const res = await this.local.exec({ script: `${prelude}\n${this.rewrite(text)}` }, options);
    return { ...res, stdout: this.back(res.stdout), stderr: this.back(res.stderr) };
  }

  async close(): Promise<void> {
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}
