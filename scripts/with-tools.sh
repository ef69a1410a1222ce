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
# Node keeps the compiled code of the modules it loads here, so the many short node processes of
# a run (the engine's dynamic provider at every operation, the test driver) start faster: five
# SysctlSet previews in one driver took 19 CPU-seconds with it, 28 without.
export NODE_COMPILE_CACHE="${NODE_COMPILE_CACHE:-${NETTUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nettune}/node-compile-cache}"
exec "$@"
