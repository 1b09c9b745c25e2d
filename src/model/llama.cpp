// Llama 1/2/3/3.1/3.2 and Code Llama: hyperparameters, tensor names, forward.
// Per layer: x += Wo·attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x)); x += ffn(n(x)).
#include "model/forward_common.h"
#include "model/layers/attention.h"
#include "model/layers/mlp.h"
#include "model/layers/rope.h"

namespace corral {

namespace {

Status bind_llama(Model& m) {
  const HParams& hp = m.hp;
  const int64_t E = hp.n_embd, q_dim = hp.n_head * hp.head_dim, kv_dim = hp.n_head_kv * hp.head_dim;
  CORRAL_ASSIGN_OR_RETURN(m.token_embd, bind_matrix(m, "token_embd.weight", {E, hp.n_vocab}));
  CORRAL_ASSIGN_OR_RETURN(m.output_norm, bind_vector(m, "output_norm.weight", E));
  CORRAL_ASSIGN_OR_RETURN(m.output, bind_matrix(m, "output.weight", {E, hp.n_vocab}, false));
  if (!m.output.valid()) m.output = m.token_embd;  // tied embeddings
  m.layers.resize(size_t(hp.n_layer));
  for (int64_t l = 0; l < hp.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    LayerWeights& w = m.layers[size_t(l)];
    CORRAL_ASSIGN_OR_RETURN(w.attn_norm, bind_vector(m, b + "attn_norm.weight", E));
    CORRAL_ASSIGN_OR_RETURN(w.ffn_norm, bind_vector(m, b + "ffn_norm.weight", E));
    CORRAL_ASSIGN_OR_RETURN(w.wq, bind_matrix(m, b + "attn_q.weight", {E, q_dim}));
    CORRAL_ASSIGN_OR_RETURN(w.wk, bind_matrix(m, b + "attn_k.weight", {E, kv_dim}));
    CORRAL_ASSIGN_OR_RETURN(w.wv, bind_matrix(m, b + "attn_v.weight", {E, kv_dim}));
    CORRAL_ASSIGN_OR_RETURN(w.wo, bind_matrix(m, b + "attn_output.weight", {q_dim, E}));
    CORRAL_ASSIGN_OR_RETURN(w.ffn_gate, bind_matrix(m, b + "ffn_gate.weight", {E, hp.n_ff}));
    CORRAL_ASSIGN_OR_RETURN(w.ffn_up, bind_matrix(m, b + "ffn_up.weight", {E, hp.n_ff}));
    CORRAL_ASSIGN_OR_RETURN(w.ffn_down, bind_matrix(m, b + "ffn_down.weight", {hp.n_ff, E}));
  }
  return Status::ok();
}

Status forward_llama(const Model& m, Context& ctx, KvStore& kv, const std::vector<BatchToken>& batch,
                     ForwardScratch& s, std::vector<float>* logits) {
  const HParams& hp = m.hp;
  const int64_t T = int64_t(batch.size()), E = hp.n_embd, hd = hp.head_dim;
  const int64_t q_dim = hp.n_head * hd, kv_dim = hp.n_head_kv * hd;
  CORRAL_RETURN_IF_ERROR(forward_begin(m, kv, batch, s.x));
  const Rope rope = Rope::make(hd, hp.rope_theta, hp.rope_freq_div, hp.rope_linear_factor, hp.rope_freq_bf16);
  s.h.resize(size_t(T * E));
  s.q.resize(size_t(T * q_dim));
  s.k.resize(size_t(T * kv_dim));
  s.v.resize(size_t(T * kv_dim));
  s.att.resize(size_t(T * q_dim));
  s.o.resize(size_t(T * E));
  for (int64_t l = 0; l < hp.n_layer; ++l) {
    const LayerWeights& w = m.layers[size_t(l)];
    norm_rows(s.x.data(), w.attn_norm, T, E, hp.eps, s.h.data());
    matmul(ctx, w.wq, s.h.data(), T, s.q.data(), s.mm);
    matmul(ctx, w.wk, s.h.data(), T, s.k.data(), s.mm);
    matmul(ctx, w.wv, s.h.data(), T, s.v.data(), s.mm);
    for (int64_t t = 0; t < T; ++t) {
      rope.apply(s.q.data() + t * q_dim, hp.n_head, hd, batch[size_t(t)].pos);
      rope.apply(s.k.data() + t * kv_dim, hp.n_head_kv, hd, batch[size_t(t)].pos);
    }
    AttnParams ap{l, hp.n_head, hp.n_head_kv, hd, 1.f / std::sqrt(float(hd)), 0};
    kv_store(kv, ap, batch, s.k.data(), s.v.data());
    attention(ctx, kv, ap, batch, s.q.data(), s.att.data(), s);
    matmul(ctx, w.wo, s.att.data(), T, s.o.data(), s.mm);
    for (int64_t i = 0; i < T * E; ++i) s.x[size_t(i)] += s.o[size_t(i)];
    norm_rows(s.x.data(), w.ffn_norm, T, E, hp.eps, s.h.data());
    swiglu(ctx, w.ffn_gate, w.ffn_up, w.ffn_down, s.h.data(), T, s.o.data(), s.g, s.u, s.mm);
    for (int64_t i = 0; i < T * E; ++i) s.x[size_t(i)] += s.o[size_t(i)];
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
