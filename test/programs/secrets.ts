/**
 * Test program: one SysctlSet whose connection carries every secret a connection can (an
 * encrypted private key, its passphrase, a password). Each secret is read from a file here, so
 * none travels in test arguments (which the harness writes to disk).
 */
import * as fs from "node:fs";
import * as nettune from "nettune";

export interface SecretsArg {
  address: string;
  port: number;
  user: string;
  hostKey?: string;
  /** An encrypted OpenSSH private key. */
  privateKeyPath: string;
  /** The key's passphrase. */
  passphrasePath: string;
  /** A password the host never needs (keys are tried first), stored like the rest. */
  passwordPath: string;
  values: Record<string, number>;
}

export default function program(args: SecretsArg): Record<string, unknown> {
  const set = new nettune.SysctlSet("secret", {
    connection: {
      host: args.address,
      port: args.port,
      user: args.user,
      hostKey: args.hostKey,
      privateKey: fs.readFileSync(args.privateKeyPath, "utf8"),
      privateKeyPassword: fs.readFileSync(args.passphrasePath, "utf8").trim(),
      password: fs.readFileSync(args.passwordPath, "utf8").trim(),
    },
    values: args.values,
  });
  return { originals: set.originals };
}
