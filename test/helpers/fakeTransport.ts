/**
 * A recording fake host for unit tests. Scripts are really run by `sh` (dash, as on Debian
 * hosts), but every /proc/sys and /etc/sysctl.d path in them is first rewritten into a
 * temporary directory, so handlers are tested end to end without a host and nothing on this
 * machine is touched. Two stubs first on PATH stand in for what only a real host would do:
 * `sysctl` (the reload of a sysctl.d file: logged, or failing on demand) and `tee` (the
 * kernel refusing or clamping a write).
 */
import * as fs from "node:fs";
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

const PROC_SYS = "/proc/sys/";
const SYSCTL_D = "/etc/sysctl.d";
const JOURNALS = "/var/lib/nettune/originals";
const OWNERS = "/var/lib/nettune/owners";
/** Where ownership claims take their lock (CLAIM_LOCK's folder). */
const RUN_LOCK = "/run/lock";

/** Rewrites the host paths of a rendered script into `root` (a test-only transformation). */
export function rewriteHostPaths(script: string, root: string): string {
  const out = script
    .split(PROC_SYS)
    .join(`${root}/proc-sys/`)
    .split(SYSCTL_D)
    .join(`${root}/sysctl.d`)
    .split(JOURNALS)
    .join(`${root}/originals`)
    .split(OWNERS)
    .join(`${root}/owners`)
    .split(RUN_LOCK)
    .join(root);
  // A path the rewrite missed would reach this machine: refuse to run it.
  if (out.includes("/proc/sys") || out.includes("/etc/") || out.includes("/var/lib/")) {
    throw new Error(`fake host: script names a host path it cannot redirect:\n${out}`);
  }
  return out;
}

const sysctlStub = `#!/bin/sh
printf '%s\\n' "$*" >> "$NETTUNE_FAKE/sysctl.log"
if [ -f "$NETTUNE_FAKE/sysctl.fail" ]; then cat "$NETTUNE_FAKE/sysctl.fail" >&2; exit 255; fi
exit 0
`;

// Writes to a path listed in reject.tsv fail like the kernel's EINVAL; writes to a path in
// clamp.tsv succeed but store the listed value, like a kernel that clamps to its limit.
const teeStub = `#!/bin/sh
f=$NETTUNE_FAKE
for a in "$@"; do
  if [ -s "$f/reject.tsv" ]; then
    r=$(awk -F '\\t' -v p="$a" '$1 == p { print $2; exit }' "$f/reject.tsv")
    if [ -n "$r" ]; then cat >/dev/null; echo "tee: $a: $r" >&2; exit 1; fi
  fi
  if [ -s "$f/clamp.tsv" ]; then
    c=$(awk -F '\\t' -v p="$a" '$1 == p { sub(/^[^\\t]*\\t/, ""); print; exit }' "$f/clamp.tsv")
    if [ -n "$c" ]; then cat >/dev/null; printf '%s\\n' "$c" > "$a"; exit $?; fi
  fi
done
exec /usr/bin/tee "$@"
`;

export interface FakeHostOptions {
  /** Live values, keyed by sysctl name, as the kernel prints them (tabs and all). */
  readonly proc?: Readonly<Record<string, string>>;
  readonly target?: string;
}

export class FakeHost implements Transport {
  readonly target: string;
  readonly stats: TransportStats = { handshakes: 0, execs: 0 };
  /** Every command as the caller sent it (before any rewriting), in order. */
  readonly commands: string[] = [];
  readonly root: string;
  private readonly local = new LocalTransport({ commandTimeoutMs: 10_000 });

