/**
 * Nothing lost under faults, through the real Pulumi engine against sandbox hosts: the SSH path
 * is cut during a large SysctlSet create, during a NicOffloads and an Mtu change on the
 * interface SSH runs over, and sshd's session is killed mid-apply of NicOffloads and of an Mtu on
 * another interface. After
 * each failed apply nothing is left that no state owns (no unit, no file beyond the journal of
 * originals where the host kept changes), and one more `up` and a `destroy` leave the host as
 * it was before the first `up`: sysctls, links, ethtool state, qdiscs, units, sysctl.d files and
 * nettune's own files.
 *
 * The path is cut from this machine's side (the sandbox's end of the host's veth pair taken
 * down) or by killing the host's SSH session processes, found by pid in the host's namespace;
 * every watcher is bounded and everything is restored in `finally`.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { beforeAll, describe, expect, test } from "vitest";
import { EngineStack, type EngineResult } from "../helpers/engine";
import { onHost } from "../helpers/hostShell";
import { direct, sandboxHosts } from "../helpers/sandbox";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import type { FaultsProgramArgs } from "../programs/faults";

let host1: SandboxHost;
let host2: SandboxHost;
beforeAll(() => {
  [host1, host2] = sandboxHosts() as [SandboxHost, SandboxHost];
});

/**
 * Everything nettune could change on a host, as text: every readable net.* sysctl, the links,
 * each interface's ethtool features, rings and channels, the qdiscs, nettune's units, and the
 * files under /etc/systemd/system, /etc/sysctl.d, /var/lib/nettune and /run/nettune-*.
 */
async function snapshot(h: SandboxHost): Promise<string> {
  return onHost(
    h,
    [
      "echo '## sysctls'",
      "find /proc/sys/net -type f -perm -u=r 2>/dev/null | sort | while read -r f; do printf '%s=%s\\n' \"$f\" \"$(cat \"$f\" 2>/dev/null | tr '\\n\\t' '  ')\"; done",
      "echo '## links'; ip -j -d link show",
      "echo '## ethtool'",
      'for i in $(ls /sys/class/net); do for o in -k -g -l; do echo "# $i $o"; ethtool $o $i 2>&1; done; done',
      "echo '## qdiscs'; tc -j qdisc show",
      "echo '## units'; systemctl list-unit-files --no-legend 'nettune-*'; systemctl list-units --all --no-legend 'nettune-*'",
      "echo '## files'",
      'find /etc/systemd/system /etc/sysctl.d /var/lib/nettune /run -maxdepth 3 2>/dev/null | grep -v \'^/run/\' | sort | while read -r f; do if [ -f "$f" ]; then echo "$f $(md5sum < "$f")"; else echo "$f"; fi; done',
      "ls -d /run/nettune* /run/systemd/transient/nettune* 2>/dev/null; true",
    ].join("\n"),
  );
}

/** The lines of two snapshots that differ, for a readable failure. */
function differences(before: string, after: string): string[] {
  const a = new Set(before.split("\n"));
  const b = new Set(after.split("\n"));
  return [
    ...[...a].filter((l) => !b.has(l)).map((l) => `- ${l}`),
    ...[...b].filter((l) => !a.has(l)).map((l) => `+ ${l}`),
  ];
}

/** nettune's files and units on the host: what a failed apply must not leave unowned. */
const leftovers = (h: SandboxHost) =>
  onHost(
    h,
    "ls /etc/systemd/system | grep '^nettune-'; ls -R /var/lib/nettune 2>/dev/null; ls /etc/sysctl.d | grep nettune; ls /run | grep nettune; true",
  );

/** A bounded shell watcher on this machine; resolves with its exit code. */
function watch(script: string): { child: ChildProcess; done: Promise<number | null> } {
  const child = spawn("sh", ["-c", script], { stdio: "ignore" });
  return { child, done: new Promise((resolve) => child.on("exit", resolve)) };
}

/** The pid of the host's init, whose /proc/<pid>/root is the host's file system. */
function initPid(h: SandboxHost): string {
  const pids = spawnSync("ip", ["netns", "pids", h.namespace], { encoding: "utf8" })
    .stdout.trim()
    .split(/\s+/);
  const init = pids.find(
    (p) => spawnSync("cat", [`/proc/${p}/comm`], { encoding: "utf8" }).stdout.trim() === "systemd",
  );
  if (!init) throw new Error(`no systemd in ${h.namespace}`);
  return init;
}

