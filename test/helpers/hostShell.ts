/**
 * Looking at a sandbox host from a test: run a command over SSH (the project's own transport,
 * a separate connection from the one the engine's provider uses).
 */
import { afterAll } from "vitest";
import { connectionSchema } from "../../src/schemas/connection";
import { parseSysctlValue, type SysctlValue } from "../../src/schemas/sysctl";
import { SshTransport } from "../../src/transport/ssh";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import { connection } from "./sandbox";

export async function onHost(h: SandboxHost, script: string): Promise<string> {
  if (h.kind === "vm") return (await vmTransport(h).exec({ script })).stdout;
  const t = new SshTransport(connectionSchema.parse(connection(h)));
  try {
    const res = await t.exec({ script });
    return res.stdout;
  } finally {
    await t.close();
  }
}

/**
 * One connection per VM host for the whole test file: a login on an emulated CPU costs about
 * 2 s of its time (sshd's re-exec, key exchange, PAM), a command on an open connection a tenth
 * of that. A connection a reboot ended is dialled again by the transport. nspawn hosts keep a
 * connection per call: tests there count the host's SSH connections.
 */
const vmTransports = new Map<string, SshTransport>();
// Closed once the file's tests are done (a hook at the top of a module joins the file's suite).
afterAll(async () => {
  const open = [...vmTransports.values()];
  vmTransports.clear();
  await Promise.all(open.map((t) => t.close()));
});

function vmTransport(h: SandboxHost): SshTransport {
  const key = `${h.address}:${h.port}`;
  let t = vmTransports.get(key);
  if (!t) {
    t = new SshTransport(connectionSchema.parse(connection(h)));
    vmTransports.set(key, t);
  }
  return t;
}

/** Live values of sysctl keys, normalized to single spaces. */
export async function liveSysctls(h: SandboxHost, keys: string[]): Promise<Record<string, string>> {
  const out = await onHost(
    h,
    keys
      .map((k) => `printf '%s=%s\\n' '${k}' "$(echo $(cat /proc/sys/${k.split(".").join("/")}))"`)
      .join("\n"),
  );
  const res: Record<string, string> = {};
  for (const line of out.trim().split("\n")) {
    const i = line.indexOf("=");
    res[line.slice(0, i)] = line.slice(i + 1);
  }
  return res;
}

/** Every readable file under /proc/sys/net with its content: the host's whole net.* state. */
export async function procSysNet(h: SandboxHost): Promise<string> {
  return onHost(
    h,
    "find /proc/sys/net -type f -perm -u=r 2>/dev/null | sort | while read -r f; do printf '%s=%s\\n' \"$f\" \"$(cat \"$f\" 2>/dev/null | tr '\\n\\t' '  ')\"; done",
  );
}

/** Sysctl texts typed as SysctlSet's outputs type them (numbers, lists of numbers). */
export function typedSysctls(text: Record<string, string>): Record<string, SysctlValue> {
  return Object.fromEntries(Object.entries(text).map(([k, v]) => [k, parseSysctlValue(v)]));
}
