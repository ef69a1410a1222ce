import { defineConfig } from "vitest/config";
import GuardLastSequencer from "./test/helpers/sequencer";

// Host and engine tests share the sandbox hosts started once in globalSetup, so files run
// one at a time; unit tests are fast either way.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/helpers/globalSetup.ts"],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 600_000,
    reporters: ["default", "./test/helpers/summaryReporter.ts"],
    sequence: { sequencer: GuardLastSequencer },
  },
});
