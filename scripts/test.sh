#!/usr/bin/env bash
# The whole test suite: unit, host (real SSH to sandbox hosts), engine (real Pulumi CLI), guard.
# Run through `npm test`, which runs setup first and puts the project's tools on PATH.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec node node_modules/vitest/vitest.mjs run "$@"