const linkUp = (h: SandboxHost) => spawnSync("ip", ["link", "set", "dev", h.rootInterface, "up"]);

/**
 * Kills every SSH session process on the host (sshd's session and the command it runs), by
 * pid, once `condition` (shell run on this machine) holds. Bounded: gives up after 9000 polls.
 */
function killSessionsWhen(h: SandboxHost, condition: string) {
  return watch(
    `i=0; while [ $i -lt 9000 ]; do
       if ${condition}; then
         for p in $(ip netns pids ${h.namespace}); do
           case "$(tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null)" in
             "sshd: root@notty"*) kill -9 $(ps -o pid= --ppid $p) $p 2>/dev/null;;
           esac
         done
         exit 0
       fi
       sleep 0.01; i=$((i+1))
     done; exit 1`,
  );
}

/** Operations of one stack in one engine process, without blocking the other host's test. */
const run = (stack: EngineStack, args: FaultsProgramArgs, ...ops: ("up" | "destroy")[]) =>
  stack.runStepsAsync(ops.map((op) => ({ op, args })));

/** An engine result's error, or undefined: a readable failure. */
const errorOf = (r: EngineResult) => r.error;

/**
 * The two hosts' tests run at once; the tests of one host one after the other, in order. Each
 * test's time includes its wait for the one before it on its host.
 */
const turns = new Map<string, Promise<unknown>>();
function inTurn(h: SandboxHost, f: () => Promise<void>): Promise<void> {
  const next = (turns.get(h.name) ?? Promise.resolve()).catch(() => undefined).then(f);
  turns.set(h.name, next);
  return next;
}
const TIMEOUT = 300_000;

