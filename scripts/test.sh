#!/usr/bin/env bash
# The whole test suite: unit, host (real SSH to sandbox hosts), engine (real Pulumi CLI), guard.
# Run through `npm test`, which runs setup first and puts the project's tools on PATH.
# With arguments (files, filters), one vitest run of just those.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
vitest() { node node_modules/vitest/vitest.mjs run "$@"; }
if [ "$#" -gt 0 ]; then vitest "$@"; exit; fi

# Lint first (type-aware ESLint, Prettier).
node node_modules/eslint/bin/eslint.js .
node node_modules/prettier/bin/prettier.cjs --check . >/dev/null
echo "lint: eslint and prettier clean"
# The Go tools' own unit tests (the XDP loader's attach decisions, its netlink parsers; the
# SYN generator's address range and packets).
(cd tools/xdp-loader && go vet ./... && go test -count=1 ./... >/dev/null)
echo "go: tools/xdp-loader vet and tests clean"
(cd tools/synflood && go vet ./... && go test -count=1 ./... >/dev/null)
echo "go: tools/synflood vet and tests clean"

# Two groups side by side (vitest.config.ts): the VM files, whose QEMU guests share no host
# with the rest, and every other file; each runs its files one at a time on its own sandbox.
# Then the guard, once nothing else runs: this machine as it was before either began.
base="${NETTUNE_TEST_SANDBOX:-test}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export NETTUNE_TEST_SUMMARY_FILE="$work/summary"
: >"$NETTUNE_TEST_SUMMARY_FILE"
echo "tests: the VM group runs beside this one; its output follows when both are done"
NETTUNE_TEST_GROUP=vm NETTUNE_TEST_SANDBOX="${base}q" vitest >"$work/vm.log" 2>&1 &
vm_pid=$!
status=0
NETTUNE_TEST_GROUP=main NETTUNE_TEST_SANDBOX="$base" vitest || status=1
wait "$vm_pid" || status=1
echo
echo "=== the VM group (sandboxes ${base}q...) ==="
cat "$work/vm.log"
NETTUNE_TEST_GROUP=guard NETTUNE_TEST_SANDBOX="$base" vitest || status=1
awk '{p += $1; f += $2; s += $3} END {printf "\nall groups: %d passed, %d failed, %d skipped\n", p, f, s}' \
  "$NETTUNE_TEST_SUMMARY_FILE"
exit "$status"
