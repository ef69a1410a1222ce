/**
 * Upgrade safety: resources created with one nettune build, then a newer build installed.
 * Preview shows no changes (the provider text in state is the same), and destroy runs the
 * newer code, not a copy frozen in the old state.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, expect, test } from "vitest";
import { EngineStack } from "../helpers/engine";
import { liveSysctls, onHost } from "../helpers/hostShell";
import { direct, ROOT, sandboxHosts } from "../helpers/sandbox";

const MARKER = "/run/nettune-upgraded-delete-ran";
const work = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-upgrade-"));
afterAll(() => {
  if (!process.env.KEEP_UPGRADE) fs.rmSync(work, { recursive: true, force: true });
});

/** A project folder with nettune installed in node_modules from this checkout's build. */
function install(name: string, patch?: (handlerJs: string) => string): string {
  const project = path.join(work, name);
  const mods = path.join(project, "node_modules");
  const pkg = path.join(mods, "nettune");
  fs.mkdirSync(pkg, { recursive: true });
  fs.copyFileSync(path.join(ROOT, "package.json"), path.join(pkg, "package.json"));
  fs.cpSync(path.join(ROOT, "dist/src"), path.join(pkg, "dist/src"), { recursive: true });
  // nettune's own dependencies come from the checkout's node_modules.
  for (const dep of fs.readdirSync(path.join(ROOT, "node_modules"))) {
    if (dep === "nettune" || dep.startsWith(".")) continue;
    fs.symlinkSync(path.join(ROOT, "node_modules", dep), path.join(mods, dep));
  }
  if (patch) {
    const file = path.join(pkg, "dist/src/specs/sysctlSet.js");
    const before = fs.readFileSync(file, "utf8");
    const after = patch(before);
    expect(after).not.toBe(before);
    fs.writeFileSync(file, after);
  }
  return project;
}

test("a newer nettune shows no changes in preview and its own code runs on destroy", async () => {
  const host = sandboxHosts()[0]!;
  const oldBuild = install("old");
  // The "new version": its delete (the spec's release) leaves a marker on the host first.
  const newBuild = install("new", (js) =>
    js.replace(
      /async release\(ctx, facts, olds\) \{/,
      `async release(ctx, facts, olds) { await ctx.transport.exec({ script: "touch ${MARKER}" });`,
    ),
  );
  await onHost(host, `rm -f ${MARKER}`);
  const args = {
    sets: [{ name: "upg", host: direct(host), values: { "net.ipv4.tcp_fin_timeout": 44 } }],
  };
  const stack = new EngineStack("sysctl", "upgrade", oldBuild);
  try {
    const original = (await liveSysctls(host, ["net.ipv4.tcp_fin_timeout"]))[
      "net.ipv4.tcp_fin_timeout"
    ];
    expect(stack.up(args).error).toBeUndefined();
    const providerBefore = /"__provider":\s*"([^"]|\\")*"/.exec(stack.stateText())?.[0];
    expect(providerBefore).toBeDefined();

    stack.cwd = newBuild;
    const p = stack.preview(args);
    expect(p.error).toBeUndefined();
    expect(p.changes).toEqual({ same: 2 });
    const r = stack.refresh(args);
    expect(r.changes).toEqual({ same: 2 });
    expect(/"__provider":\s*"([^"]|\\")*"/.exec(stack.stateText())?.[0]).toBe(providerBefore);

    const d = stack.destroy(args);
    expect(d.error).toBeUndefined();
    expect((await onHost(host, `test -e ${MARKER} && echo ran || echo not-run`)).trim()).toBe(
      "ran",
    );
    expect(
      (await liveSysctls(host, ["net.ipv4.tcp_fin_timeout"]))["net.ipv4.tcp_fin_timeout"],
    ).toBe(original);
  } finally {
    await onHost(host, `rm -f ${MARKER}`);
    stack.dispose();
  }
});
