#!/usr/bin/env bash
# GGUFs written by Corral load in llama.cpp and give the same greedy tokens: the llama2.c
# fixture is converted by `corral convert`, then llama.cpp (node-llama-cpp 3.22.1's prebuilt
# binary) and Corral continue the same prompt ids. Exit 77 (skipped) when node/npm or the
# npm registry are unavailable.
set -uo pipefail
corral=$1 fixtures=$2 work=$3 src=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null && command -v npm >/dev/null || { echo "node/npm missing: skipped"; exit 77; }
mkdir -p "$work"
if [ ! -d "$work/node_modules/@node-llama-cpp/linux-x64" ]; then
  (cd "$work" && echo '{"name":"corral-llamacpp-test","private":true,"type":"module"}' > package.json &&
   NODE_LLAMA_CPP_SKIP_DOWNLOAD=true timeout 300 npm install --ignore-scripts --no-audit --no-fund \
     node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1 >/dev/null 2>&1) || { echo "npm install failed: skipped"; exit 77; }
fi
set -e
cp "$src/llamacpp_agree.mjs" "$work/"
gguf=$work/aidreams.gguf
"$corral" convert "$fixtures/llama2c/aidreams260K.bin" "$gguf" --tokenizer "$fixtures/llama2c/tok512.bin" 2>/dev/null
ids=$("$corral" tokenize --model "$gguf" --text "Once upon a time" --bos --json | tr -d '[] ')
want=$(node "$work/llamacpp_agree.mjs" "$gguf" "$ids" 40)
got=$("$corral" run -m "$gguf" --prompt-ids "$ids" -n 40 --temp 0 --print-ids 2>/dev/null | tr -d ' ')
echo "llama.cpp: $want"
echo "corral:    $got"
[ "$want" = "$got" ] || { echo "greedy tokens differ"; exit 1; }
# A LoRA adapter trained by `corral finetune` loads in llama.cpp (--lora) with the same greedy
# tokens as `corral run --lora`, and changes them.
printf '{"text": "The little cat sat on a warm mat and sang a happy song %s."}\n' 1 2 3 4 5 6 > "$work/lora.jsonl"
"$corral" finetune -m "$gguf" --data "$work/lora.jsonl" -o "$work/lora.gguf" --rank 4 --steps 3 --lr 0.0025 \
  --no-progress 2>/dev/null
want=$(node "$work/llamacpp_agree.mjs" "$gguf" "$ids" 40 "$work/lora.gguf")
got=$("$corral" run -m "$gguf" --lora "$work/lora.gguf" --prompt-ids "$ids" -n 40 --temp 0 --print-ids 2>/dev/null | tr -d ' ')
echo "llama.cpp --lora: $want"
echo "corral --lora:    $got"
[ "$want" = "$got" ] || { echo "greedy tokens with the adapter differ"; exit 1; }
base=$("$corral" run -m "$gguf" --prompt-ids "$ids" -n 40 --temp 0 --print-ids 2>/dev/null | tr -d ' ')
[ "$base" != "$got" ] || { echo "the adapter did not change the greedy tokens"; exit 1; }
# And the Q8_0 quantization of it loads too.
"$corral" quantize "$gguf" "$work/aidreams_q8.gguf" Q8_0 2>/dev/null
node "$work/llamacpp_agree.mjs" "$work/aidreams_q8.gguf" "$ids" 8 >/dev/null
echo "ok"
