/**
 * The `connection` input of every nettune resource: how to reach a host over SSH. Field names
 * follow `@pulumi/command`'s `remote.ConnectionArgs` so existing stacks can reuse their objects.
 */

import { isIP } from "node:net";
import { z } from "zod";

/** `SHA256:` followed by the unpadded base64 of a 32-byte digest, as `ssh-keygen -l` prints. */
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}=?$/;

/** `<type> <base64 blob> [comment]`, as in `known_hosts` or `/etc/ssh/ssh_host_*_key.pub`. */
const OPENSSH_PUBLIC_KEY = /^([a-z0-9][a-z0-9@.-]*) ([A-Za-z0-9+/]+={0,2})(?: .*)?$/;

/** A private key is pasted text, not a path: reject the common mistake early. */
const PRIVATE_KEY_ARMOUR = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

/**
 * True when `pin` is a usable host key pin: a SHA256 fingerprint, or an OpenSSH one-line public
 * key whose blob names the same key type as its first word.
 */
export function isHostKeyPin(pin: string): boolean {
  if (FINGERPRINT.test(pin)) return true;
  const m = OPENSSH_PUBLIC_KEY.exec(pin);
  if (!m) return false;
  const blob = Buffer.from(m[2] ?? "", "base64");
  if (blob.length < 4) return false;
  const typeLen = blob.readUInt32BE(0);
  return (
    typeLen > 0 && 4 + typeLen <= blob.length && blob.toString("latin1", 4, 4 + typeLen) === m[1]
  );
}

const secret = (field: string) =>
  z.string({ error: `${field} must be a string` }).min(1, `${field} must not be empty`);

/** A DNS name: dot-separated labels of letters, digits and inner hyphens, 253 at most. */
const HOST_NAME =
  /^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/**
 * Why `host` is not a host name or an IP address, or undefined when it is one. Checked at
 * preview: a malformed host would otherwise cost every dial attempt at `up`.
 */
export function hostProblem(host: string): string | undefined {
  if (isIP(host) !== 0) return undefined;
  if (/^\[.*\]$/.test(host))
    return "host must be an IPv6 address without brackets (the port goes in port)";
  if (/^[^:]+:\d+$/.test(host))
    return `host must not include a port: give ${host.split(":")[1]} as port`;
  if (host.length > 253) return `host is ${host.length} characters; a host name has at most 253`;
  if (!HOST_NAME.test(host))
    return `host ${JSON.stringify(host)} is not an IP address or a host name (letters, digits, hyphens and dots)`;
  return undefined;
}

/** A login name as Linux accepts them (useradd's defaults, plus upper case). */
const USER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/;

/** Fields shared by the target host and its jump host. */
const endpointShape = {
  host: z
    .string({ error: "host is required" })
    .trim()
    .min(1, "host must not be empty")
    .superRefine((h, ctx) => {
      const problem = hostProblem(h);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    }),
  port: z
    .number()
    .int("port must be an integer")
    .min(1, "port must be between 1 and 65535")
    .max(65535, "port must be between 1 and 65535")
    .default(22),
  user: z
    .string()
    .min(1, "user must not be empty")
    .regex(USER_NAME, "user must be a login name (letters, digits, _ . -, at most 32)")
    .default("root"),
  password: secret("password").optional(),
  privateKey: secret("privateKey")
    .refine((k) => PRIVATE_KEY_ARMOUR.test(k), {
      message: "privateKey must be the text of a PEM or OpenSSH private key, not a file path",
    })
    .optional(),
  privateKeyPassword: secret("privateKeyPassword").optional(),
  agentSocketPath: z.string().min(1, "agentSocketPath must not be empty").optional(),
  hostKey: z
    .string()
    .trim()
    .refine(isHostKeyPin, {
      message:
        'hostKey must be an OpenSSH public key line ("ssh-ed25519 AAAA...") ' +
        'or a SHA256 fingerprint ("SHA256:...")',
    })
    .optional(),
  /** Connection attempts before giving up (`@pulumi/command` defaults to 10). */
  dialErrorLimit: z.number().int("dialErrorLimit must be an integer").min(1).default(10),
  /** Seconds allowed for one TCP connect plus SSH handshake. */
  perDialTimeout: z.number().positive("perDialTimeout must be positive").default(15),
};

type EndpointFields = {
  password?: string | undefined;
  privateKey?: string | undefined;
  privateKeyPassword?: string | undefined;
  agentSocketPath?: string | undefined;
};

function requireAuth(what: string) {
  return (value: EndpointFields, ctx: z.RefinementCtx<EndpointFields>) => {
    if (!value.password && !value.privateKey && !value.agentSocketPath) {
      ctx.addIssue({
        code: "custom",
        message:
          `${what} needs at least one authentication method: ` +
          "password, privateKey or agentSocketPath",
        path: [],
      });
    }
    if (value.privateKeyPassword && !value.privateKey) {
      ctx.addIssue({
        code: "custom",
        message: "privateKeyPassword is set but privateKey is not",
        path: ["privateKeyPassword"],
      });
    }
  };
}

/** The jump host: the same fields as a connection, without a proxy of its own. */
export const proxyConnectionSchema = z
  .strictObject(endpointShape)
  .superRefine(requireAuth("connection.proxy"));

/** The `connection` object of a resource. */
export const connectionSchema = z
  .strictObject({
    ...endpointShape,
    /** Jump host to reach `host` through (`ssh -J`). */
    proxy: proxyConnectionSchema.optional(),
    /** Run commands as `sudo -n ...` when `user` is not root. */
    sudo: z.boolean().default(false),
    /** Seconds a single command may run before it is killed. */
    commandTimeout: z.number().positive("commandTimeout must be positive").default(60),
    /** Wait for cloud-init to finish before the first command. */
    waitForCloudInit: z.boolean({ error: "waitForCloudInit must be true or false" }).default(false),
  })
  .superRefine(requireAuth("connection"));

/**
 * A connection as the provider receives it: every input resolved, defaults optional. The type
 * users write, whose fields take `pulumi.Input`s and which reaches no zod type, is
 * `ConnectionArgs` in src/resources/connection.ts.
 */
export type ResolvedConnectionArgs = z.input<typeof connectionSchema>;
/**
 * @deprecated Resolved values only and built from zod: resources take `ConnectionArgs` from
 * src/resources/connection.ts. This name is {@link ResolvedConnectionArgs}.
 */
export type ConnectionArgs = ResolvedConnectionArgs;
/** A validated connection with defaults filled in. */
export type Connection = z.output<typeof connectionSchema>;
/** A validated jump host. */
export type ProxyConnection = z.output<typeof proxyConnectionSchema>;

/** Every secret a connection carries, for `redact`. */
export function connectionSecrets(conn: Connection | ProxyConnection): string[] {
  const out: string[] = [];
  for (const c of [conn, "proxy" in conn ? conn.proxy : undefined]) {
    if (!c) continue;
    for (const s of [c.password, c.privateKey, c.privateKeyPassword]) if (s) out.push(s);
  }
  return out;
}
