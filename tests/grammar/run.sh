#!/usr/bin/env bash
# CTest entry grammar_bench_corpus: `corral grammar bench` on the corpus make_corpus.py writes
# (instances labelled by Debian's python3-jsonschema), then llama.cpp's own GBNF grammars (from
# the node-llama-cpp git bundle the template test fetched) compiled and matched against texts.
# Usage: run.sh CORRAL_BIN WORK_DIR TOKENIZER
set -euo pipefail
corral=$1 work=$2 tokenizer=$3 here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
[ -x "$py" ] || py=python3
"$py" -c 'import jsonschema' 2>/dev/null || { echo "python3-jsonschema is not installed (make deps installs it)"; exit 1; }
mkdir -p "$work"
work=$(cd "$work" && pwd)
corpus="$work/grammar-corpus"
rm -rf "$corpus"
"$py" "$here/make_corpus.py" "$corpus"
"$corral" grammar bench "$corpus" --tokenizer "$tokenizer" --json > "$work/grammar-bench.jsonl"
"$py" - "$work/grammar-bench.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
summary, files = lines[-1], lines[:-1]
print(json.dumps(summary))
assert summary["schemas"] == len(files) >= 30, summary
# Recount from the per-file lines: the summary must agree with them.
inv = sum(t["accepted"] and not t["valid"] for f in files if "compile_us" in f for t in f["tests"])
rej = sum(t["valid"] and not t["accepted"] for f in files if "compile_us" in f for t in f["tests"])
assert (inv, rej) == (summary["invalid_accepted"], summary["valid_rejected"]), (inv, rej, summary)
assert summary["invalid_accepted"] == 0, [f["id"] for f in files if any(t["accepted"] and not t["valid"] for t in f["tests"])]
assert summary["schemas_passing"] >= 0.8 * summary["schemas"], summary
for f in files:
    for t in f["tests"]:
        if "compile_us" in f and t["accepted"]:
            assert len(t["mask_us"]) == t["tokens"] + 1, f["id"]
print("grammar bench corpus: ok")
PY
# llama.cpp's grammars/ folder.
bundle="$work/template-npm/node_modules/node-llama-cpp/llama/gitRelease.bundle"
if [ ! -f "$bundle" ]; then
  echo "no node-llama-cpp bundle (the template test fetches it): llama.cpp's grammars skipped"
  exit 0
fi
g="$work/gbnf-sources"
if [ ! -f "$g/.done" ]; then
  rm -rf "$g" "$work/gbnf-git" && mkdir -p "$g"
  git init -q "$work/gbnf-git"
  git -C "$work/gbnf-git" fetch -q "$bundle" HEAD
  git -C "$work/gbnf-git" archive FETCH_HEAD grammars | tar -x -C "$g" --strip-components=1
  touch "$g/.done"
fi
n=0
for f in "$g"/*.gbnf; do
  "$corral" grammar check --gbnf "$f" > /dev/null || { echo "llama.cpp grammar $(basename "$f") does not compile"; exit 1; }
  n=$((n + 1))
done
[ "$n" -ge 8 ] || { echo "expected llama.cpp's 8+ grammars, found $n"; exit 1; }
check() {  # GRAMMAR TEXT WANT(true|false)
  printf '%b' "$2" > "$work/gbnf-text.txt"
  out=$("$corral" grammar check --gbnf "$g/$1" --tokenizer "$tokenizer" --text "$work/gbnf-text.txt")
  echo "$out" | grep -q "\"accepted\":$3" || { echo "$1 on '$2': $out (wanted accepted=$3)"; exit 1; }
}
check json.gbnf '{"a": [1, -2.5e3, "x\\\\n"], "b": {"c": null}}' true
check json.gbnf '{"a": [1, 2,]}' false
check json_arr.gbnf '[\n{"k": true},\n"x"]' true
check arithmetic.gbnf '(1+2)*3= 9\n' true
check arithmetic.gbnf '(1+2= 9\n' false
check list.gbnf '- milk\n- eggs\n' true
check list.gbnf '- milk\n-eggs\n' false
echo "llama.cpp grammars: $n compile, texts matched: ok"
