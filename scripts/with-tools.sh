#!/usr/bin/env bash
# Runs a command with the project's tools first on PATH (Node >= 22, the pinned Pulumi CLI
# and its dynamic-provider plugin) and the engine settings the tests and demo use.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$root/.tools/bin:$root/node_modules/.bin:$PATH"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_HOME="${PULUMI_HOME:-$root/.tools/pulumi-home}"
export NETTUNE_ROOT="$root"
exec "$@"
