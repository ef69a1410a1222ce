/**
 * `cloud-init schema` on this machine, for tests that validate user data without a VM. Setup
 * unpacks Debian's cloud-init (the version the VM hosts run) into the cache and puts a
 * `cloud-init-schema` wrapper into .tools/bin; nothing is installed.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";

const WRAPPER = path.resolve(__dirname, "../../.tools/bin/cloud-init-schema");

export interface CloudInitSchemaResult {
  ok: boolean;
  /** One entry per problem, as cloud-init words it: `write_files: 3 is not of type 'array'`. */
  errors: string[];
  /** cloud-init's whole output, for failure messages. */
  output: string;
}

/** Validates cloud-config text (it must begin with `#cloud-config`) with `cloud-init schema`. */
export function cloudInitSchema(text: string): CloudInitSchemaResult {
  if (!fs.existsSync(WRAPPER)) {
    throw new Error(`cloudInitSchema: ${WRAPPER} is missing; run \`npm run setup\``);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-cloud-config-"));
  const file = path.join(dir, "user-data");
  try {
    fs.writeFileSync(file, text);
    const res = spawnSync(WRAPPER, ["--config-file", file], { encoding: "utf8", timeout: 60_000 });
    if (res.error) throw res.error;
    const output = `${res.stdout}${res.stderr}`;
    if (res.status === 0) return { ok: true, errors: [], output };
    // "Cloud config schema errors: <path>: <reason>, <path>: <reason>"
    const listed = /Cloud config schema errors: ([\s\S]*)$/.exec(res.stderr)?.[1]?.trim();
    const errors = listed
      ? listed.split(/, (?=[\w.-]+: )/).map((e) => e.replaceAll(file, "user-data"))
      : [output.trim() || `cloud-init schema exited with ${res.status ?? res.signal}`];
    return { ok: false, errors, output };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
