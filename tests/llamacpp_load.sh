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
# tokens as `corral run --lora`, and changes them. lora_agrees NAME BASE IDS N [finetune flags]
printf '{"text": "The little cat sat on a warm mat and sang a happy song %s."}\n' 1 2 3 4 5 6 > "$work/lora.jsonl"
lora_agrees() {
  local name=$1 model=$2 pids=$3 n=$4
  shift 4
  "$corral" finetune -m "$model" --data "$work/lora.jsonl" -o "$work/$name.gguf" --rank 4 --steps 3 \
    --no-progress "$@" 2>/dev/null
  local want got base
  want=$(node "$work/llamacpp_agree.mjs" "$model" "$pids" "$n" "$work/$name.gguf")
  got=$("$corral" run -m "$model" --lora "$work/$name.gguf" --prompt-ids "$pids" -n "$n" --temp 0 --print-ids 2>/dev/null | tr -d ' ')
  echo "$name, llama.cpp --lora: $want"
  echo "$name, corral --lora:    $got"
  [ "$want" = "$got" ] || { echo "$name: greedy tokens with the adapter differ"; exit 1; }
  base=$("$corral" run -m "$model" --prompt-ids "$pids" -n "$n" --temp 0 --print-ids 2>/dev/null | tr -d ' ')
  [ "$base" != "$got" ] || { echo "$name: the adapter did not change the greedy tokens"; exit 1; }
}
lora_agrees lora "$gguf" "$ids" 40 --lr 0.0025
# Llama 4 (the shared HF MoE fixture, with the llama2.c fixture's 512-token vocabulary): LoRA on
# the attention and, on its MoE layers, the shared expert's projections; then the FFN and shared
# expert alone. Tokens within the fixture's first attention chunk (16 positions): past it,
# llama.cpp 3.22.1 leaves HF's chunked attention (its greedy tokens from BOS leave the fixture's
# refs.json at position 16, Corral's follow them for all 64).
l4=$work/llama4.gguf
"$corral" convert "$fixtures/hf/llama4_moe_f32" "$l4" --tokenizer "$fixtures/llama2c/tok512.bin" 2>/dev/null
lora_agrees lora_llama4 "$l4" 1,2,3 13 --lr 0.01
lora_agrees lora_llama4_ffn "$l4" 1,2,3 13 --lr 0.01 --targets gate,up,down
# And the Q8_0 quantization of the llama2.c model loads too.
"$corral" quantize "$gguf" "$work/aidreams_q8.gguf" Q8_0 2>/dev/null
node "$work/llamacpp_agree.mjs" "$work/aidreams_q8.gguf" "$ids" 8 >/dev/null
echo "ok"
