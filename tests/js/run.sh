#!/usr/bin/env bash
# CTest entry for the JS tests: installs the pinned npm packages (package-lock.json) once, then runs
# the given test files with Node's test runner against CORRAL_BIN (output also kept under the
# binary's folder, js-logs/).
# Usage: run.sh CORRAL_BIN TEST.mjs [TEST.mjs ...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CORRAL_BIN=$1
shift
command -v node >/dev/null || { echo "node is not installed (make deps installs it)"; exit 77; }
"$here/../../scripts/npm-install.sh" "$here"
cd "$here"
# Each run's output is also kept (build/js-logs/NAME-TIME.log), so a failure that a rerun does
# not repeat can still be read after the rerun has replaced CTest's own log.
logs="$(cd "$(dirname "$CORRAL_BIN")" && pwd)/js-logs"
mkdir -p "$logs"
log="$logs/$(basename "$1" .test.mjs)-$(date +%Y%m%d-%H%M%S)-$$.log"
node --test --test-concurrency=1 "$@" 2>&1 | tee "$log"
