// Llama 4 text model (Scout, Maverick): MoE layers with a shared expert, dense layers with
// their own FFN width, NoPE layers with attention temperature tuning, chunked local attention
// and L2 qk-norm on the RoPE layers. RoPE pairs are interleaved, as in the reference.
#include <cmath>

#include "model/forward_common.h"
#include "format/lora.h"
#include "model/layers/attention.h"
#include "model/layers/lora.h"
#include "model/layers/mlp.h"
#include "model/layers/moe.h"
#include "model/layers/norm.h"
#include "model/layers/rope.h"

namespace corral {

namespace {

// Per-layer flags from Corral's explicit keys, else llama.cpp's conventions for Llama 4.
std::vector<bool> layer_flags(const Metadata& md, const std::string& key, int64_t n,
                              bool (*fallback)(int64_t, const Metadata&)) {
  std::vector<bool> f(static_cast<size_t>(n));
  const auto* arr = md.get_arr(md.akey(key));
  for (int64_t l = 0; l < n; ++l)
    f[size_t(l)] =
        arr && int64_t(arr->size()) == n ? (*arr)[size_t(l)].as_int() != 0 : fallback(l, md);
  return f;
}

Status bind_llama4(Model& m) {
  HParams& hp = m.hp;
  const Metadata& md = m.file.meta;
  hp.n_expert = md.get_int(md.akey("expert_count")).value_or(0);
  hp.n_expert_used = md.get_int(md.akey("expert_used_count")).value_or(1);
  hp.n_ff_exp = md.get_int(md.akey("expert_feed_forward_length")).value_or(hp.n_ff);
  hp.chunk_size = md.get_int(md.akey("attention.chunk_size")).value_or(8192);
  hp.qk_norm = md.get_bool(md.akey("use_qk_norm")).value_or(true);
  hp.temp_tuning = md.get_bool(md.akey("attention.temperature_tuning")).value_or(true);
  hp.temp_floor_scale =
      float(md.get_float(md.akey("attention.temperature_floor_scale")).value_or(8192));
  hp.temp_attn_scale = float(md.get_float(md.akey("attention.temperature_scale")).value_or(0.1));
  if (hp.n_expert <= 0 || hp.n_expert > 4096 || hp.n_expert_used <= 0)
    return make_error(m.file.path + ": field " + md.akey("expert_count") + ": missing or invalid");
  hp.moe_layer = layer_flags(md, "moe_layers", hp.n_layer, [](int64_t l, const Metadata& d) {
    const int64_t step = d.get_int(d.akey("interleave_moe_layer_step")).value_or(1);
    return step > 0 && (l + 1) % step == 0;
  });
  hp.rope_layer = layer_flags(md, "rope_layers", hp.n_layer,
                              [](int64_t l, const Metadata&) { return (l + 1) % 4 != 0; });
  hp.chunked_layer = layer_flags(md, "chunked_layers", hp.n_layer,
                                 [](int64_t l, const Metadata&) { return (l + 1) % 4 != 0; });

  const int64_t E = hp.n_embd;
  CORRAL_RETURN_IF_ERROR(bind_head(m));
  m.layers.resize(size_t(hp.n_layer));
  for (int64_t l = 0; l < hp.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    LayerWeights& w = m.layers[size_t(l)];
    CORRAL_RETURN_IF_ERROR(bind_attention(m, w, b));
    if (hp.moe_layer[size_t(l)]) {
      const int64_t F = hp.n_ff_exp, NE = hp.n_expert;
      CORRAL_ASSIGN_OR_RETURN(w.router, bind_matrix(m, b + "ffn_gate_inp.weight", {E, NE}));
      CORRAL_ASSIGN_OR_RETURN(w.gate_exps, bind_matrix(m, b + "ffn_gate_exps.weight", {E, F, NE}));
      CORRAL_ASSIGN_OR_RETURN(w.up_exps, bind_matrix(m, b + "ffn_up_exps.weight", {E, F, NE}));
      CORRAL_ASSIGN_OR_RETURN(w.down_exps, bind_matrix(m, b + "ffn_down_exps.weight", {F, E, NE}));
      const ModelTensor* sh = m.file.find(b + "ffn_gate_shexp.weight");
      const int64_t FS = sh && sh->ne.size() == 2 ? sh->ne[1] : F;
      CORRAL_ASSIGN_OR_RETURN(w.gate_shexp, bind_matrix(m, b + "ffn_gate_shexp.weight", {E, FS}));
      CORRAL_ASSIGN_OR_RETURN(w.up_shexp, bind_matrix(m, b + "ffn_up_shexp.weight", {E, FS}));
      CORRAL_ASSIGN_OR_RETURN(w.down_shexp, bind_matrix(m, b + "ffn_down_shexp.weight", {FS, E}));
    } else {
      CORRAL_RETURN_IF_ERROR(bind_dense_ffn(m, w, b, hp.n_ff));
    }
  }
  return Status::ok();
}

Status forward_llama4(const Model& m, Context& ctx, KvStore& kv,
                      const std::vector<BatchToken>& batch, ForwardScratch& s,
                      std::vector<float>* logits) {
  const HParams& hp = m.hp;
  const int64_t T = int64_t(batch.size()), E = hp.n_embd, hd = hp.head_dim;
  const int64_t q_dim = hp.n_head * hd, kv_dim = hp.n_head_kv * hd;
  CORRAL_RETURN_IF_ERROR(forward_begin(m, kv, batch, s.x));
  const Rope rope =
      Rope::make(hd, hp.rope_theta, hp.rope_freq_div, hp.rope_linear_factor, hp.rope_freq_bf16);
  prepare_scratch(hp, T, s);
  for (int64_t l = 0; l < hp.n_layer; ++l) {
    const LayerWeights& w = m.layers[size_t(l)];
    const bool use_rope = hp.rope_layer[size_t(l)];
    project_qkv(ctx, w, hp, T, s);
    lora_apply_batch(ctx, batch, s, l, kLoraQ, s.h.data(), E, s.q.data(), q_dim);
    lora_apply_batch(ctx, batch, s, l, kLoraK, s.h.data(), E, s.k.data(), kv_dim);
    lora_apply_batch(ctx, batch, s, l, kLoraV, s.h.data(), E, s.v.data(), kv_dim);
    for (int64_t t = 0; t < T; ++t) {
      float* q = s.q.data() + t * q_dim;
      float* k = s.k.data() + t * kv_dim;
      const int64_t pos = batch[size_t(t)].pos;
      if (use_rope) {
        rope.apply(q, hp.n_head, hd, pos);
        rope.apply(k, hp.n_head_kv, hd, pos);
        if (hp.qk_norm) {
          for (int64_t h = 0; h < hp.n_head; ++h)
            rms_norm(q + h * hd, nullptr, hd, hp.eps, q + h * hd);
          for (int64_t h = 0; h < hp.n_head_kv; ++h)
            rms_norm(k + h * hd, nullptr, hd, hp.eps, k + h * hd);
        }
      } else if (hp.temp_tuning) {
        const float sc = std::log(std::floor((float(pos) + 1.f) / hp.temp_floor_scale) + 1.f) *
                             hp.temp_attn_scale +
                         1.f;
        for (int64_t i = 0; i < q_dim; ++i) q[i] *= sc;
      }
    }
    const AttnParams ap{l,
                        hp.n_head,
                        hp.n_head_kv,
                        hd,
                        1.f / std::sqrt(float(hd)),
                        hp.chunked_layer[size_t(l)] ? hp.chunk_size : 0};
    attend_and_add(ctx, kv, ap, w, batch, E, s);
    norm_rows(s.x.data(), w.ffn_norm, T, E, hp.eps, s.h.data());
    // LoRA on the dense FFN, or on a MoE layer's shared expert.
    const ProjectionHook hook = [&](int which, const float* in, int64_t n_in, float* out, int64_t n_out) {
      lora_apply_batch(ctx, batch, s, l, kLoraGate + which, in, n_in, out, n_out);
    };
    const ProjectionHook* hk = s.adapters.empty() ? nullptr : &hook;
    if (hp.moe_layer[size_t(l)])
      moe_forward(ctx, w, hp, s.h.data(), T, s.o.data(), s, hk);
    else
      swiglu(ctx, w.ffn_gate, w.ffn_up, w.ffn_down, s.h.data(), T, s.o.data(), s.g, s.u, s.mm, hk);
    add_ffn_output(T, E, s);
  }
  forward_head(m, ctx, batch, s.x, s, logits);
  return Status::ok();
}

}  // namespace

const Architecture& arch_llama4() {
  static const Architecture a{"llama4", bind_llama4, forward_llama4};
  return a;
}

}  // namespace corral
