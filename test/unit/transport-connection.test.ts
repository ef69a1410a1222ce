import { utils } from "ssh2";
import { describe, expect, it } from "vitest";

import { connectionSchema, isHostKeyPin } from "../../src/schemas/connection";
import { hostKeyFingerprint, pinFingerprint } from "../../src/transport";

const KEY = utils.generateKeyPairSync("ed25519");
const HOST = utils.generateKeyPairSync("ed25519");
const HOST_LINE = HOST.public.split(" ").slice(0, 2).join(" ");
const PASSWORD = "Schema-Password-5c1f-do-not-leak";

function issues(input: unknown) {
  const r = connectionSchema.safeParse(input);
  expect(r.success).toBe(false);
  return r.error!.issues;
}

describe("connectionSchema", () => {
  it("fills in defaults", () => {
    expect(connectionSchema.parse({ host: "h", password: PASSWORD })).toEqual({
      host: "h",
      port: 22,
      user: "root",
      password: PASSWORD,
      dialErrorLimit: 10,
      perDialTimeout: 15,
      sudo: false,
      commandTimeout: 60,
      waitForCloudInit: false,
    });
  });

  it("requires a host and one authentication method, naming connection", () => {
    expect(issues({ password: PASSWORD }).map((i) => i.path.join("."))).toContain("host");
    const noAuth = issues({ host: "h" });
    expect(noAuth).toHaveLength(1);
    expect(noAuth[0]!.message).toMatch(/^connection needs at least one authentication method/);
    expect(noAuth[0]!.message).toContain("password, privateKey or agentSocketPath");
    for (const auth of [{ privateKey: KEY.private }, { agentSocketPath: "/tmp/agent" }]) {
      expect(connectionSchema.safeParse({ host: "h", ...auth }).success).toBe(true);
    }
  });

  it("bounds port, dialErrorLimit and timeouts", () => {
    for (const bad of [{ port: 0 }, { port: 65536 }, { port: 22.5 }, { dialErrorLimit: 0 }]) {
      expect(connectionSchema.safeParse({ host: "h", password: PASSWORD, ...bad }).success).toBe(
        false,
      );
    }
    expect(
      connectionSchema.safeParse({ host: "h", password: PASSWORD, perDialTimeout: 0 }).success,
    ).toBe(false);
    expect(
      connectionSchema.safeParse({ host: "h", password: PASSWORD, commandTimeout: -1 }).success,
    ).toBe(false);
  });

  it("accepts a host key as an OpenSSH line or a SHA256 fingerprint", () => {
    const fp = hostKeyFingerprint(Buffer.from(HOST_LINE.split(" ")[1]!, "base64"));
    for (const hostKey of [HOST.public, HOST_LINE, fp]) {
      expect(isHostKeyPin(hostKey)).toBe(true);
      expect(connectionSchema.parse({ host: "h", password: PASSWORD, hostKey }).hostKey).toBe(
        hostKey.trim(),
      );
      expect(pinFingerprint(hostKey)).toBe(fp);
    }
    for (const bad of ["AAAA", "ssh-rsa " + HOST_LINE.split(" ")[1], "SHA256:short", "md5:aa"]) {
      expect(isHostKeyPin(bad)).toBe(false);
      expect(issues({ host: "h", password: PASSWORD, hostKey: bad })[0]!.path).toEqual(["hostKey"]);
    }
  });

  it("takes a jump host of the same shape, without its own proxy", () => {
    const c = connectionSchema.parse({
      host: "target",
      privateKey: KEY.private,
      proxy: { host: "bastion", user: "jump", password: PASSWORD },
    });
    expect(c.proxy).toEqual({
      host: "bastion",
      port: 22,
      user: "jump",
      password: PASSWORD,
      dialErrorLimit: 10,
      perDialTimeout: 15,
    });
    expect(
      issues({
        host: "t",
        password: PASSWORD,
        proxy: { host: "b", password: PASSWORD, proxy: { host: "c", password: PASSWORD } },
      })[0]!.path,
    ).toEqual(["proxy"]);
    const noAuth = issues({ host: "t", password: PASSWORD, proxy: { host: "b" } });
    expect(noAuth[0]!.message).toMatch(/^connection\.proxy needs at least one/);
  });

  it("rejects a key path or a stray passphrase, and typos in field names", () => {
    expect(issues({ host: "h", privateKey: "~/.ssh/id_ed25519" })[0]!.message).toMatch(
      /not a file path/,
    );
    expect(
      issues({ host: "h", password: PASSWORD, privateKeyPassword: PASSWORD }).map((i) =>
        i.path.join("."),
      ),
    ).toContain("privateKeyPassword");
    expect(issues({ host: "h", password: PASSWORD, privatekey: "x" })[0]!.code).toBe(
      "unrecognized_keys",
    );
  });

  it("never echoes secret values in validation errors", () => {
    const r = connectionSchema.safeParse({
      host: "h",
      privateKey: PASSWORD,
      privateKeyPassword: PASSWORD,
      password: PASSWORD,
    });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error!.issues) + r.error!.message).not.toContain(PASSWORD);
  });
});
