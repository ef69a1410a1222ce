/**
 * cloudInitSchema (test/helpers/cloudInitSchema.ts): Debian's `cloud-init schema`, run on this
 * machine, accepts valid cloud-config and names what is wrong in invalid cloud-config.
 */
import { describe, expect, test } from "vitest";
import { cloudInitSchema } from "../helpers/cloudInitSchema";

describe("cloudInitSchema", () => {
  test("accepts cloud-config with write_files, bootcmd and runcmd", () => {
    const r = cloudInitSchema(
      [
        "#cloud-config",
        "write_files:",
        "  - path: /etc/sysctl.d/90-nettune.conf",
        "    content: |",
        "      net.core.somaxconn = 65535",
        "bootcmd:",
        "  - [sysctl, --system]",
        "runcmd:",
        "  - [sh, -c, 'echo done > /run/tuned']",
        "",
      ].join("\n"),
    );
    expect(r, r.output).toMatchObject({ ok: true, errors: [] });
  });

  test("rejects write_files that is not a list, and names the key and the reason", () => {
    const r = cloudInitSchema("#cloud-config\nwrite_files: 3\nruncmd: [ls]\n");
    expect(r.ok).toBe(false);
    expect(r.errors).toEqual(["write_files: 3 is not of type 'array'"]);
  });

  test("lists every error, and refuses a file without the #cloud-config header", () => {
    const r = cloudInitSchema("#cloud-config\nwrite_files: 3\nbootcmd: {}\n");
    expect(r.errors).toEqual([
      "bootcmd: {} is not of type 'array'",
      "write_files: 3 is not of type 'array'",
    ]);
    const noHeader = cloudInitSchema("runcmd: [ls]\n");
    expect(noHeader.ok).toBe(false);
    expect(noHeader.errors.join("\n")).toMatch(/needs to begin with "#cloud-config"/);
  });
});
