#!/usr/bin/env bash
# Gathers the pages into OUT: web/src as it is, plus the pinned npm libraries the pages load
# (package.json / package-lock.json), installed here once. Run by the build (CMakeLists.txt).
# Usage: web/build.sh OUT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$1
command -v npm >/dev/null || { echo "web/build.sh: npm is missing (make deps installs it)" >&2; exit 1; }
"$here/../scripts/npm-install.sh" "$here"
mkdir -p "$out"
cp "$here"/src/*.html "$here"/src/*.css "$here"/src/*.js "$out"/
cp "$here/node_modules/markdown-it/dist/markdown-it.min.js" "$out/markdown-it.min.js"
