#!/usr/bin/env bash
# CTest entry template_jinja2: Corral's Jinja engine against Python's jinja2 (Debian's
# python3-jinja2), byte for byte, on the feature templates here and on every chat template in
# llama.cpp's models/templates (taken from the git bundle inside the node-llama-cpp npm package
# the benchmarks use; when npm or the registry is unavailable, only the feature templates run).
# Usage: run.sh CORRAL_BIN WORK_DIR
set -uo pipefail
corral=$1 work=$2 here=$(cd "$(dirname "$0")" && pwd)
python3 -c 'import jinja2' 2>/dev/null || { echo "python3-jinja2 is not installed (make deps installs it)"; exit 1; }
mkdir -p "$work"
work=$(cd "$work" && pwd)
sources=()
tpl="$work/template-sources"
if [ ! -f "$tpl/.done" ]; then
  npm_dir="$work/template-npm"
  mkdir -p "$npm_dir"
  if [ ! -f "$npm_dir/node_modules/node-llama-cpp/llama/gitRelease.bundle" ] && command -v npm >/dev/null; then
    (cd "$npm_dir" && echo '{"name":"corral-templates","private":true}' > package.json &&
     NODE_LLAMA_CPP_SKIP_DOWNLOAD=true timeout 300 npm install --ignore-scripts --no-audit --no-fund \
       node-llama-cpp@3.22.1 >/dev/null 2>&1) || echo "npm install failed: llama.cpp's templates are not compared"
  fi
  bundle="$npm_dir/node_modules/node-llama-cpp/llama/gitRelease.bundle"
  if [ -f "$bundle" ]; then
    rm -rf "$tpl" "$work/template-git" && mkdir -p "$tpl" &&
    git init -q "$work/template-git" &&
    git -C "$work/template-git" fetch -q "$bundle" HEAD &&
    git -C "$work/template-git" archive FETCH_HEAD models/templates | tar -x -C "$tpl" --strip-components=2 &&
    touch "$tpl/.done"
  fi
fi
[ -f "$tpl/.done" ] && sources+=("$tpl")
n=$(ls "$tpl"/*.jinja 2>/dev/null | wc -l)
echo "comparing the feature templates and $n templates from llama.cpp's models/templates"
exec python3 "$here/compare.py" "$corral" "$here/features" "${sources[@]}"
