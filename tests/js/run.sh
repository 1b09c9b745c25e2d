#!/usr/bin/env bash
# CTest entry for the JS tests: installs the pinned npm packages (package.json) once, then runs
# the given test files with Node's test runner against CORRAL_BIN.
# Usage: run.sh CORRAL_BIN TEST.mjs [TEST.mjs ...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CORRAL_BIN=$1
shift
command -v node >/dev/null || { echo "node is not installed (make deps installs it)"; exit 77; }
cd "$here"
# Several CTest entries may start at once: one installs, the others wait for it.
exec 9>"$here/.npm-install.lock"
flock 9
if [ ! -f node_modules/.corral-installed ] || [ package.json -nt node_modules/.corral-installed ]; then
  npm install --no-audit --no-fund --loglevel=error
  touch node_modules/.corral-installed
fi
flock -u 9
exec node --test --test-concurrency=1 "$@"
