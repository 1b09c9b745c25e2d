// Flags every model-running subcommand shares (-m, --tokenizer, -t, --ctx-size, --kv-type).
#pragma once
#include <memory>

#include "cli/commands.h"
#include "engine/generator.h"

namespace corral::cli {

struct EngineFlags {
  EngineOptions opts;
  std::string kv_type = "auto";
};

inline void add_engine_flags(CLI::App* sub, EngineFlags& f) {
  sub->add_option("-m,--model", f.opts.model_path, "GGUF, HF folder or llama2.c .bin")->required();
  sub->add_option("--tokenizer", f.opts.tokenizer_path, "tokenizer file (else the model's own)");
  sub->add_option("-t,--threads", f.opts.threads, "threads (default: physical cores)");
  sub->add_option("--ctx-size,-c", f.opts.ctx_size, "context size (default: min(trained, 4096))");
  sub->add_option("--kv-type", f.kv_type, "KV cache type: f16, f32 or auto (default: f32 for f32 weights, else f16)");
}

// --lora for the commands that generate (run, chat, logits).
inline void add_lora_flag(CLI::App* sub, EngineFlags& f) {
  sub->add_option("--lora", f.opts.lora_path, "a LoRA adapter (GGUF, llama.cpp's format) to run the model with");
}

inline Expected<std::unique_ptr<Engine>> open_from_flags(EngineFlags& f, const Logger& log) {
  f.opts.kv_type_auto = f.kv_type == "auto";
  if (f.kv_type == "f16") f.opts.kv_type = DType::F16;
  else if (f.kv_type == "f32") f.opts.kv_type = DType::F32;
  else if (f.kv_type != "auto") return make_error("--kv-type: '" + f.kv_type + "' (choose f16, f32 or auto)");
  if (f.opts.threads < 0) return make_error("--threads: must be positive");
  return open_engine(f.opts, log);
}

}  // namespace corral::cli
