/**
 * Compile test (type-checked by `npm run build`, never run): a connection object typed as
 * `@pulumi/command`'s `remote.ConnectionArgs` is accepted as it is by every nettune resource,
 * and the two types name the same fields but for nettune's own additions. A field that
 * `@pulumi/command` adds, renames or retypes breaks the build here.
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as nettune from "nettune";

type CommandConnection = command.types.input.remote.ConnectionArgs;
type CommandProxy = command.types.input.remote.ProxyConnectionArgs;

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;

/** Fields nettune adds to `remote.ConnectionArgs`. */
type NettuneOnly = "sudo" | "commandTimeout" | "waitForCloudInit";

// Field by field: the same names (nettune's additions aside), for the host and the jump host.
export type _SameFields = Assert<
  Same<Exclude<keyof nettune.ConnectionArgs, NettuneOnly>, keyof CommandConnection>
>;
export type _SameProxyFields = Assert<Same<keyof nettune.ProxyConnectionArgs, keyof CommandProxy>>;
// Each of their fields is accepted where nettune has it (as a whole object below, too).
export type _EachField = Assert<
  {
    [K in keyof CommandConnection]-?: CommandConnection[K] extends nettune.ConnectionArgs[K]
      ? true
      : false;
  }[keyof CommandConnection]
>;
// nettune's additions are optional, so their object needs none of them.
export type _AdditionsOptional = Assert<
  Partial<Pick<nettune.ConnectionArgs, NettuneOnly>> extends Pick<
    nettune.ConnectionArgs,
    NettuneOnly
  >
    ? true
    : false
>;

/**
 * Every resource, and NetworkTuning, takes the user's existing `remote.ConnectionArgs`, plain or
 * as an Output. Declared, not called: this file only has to compile.
 */
export function everyResourceTakesCommandConnection(conn: CommandConnection): void {
  const connection = conn;
  const iface = { connection, interface: "eth0" };
  new nettune.SysctlSet("s", { connection, values: { "net.core.somaxconn": 4096 } });
  new nettune.Mtu("m", { ...iface, mtu: 9000 });
  new nettune.NicOffloads("o", { ...iface, features: { gro: true } });
  new nettune.RssQueues("q", { ...iface, combined: "max" });
  new nettune.NicRings("r", { ...iface, rx: "max" });
  new nettune.IrqAffinity("i", { ...iface, policy: "spread" });
  new nettune.PacketSteering("p", { ...iface, rps: "0-3" });
  new nettune.CongestionControl("c", { connection, algorithm: "bbr", qdisc: "fq" });
  new nettune.XdpProgram("x", {
    ...iface,
    program: { objectPath: "/dev/null" },
    programName: "xdp_pass",
  });
  new nettune.NetworkTuning("t", { ...iface, profile: nettune.profiles.apiGateway });
  // As an Output (e.g. built from other resources' outputs), and with nettune's additions.
  new nettune.SysctlSet("o", { connection: pulumi.output(conn), values: {} });
  new nettune.SysctlSet("w", { connection: { ...conn, sudo: true }, values: {} });
}

/** The same object drives a `remote.Command` and nettune: the docs' example, compiled. */
export function sharedConnection(privateKey: pulumi.Input<string>, hostKey: string): void {
  const connection: CommandConnection = {
    host: "198.51.100.7",
    user: "root",
    privateKey,
    hostKey,
    proxy: { host: "bastion.example.net", user: "jump", agentSocketPath: "/run/ssh-agent.sock" },
    dialErrorLimit: 20,
    perDialTimeout: 10,
  };
  const installed = new command.remote.Command("iperf3", {
    connection,
    create: "apt-get install -y iperf3",
  });
  new nettune.SysctlSet(
    "web",
    { connection, values: { "net.core.somaxconn": 65535 } },
    { dependsOn: [installed] },
  );
}
