import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { LocalTransport } from "../../src/transport/local";
import { commandArgv, raw, renderCommand, script, sh, shellQuote } from "../../src/transport/quote";

const scratch = mkdtempSync(join(tmpdir(), "nettune-quote-"));
const marker = join(scratch, "pwned");
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Strings that break naive quoting; if any were executed, `marker` would appear. */
const HOSTILE = [
  "",
  " ",
  "$(rm -rf /)",
  `$(touch ${marker})`,
  `\`touch ${marker}\``,
  `'; touch ${marker}; '`,
  `"; touch ${marker}; "`,
  "it's",
  "'",
  "''",
  '"',
  "\\",
  "\\'",
  "a\\nb",
  "line1\nline2\n",
  "\n",
  "tab\there",
  ";|&<>*?",
  "*",
  "~",
  "~root",
  "!!",
  "#comment",
  "$HOME ${PATH} $0 $1 $@",
  "-n",
  "--help",
  "a=b c",
  "héllo wörld ✓ 日本語 🎉",
  "\u00a0nbsp\u2028sep",
  "{a,b}",
  "[ab]",
  "x".repeat(5000),
];

describe("shellQuote", () => {
  it("leaves safe words unquoted", () => {
    for (const word of ["abc-1.2/x=y:,@%+", "eth0", "net.core.rmem_max", "4096", "/proc/sys"]) {
      expect(shellQuote(word)).toBe(word);
    }
  });

  it("single-quotes everything else", () => {
    expect(shellQuote("")).toBe("''");
    expect(shellQuote("a b")).toBe("'a b'");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(shellQuote("$(x)")).toBe("'$(x)'");
    expect(shellQuote("~")).toBe("'~'");
  });

  it("rejects NUL, which no argument can carry", () => {
    expect(() => shellQuote("a\0b")).toThrow(/NUL/);
  });

  it("renders argv and refuses an empty one", () => {
    expect(renderCommand(["ethtool", "-K", "eth0", "gro", "on"])).toBe("ethtool -K eth0 gro on");
    expect(renderCommand(["printf", "%s\n", "a b"])).toBe("printf '%s\n' 'a b'");
    expect(() => renderCommand([])).toThrow(/empty/);
  });
});

describe("sh and script", () => {
  it("quotes interpolated values but not the template", () => {
    const iface = "eth0; reboot";
    expect(sh`ethtool -K ${iface} gro ${"on"} >/dev/null`.text).toBe(
      "ethtool -K 'eth0; reboot' gro on >/dev/null",
    );
    expect(sh`sysctl -w ${"net.core.rmem_max"}=${4096}`.text).toBe(
      "sysctl -w net.core.rmem_max=4096",
    );
  });

  it("expands arrays to quoted words and inserts fragments verbatim", () => {
    expect(sh`tc ${["qdisc", "show", "dev x"]}`.text).toBe("tc qdisc show 'dev x'");
    const inner = sh`test -e ${"/a b"}`;
    expect(sh`if ${inner}; then echo ${"y es"}; fi`.text).toBe(
      "if test -e '/a b'; then echo 'y es'; fi",
    );
    expect(sh`a ${raw("2>&1")}`.text).toBe("a 2>&1");
  });

  it("refuses values that would turn into the text undefined", () => {
    expect(() => sh`echo ${undefined as unknown as string}`).toThrow(/undefined/);
    expect(() => sh`echo ${Number.NaN}`).toThrow();
  });

  it("joins lines into a script and runs it as sh -c", () => {
    const s = script("set -e", sh`echo ${"a b"}`);
    expect(s).toEqual({ script: "set -e\necho 'a b'" });
    expect(commandArgv(s)).toEqual(["sh", "-c", "set -e\necho 'a b'"]);
    expect(commandArgv(s, true)).toEqual(["sudo", "-n", "sh", "-c", "set -e\necho 'a b'"]);
    expect(commandArgv(["ip", "link"], true)).toEqual(["sudo", "-n", "ip", "link"]);
  });
});

describe("quoting round-trips through a real shell", () => {
  const local = new LocalTransport();

  it.each(HOSTILE.map((s) => [JSON.stringify(s).slice(0, 40), s]))(
    "sh -c 'printf %%s '<quoted> prints %s exactly",
    async (_label, s) => {
      const viaScript = await local.exec({ script: `printf %s ${shellQuote(s)}` });
      expect(viaScript.stdout).toBe(s);
      // Two levels: the argv is rendered to a command line that sh parses again.
      const viaArgv = await local.exec(["sh", "-c", renderCommand(["printf", "%s", s])]);
      expect(viaArgv.stdout).toBe(s);
      const viaTemplate = await local.exec(script(sh`printf %s ${s}`));
      expect(viaTemplate.stdout).toBe(s);
      expect(existsSync(marker)).toBe(false);
    },
  );

  it("passes hostile strings through argv without any shell", async () => {
    for (const s of HOSTILE) {
      const r = await local.exec(["printf", "%s", s]);
      expect(r.stdout).toBe(s);
    }
    expect(existsSync(marker)).toBe(false);
  });
});
