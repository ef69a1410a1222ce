/**
 * The sysctl catalogue: the keys the guide names (and other common net.* keys), each with its
 * value shape and range. Values are validated here, before any host is touched.
 */
import { z } from "zod";
import type { SysctlValue } from "./publicTypes";

/** A sysctl value as declared (zod-free, in ./publicTypes, so the public types reach no zod). */
export type { SysctlValue };

export interface KeySpec {
  /** What it does, in one line (shown in docs and errors). */
  readonly doc: string;
  readonly schema: z.ZodType<SysctlValue>;
}

const INT_MAX = 2_147_483_647;
const int = (min: number, max: number) =>
  z
    .number({ error: "expected an integer" })
    .int("expected an integer")
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`);
const bool01 = z.union([z.literal(0), z.literal(1)], { error: "expected 0 or 1" });

/** min <= default <= max, each a positive integer (tcp_rmem, tcp_wmem, tcp_mem). */
const triplet = (max: number) =>
  z
    .tuple([int(1, max), int(1, max), int(1, max)], { error: "expected [min, default, max]" })
    .refine(([a, b, c]) => a <= b && b <= c, "must satisfy min <= default <= max");

/** low < high (ip_local_port_range). */
const portRange = z
  .tuple([int(1, 65535), int(1, 65535)], { error: "expected [low, high]" })
  .refine(([lo, hi]) => lo < hi, "low must be below high");

/** An algorithm or qdisc name: a plain word; availability is checked on the host. */
const word = z
  .string({ error: "expected a name" })
  .regex(/^[a-z0-9_]{1,32}$/, "must be a lower-case name of letters, digits and _");

export const SYSCTL_CATALOGUE: Readonly<Record<string, KeySpec>> = {
  "net.core.somaxconn": { doc: "Listen backlog limit for accept queues", schema: int(1, INT_MAX) },
  "net.core.netdev_max_backlog": {
    doc: "Packets queued per CPU when the interface receives faster than the kernel processes",
    schema: int(1, INT_MAX),
  },
  "net.core.netdev_budget": {
    doc: "Packets processed per NAPI poll cycle",
    schema: int(1, INT_MAX),
  },
  "net.core.netdev_budget_usecs": {
    doc: "Time budget of one NAPI poll cycle (µs)",
    schema: int(1, INT_MAX),
  },
  "net.core.rmem_max": {
    doc: "Largest receive buffer a socket may ask for (bytes)",
    schema: int(256, INT_MAX),
  },
  "net.core.wmem_max": {
    doc: "Largest send buffer a socket may ask for (bytes)",
    schema: int(256, INT_MAX),
  },
  "net.core.rmem_default": { doc: "Default receive buffer (bytes)", schema: int(256, INT_MAX) },
  "net.core.wmem_default": { doc: "Default send buffer (bytes)", schema: int(256, INT_MAX) },
  "net.core.optmem_max": { doc: "Ancillary buffer per socket (bytes)", schema: int(1, INT_MAX) },
  "net.core.default_qdisc": { doc: "Root qdisc given to new interfaces", schema: word },
  "net.core.rps_sock_flow_entries": { doc: "RFS global flow table size", schema: int(0, INT_MAX) },
  "net.core.busy_poll": { doc: "Busy-poll time for poll/select (µs)", schema: int(0, INT_MAX) },
  "net.core.busy_read": { doc: "Busy-poll time for socket reads (µs)", schema: int(0, INT_MAX) },
  "net.ipv4.tcp_max_syn_backlog": {
    doc: "Half-open connections remembered per listener",
    schema: int(1, INT_MAX),
  },
  "net.ipv4.tcp_rmem": {
    doc: "TCP receive buffer [min, default, max] (bytes)",
    schema: triplet(INT_MAX),
  },
  "net.ipv4.tcp_wmem": {
    doc: "TCP send buffer [min, default, max] (bytes)",
    schema: triplet(INT_MAX),
  },
  "net.ipv4.tcp_mem": {
    doc: "TCP memory pressure thresholds [low, pressure, high] (pages)",
    schema: triplet(Number.MAX_SAFE_INTEGER),
  },
  "net.ipv4.udp_mem": {
    doc: "UDP memory thresholds [low, pressure, high] (pages)",
    schema: triplet(Number.MAX_SAFE_INTEGER),
  },
  "net.ipv4.tcp_tw_reuse": {
    doc: "Reuse TIME-WAIT sockets for new outgoing connections: 0 off, 1 on, 2 loopback only",
    schema: z.union([z.literal(0), z.literal(1), z.literal(2)], { error: "expected 0, 1 or 2" }),
  },
  "net.ipv4.tcp_fin_timeout": {
    doc: "Time an orphaned connection stays in FIN-WAIT-2 (s)",
    schema: int(1, 600),
  },
  "net.ipv4.tcp_keepalive_time": {
    doc: "Idle time before keepalive probes (s)",
    schema: int(1, 32767),
  },
  "net.ipv4.tcp_keepalive_intvl": {
    doc: "Interval between keepalive probes (s)",
    schema: int(1, 32767),
  },
  "net.ipv4.tcp_keepalive_probes": {
    doc: "Unanswered probes before the connection drops",
    schema: int(1, 127),
  },
  "net.ipv4.tcp_congestion_control": {
    doc: "Congestion control algorithm of new connections (checked against the host's available ones)",
    schema: word,
  },
  "net.ipv4.ip_local_port_range": { doc: "Ephemeral port range [low, high]", schema: portRange },
  "net.ipv4.tcp_slow_start_after_idle": {
    doc: "Return to slow start after idle (0 keeps the window)",
    schema: bool01,
  },
  "net.ipv4.tcp_fastopen": {
    doc: "TCP Fast Open bit flags: 1 client, 2 server, 4 client without cookie, … (0-0x707)",
    schema: int(0, 0x707),
  },
  "net.ipv4.tcp_timestamps": {
    doc: "TCP timestamps: 0 off, 1 on with random offset, 2 on without",
    schema: z.union([z.literal(0), z.literal(1), z.literal(2)], { error: "expected 0, 1 or 2" }),
  },
  "net.ipv4.tcp_sack": { doc: "Selective acknowledgements", schema: bool01 },
  "net.ipv4.tcp_window_scaling": { doc: "Window scaling (RFC 1323)", schema: bool01 },
  "net.ipv4.tcp_syncookies": {
    doc: "SYN cookies when the SYN backlog overflows: 0 off, 1 on overflow, 2 always",
    schema: z.union([z.literal(0), z.literal(1), z.literal(2)], { error: "expected 0, 1 or 2" }),
  },
  "net.ipv4.tcp_max_orphans": {
    doc: "Sockets not attached to any file before they are reset",
    schema: int(0, INT_MAX),
  },
  "net.ipv4.tcp_max_tw_buckets": { doc: "TIME-WAIT sockets held at once", schema: int(0, INT_MAX) },
  "net.ipv4.tcp_mtu_probing": {
    doc: "Packetization-layer path MTU discovery: 0 off, 1 on black hole, 2 always",
    schema: z.union([z.literal(0), z.literal(1), z.literal(2)], { error: "expected 0, 1 or 2" }),
  },
  "net.ipv4.tcp_notsent_lowat": {
    doc: "Unsent bytes a socket holds before it is not writable (unsigned; default 4294967295)",
    schema: int(1, 4_294_967_295),
  },
  "net.ipv4.tcp_no_metrics_save": {
    doc: "Forget per-destination metrics when a connection closes",
    schema: bool01,
  },
  "net.ipv4.tcp_moderate_rcvbuf": { doc: "Receive buffer auto-tuning", schema: bool01 },
  "net.ipv4.tcp_synack_retries": {
    doc: "SYN-ACK retransmissions before giving up",
    schema: int(0, 255),
  },
  "net.ipv4.tcp_syn_retries": { doc: "SYN retransmissions before giving up", schema: int(1, 127) },
  "net.ipv4.tcp_rfc1337": { doc: "Drop RST for sockets in TIME-WAIT (RFC 1337)", schema: bool01 },
  "net.ipv4.tcp_ecn": {
    doc: "Explicit congestion notification: 0 off, 1 on, 2 on when asked",
    schema: z.union([z.literal(0), z.literal(1), z.literal(2)], { error: "expected 0, 1 or 2" }),
  },
  "net.ipv4.ip_forward": { doc: "Forward IPv4 packets between interfaces", schema: bool01 },
  "net.ipv4.udp_rmem_min": { doc: "Minimal UDP receive buffer (bytes)", schema: int(1, INT_MAX) },
  "net.ipv4.udp_wmem_min": { doc: "Minimal UDP send buffer (bytes)", schema: int(1, INT_MAX) },
  "net.netfilter.nf_conntrack_max": {
    doc: "Connection-tracking table size",
    schema: int(1, INT_MAX),
  },
  "fs.file-max": {
    doc: "System-wide open file limit (global: not settable inside a network namespace)",
    schema: int(1, Number.MAX_SAFE_INTEGER),
  },
};

/**
 * A key outside the catalogue is accepted only when its name is well formed: dot-separated
 * segments of letters, digits, `_` and `-`, no `..`, nothing a shell would read. As in
 * sysctl(8) and sysctl.d(5), a `/` inside a segment stands for a dot in that segment, for
 * interfaces whose names have one: `net.ipv4.conf.eth0/100.rp_filter` is
 * /proc/sys/net/ipv4/conf/eth0.100/rp_filter. Whether it exists is checked on the host.
 */
export const sysctlKeyName = z
  .string()
  .min(3, "key name is too short")
  .max(200, "key name is too long")
  .regex(
    /^[a-z][a-z0-9_-]*(\.[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*)+$/,
    "must be dot-separated segments of letters, digits, _ and - (no '..', spaces or shell characters; " +
      "a '/' inside a segment stands for a dot in an interface name, as sysctl prints it: " +
      "net.ipv4.conf.eth0/100.rp_filter)",
  );

/** Values of keys outside the catalogue: an integer, a list of integers, or a plain word. */
const genericValue = z.union(
  [
    z
      .number()
      .int("expected an integer")
      .min(-INT_MAX - 1)
      .max(Number.MAX_SAFE_INTEGER),
    z.array(z.number().int("expected integers")).min(1).max(16),
    // Lists the kernel takes as text ("reno cubic bbr", "8080,9000-9100") are words too.
    z
      .string()
      .max(256, "must be at most 256 characters")
      .regex(
        /^[A-Za-z0-9_.:,-]+( [A-Za-z0-9_.:,-]+)*$/,
        "must be plain words of letters, digits and _ . : , - separated by single spaces",
      ),
  ],
  { error: "expected an integer, a list of integers or plain words" },
);

export function specFor(key: string): KeySpec | undefined {
  return Object.prototype.hasOwnProperty.call(SYSCTL_CATALOGUE, key)
    ? SYSCTL_CATALOGUE[key]
    : undefined;
}

/** Validates one key/value pair; returns the problem or undefined. */
export function validateSysctl(key: string, value: unknown): string | undefined {
  const name = sysctlKeyName.safeParse(key);
  if (!name.success)
    return `invalid key name ${JSON.stringify(key)}: ${name.error.issues[0]?.message}`;
  const spec = specFor(key);
  const res = (spec?.schema ?? genericValue).safeParse(value);
  if (!res.success) {
    const got = typeof value === "number" ? String(value) : JSON.stringify(value);
    return `${res.error.issues[0]?.message ?? "invalid value"} (got ${got})`;
  }
  return undefined;
}

/** The value as the kernel prints it in /proc/sys: lists are tab-separated; we compare on single spaces. */
export function formatSysctl(value: SysctlValue): string {
  return Array.isArray(value) ? value.join(" ") : String(value);
}

/** Normalizes what the kernel prints (tabs, repeated spaces, trailing newline). */
export function normalizeSysctl(text: string): string {
  return text.trim().split(/\s+/).join(" ");
}

/** Turns the kernel's text back into the declared shape (numbers stay numbers). */
export function parseSysctlValue(text: string): SysctlValue {
  const norm = normalizeSysctl(text);
  const parts = norm.split(" ");
  if (parts.length > 1 && parts.every((p) => /^-?\d+$/.test(p))) return parts.map(Number);
  if (/^-?\d+$/.test(norm) && Number.isSafeInteger(Number(norm))) return Number(norm);
  return norm;
}

export const persistSchema = z.enum(["runtime", "persistent", "both"], {
  error: 'expected "runtime", "persistent" or "both"',
});
export type Persist = z.infer<typeof persistSchema>;

export const sysctlFileName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,100}\.conf$/, "must be a plain file name ending in .conf");
