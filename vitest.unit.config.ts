import { defineConfig } from "vitest/config";

// `npm run test:unit`: the unit tests alone (parsers, schemas, renderers, handlers against
// fakes). No sandbox, no Pulumi CLI, no root: seconds, for iterating. `npm test` runs them too.
export default defineConfig({
  test: {
    include: ["test/unit/**/*.test.ts"],
    testTimeout: 30_000,
  },
});