describe.concurrent("a cut path or a killed session leaves nothing lost", () => {
  test(
    "the path cut during a large SysctlSet create: the journal keeps the originals; up and destroy give the host back",
    () =>
      inTurn(host1, async () => {
        const h = host1;
        const stack = new EngineStack("faults", "sysctl");
        let clean = false;
        // Every count-like neighbour key of IPv4 and IPv6, each one higher: over thirty keys, none
        // that touches the SSH path.
        const names = [
          "ucast_solicit",
          "mcast_solicit",
          "mcast_resolicit",
          "app_solicit",
          "proxy_qlen",
          "unres_qlen_bytes",
          "base_reachable_time",
          "gc_stale_time",
          "delay_first_probe_time",
        ];
        const listed = await onHost(
          h,
          `for f in /proc/sys/net/ipv4/neigh/*/* /proc/sys/net/ipv6/neigh/*/*; do case "\${f##*/}" in ${names.join("|")}) printf '%s %s\\n' "$f" "$(cat "$f")";; esac; done`,
        );
        const values: Record<string, number> = {};
        // Typed as the values are (SysctlSet's originals are numbers, like its values).
        const originals: Record<string, number> = {};
        for (const line of listed.trim().split("\n")) {
          const [file, value] = line.split(" ");
          const key = file!.slice("/proc/sys/".length).split("/").join(".");
          values[key] = Number(value) + 1;
          originals[key] = Number(value);
        }
        expect(Object.keys(values).length).toBeGreaterThan(30);
        const args: FaultsProgramArgs = { sysctl: { host: direct(h), values, persist: "both" } };
        const before = await snapshot(h);
        // The path goes down as soon as the journal is written, before the first key is: the
        // script runs on, its answer never arrives.
        const root = `/proc/${initPid(h)}/root/var/lib/nettune/originals`;
        const w = watch(
          `i=0; while [ $i -lt 9000 ]; do
         if [ -d ${root} ]; then ip link set dev ${h.rootInterface} down; exit 0; fi
         sleep 0.01; i=$((i+1))
       done; exit 1`,
        );
        try {
          const r = (await run(stack, args, "up"))[0]!;
          expect(await w.done).toBe(0);
          expect(r.ok).toBe(false);
          linkUp(h);
          // The host kept the changes, and the journal the originals.
          expect(await leftovers(h)).toMatch(/sysctl-/);
          const [again, destroyed] = await run(stack, args, "up", "destroy");
          expect(errorOf(again!)).toBeUndefined();
          expect(again!.outputs.sysctl_originals).toEqual(originals);
          expect(errorOf(destroyed!)).toBeUndefined();
          clean = true;
          expect(differences(before, await snapshot(h))).toEqual([]);
        } finally {
          w.child.kill();
          linkUp(h);
          if (!clean) await run(stack, args, "destroy");
          stack.dispose();
        }
      }),
    TIMEOUT,
  );

  test(
    "NicOffloads on the SSH interface, path cut: the host's rollback removes the unit and the journal too",
    () =>
      inTurn(host2, async () => {
        const h = host2;
        const stack = new EngineStack("faults", "offloads");
        let clean = false;
        const args: FaultsProgramArgs = {
          offloads: {
            host: direct(h),
            interface: "eth0",
            features: { gro: true },
            rollbackAfter: 5,
          },
        };
        const before = await snapshot(h);
        // A driver that stops passing traffic while GRO is on: this machine's end of the link is
        // down until the host turns GRO off again by itself.
        const w = watch(
          `state=up; i=0; while [ $i -lt 600 ]; do
         g=$(ip netns exec ${h.namespace} ethtool -k eth0 2>/dev/null | sed -n 's/^generic-receive-offload: \\([a-z]*\\).*/\\1/p')
         if [ "$g" = on ] && [ $state = up ]; then ip link set dev ${h.rootInterface} down; state=down; fi
         if [ "$g" = off ] && [ $state = down ]; then ip link set dev ${h.rootInterface} up; exit 0; fi
         sleep 0.1; i=$((i+1))
       done; ip link set dev ${h.rootInterface} up; exit 1`,
        );
        try {
          const r = (await run(stack, args, "up"))[0]!;
          expect(r.ok).toBe(false);
          // However the answer fared (lost, or late once the host turned GRO off again), the
          // operation fails and the host undid it.
          expect(r.error).toMatch(
            /Offload changes on eth0 cut the SSH connection .* undid the change by itself after 5 s/,
          );
          expect(await w.done).toBe(0);
          expect(await leftovers(h)).toBe("");
          expect(differences(before, await snapshot(h))).toEqual([]);
          const [again, destroyed] = await run(stack, args, "up", "destroy");
          expect(errorOf(again!)).toBeUndefined();
          expect(again!.outputs.offloads_originals).toEqual({ "generic-receive-offload": false });
          expect(errorOf(destroyed!)).toBeUndefined();
          clean = true;
          expect(differences(before, await snapshot(h))).toEqual([]);
        } finally {
          w.child.kill();
          linkUp(h);
          if (!clean) await run(stack, args, "destroy");
          stack.dispose();
        }
      }),
    TIMEOUT,
  );

  test(
    "Mtu on the SSH interface, path cut: the host's rollback leaves no journal; up and destroy give the host back",
    () =>
      inTurn(host1, async () => {
        const h = host1;
        const stack = new EngineStack("faults", "mtu");
        let clean = false;
        const args: FaultsProgramArgs = {
          mtu: { host: direct(h), interface: "eth0", mtu: 1280, rollbackAfter: 5 },
        };
        const before = await snapshot(h);
        const w = watch(
          `state=up; i=0; while [ $i -lt 600 ]; do
         m=$(ip netns exec ${h.namespace} cat /sys/class/net/eth0/mtu 2>/dev/null)
         if [ "$m" = 1280 ] && [ $state = up ]; then ip link set dev ${h.rootInterface} down; state=down; fi
         if [ "$m" = 1500 ] && [ $state = down ]; then ip link set dev ${h.rootInterface} up; exit 0; fi
         sleep 0.1; i=$((i+1))
       done; ip link set dev ${h.rootInterface} up; exit 1`,
        );
        try {
          const r = (await run(stack, args, "up"))[0]!;
          expect(r.ok).toBe(false);
          expect(r.error).toMatch(/MTU 1280 on eth0 cut the SSH connection/);
          expect(await w.done).toBe(0);
          expect(await leftovers(h)).toBe("");
          expect(differences(before, await snapshot(h))).toEqual([]);
          const [again, destroyed] = await run(stack, args, "up", "destroy");
          expect(errorOf(again!)).toBeUndefined();
          expect(again!.outputs.mtu_originals).toMatchObject({ mtu: 1500 });
          expect(errorOf(destroyed!)).toBeUndefined();
          clean = true;
          expect(differences(before, await snapshot(h))).toEqual([]);
        } finally {
          w.child.kill();
          linkUp(h);
          if (!clean) await run(stack, args, "destroy");
          stack.dispose();
        }
      }),
    TIMEOUT,
  );

  test(
    "sshd's session killed mid-apply of NicOffloads on another interface: put back, unit and journal gone",
    () =>
      inTurn(host2, async () => {
        const h = host2;
        const stack = new EngineStack("faults", "killed");
        let clean = false;
        // A veth pair of the host's own, not the one SSH runs over.
        await onHost(h, "ip link add ntf0 type veth peer name ntf1 && ip link set ntf0 up");
        const args: FaultsProgramArgs = {
          offloads: {
            host: direct(h),
            interface: "ntf0",
            features: { gro: true },
            rollbackAfter: 5,
          },
        };
        try {
          const before = await snapshot(h);
          // Once the unit is written (after the features are set), the session is killed.
          const w = killSessionsWhen(
            h,
            `[ -e /proc/${initPid(h)}/root/etc/systemd/system/nettune-nicoffloads-${stack.named("faults")}.service ]`,
          );
          try {
            const r = (await run(stack, args, "up"))[0]!;
            expect(await w.done).toBe(0);
            expect(r.ok).toBe(false);
            // The killed session either reports its signal or drops the connection first;
            // which one the client sees is a race, and both are put back.
            expect(r.error).toMatch(
              /(the answer to the offload changes .* was lost( \(.*\))?|the offload changes .* were cut short \(SIG\w+\)); they were put back/,
            );
            expect(await leftovers(h)).toBe("");
            expect(differences(before, await snapshot(h))).toEqual([]);
          } finally {
            w.child.kill();
          }
          const [again, destroyed] = await run(stack, args, "up", "destroy");
          expect(errorOf(again!)).toBeUndefined();
          expect(errorOf(destroyed!)).toBeUndefined();
          clean = true;
          expect(differences(before, await snapshot(h))).toEqual([]);
        } finally {
          if (!clean) await run(stack, args, "destroy");
          stack.dispose();
          await onHost(h, "ip link del ntf0 2>/dev/null; true");
        }
      }),
    TIMEOUT,
  );

  test(
    "sshd's session killed mid-apply of an Mtu on another interface: the journal keeps the original MTU",
    () =>
      inTurn(host1, async () => {
        const h = host1;
        const stack = new EngineStack("faults", "mtu-killed");
        let clean = false;
        // A veth pair of the host's own, and an address of the sandbox range on it to verify
        // the MTU against: the DF pings keep the apply script running a moment after the change.
        await onHost(
          h,
          "ip link add ntf0 type veth peer name ntf1 && ip addr add 198.19.254.1/32 dev ntf1 && ip link set ntf1 up && ip link set ntf0 up",
        );
        const args: FaultsProgramArgs = {
          mtu: {
            host: direct(h),
            interface: "ntf0",
            mtu: 1400,
            rollbackAfter: 5,
            verifyPeers: ["198.19.254.1"],
          },
        };
        try {
          const before = await snapshot(h);
          // Once the MTU is set, while the script verifies it, the session is killed: no undo runs.
          const w = killSessionsWhen(
            h,
            `[ "$(ip netns exec ${h.namespace} cat /sys/class/net/ntf0/mtu 2>/dev/null)" = 1400 ]`,
          );
          try {
            await run(stack, args, "up");
            expect(await w.done).toBe(0);
          } finally {
            w.child.kill();
          }
          // Failed or run once more on a new connection, the host is at 1400 now; the original
          // is the journal's 1500, and destroy puts it back.
          const [again, destroyed] = await run(stack, args, "up", "destroy");
          expect(errorOf(again!)).toBeUndefined();
          expect(again!.outputs.mtu_originals).toMatchObject({ mtu: 1500 });
          expect(errorOf(destroyed!)).toBeUndefined();
          clean = true;
          expect(differences(before, await snapshot(h))).toEqual([]);
        } finally {
          if (!clean) await run(stack, args, "destroy");
          stack.dispose();
          await onHost(h, "ip link del ntf0 2>/dev/null; true");
        }
      }),
    TIMEOUT,
  );
});
