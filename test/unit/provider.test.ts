/**
 * The provider text Pulumi stores in every resource's state must never change: a different
 * text would show every existing resource as changed after an upgrade, and old text would run
 * old code on delete. It must also stay tiny: no handler code, no paths of this machine.
 */
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { expect, test } from "vitest";

const ROOT = path.resolve(__dirname, "../..");

function serializedProvider(kind: string): string {
  const script = `
    const pulumi = require("@pulumi/pulumi");
    const { providerFor } = require("./dist/src/resources/provider.js");
    const p = providerFor(${JSON.stringify(kind)});
    pulumi.runtime.serializeFunction(() => p).then((s) => process.stdout.write(s.text));
  `;
  const res = spawnSync(process.execPath, ["-e", script], { cwd: ROOT, encoding: "utf8" });
  if (res.status !== 0) throw new Error(res.stderr);
  return res.stdout;
}

test("the serialized SysctlSet provider is tiny, stable and requires nettune by name", () => {
  const text = serializedProvider("SysctlSet");
  expect(text.length).toBeLessThan(2500);
  expect(text).toContain('require("nettune/provider").handle(kind, "delete", id, props)');
  expect(text).toContain('"SysctlSet"');
  expect(text).not.toContain(ROOT);
  expect(text).not.toContain("renderSysctlApply");
  expect(text).toMatchSnapshot();
});
