#include "model/forward_common.h"

#include <cstring>
#include <map>

#include "format/lora.h"
#include "format/quant.h"
#include "model/layers/lora.h"
#include "model/layers/norm.h"

namespace corral {

Status forward_begin(const Model& m, KvStore& kv, const std::vector<BatchToken>& batch,
                     std::vector<float>& x) {
  const int64_t E = m.hp.n_embd;
  std::map<int32_t, int64_t> max_pos;
  for (auto& b : batch) {
    if (b.token < 0 || b.token >= m.hp.n_vocab)
      return make_error("token id " + std::to_string(b.token) + " is outside the vocabulary (" +
                        std::to_string(m.hp.n_vocab) + " tokens)");
    if (b.pos < 0) return make_error("negative position " + std::to_string(b.pos));
    if (b.span < 0 || (b.span > 0 && b.span <= b.pos))
      return make_error("token at position " + std::to_string(b.pos) + " has span " +
                        std::to_string(b.span) + ", which does not include it");
    auto& mp = max_pos[b.seq];
    mp = std::max<int64_t>(mp, b.pos + 1);
  }
  for (auto& [seq, n] : max_pos)
    if (!kv.reserve(seq, n))
      return make_error("KV cache is full (sequence " + std::to_string(seq) + " needs " +
                        std::to_string(n) + " positions); raise --ctx-size");
  x.resize(batch.size() * size_t(E));
  for (size_t t = 0; t < batch.size(); ++t)
    dequantize_row(m.token_embd.type, m.token_embd.row(batch[t].token), x.data() + t * size_t(E),
                   E);
  return Status::ok();
}

void prepare_scratch(const HParams& hp, int64_t T, ForwardScratch& s) {
  const int64_t q_dim = hp.n_head * hp.head_dim, kv_dim = hp.n_head_kv * hp.head_dim;
  s.h.resize(size_t(T * hp.n_embd));
  s.q.resize(size_t(T * q_dim));
  s.k.resize(size_t(T * kv_dim));
  s.v.resize(size_t(T * kv_dim));
  s.att.resize(size_t(T * q_dim));
  s.o.resize(size_t(T * hp.n_embd));
}

void project_qkv(Context& ctx, const LayerWeights& w, const HParams& hp, int64_t T,
                 ForwardScratch& s) {
  norm_rows(s.x.data(), w.attn_norm, T, hp.n_embd, hp.eps, s.h.data());
  matmul_shared_input(ctx, {{&w.wq, s.q.data()}, {&w.wk, s.k.data()}, {&w.wv, s.v.data()}},
                      s.h.data(), T, s.mm);
}

void attend_and_add(Context& ctx, KvStore& kv, const AttnParams& ap, const LayerWeights& w,
                    const std::vector<BatchToken>& batch, int64_t n_embd, ForwardScratch& s) {
  const int64_t T = int64_t(batch.size());
  kv_store(kv, ap, batch, s.k.data(), s.v.data());
  attention(ctx, kv, ap, batch, s.q.data(), s.att.data(), s);
  matmul(ctx, w.wo, s.att.data(), T, s.o.data(), s.mm);
  lora_apply_batch(ctx, batch, s, ap.layer, kLoraO, s.att.data(), w.wo.ne[0], s.o.data(), n_embd);
  for (int64_t i = 0; i < T * n_embd; ++i) s.x[size_t(i)] += s.o[size_t(i)];
}

void add_ffn_output(int64_t T, int64_t n_embd, ForwardScratch& s) {
  for (int64_t i = 0; i < T * n_embd; ++i) s.x[size_t(i)] += s.o[size_t(i)];
}

void norm_rows(const float* x, const std::vector<float>& w, int64_t T, int64_t n, float eps,
               float* out) {
  for (int64_t t = 0; t < T; ++t) rms_norm(x + t * n, w.data(), n, eps, out + t * n);
}

void forward_head(const Model& m, Context& ctx, const std::vector<BatchToken>& batch,
                  const std::vector<float>& x, ForwardScratch& s, std::vector<float>* logits) {
  const int64_t E = m.hp.n_embd, V = m.hp.n_vocab;
  s.hidden.clear();
  for (size_t t = 0; t < batch.size(); ++t)
    if (batch[t].hidden) {
      s.hidden.resize(s.hidden.size() + size_t(E));
      norm_rows(x.data() + t * size_t(E), m.output_norm, 1, E, m.hp.eps,
                s.hidden.data() + s.hidden.size() - size_t(E));
    }
  std::vector<float>& rows = s.h;
  rows.clear();
  for (size_t t = 0; t < batch.size(); ++t)
    if (batch[t].logits)
      rows.insert(rows.end(), x.begin() + long(t * size_t(E)),
                  x.begin() + long((t + 1) * size_t(E)));
  const int64_t n = int64_t(rows.size()) / E;
  if (!logits || n == 0) return;
  norm_rows(rows.data(), m.output_norm, n, E, m.hp.eps, rows.data());
  const size_t base = logits->size();
  logits->resize(base + size_t(n * V));
  matmul(ctx, m.output, rows.data(), n, logits->data() + base, s.mm);
}

}  // namespace corral
