/**
 * A snapshot of this machine's own network state and global sysctls, taken before the test
 * run and compared after it: nothing a sandbox host does may reach them.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFileSync } from "node:child_process";

export const SNAPSHOT_FILE = path.join(
  os.tmpdir(),
  `nettune-test-machine-snapshot-${process.env.NETTUNE_TEST_SANDBOX ?? "test"}.json`,
);

/** Counters and random values that change by themselves. */
const VOLATILE = [
  /^fs\.(dentry-state|inode-nr|inode-state|file-nr|quota\.)/,
  /^kernel\.(ns_last_pid|random\.|pty\.nr)/,
  /^net\.netfilter\.nf_conntrack_count/,
  /^fs\.aio-nr/,
];
/** Interfaces a sandbox creates on this machine and removes again. */
const SANDBOX_LINK = /^nt\d+h\d+$/;

function sh(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch (e) {
    return `error: ${(e as Error).message.split("\n")[0]}`;
  }
}

export interface MachineSnapshot {
  links: Record<string, unknown>;
  features: Record<string, string>;
  channels: Record<string, string>;
  queues: Record<string, string>;
  qdiscs: string;
  sysctls: Record<string, string>;
}

/** `tc qdisc show` without the sandboxes' veths, which come and go with other runs. */
function ownQdiscs(): string {
  return sh("tc", ["qdisc", "show"])
    .split("\n")
    .filter((l) => !SANDBOX_LINK.test(/ dev (\S+) /.exec(l)?.[1] ?? ""))
    .join("\n");
}

export function machineSnapshot(): MachineSnapshot {
  const linksJson = JSON.parse(sh("ip", ["-d", "-j", "link", "show"])) as Array<
    Record<string, unknown>
  >;
  const links: Record<string, unknown> = {};
  const features: Record<string, string> = {};
  const channels: Record<string, string> = {};
  const queues: Record<string, string> = {};
  for (const l of linksJson) {
    const name = String(l.ifname);
    if (SANDBOX_LINK.test(name)) continue;
    links[name] = {
      mtu: l.mtu,
      qdisc: l.qdisc,
      txqlen: l.txqlen,
      flags: l.flags,
      address: l.address,
    };
    features[name] = sh("ethtool", ["-k", name]);
    channels[name] = sh("ethtool", ["-l", name]);
    const qdir = `/sys/class/net/${name}/queues`;
    if (fs.existsSync(qdir)) {
      for (const q of fs.readdirSync(qdir)) {
        for (const f of ["rps_cpus", "rps_flow_cnt", "xps_cpus"]) {
          const p = path.join(qdir, q, f);
          try {
            queues[`${name}/${q}/${f}`] = fs.readFileSync(p, "utf8").trim();
          } catch {
            /* not every queue has every file */
          }
        }
      }
    }
  }
  const sysctls: Record<string, string> = {};
  for (const line of sh("sysctl", ["-a"]).split("\n")) {
    const i = line.indexOf(" = ");
    if (i < 0) continue;
    const key = line.slice(0, i);
    if (VOLATILE.some((r) => r.test(key))) continue;
    if (/\.(conf|neigh)\.nt\d+h\d+\./.test(key)) continue;
    sysctls[key] = line.slice(i + 3);
  }
  return { links, features, channels, queues, qdiscs: ownQdiscs(), sysctls };
}

/** Human-readable differences between two snapshots (empty when identical). */
export function snapshotDiff(a: MachineSnapshot, b: MachineSnapshot): string[] {
  const out: string[] = [];
  for (const section of ["links", "features", "channels", "queues", "sysctls"] as const) {
    const x = a[section] as Record<string, unknown>;
    const y = b[section] as Record<string, unknown>;
    for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) {
      const vx = JSON.stringify(x[k]);
      const vy = JSON.stringify(y[k]);
      if (vx !== vy) out.push(`${section} ${k}: ${vx} => ${vy}`);
    }
  }
  if (a.qdiscs !== b.qdiscs) out.push(`qdiscs: ${a.qdiscs} => ${b.qdiscs}`);
  return out;
}
