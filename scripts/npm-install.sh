#!/usr/bin/env bash
# Installs DIR's pinned npm packages (package.json + package-lock.json) once, and again when
# either changes. Several build steps and CTest entries may start at once: one installs, the
# others wait for it on the lock.
# Usage: scripts/npm-install.sh DIR
set -euo pipefail
dir=$(cd "$1" && pwd)
exec 9>"$dir/.npm-install.lock"
flock 9
stamp="$dir/node_modules/.corral-installed"
if [ ! -f "$stamp" ] || [ "$dir/package.json" -nt "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  touch "$stamp"
fi
