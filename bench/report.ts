/**
 * The benchmark's report: a Markdown table for stdout and for docs/benchmarks.md, where it
 * replaces what lies between the benchmark's markers and nothing else.
 */
import * as fs from "node:fs";

export interface Row {
  run: number;
  tool: string;
  operation: string;
  seconds: number;
  /** Per host, in host order: logins sshd accepted during the operation. */
  handshakes: number[];
  /** Per host: remote commands started (nettune: exec requests; Ansible: ssh/sftp/scp runs). */
  commands: number[];
  /** Per host, Ansible only: how many of the commands were file transfers. */
  transfers?: number[];
  /** Seconds between the first login on the first host reached and on the last one. */
  spread?: number;
}

export interface Environment {
  date: string;
  kernel: string;
  nproc: number;
  memGiB: number;
  cpu: string;
  delayMs: number;
  hosts: number;
  keys: number;
  versions: string;
}

/** One number when every host has it, else each host's in order. */
export function perHost(values: number[]): string {
  if (values.length === 0) return "–";
  return values.every((v) => v === values[0]) ? String(values[0]) : values.join(" / ");
}

export function renderTable(rows: Row[]): string {
  const lines = [
    "| Run | Tool | Operation | Wall time (s) | SSH handshakes per host | Exec round trips per host | Hosts reached within (s) |",
    "| --: | --- | --- | --: | --: | --: | --: |",
  ];
  for (const r of rows) {
    const transfers =
      r.transfers && r.transfers.some((t) => t > 0)
        ? `, incl. ${perHost(r.transfers)} file transfers`
        : "";
    lines.push(
      `| ${r.run} | ${r.tool} | ${r.operation} | ${r.seconds.toFixed(1)} | ${perHost(r.handshakes)} | ${perHost(r.commands)}${transfers} | ${r.spread === undefined ? "–" : r.spread.toFixed(1)} |`,
    );
  }
  return lines.join("\n");
}

export const SYSCTL_START = "<!-- bench:sysctl:start -->";
export const SYSCTL_END = "<!-- bench:sysctl:end -->";

export function renderSection(input: {
  rows: Row[];
  notes: string[];
  env: Environment;
  values: Record<string, string>;
  /** The arguments this invocation of the benchmark was given. */
  argv: string[];
}): string {
  const { env } = input;
  const args = input.argv.length > 0 ? ` -- ${input.argv.join(" ")}` : "";
  return [
    `Measured ${env.date} on this machine: kernel ${env.kernel}, ${env.nproc} CPUs (${env.cpu}), ` +
      `${env.memGiB} GiB memory. ${env.hosts} sandbox hosts, ${env.keys} keys each, ` +
      `**${env.delayMs} ms added each way** on the SSH path (${2 * env.delayMs} ms per round trip).`,
    "",
    `Versions: ${env.versions}.`,
    "",
    renderTable(input.rows),
    "",
    ...input.notes.map((n) => `- ${n}`),
    "",
    "Reproduce (as root, on a machine like this one):",
    "",
    "```sh",
    "npm run setup   # once: Debian packages (ansible included), Node, the Pulumi CLI, the hosts' root fs",
    `npm run bench${args}`,
    "```",
    "",
    "which runs, for each run:",
    "",
    "```sh",
    `node dist/src/bin/nettune.js sandbox up --name bench --hosts ${env.hosts} --delay ${env.delayMs} --json`,
    '# nettune: one stack of test/programs/sysctl.ts, one SysctlSet per host, persist "both",',
    "# through the Automation API with NETTUNE_STATS_DIR set: pulumi up; pulumi up; pulumi destroy",
    "# Ansible, once with an empty ansible.cfg and once with `[ssh_connection] pipelining = True`:",
    "ANSIBLE_CONFIG=ansible.cfg ansible-playbook -i inventory.ini sysctl.yml   # apply",
    "ANSIBLE_CONFIG=ansible.cfg ansible-playbook -i inventory.ini sysctl.yml   # again",
    "node dist/src/bin/nettune.js sandbox down --name bench",
    "```",
    "",
    "<details><summary>The keys and values (both tools set exactly these)</summary>",
    "",
    "| Key | Value |",
    "| --- | --- |",
    ...Object.entries(input.values).map(([k, v]) => `| \`${k}\` | \`${v}\` |`),
    "",
    "</details>",
  ].join("\n");
}

/** Replaces the text between `start` and `end` in `file`, or appends the section. */
export function updateDoc(file: string, start: string, end: string, body: string): void {
  const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
  const block = `${start}\n\n${body}\n\n${end}`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  const next =
    i >= 0 && j > i
      ? text.slice(0, i) + block + text.slice(j + end.length)
      : `${text.trimEnd()}\n\n<!-- prettier-ignore-start -->\n\n${block}\n\n<!-- prettier-ignore-end -->\n`;
  fs.writeFileSync(file, next);
}
