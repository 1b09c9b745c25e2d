// An inference-ready model: hyperparameters read from llama.cpp-named metadata, weights bound
// as TensorViews over the (mmapped) file, and the architecture whose forward runs it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/status.h"
#include "core/tensor.h"
#include "format/model_file.h"
#include "model/batch.h"

namespace corral {

struct HParams {
  std::string arch;
  int64_t n_vocab = 0, n_ctx_train = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0,
          head_dim = 0, n_ff = 0;
  float eps = 1e-5f;
  float rope_theta = 10000.f;
  float rope_linear_factor = 1.f;   // positions are divided by this ("linear" scaling)
  std::vector<float> rope_freq_div;  // [head_dim/2] divisors of each frequency (llama3 scaling)
  bool rope_freq_bf16 = false;       // frequencies rounded to bf16, as HF does for bf16 models
  // Llama 4
  int64_t n_expert = 0, n_expert_used = 0, n_ff_exp = 0, chunk_size = 0;
  std::vector<bool> moe_layer, rope_layer, chunked_layer;
  bool qk_norm = false, temp_tuning = false;
  float temp_floor_scale = 8192.f, temp_attn_scale = 0.1f;
};

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;  // [n_embd]
  TensorView wq, wk, wv, wo;               // {n_embd, n_head*hd}, {n_embd, n_kv*hd} x2, {n_head*hd, n_embd}
  TensorView ffn_gate, ffn_up, ffn_down;   // {n_embd, n_ff} x2, {n_ff, n_embd}
  // Llama 4 MoE
  TensorView router;                               // {n_embd, n_expert}
  TensorView gate_exps, up_exps, down_exps;        // {n_embd, n_ff_exp, E} x2, {n_ff_exp, n_embd, E}
  TensorView gate_shexp, up_shexp, down_shexp;     // shared expert
};

struct Model;

struct Architecture {
  const char* name;
  // Reads architecture-specific hyperparameters and binds weights.
  Status (*bind)(Model& m);
  Status (*forward)(const Model& m, Context& ctx, KvStore& kv, const std::vector<BatchToken>& batch,
                    ForwardScratch& scratch, std::vector<float>* logits);
};

struct Model {
  LoadedModel file;
  HParams hp;
  std::vector<LayerWeights> layers;
  TensorView token_embd;  // {n_embd, n_vocab}
  std::vector<float> output_norm;
  TensorView output;      // {n_embd, n_vocab} (token_embd when tied)
  const Architecture* arch = nullptr;
  size_t dequantized_bytes = 0;  // weights that had to be expanded at load

  Status forward(Context& ctx, KvStore& kv, const std::vector<BatchToken>& batch,
                 ForwardScratch& scratch, std::vector<float>* logits) const {
    return arch->forward(*this, ctx, kv, batch, scratch, logits);
  }
};

// Builds the model from a loaded file (takes ownership). `pool` (optional) parallelizes the
// one-time weight repacking.
Expected<std::unique_ptr<Model>> make_model(LoadedModel file, const Logger& log, ThreadPool* pool = nullptr);

// Helpers the architecture files share.
Expected<TensorView> bind_matrix(Model& m, const std::string& name, std::vector<int64_t> ne,
                                 bool required = true);
Expected<std::vector<float>> bind_vector(Model& m, const std::string& name, int64_t n);
Status read_common_hparams(Model& m);
// token_embd, output_norm and output (token_embd when the head is tied).
Status bind_head(Model& m);
// blk.N.attn_norm / ffn_norm / attn_q / attn_k / attn_v / attn_output.
Status bind_attention(Model& m, LayerWeights& w, const std::string& prefix);
// blk.N.ffn_gate / ffn_up / ffn_down with hidden width n_ff.
Status bind_dense_ffn(Model& m, LayerWeights& w, const std::string& prefix, int64_t n_ff);

const Architecture& arch_llama();
const Architecture& arch_llama4();

}  // namespace corral
