/**
 * Congestion control on the host: the script that reads everything CongestionControl needs in one
 * round trip (algorithm, default qdisc, what the kernel offers, the interfaces' qdiscs), the
 * check that a root qdisc was replaced (for the all-or-nothing steps of ./steps.ts), and the
 * check that opens a TCP connection and reads which algorithm it got. No I/O here: `specs/`
 * runs these through a transport.
 */
import { renderCommand, shellQuote } from "../transport/quote";
import { ParseError } from "./errors";
import { assertInterfaceName } from "./ip";
import { parseTcQdiscs, renderTcQdiscShow, withRoot, type TcQdisc } from "./tc";

const PROBE = "nettune congestion probe";

export const CC_KEY = "net.ipv4.tcp_congestion_control";
export const DEFAULT_QDISC_KEY = "net.core.default_qdisc";
const CC_PATH = "/proc/sys/net/ipv4/tcp_congestion_control";
const AVAILABLE_PATH = "/proc/sys/net/ipv4/tcp_available_congestion_control";
const ALLOWED_PATH = "/proc/sys/net/ipv4/tcp_allowed_congestion_control";
const DEFAULT_QDISC_PATH = "/proc/sys/net/core/default_qdisc";

/** Everything the probe script reports. */
export interface CongestionProbe {
  /** net.ipv4.tcp_congestion_control. */
  readonly current: string;
  /** net.ipv4.tcp_available_congestion_control: built in or loaded. */
  readonly available: string;
  /** net.ipv4.tcp_allowed_congestion_control. */
  readonly allowed: string;
  /**
   * False inside a network namespace other than the first (a container, a sandbox host): the
   * kernel then lets it set only the algorithms in `allowed`, which the machine decides.
   */
  readonly allowedWritable: boolean;
  /** net.core.default_qdisc; undefined where the key does not exist (a network namespace). */
  readonly defaultQdisc?: string;
  /** `CONFIG_NET_SCH_*` and `CONFIG_TCP_CONG_*` lines of the kernel configuration, if found. */
  readonly config?: string;
  /** Scheduler and TCP entries of modules.builtin, if the file exists. */
  readonly builtin?: string[];
  /** Installed scheduler and TCP modules; `[]` when the kernel has no modules directory. */
  readonly loadable?: string[];
  /** Loaded `tcp_*` and `sch_*` modules, if /proc/modules exists. */
  readonly loaded?: string[];
  /** Which of tc, modprobe, bash, ss, systemctl the host has. */
  readonly tools: readonly string[];
  /** The qdisc kinds in use on the host. */
  readonly kinds: string[];
  /** Each interface asked about: its qdiscs (a `noop` root where it has never been up), or null when it does not exist. */
  readonly interfaces: Readonly<Record<string, TcQdisc[] | null>>;
}

const TOOLS = ["tc", "modprobe", "bash", "ss", "systemctl"];

