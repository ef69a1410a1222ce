/**
 * Looking at a sandbox host from a test: run a command over SSH (the project's own transport,
 * a separate connection from the one the engine's provider uses).
 */
import { connectionSchema } from "../../src/schemas/connection";
import { parseSysctlValue, type SysctlValue } from "../../src/schemas/sysctl";
import { SshTransport } from "../../src/transport/ssh";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import { connection } from "./sandbox";

export async function onHost(h: SandboxHost, script: string): Promise<string> {
  const t = new SshTransport(connectionSchema.parse(connection(h)));
  try {
    const res = await t.exec({ script });
    return res.stdout;
  } finally {
    await t.close();
  }
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
