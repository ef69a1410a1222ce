import { defineConfig } from "vitest/config";
import GuardLastSequencer from "./test/helpers/sequencer";

/**
 * The files whose hosts are QEMU guests (TCG: minutes of emulated CPU each). `npm test` runs
 * them as a group of their own beside the rest (scripts/test.sh), as they share no host with
 * it: NETTUNE_TEST_GROUP picks `vm`, `main` (every other file but the guard) or `guard`.
 */
export const VM_FILES = [
  "test/engine/cloudInit.test.ts",
  "test/engine/irq.test.ts",
  "test/engine/packetSteeringVm.test.ts",
  "test/engine/vm.test.ts",
  "test/engine/xdpVm.test.ts",
  "test/host/vm.test.ts",
];
const GUARD = ["test/guard/**/*.test.ts"];
const ALL = ["test/**/*.test.ts"];

const group = process.env.NETTUNE_TEST_GROUP;
const include = group === "vm" ? VM_FILES : group === "guard" ? GUARD : ALL;
const exclude = group === "main" ? [...VM_FILES, ...GUARD] : [];

// Host and engine tests of one group share the sandbox hosts started once in globalSetup, so
// its files run one at a time; unit tests are fast either way.
export default defineConfig({
  test: {
    include,
    exclude: ["**/node_modules/**", ...exclude],
    globalSetup: ["test/helpers/globalSetup.ts"],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 600_000,
    reporters: ["default", "./test/helpers/summaryReporter.ts"],
    sequence: { sequencer: GuardLastSequencer },
  },
});
