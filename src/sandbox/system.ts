import { execFileSync, spawnSync } from "node:child_process";

/** A machine-local command for the sandbox: argv, no shell, output captured. */
export function run(
  argv: readonly string[],
  options: { input?: string; allowFailure?: boolean } = {},
): string {
  const [file, ...args] = argv;
  if (!file) throw new Error("empty command");
  const res = spawnSync(file, args, {
    input: options.input,
    encoding: "utf8",
    stdio: ["pipe", "pipe", "pipe"],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (res.error) {
    if (options.allowFailure) return "";
    throw new Error(`sandbox: could not run ${argv.join(" ")}: ${res.error.message}`);
  }
  if (res.status !== 0 && !options.allowFailure) {
    const out = `${res.stdout ?? ""}${res.stderr ?? ""}`.trim();
    throw new Error(
      `sandbox: command failed with exit code ${res.status ?? res.signal}: ${argv.join(" ")}` +
        (out ? `\n${out}` : ""),
    );
  }
  return res.stdout ?? "";
}

/** True when the command exits 0. */
export function succeeds(argv: readonly string[]): boolean {
  const [file, ...args] = argv;
  if (!file) return false;
  const res = spawnSync(file, args, { stdio: "ignore" });
  return res.status === 0;
}

export function which(name: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
