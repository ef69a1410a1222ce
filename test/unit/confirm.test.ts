/**
 * The commit-confirmed and persistence scripts: rendered text (snapshots) and the shell they
 * run under, with the host's systemd tools stubbed so nothing touches this machine.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { expect, test } from "vitest";
import {
  renderArmAndApply,
  renderConfirm,
  renderDisarm,
  rollbackUnit,
} from "../../src/specs/confirm";
import {
  renderLinkUnit,
  renderUnitInstall,
  renderUnitRemove,
  unitName,
} from "../../src/host/systemd";

const opts = {
  rollbackAfter: 30,
  token: "mtu-eth0 jumbo",
  rollback: "ip link set dev eth0 mtu 1500",
  apply: "ip link set dev eth0 mtu 9000\necho applied",
};

test("arm-and-apply, disarm and unit texts are stable", () => {
  expect(rollbackUnit(opts.token)).toBe("nettune-rollback-mtu-eth0-jumbo");
  expect(renderArmAndApply(opts)).toMatchSnapshot();
  expect(renderDisarm(opts.token)).toMatchSnapshot();
  const unit = {
    name: unitName("Mtu", "eth0 jumbo"),
    description: "nettune Mtu eth0 jumbo: eth0 mtu 9000",
    interface: "eth0",
    commands: [["ip", "link", "set", "dev", "eth0", "mtu", "9000"]],
  };
  // The space became "-", and 8 hex digits of the name's sha256 keep it apart from "eth0-jumbo".
  expect(unit.name).toBe("nettune-mtu-eth0-jumbo-97b95cab.service");
  expect(unitName("Mtu", "eth0-jumbo")).toBe("nettune-mtu-eth0-jumbo.service");
  // CongestionControl's qdisc units of interfaces x+1 and x-1 are two units.
  expect(unitName("qdisc", "cc-x+1")).not.toBe(unitName("qdisc", "cc-x-1"));
  expect(renderLinkUnit(unit)).toMatchSnapshot();
  expect(renderUnitInstall(unit)).toContain(
    "systemctl enable --quiet --no-reload nettune-mtu-eth0-jumbo-97b95cab.service && systemctl daemon-reload",
  );
  expect(renderUnitRemove(unit.name)).toContain(
    "rm -f /etc/systemd/system/nettune-mtu-eth0-jumbo-97b95cab.service",
  );
});

test("the rollback timer is always armed before the change, with a timer accurate to 100 ms", () => {
  const script = renderArmAndApply(opts);
  expect(script.indexOf("systemd-run")).toBeLessThan(script.indexOf("mtu 9000"));
  expect(script).toContain("--timer-property=AccuracySec=100ms --on-active=30s");
});

test("without systemd a detached sleeper undoes the change, and disarm kills it", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nettune-confirm-"));
  try {
    const marker = path.join(dir, "rolled-back");
    // No systemd-run on this PATH: the script falls back to a detached process.
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    for (const tool of ["sh", "sleep", "nohup", "cat", "kill", "rm", "touch"]) {
      const real = spawnSync("sh", ["-c", `command -v ${tool}`], {
        encoding: "utf8",
      }).stdout.trim();
      if (real.startsWith("/")) fs.symlinkSync(real, path.join(bin, tool));
    }
    const run = (script: string) =>
      spawnSync("/bin/sh", ["-c", script.replaceAll("/run/", `${dir}/`)], {
        encoding: "utf8",
        env: { PATH: bin },
      });
    const armed = run(
      renderArmAndApply({
        ...opts,
        rollbackAfter: 1,
        rollback: `touch ${marker}`,
        apply: "echo applied",
      }),
    );
    expect(armed.stdout).toBe("armed process\napplied\n");
    // Disarmed in time: the rollback never runs.
    expect(run(renderDisarm(opts.token)).stdout).toBe("disarmed\n");
    spawnSync("sleep", ["1.5"]);
    expect(fs.existsSync(marker)).toBe(false);
    // Not disarmed: it runs after the delay.
    run(
      renderArmAndApply({
        ...opts,
        rollbackAfter: 1,
        rollback: `touch ${marker}`,
        apply: "echo applied",
      }),
    );
    spawnSync("sleep", ["1.5"]);
    expect(fs.existsSync(marker)).toBe(true);
    // Confirmed too late (an answer that came once a cut path was back): it says so.
    const late = run(renderConfirm(opts.token));
    expect(late.status).toBe(75);
    expect(late.stderr).toBe("the rollback already ran\n");
    // Confirmed in time: disarmed.
    fs.rmSync(marker);
    run(renderArmAndApply({ ...opts, rollbackAfter: 1, rollback: `touch ${marker}`, apply: ":" }));
    expect(run(renderConfirm(opts.token)).stdout).toBe("disarmed\n");
    spawnSync("sleep", ["1.5"]);
    expect(fs.existsSync(marker)).toBe(false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
