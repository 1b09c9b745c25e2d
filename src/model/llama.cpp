// Llama 1/2/3/3.1/3.2 and Code Llama: hyperparameters, tensor names, forward.
// Per layer: x += Wo·attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x)); x += ffn(n(x)).
#include "format/lora.h"
#include "model/forward_common.h"
#include "model/layers/lora.h"
#include "model/layers/mlp.h"
#include "model/layers/rope.h"

namespace corral {

namespace {

Status bind_llama(Model& m) {
  CORRAL_RETURN_IF_ERROR(bind_head(m));
  m.layers.resize(size_t(m.hp.n_layer));
  for (int64_t l = 0; l < m.hp.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    CORRAL_RETURN_IF_ERROR(bind_attention(m, m.layers[size_t(l)], b));
    CORRAL_RETURN_IF_ERROR(bind_dense_ffn(m, m.layers[size_t(l)], b, m.hp.n_ff));
  }
  return Status::ok();
}

Status forward_llama(const Model& m, Context& ctx, KvStore& kv,
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
    project_qkv(ctx, w, hp, T, s);
    lora_apply_batch(ctx, batch, s, l, kLoraQ, s.h.data(), E, s.q.data(), q_dim);
    lora_apply_batch(ctx, batch, s, l, kLoraK, s.h.data(), E, s.k.data(), kv_dim);
    lora_apply_batch(ctx, batch, s, l, kLoraV, s.h.data(), E, s.v.data(), kv_dim);
    for (int64_t t = 0; t < T; ++t) {
      rope.apply(s.q.data() + t * q_dim, hp.n_head, hd, batch[size_t(t)].pos);
      rope.apply(s.k.data() + t * kv_dim, hp.n_head_kv, hd, batch[size_t(t)].pos);
    }
    const AttnParams ap{l, hp.n_head, hp.n_head_kv, hd, 1.f / std::sqrt(float(hd)), 0};
    attend_and_add(ctx, kv, ap, w, batch, E, s);
    norm_rows(s.x.data(), w.ffn_norm, T, E, hp.eps, s.h.data());
    const ProjectionHook hook = [&](int which, const float* in, int64_t n_in, float* out, int64_t n_out) {
      lora_apply_batch(ctx, batch, s, l, kLoraGate + which, in, n_in, out, n_out);
    };
    swiglu(ctx, w.ffn_gate, w.ffn_up, w.ffn_down, s.h.data(), T, s.o.data(), s.g, s.u, s.mm,
           s.adapters.empty() ? nullptr : &hook);
    add_ffn_output(T, E, s);
  }
  forward_head(m, ctx, batch, s.x, s, logits);
  return Status::ok();
}

}  // namespace

const Architecture& arch_llama() {
  static const Architecture a{"llama", bind_llama, forward_llama};
  return a;
}

}  // namespace corral
