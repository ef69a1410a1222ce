#!/usr/bin/env bash
# The whole test suite: unit, host (real SSH to sandbox hosts), engine (real Pulumi CLI), guard.
# Run through `npm test`, which runs setup first and puts the project's tools on PATH.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Lint first (type-aware ESLint, Prettier) unless a single file or filter was asked for.
if [ "$#" -eq 0 ]; then
  node node_modules/eslint/bin/eslint.js .
  node node_modules/prettier/bin/prettier.cjs --check . >/dev/null
  echo "lint: eslint and prettier clean"
  # The Go tools' own unit tests (the XDP loader's attach decisions, its netlink parsers; the
  # SYN generator's address range and packets).
  (cd tools/xdp-loader && go vet ./... && go test -count=1 ./... >/dev/null)
  echo "go: tools/xdp-loader vet and tests clean"
  (cd tools/synflood && go vet ./... && go test -count=1 ./... >/dev/null)
  echo "go: tools/synflood vet and tests clean"
fi
exec node node_modules/vitest/vitest.mjs run "$@"
