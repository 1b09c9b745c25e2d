// Hugging Face checkpoints: config.json (LlamaForCausalLM, Llama4ForCausalLM and the text part
// of Llama4ForConditionalGeneration) plus safetensors, mapped onto llama.cpp names and keys.
#pragma once
#include <string>
#include <vector>

#include "core/status.h"
#include "format/model_file.h"

namespace corral {

Expected<LoadedModel> load_hf(const std::string& dir);
// The llama.cpp metadata keys one config.json maps to (architecture, head counts, ...), without
// the weights: for a PEFT adapter whose base is only a config in the Hugging Face cache.
Expected<Metadata> hf_config_metadata(const std::string& config_json);
// A hub id's ("org/name") snapshot folder in the local Hugging Face cache ($HF_HUB_CACHE,
// $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub): the revision
// refs/main names, else the newest snapshot holding a config.json; "" when none. Nothing is
// downloaded. `searched` gets the folders looked in.
std::string hf_cache_snapshot(const std::string& repo_id, std::vector<std::string>* searched);

// HF stores q/k rows per head as [2 halves][head_dim/2] (rotate_half RoPE); GGUF llama stores
// them interleaved [head_dim/2][2]. Permutes whole rows of `row_bytes` bytes.
void permute_qk_rows(const uint8_t* src, uint8_t* dst, int64_t n_rows, int64_t n_head,
                     size_t row_bytes, bool to_gguf);

// Llama 3 rope scaling: per-frequency divisors (llama.cpp's rope_freqs tensor), n = head_dim/2.
std::vector<float> llama3_rope_factors(int64_t head_dim, double theta, double factor,
                                       double low_freq_factor, double high_freq_factor,
                                       double original_ctx);

}  // namespace corral
