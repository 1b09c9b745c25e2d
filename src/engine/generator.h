// One model loaded for generation: model, tokenizer, threads, KV cache and scratch, plus the
// prefill/decode steps the CLI commands (and later the server's scheduler) drive.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/context.h"
#include "engine/kv_cache.h"
#include "format/lora.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace corral {

struct EngineOptions {
  std::string model_path;
  std::string tokenizer_path;
  int threads = 0;         // 0 = physical cores
  int64_t ctx_size = 0;    // 0 = min(training context, ctx_cap)
  int64_t ctx_cap = 4096;
  // KV cache element type; auto: F32 with F32/BF16 weights, else F16.
  DType kv_type = DType::F16;
  bool kv_type_auto = true;
  int64_t n_seq = 1;       // sequences the KV cache must hold at ctx_size each
  int64_t kv_mib = 0;      // KV pool size in MiB instead (0: n_seq * ctx_size positions)
  std::string lora_path;   // a LoRA adapter (GGUF) every eval() runs through
};

struct Engine {
  std::unique_ptr<Context> ctx;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;  // null when the model has no tokenizer
  std::unique_ptr<PagedKvCache> kv;
  ForwardScratch scratch;
  int64_t ctx_size = 0;
  double load_seconds = 0;
  std::shared_ptr<const LoraAdapter> adapter;  // eval()'s adapter (null: the base alone)

  // Runs ids at positions [pos0, pos0 + n) of seq; logits of the last position (all positions
  // when all_logits) are appended to out.
  Status eval(int32_t seq, const std::vector<int32_t>& ids, int64_t pos0, bool all_logits,
              std::vector<float>* out);
};

Expected<std::unique_ptr<Engine>> open_engine(const EngineOptions& opts, const Logger& log);

// A LoRA adapter checked against the model it will run on (architecture, layers, shapes).
Expected<std::shared_ptr<const LoraAdapter>> load_adapter_for(const Model& m, const std::string& path);

}  // namespace corral
