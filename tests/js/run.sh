#!/usr/bin/env bash
# CTest entry for the JS tests: installs the pinned npm packages (package-lock.json) once, then runs
# the given test files with Node's test runner against CORRAL_BIN.
# Usage: run.sh CORRAL_BIN TEST.mjs [TEST.mjs ...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CORRAL_BIN=$1
shift
command -v node >/dev/null || { echo "node is not installed (make deps installs it)"; exit 77; }
"$here/../../scripts/npm-install.sh" "$here"
cd "$here"
exec node --test --test-concurrency=1 "$@"