/** One script that prints `== section` headers, each followed by its lines. */
export function renderCongestionProbe(interfaces: readonly string[]): string {
  const lines = [
    "set -f",
    `printf '== current\\n'; cat ${CC_PATH}`,
    `printf '== available\\n'; cat ${AVAILABLE_PATH}`,
    // Writable only in the machine's first network namespace.
    `if [ -w ${ALLOWED_PATH} ]; then printf '== allowed rw\\n'; else printf '== allowed ro\\n'; fi; cat ${ALLOWED_PATH}`,
    `if [ -e ${DEFAULT_QDISC_PATH} ]; then printf '== default_qdisc\\n'; cat ${DEFAULT_QDISC_PATH}; fi`,
    "k=/boot/config-$(uname -r)",
    `if [ -r /proc/config.gz ]; then printf '== config\\n'; zcat /proc/config.gz 2>/dev/null | grep -E '^CONFIG_(NET_SCH|TCP_CONG)_'; ` +
      `elif [ -r "$k" ]; then printf '== config\\n'; grep -E '^CONFIG_(NET_SCH|TCP_CONG)_' "$k"; fi`,
    "m=/lib/modules/$(uname -r)",
    `if [ -r "$m/modules.builtin" ]; then printf '== builtin\\n'; grep -E '/net/(sched/sch|ipv4/tcp)_' "$m/modules.builtin"; fi`,
    // No modules directory at all: nothing can be loaded (a kernel without modules, a container).
    `if [ -r "$m/modules.dep" ]; then printf '== loadable\\n'; cut -d: -f1 "$m/modules.dep" | grep -E '/net/(sched/sch|ipv4/tcp)_'; ` +
      `elif [ ! -d "$m" ]; then printf '== loadable\\n'; fi`,
    `if [ -r /proc/modules ]; then printf '== loaded\\n'; grep -oE '^(tcp|sch)_[a-z0-9_]+' /proc/modules; fi`,
    `printf '== tools\\n'; for c in ${TOOLS.join(" ")}; do command -v $c >/dev/null 2>&1 && echo $c; done`,
    `if command -v tc >/dev/null 2>&1; then printf '== kinds\\n'; tc qdisc show 2>/dev/null | awk '{print $2}' | sort -u; fi`,
  ];
  for (const i of interfaces) {
    assertInterfaceName(i);
    const q = shellQuote(i);
    lines.push(
      `if [ ! -e ${shellQuote(`/sys/class/net/${i}`)} ]; then printf '== missing %s\\n' ${q}; ` +
        `elif command -v tc >/dev/null 2>&1; then printf '== qdisc %s\\n' ${q}; ${renderCommand(renderTcQdiscShow(i))} 2>&1; echo; fi`,
    );
  }
  lines.push("printf '== end\\n'");
  return lines.join("\n");
}

function sections(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of text.split("\n")) {
    const m = /^== (.+)$/.exec(line);
    if (m) out.set(m[1]!, (current = []));
    else if (current && line.trim() !== "") current.push(line);
  }
  return out;
}

/** Reads the probe script's output. */
export function parseCongestionProbe(text: string, interfaces: readonly string[]): CongestionProbe {
  const s = sections(text);
  if (!s.has("end")) throw new ParseError(PROBE, "output ended early", text);
  const one = (name: string): string => {
    const v = s.get(name);
    if (!v || v.length === 0) throw new ParseError(PROBE, `no ${name} value`, text);
    return v.join(" ").trim();
  };
  const list = (name: string): string[] | undefined => s.get(name)?.map((l) => l.trim());
  const allowedRw = s.get("allowed rw");
  const allowed = allowedRw ?? s.get("allowed ro");
  if (!allowed) throw new ParseError(PROBE, "no allowed value", text);
  const ifaces: Record<string, TcQdisc[] | null> = {};
  for (const i of interfaces) {
    if (s.has(`missing ${i}`)) ifaces[i] = null;
    const q = s.get(`qdisc ${i}`);
    // A device that has never been up has a root tc does not list: noop.
    if (q) ifaces[i] = withRoot(parseTcQdiscs(q.join("\n"), i), i);
  }
  const probe: CongestionProbe = {
    current: one("current"),
    available: one("available"),
    allowed: allowed.join(" ").trim(),
    allowedWritable: allowedRw !== undefined,
    defaultQdisc: s.has("default_qdisc") ? one("default_qdisc") : undefined,
    config: s.has("config") ? list("config")!.join("\n") : undefined,
    builtin: list("builtin"),
    loadable: list("loadable"),
    loaded: list("loaded"),
    tools: list("tools") ?? [],
    kinds: list("kinds") ?? [],
    interfaces: ifaces,
  };
  return Object.fromEntries(
    Object.entries(probe).filter(([, v]) => v !== undefined),
  ) as unknown as CongestionProbe;
}

// ---------------------------------------------------------------------------------------------
// Shell for the all-or-nothing steps (./steps.ts)

