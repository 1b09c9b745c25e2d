#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a bounded time
# from a seed corpus made of the fixtures. Usage: run_fuzzers.sh SRC_DIR BUILD_DIR FIXTURES SECONDS
set -euo pipefail
src=$1 out=$2 fixtures=$3 secs=${4:-20}
mkdir -p "$out"
flags="-std=c++20 -O1 -gline-tables-only -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I$src/src"
lib_sources=$(ls "$src"/src/core/*.cpp "$src"/src/format/*.cpp "$src"/src/tokenizer/*.cpp "$src"/src/template/*.cpp \
  "$src"/src/grammar/*.cpp "$src"/src/server/openai.cpp "$src"/src/server/api_requests.cpp)
# Build the library objects once, in parallel.
objs=()
for f in $lib_sources; do
  o="$out/$(basename "${f%.cpp}").o"
  objs+=("$o")
  if [ ! -f "$o" ] || [ "$f" -nt "$o" ]; then
    clang++ $flags -fsanitize=fuzzer-no-link -c "$f" -o "$o" &
  fi
done
wait
corpus() {  # target, name, then seed files; fuzz/seeds/TARGET/ (past findings) joins every run
  local t=$1 d="$out/corpus_$2"; shift 2
  mkdir -p "$d"
  for f in "$@" "$src/fuzz/seeds/$t"/*; do [ -f "$f" ] && head -c 65536 "$f" > "$d/$(basename "$f")"; done
  echo "$d"
}
run() {  # target, corpus dir
  local t=$1 c=$2
  clang++ $flags "$src/fuzz/$t.cpp" "${objs[@]}" -o "$out/$t" -lpcre2-8
  echo "== $t: ${secs}s"
  "$out/$t" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 "$c" 2>&1 | tail -n 3
}
# A small real GGUF as a seed: the vocab file's first 64 KiB plus a tiny writer-made file.
run gguf_fuzz "$(corpus gguf_fuzz gguf "$fixtures/llamacpp-vocab/ggml-vocab-llama-spm.gguf")"
run safetensors_fuzz "$(corpus safetensors_fuzz st "$fixtures/hf/llama2_mha_f32/model.safetensors" "$fixtures/llama2c/aidreams260K.bin")"
# LoRA adapters: a GGUF adapter the tests' llama.cpp check trains, when it has run, plus the seeds.
run lora_fuzz "$(corpus lora_fuzz lora "$out"/../llamacpp/lora.gguf)"
run tokenizer_files_fuzz "$(corpus tokenizer_files_fuzz tok "$fixtures/llama2c/tok512.bin" "$fixtures/tokenizers/llama2/tokenizer.model")"
run openai_request_fuzz "$(corpus openai_request_fuzz openai)"
# /v1/embeddings and /v1/responses bodies (the latter through to the chat request it becomes).
run api_requests_fuzz "$(corpus api_requests_fuzz api)"
# Chat templates: the feature templates, the tests' real ones and every jinja file found there.
run jinja_fuzz "$(corpus jinja_fuzz jinja "$src"/tests/template/features/*.jinja "$out"/../template-sources/*.jinja)"
run tool_calls_fuzz "$(corpus tool_calls_fuzz tools "$src"/tests/template/outputs/*.txt)"
# Structured output: schemas, GBNF (llama.cpp's grammars when the grammar test fetched them) and
# regex patterns.
run grammar_fuzz "$(corpus grammar_fuzz grammar "$out"/../gbnf-sources/*.gbnf)"
echo "fuzzing finished without findings"
