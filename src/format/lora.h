// LoRA adapters: W' = W + (alpha / r) B A for the attention and MLP projections of each layer.
// On disk as llama.cpp's adapter GGUF (general.type = adapter, adapter.type = lora,
// adapter.lora.alpha; tensors blk.N.attn_q.weight.lora_a with ne = [n_in, r] and .lora_b with
// ne = [r, n_out]) or as a PEFT folder (adapter_config.json + adapter_model.safetensors, tensors
// base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight [r, n_in] and lora_B [n_out, r]).
// In memory as llama.cpp has it: q/k rows in GGUF's interleaved RoPE order (PEFT's B rows of q
// and k are permuted on the way in and out, as the base weights are).
#pragma once
#include <array>
#include <optional>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/logger.h"
#include "core/types.h"
#include "format/metadata.h"

namespace corral {

// The projections an adapter can target, in the order of --targets q,k,v,o,gate,up,down.
constexpr int kLoraTargets = 7;
enum LoraTargetId : int { kLoraQ, kLoraK, kLoraV, kLoraO, kLoraGate, kLoraUp, kLoraDown };
const char* lora_target_flag(int t);  // "q", "k", ..., "down"
const char* lora_target_gguf(int t);  // "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", ...
const char* lora_target_peft(int t);  // "self_attn.q_proj", ..., "mlp.down_proj"
// "q,k,v,o,gate,up,down" (also "all", "attn", "mlp") -> target ids; errors name the bad item.
Expected<std::vector<int>> parse_lora_targets(const std::string& s);

struct LoraMatrix {
  int64_t n_in = 0, n_out = 0;
  std::vector<float> a;  // [r][n_in]
  std::vector<float> b;  // [n_out][r]
  std::vector<float> bt;  // B transposed, [r][n_out], for serving (made once by prepare_for_serving)
  bool present() const { return n_in > 0; }
};

struct LoraAdapter {
  std::string path;           // where it was read from (errors, info)
  std::string arch = "llama";  // general.architecture of its base
  std::string base_name;      // general.name of the base, when known
  float alpha = 0;
  int64_t rank = 0;
  // The base's head counts when known (kept as adapter.lora.head_count[_kv], so a GGUF adapter
  // converts to PEFT, whose q/k rows are in the other RoPE order, without its base).
  int64_t n_head = 0, n_head_kv = 0;
  std::vector<std::array<LoraMatrix, kLoraTargets>> layers;
  // Per layer: 1 where gate/up/down are a shared expert's (Llama 4's MoE layers: the routed
  // experts stay frozen), GGUF ffn_*_shexp and PEFT feed_forward.shared_expert.*.
  std::vector<uint8_t> shexp;
  bool is_shexp(int64_t l) const { return l >= 0 && size_t(l) < shexp.size() && shexp[size_t(l)]; }

  float scale() const { return rank > 0 ? alpha / float(rank) : 0.f; }
  void prepare_for_serving();  // fills every matrix's bt
  int64_t n_params() const;
  std::vector<int> targets() const;  // the target ids present in any layer
};

Expected<LoraAdapter> load_lora_gguf(const std::string& path);
struct LoadedModel;
struct SafeTensor;
// The same from memory (the fuzz target) or from a parsed GGUF.
Expected<LoraAdapter> parse_lora_gguf(const uint8_t* data, size_t size, const std::string& name);
Expected<LoraAdapter> lora_from_gguf(const LoadedModel& f, const std::string& path);
// Writes F32 tensors (under path + ".tmp", then renamed). `extra` keys (e.g. training
// provenance) are added to the metadata.
Status write_lora_gguf(const std::string& path, const LoraAdapter& a, const Metadata& extra = {});

// PEFT folders. n_head / n_head_kv: the base's, for the q/k row permutation (0: rows as stored).
Expected<LoraAdapter> load_peft(const std::string& dir, int64_t n_head, int64_t n_head_kv);
Status write_peft(const std::string& dir, const LoraAdapter& a, int64_t n_head, int64_t n_head_kv);
// A PEFT adapter from its config text and parsed safetensors (the fuzz target); dir names it.
Expected<LoraAdapter> parse_peft(const std::string& config_json, const std::vector<SafeTensor>& tensors,
                                 int64_t n_head, int64_t n_head_kv, const std::string& dir);

// Whether `path` holds an adapter (a GGUF with general.type = adapter, or a PEFT folder).
bool is_lora_gguf(const std::string& path);
bool is_peft_dir(const std::string& path);

// What an adapter must match in its base: per layer {n_in, n_out} of each target's projection,
// and which layers' FFN targets are a shared expert.
struct LoraBaseShape {
  std::vector<std::array<std::array<int64_t, 2>, kLoraTargets>> dims;
  std::vector<uint8_t> shexp;
};
// Shapes against a base: every matrix's n_in/n_out equal to the projection it targets, on a layer
// the base has, dense FFN targets on dense layers and shared-expert ones on MoE layers.
Status check_lora_shapes(const LoraAdapter& a, const LoraBaseShape& b);
// "blk.N.attn_q.weight", "blk.N.ffn_gate_shexp.weight": the base tensor matrix (l, t) adapts;
// and its PEFT module ("self_attn.q_proj", "mlp.gate_proj", "feed_forward.shared_expert.gate_proj").
std::string lora_tensor_name(const LoraAdapter& a, int64_t l, int t);
std::string peft_module(const LoraAdapter& a, int64_t l, int t);

}  // namespace corral

namespace corral {
struct LoadedModel;
// Writes base with the adapter baked in: W += (alpha / r) B A for every targeted projection,
// re-encoded in `type` (nullopt: each tensor's own type). Shapes are checked first.
Status merge_lora_gguf(const LoadedModel& base, const LoraAdapter& a, const std::string& out,
                       std::optional<DType> type, const Logger* log);
}  // namespace corral