/** Checks that a command replaced (or restored) the root qdisc of `dev` with `kind`. */
export function rootKindCheck(dev: string, kind: string): string {
  return (
    `set -- $(${renderCommand(["tc", "qdisc", "show", "dev", dev, "root"])}); ` +
    `[ "$2" = ${shellQuote(kind)} ] || ` +
    `{ printf 'the root qdisc of %s is %s afterwards\\n' ${shellQuote(dev)} "\${2:-none}"; exit 1; }`
  );
}

/** The modules-load.d file: one module per line, loaded at every boot before sysctl.d is applied. */
export function renderModulesLoadConf(owner: string, modules: readonly string[]): string {
  return [
    `# Managed by nettune (${owner}). Removed when the Pulumi resource is destroyed.`,
    ...modules,
    "",
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------
// Which algorithm does a new connection get?

/**
 * A check run inside the host: open a TCP connection to a port something listens on (the SSH
 * server the session came to, else the first listener) with bash's /dev/tcp, and print
 * `ino <socket inode>` and `ss -tine` for it. Prints `none` when it cannot (no bash, no ss, no
 * listener that accepts).
 */
export function renderObserveConnection(): string {
  const inner = [
    "pairs=",
    // The SSH server's own address and port (not kept by sudo), then IPv4 listeners.
    `if [ -n "\${SSH_CONNECTION:-}" ]; then set -- $SSH_CONNECTION; case "$3" in *:*) ;; *) pairs="$3:$4";; esac; fi`,
    `pairs="$pairs $(ss -Htln 2>/dev/null | awk '{print $4}' | sed -n -e 's/^\\(0\\.0\\.0\\.0\\|\\*\\|\\[::\\]\\):\\([0-9]*\\)$/127.0.0.1:\\2/p' -e 's/^\\([0-9][0-9.]*\\):\\([0-9]*\\)$/\\1:\\2/p' | head -n 3)"`,
    "for p in $pairs; do",
    '  ( exec 3<>"/dev/tcp/${p%:*}/${p##*:}" || exit 1',
    '    echo "ino $(readlink /proc/$BASHPID/fd/3 | tr -dc 0-9)"',
    '    ss -Htine dst "$p" ) 2>/dev/null && exit 0',
    "done",
    "echo none",
  ].join("\n");
  return [
    "printf '== observe\\n'",
    `if command -v bash >/dev/null 2>&1 && command -v ss >/dev/null 2>&1; then bash -c ${shellQuote(inner)}; else echo none; fi`,
  ].join("\n");
}

/** Flags ss prints before the algorithm's name in its `-i` line. */
const SS_FLAGS = new Set(["ts", "sack", "ecn", "ecnseen", "fastopen"]);

/**
 * The algorithm of the connection the observe check opened, from its output; undefined when the
 * check could not open one or ss did not show it.
 *
 * @example
 * parseObservedAlgorithm("ino 500811\nESTAB 0 0 127.0.0.1:53744 127.0.0.1:22 ino:500811 sk:21 <->\n\t ts sack reno wscale:10,10 …");
 * // "reno"
 */
export function parseObservedAlgorithm(text: string): string | undefined {
  const lines = text.split("\n");
  const head = lines.indexOf("== observe");
  const body = head >= 0 ? lines.slice(head + 1) : lines;
  const ino = body.map((l) => /^ino (\d+)$/.exec(l.trim())?.[1]).find(Boolean);
  if (!ino) return undefined;
  const at = body.findIndex((l) => new RegExp(`\\bino:${ino}\\b`).test(l));
  const info = at >= 0 ? body[at + 1] : undefined;
  if (!info || !/^\s/.test(info)) return undefined;
  let found: string | undefined;
  for (const tok of info.trim().split(/\s+/)) {
    if (tok.includes(":") || tok.includes("(")) break;
    if (!SS_FLAGS.has(tok) && /^[a-z][a-z0-9_]*$/.test(tok)) found = tok;
  }
  return found;
}