  constructor(options: FakeHostOptions = {}) {
    this.target = options.target ?? "root@198.18.9.9:22";
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-fake-"));
    // The root is put into scripts unquoted, like the host paths it replaces.
    if (!/^[A-Za-z0-9_./-]+$/.test(this.root)) {
      throw new Error(`fake host: temp directory ${this.root} is not a plain path`);
    }
    fs.mkdirSync(path.join(this.root, "proc-sys"));
    fs.mkdirSync(path.join(this.root, "sysctl.d"));
    fs.mkdirSync(path.join(this.root, "bin"));
    fs.writeFileSync(path.join(this.root, "bin", "sysctl"), sysctlStub, { mode: 0o755 });
    fs.writeFileSync(path.join(this.root, "bin", "tee"), teeStub, { mode: 0o755 });
    fs.writeFileSync(path.join(this.root, "reject.tsv"), "");
    fs.writeFileSync(path.join(this.root, "clamp.tsv"), "");
    for (const [key, text] of Object.entries(options.proc ?? {})) this.setProc(key, text);
  }

  /** The file that stands for `/proc/sys/<key as path>`. */
  procPath(key: string): string {
    return path.join(this.root, "proc-sys", ...key.split("."));
  }

  /** Sets a live value as the kernel would print it (a trailing newline is added). */
  setProc(key: string, text: string): void {
    const p = this.procPath(key);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, `${text}\n`);
  }

  /** The raw content of a live value, or undefined when the key does not exist. */
  getProc(key: string): string | undefined {
    const p = this.procPath(key);
    return fs.existsSync(p) ? fs.readFileSync(p, "utf8") : undefined;
  }

  /**
   * Every key and its value, to compare the whole "kernel" before and after. A kernel prints a
   * list with tabs whatever separated the numbers written to it, so blanks are collapsed here.
   */
  procSnapshot(): Record<string, string> {
    const base = path.join(this.root, "proc-sys");
    const out: Record<string, string> = {};
    const walk = (dir: string): void => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else {
          const key = path.relative(base, p).split(path.sep).join(".");
          out[key] = fs.readFileSync(p, "utf8").trim().split(/\s+/).join(" ");
        }
      }
    };
    walk(base);
    return out;
  }

  /** Makes the "kernel" refuse any write to `key` with `reason` (e.g. "Invalid argument"). */
  reject(key: string, reason: string): void {
    fs.appendFileSync(path.join(this.root, "reject.tsv"), `${this.procPath(key)}\t${reason}\n`);
  }

  /** Makes the "kernel" accept writes to `key` but keep `value` instead. */
  clamp(key: string, value: string): void {
    fs.appendFileSync(path.join(this.root, "clamp.tsv"), `${this.procPath(key)}\t${value}\n`);
  }

  /** Makes every later `sysctl -p` fail with `message` on stderr. */
  failReload(message: string): void {
    fs.writeFileSync(path.join(this.root, "sysctl.fail"), `${message}\n`);
  }

  /** The sysctl.d directory as the host would see it: file name -> content. */
  sysctlD(): Record<string, string> {
    const dir = path.join(this.root, "sysctl.d");
    return Object.fromEntries(
      fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f), "utf8")]),
    );
  }

  /** Arguments of every `sysctl` the scripts ran, with host paths as the scripts named them. */
  sysctlCalls(): string[] {
    const log = path.join(this.root, "sysctl.log");
    if (!fs.existsSync(log)) return [];
    return fs
      .readFileSync(log, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split(`${this.root}/sysctl.d`).join(SYSCTL_D));
  }

  async exec(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    this.stats.execs++;
    const text = Array.isArray(command)
      ? renderCommand(command as readonly string[])
      : (command as { script: string }).script;
    this.commands.push(text);
    const script =
      `NETTUNE_FAKE=${this.root}; export NETTUNE_FAKE; PATH=${this.root}/bin:$PATH; export PATH\n` +
      rewriteHostPaths(text, this.root);
    const res = await this.local.exec({ script }, options);
    // Messages name the host's paths, as they would on a real host.
    const back = (s: string) =>
      s
        .split(`${this.root}/proc-sys/`)
        .join(PROC_SYS)
        .split(`${this.root}/sysctl.d`)
        .join(SYSCTL_D)
        .split(`${this.root}/owners`)
        .join(OWNERS);
    return { ...res, stdout: back(res.stdout), stderr: back(res.stderr) };
  }

  close(): Promise<void> {
    fs.rmSync(this.root, { recursive: true, force: true });
    return Promise.resolve();
  }
}
