/**
 * The public type of every resource's `connection` input: how to reach a host over SSH. Field
 * names and meanings follow `@pulumi/command`'s `remote.ConnectionArgs`, and every field takes a
 * `pulumi.Input`, so a host created in the same program is tuned straight from its outputs:
 *
 * ```ts
 * new nettune.SysctlSet("web", {
 *   connection: { host: instance.publicIp, privateKey: key.privateKeyOpenssh },
 *   values: { "net.core.somaxconn": 65535 },
 * });
 * ```
 *
 * Pulumi resolves the nested inputs before the provider runs; the provider then validates the
 * resolved object with `connectionSchema` (src/schemas/connection.ts). This file is written by
 * hand, without zod, so that the declarations a user's program loads never reach zod's: the
 * check at the bottom keeps it in step with the schema.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { ResolvedConnectionArgs } from "../schemas/connection";

/**
 * How to reach one SSH endpoint: the host to tune, or the jump host (bastion) a connection goes
 * through (`ssh -J`, as `proxy`).
 */
export interface ProxyConnectionArgs {
  /** The address or name of the host, e.g. an instance's `publicIp`. */
  readonly host: pulumi.Input<string>;
  /** The SSH port. Default 22. */
  readonly port?: pulumi.Input<number>;
  /** The user to log in as. Default `root`; on the host to tune, another user needs `sudo: true`. */
  readonly user?: pulumi.Input<string>;
  /** The password to log in with. Tried after `privateKey` and the agent. */
  readonly password?: pulumi.Input<string>;
  /**
   * The contents (not the path) of a PEM or OpenSSH private key, e.g. `tls.PrivateKey`'s
   * `privateKeyOpenssh` or `fs.readFileSync(path, "utf8")`. Takes preference over `password`.
   */
  readonly privateKey?: pulumi.Input<string>;
  /** The passphrase of `privateKey` when it is encrypted. */
  readonly privateKeyPassword?: pulumi.Input<string>;
  /** The path of an SSH agent's socket (as in `SSH_AUTH_SOCK`) to authenticate with. */
  readonly agentSocketPath?: pulumi.Input<string>;
  /**
   * The host's expected key: an OpenSSH public key line (`ssh-ed25519 AAAA...`, as in
   * `/etc/ssh/ssh_host_ed25519_key.pub`) or a SHA256 fingerprint (`SHA256:...`). A host
   * presenting another key is refused. Unset, the key first seen is trusted for the rest of the
   * run: pin it.
   */
  readonly hostKey?: pulumi.Input<string>;
  /** Connection attempts before giving up (at least 1). Default 10. */
  readonly dialErrorLimit?: pulumi.Input<number>;
  /** Seconds allowed for one TCP connect plus SSH handshake. Default 15. */
  readonly perDialTimeout?: pulumi.Input<number>;
}

/**
 * How to reach a host over SSH: the fields of `@pulumi/command`'s `remote.ConnectionArgs`,
 * each a `pulumi.Input`, plus `sudo` and `commandTimeout`. One of `password`, `privateKey` or
 * `agentSocketPath` is required. The whole object is stored as a secret (encrypted in state,
 * `[secret]` in previews), whether or not its fields were secrets.
 */
export interface ConnectionArgs extends ProxyConnectionArgs {
  /** A jump host to reach `host` through (`ssh -J`). */
  readonly proxy?: pulumi.Input<ProxyConnectionArgs>;
  /** Run commands as `sudo -n ...` when `user` is not root (passwordless sudo). Default false. */
  readonly sudo?: pulumi.Input<boolean>;
  /** Seconds a single command may run on the host before it is stopped. Default 60. */
  readonly commandTimeout?: pulumi.Input<number>;
  /**
   * Before the first command on the host, wait for cloud-init to finish
   * (`cloud-init status --wait`, at most 20 minutes): for a host created in the same program,
   * whose user data tunes it at first boot. A host without cloud-init is not waited for;
   * cloud-init finishing with errors fails the operation, with its status. Default false.
   */
  readonly waitForCloudInit?: pulumi.Input<boolean>;
}

// The hand-written type and the schema take the same fields with the same value types: what a
// program may write resolves to what the schema accepts, and the schema accepts nothing that
// cannot be written. (Type-only: no trace in the emitted JavaScript or declarations.)
type Resolved = pulumi.Unwrap<ConnectionArgs>;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
type _SameKeys = Assert<Same<keyof Resolved, keyof ResolvedConnectionArgs>>;
type _ProxyKeys = Assert<
  Same<keyof NonNullable<Resolved["proxy"]>, keyof NonNullable<ResolvedConnectionArgs["proxy"]>>
>;
type _WritableIsAccepted = Assert<Resolved extends ResolvedConnectionArgs ? true : false>;
type _AcceptedIsWritable = Assert<ResolvedConnectionArgs extends Resolved ? true : false>;
