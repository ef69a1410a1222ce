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

describe("host and user are checked for their form before any dial", () => {
  const msg = (host: unknown, user?: string) => {
    const r = connectionSchema.safeParse({
      host,
      password: PASSWORD,
      ...(user === undefined ? {} : { user }),
    });
    return r.success
      ? ""
      : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
  };

  it("accepts addresses and names", () => {
    for (const host of [
      "198.18.1.2",
      "2001:db8::1",
      "fe80::1%eth0",
      "web-1.example.com",
      "h",
      "db.",
      " 198.18.1.2",
    ])
      expect(msg(host), host).toBe("");
  });

  it("refuses what no dial could reach, naming host and why", () => {
    expect(msg("1.2.3.4;x")).toMatch(
      /^host: host "1\.2\.3\.4;x" is not an IP address or a host name/,
    );
    expect(msg("a host")).toMatch(/^host: host "a host" is not an IP address or a host name/);
    expect(msg("198.18.1.2:2222")).toBe("host: host must not include a port: give 2222 as port");
    expect(msg("[2001:db8::1]")).toMatch(/^host: host must be an IPv6 address without brackets/);
    expect(msg("a".repeat(300))).toBe("host: host is 300 characters; a host name has at most 253");
    expect(msg("-bad.example")).toMatch(/not an IP address or a host name/);
  });

  it("refuses a user that is not a login name", () => {
    expect(msg("h", "admin")).toBe("");
    expect(msg("h", "root;id")).toMatch(/^user: user must be a login name/);
    expect(msg("h", "a b")).toMatch(/^user: user must be a login name/);
  });
});
