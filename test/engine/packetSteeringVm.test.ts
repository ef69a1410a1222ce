/**
 * PacketSteering through the real Pulumi engine on a VM sandbox host (QEMU, virtio_net with 4
 * queue pairs, 4 vCPUs, the initial network namespace) where RFS is real. The nspawn host's
 * veth: packetSteering.test.ts.
 */
import { beforeAll, describe, expect, test } from "vitest";
import { EngineStack } from "../helpers/engine";
import { onHost } from "../helpers/hostShell";
import { direct, sharedVmHosts, VM_UP_TIMEOUT_MS } from "../helpers/sandbox";
import { STEERING_STATE as STATE_SCRIPT } from "../helpers/steeringState";
import type { SandboxHost } from "../../src/sandbox/sandbox";
import type { SteeringProgramArgs } from "../programs/packetSteering";

describe("on a VM host (virtio_net, 4 queue pairs, 4 vCPUs, the initial network namespace)", () => {
  /** The second of the run's shared VM hosts (test/helpers/sandbox.ts). */
  let vm: SandboxHost;

  beforeAll(() => {
    vm = sharedVmHosts()[1];
  }, VM_UP_TIMEOUT_MS + 60_000);

  test(
    "rps, rfs and xps set and verified, net.core.rps_sock_flow_entries included; a second preview changes nothing; destroy puts every file back byte for byte",
    async () => {
      const before = await onHost(vm, STATE_SCRIPT);
      // virtio_net pins tx queue N to CPU N by itself.
      expect(before).toMatch(/tx-2\/xps_cpus 4\n/);
      expect(before).toMatch(/\n0\n/);
      const args: SteeringProgramArgs = {
        steering: [
          {
            name: "vm-steering",
            host: direct(vm),
            interface: "eth0",
            rps: "0-3",
            rfs: { flowEntries: 32768 },
            xps: { cpus: { 0: "0-1", 1: "2-3" } },
          },
        ],
      };
      const stack = new EngineStack("packetSteering", "vm");
      try {
        const up = stack.up(args);
        expect(up.error).toBeUndefined();
        expect(up.outputs["vm-steering_rpsFlowCnt"]).toBe(8192);
        const live = await onHost(vm, STATE_SCRIPT);
        for (const q of [0, 1, 2, 3]) {
          expect(live).toContain(`/rx-${q}/rps_cpus f\n`);
          expect(live).toContain(`/rx-${q}/rps_flow_cnt 8192\n`);
        }
        expect(live).toContain("/tx-0/xps_cpus 3\n");
        expect(live).toContain("/tx-1/xps_cpus c\n");
        expect(live).toContain("/tx-2/xps_cpus 4\n");
        expect(live).toMatch(/\n32768\n/);
        expect(live).toContain(`nettune-packetsteering-${stack.named("vm-steering")}.service`);
        expect(up.outputs["vm-steering_originals"]).toMatchObject({
          "net.core.rps_sock_flow_entries": "0",
          "tx-0/xps_cpus": "1",
          "tx-1/xps_cpus": "2",
        });
        expect(stack.preview(args).changes).toEqual({ same: 2 });
        expect(stack.destroy(args).error).toBeUndefined();
        expect(await onHost(vm, STATE_SCRIPT)).toBe(before);
      } finally {
        stack.destroy(args);
        stack.dispose();
      }
    },
    VM_UP_TIMEOUT_MS,
  );
});
