#include "train/backprop.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "backend/cpu/kernels.h"
#include "model/layers/causal_attention.h"
#include "model/layers/embedding.h"
#include "model/layers/lora.h"
#include "model/layers/mlp.h"
#include "model/layers/moe.h"
#include "model/layers/norm.h"
#include "ops/matmul.h"

namespace corral {

const TensorView& TrainBase::weight(int64_t l, int t) const {
  return lora_projection(m->layers[size_t(l)], t);
}

LoraBaseShape TrainBase::shape() const { return lora_base_shape(*m); }

Expected<std::unique_ptr<TrainBase>> prepare_train_base(const Model& m, ThreadPool* pool) {
  if (m.hp.arch != "llama" && m.hp.arch != "llama4")
    return make_error("fine-tuning supports Llama bases (llama 1-3.x, llama4); not '" + m.hp.arch + "'");
  auto b = std::make_unique<TrainBase>();
  b->m = &m;
  b->rope = Rope::make(m.hp.head_dim, m.hp.rope_theta, m.hp.rope_freq_div, m.hp.rope_linear_factor,
                       m.hp.rope_freq_bf16);
  b->wt.resize(size_t(m.hp.n_layer));
  for (int64_t l = 0; l < m.hp.n_layer; ++l)
    for (int t = 0; t < kLoraTargets; ++t) {
      CORRAL_ASSIGN_OR_RETURN(b->wt[size_t(l)][size_t(t)], transpose_weight(b->weight(l, t), pool));
    }
  CORRAL_ASSIGN_OR_RETURN(b->out_t, transpose_weight(m.output, pool));
  // Llama 4's MoE layers: the routed experts' transposes and the router's rows (frozen; the
  // activation gradient flows through them and through the sigmoid of the chosen scores).
  b->experts.resize(size_t(m.hp.n_layer));
  b->router.resize(size_t(m.hp.n_layer));
  for (int64_t l = 0; l < m.hp.n_layer; ++l) {
    if (m.hp.moe_layer.empty() || !m.hp.moe_layer[size_t(l)]) continue;
    const LayerWeights& w = m.layers[size_t(l)];
    for (int64_t e = 0; e < m.hp.n_expert; ++e) {
      std::array<std::unique_ptr<TransposedWeight>, 3> t;
      CORRAL_ASSIGN_OR_RETURN(t[0], transpose_weight(w.gate_exps.slice2(e), pool));
      CORRAL_ASSIGN_OR_RETURN(t[1], transpose_weight(w.up_exps.slice2(e), pool));
      CORRAL_ASSIGN_OR_RETURN(t[2], transpose_weight(w.down_exps.slice2(e), pool));
      b->experts[size_t(l)].push_back(std::move(t));
    }
    std::vector<float>& r = b->router[size_t(l)];
    r.resize(size_t(m.hp.n_expert * m.hp.n_embd));
    for (int64_t e = 0; e < m.hp.n_expert; ++e) weight_row_f32(w.router, e, r.data() + e * m.hp.n_embd);
  }
  return b;
}

namespace {

struct Acts {
  std::vector<float> xin, h, q, k, v, att, lse, xmid, h2, g, u, a;
  std::array<std::vector<float>, kLoraTargets> ax, xd;
  // Llama 4: q and k after RoPE, before the L2 norm; the attention window's first token per
  // token (chunked layers); the routed experts chosen per (token, k), their sigmoid scores and
  // gate/up pre-activations [T * K][F].
  std::vector<float> qr, kr;
  std::vector<int32_t> win;
  std::vector<int32_t> ex;
  std::vector<float> sc, eg, eu;
};

uint64_t mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The dropout multiplier (0 or 1 / (1 - p)) of input i of target tg, layer l, for token t: a hash
// of (seed, step, layer, target, document, position, i), so it is the same however the token
// was packed or which process trained it.
struct Mask {
  const Dropout& d;
  const PackedSequence& s;
  uint64_t key(int64_t l, int tg, int64_t t) const {
    return mix(d.seed ^ mix(uint64_t(d.step) ^ mix((uint64_t(l) * 8 + uint64_t(tg)) ^
                                                   mix(uint64_t(s.doc[size_t(t)]) ^ mix(uint64_t(s.pos[size_t(t)]))))));
  }
  float at(uint64_t k, int64_t i) const {
    const double u = double(mix(k + uint64_t(i)) >> 11) * (1.0 / 9007199254740992.0);
    return u < double(d.p) ? 0.f : 1.f / (1.f - d.p);
  }
};

// y += x over n values, on the pool for a prompt's worth.
void add_rows(Context& ctx, int64_t n, const float* x, float* y) {
  elementwise(ctx, n, [&](int64_t i0, int64_t m) {
    for (int64_t i = i0; i < i0 + m; ++i) y[i] += x[i];
  });
}

struct Ctx {
  Context& ctx;
  const TrainBase& b;
  const LoraAdapter& ad;
  const PackedSequence& s;
  const Dropout& drop;
  int64_t T;
  MatmulScratch mm;
  double flops = 0;

  const HParams& hp() const { return b.m->hp; }
  LoraView view(int64_t l, int t) const {
    if (size_t(l) >= ad.layers.size()) return {};
    const LoraMatrix& m = ad.layers[size_t(l)][size_t(t)];
    if (!m.present()) return {};
    return {m.a.data(), m.b.data(), m.n_in, m.n_out, ad.rank, ad.scale()};
  }

  // The LoRA input of target t: x itself, or its dropped-out copy (kept in A.xd[t]).
  const float* lora_input(int64_t l, int t, const float* x, int64_t n, Acts& A) {
    if (drop.p <= 0) return x;
    std::vector<float>& xd = A.xd[size_t(t)];
    xd.resize(size_t(T * n));
    const Mask mk{drop, s};
    for (int64_t tk = 0; tk < T; ++tk) {
      const uint64_t k = mk.key(l, t, tk);
      for (int64_t i = 0; i < n; ++i) xd[size_t(tk * n + i)] = x[tk * n + i] * mk.at(k, i);
    }
    return xd.data();
  }

  void lora_fwd(int64_t l, int t, const float* x, float* y, Acts& A) {
    const LoraView v = view(l, t);
    if (!v.a) return;
    const float* in = lora_input(l, t, x, v.n_in, A);
    A.ax[size_t(t)].resize(size_t(T * v.r));
    lora_forward(ctx, v, in, T, A.ax[size_t(t)].data(), y);
    flops += 2.0 * double(T) * double(v.r) * double(v.n_in + v.n_out);
  }

  // grads of target t from dy; dx += the LoRA's input gradient.
  void lora_bwd(int64_t l, int t, const float* x, const float* dy, float* dx, Acts& A, LoraAdapter* g) {
    const LoraView v = view(l, t);
    if (!v.a) return;
    LoraMatrix& gm = g->layers[size_t(l)][size_t(t)];
    std::vector<float> dax(size_t(T * v.r));
    const float* in = drop.p > 0 ? A.xd[size_t(t)].data() : x;
    if (drop.p <= 0) {
      lora_backward(ctx, v, in, T, A.ax[size_t(t)].data(), dy, gm.a.data(), gm.b.data(), dx, dax.data());
    } else {
      std::vector<float> tmp(size_t(T * v.n_in), 0.f);
      lora_backward(ctx, v, in, T, A.ax[size_t(t)].data(), dy, gm.a.data(), gm.b.data(), tmp.data(), dax.data());
      const Mask mk{drop, s};
      for (int64_t tk = 0; tk < T; ++tk) {
        const uint64_t k = mk.key(l, t, tk);
        for (int64_t i = 0; i < v.n_in; ++i) dx[tk * v.n_in + i] += tmp[size_t(tk * v.n_in + i)] * mk.at(k, i);
      }
    }
    flops += 4.0 * double(T) * double(v.r) * double(v.n_in + v.n_out);
  }

  void mm_fwd(const TensorView& w, const float* x, float* y) {
    matmul(ctx, w, x, T, y, mm);
    flops += 2.0 * double(T) * double(w.ne[0]) * double(w.ne[1]);
  }
  // dx = W^T dy, or with tmp (scratch of T * n_in) dx += W^T dy.
  void mm_bwd(int64_t l, int t, const float* dy, float* dx, float* tmp = nullptr) {
    const TransposedWeight& tw = *b.wt[size_t(l)][size_t(t)];
    const TensorView& wt = tw.view;
    multiply_transposed(ctx, tw, dy, T, tmp ? tmp : dx, mm);
    if (tmp) add_rows(ctx, T * wt.ne[1], tmp, dx);
    flops += 2.0 * double(T) * double(wt.ne[0]) * double(wt.ne[1]);
  }

  double attention_pairs(const int32_t* start) const {
    double p = 0;
    for (int64_t t = 0; t < T; ++t) p += double(t - start[t] + 1);
    return p;
  }

  // Llama 4's temperature tuning of q on the NoPE layers: q *= log(floor((pos + 1) / f) + 1) a + 1.
  float temp_scale(int64_t t) const {
    const HParams& h = hp();
    return std::log(std::floor((float(s.pos[size_t(t)]) + 1.f) / h.temp_floor_scale) + 1.f) * h.temp_attn_scale + 1.f;
  }
  bool is_llama4() const { return hp().arch == "llama4"; }
  bool rope_on(int64_t l) const { return !is_llama4() || hp().rope_layer[size_t(l)]; }
  bool moe_on(int64_t l) const { return is_llama4() && hp().moe_layer[size_t(l)]; }

  // The first token each token attends to: its document's first, or on Llama 4's chunked layers
  // the first of its chunk of positions (positions restart per document, so that lies inside it).
  const int32_t* window(int64_t l, Acts& A) {
    if (!is_llama4() || !hp().chunked_layer[size_t(l)]) return s.start.data();
    A.win.resize(size_t(T));
    const int64_t c = hp().chunk_size;
    for (int64_t t = 0; t < T; ++t) A.win[size_t(t)] = int32_t(t - s.pos[size_t(t)] % c);
    return A.win.data();
  }

  void layer_forward(int64_t l, std::vector<float>& x, Acts& A) {
    const HParams& h = hp();
    const LayerWeights& w = b.m->layers[size_t(l)];
    const int64_t E = h.n_embd, hd = h.head_dim, qd = h.n_head * hd, kvd = h.n_head_kv * hd;
    A.xin = x;
    A.h.resize(size_t(T * E));
    for (int64_t t = 0; t < T; ++t) rms_norm(x.data() + t * E, w.attn_norm.data(), E, h.eps, A.h.data() + t * E);
    A.q.assign(size_t(T * qd), 0.f);
    A.k.assign(size_t(T * kvd), 0.f);
    A.v.assign(size_t(T * kvd), 0.f);
    matmul_shared_input(ctx, {{&w.wq, A.q.data()}, {&w.wk, A.k.data()}, {&w.wv, A.v.data()}}, A.h.data(), T, mm);
    flops += 2.0 * double(T) * double(E) * double(qd + 2 * kvd);
    lora_fwd(l, kLoraQ, A.h.data(), A.q.data(), A);
    lora_fwd(l, kLoraK, A.h.data(), A.k.data(), A);
    lora_fwd(l, kLoraV, A.h.data(), A.v.data(), A);
    if (rope_on(l)) {
      for (int64_t t = 0; t < T; ++t) {
        b.rope.apply(A.q.data() + t * qd, h.n_head, hd, s.pos[size_t(t)]);
        b.rope.apply(A.k.data() + t * kvd, h.n_head_kv, hd, s.pos[size_t(t)]);
      }
      if (is_llama4() && h.qk_norm) {  // the weightless L2 norm of each head of q and k
        A.qr = A.q, A.kr = A.k;
        for (int64_t i = 0; i < T * h.n_head; ++i) rms_norm(A.qr.data() + i * hd, nullptr, hd, h.eps, A.q.data() + i * hd);
        for (int64_t i = 0; i < T * h.n_head_kv; ++i) rms_norm(A.kr.data() + i * hd, nullptr, hd, h.eps, A.k.data() + i * hd);
      }
    } else if (h.temp_tuning) {
      for (int64_t t = 0; t < T; ++t) {
        const float sc = temp_scale(t);
        for (int64_t i = 0; i < qd; ++i) A.q[size_t(t * qd + i)] *= sc;
      }
    }
    A.att.resize(size_t(T * qd));
    A.lse.resize(size_t(h.n_head * T));
    const DenseAttention ap{h.n_head, h.n_head_kv, hd, 1.f / std::sqrt(float(hd))};
    const int32_t* win = window(l, A);
    causal_attention_forward(ctx, ap, T, win, A.q.data(), A.k.data(), A.v.data(), A.att.data(), A.lse.data());
    flops += 4.0 * attention_pairs(win) * double(hd) * double(h.n_head);
    std::vector<float> o(size_t(T * E));
    mm_fwd(w.wo, A.att.data(), o.data());
    lora_fwd(l, kLoraO, A.att.data(), o.data(), A);
    add_rows(ctx, T * E, o.data(), x.data());
    A.xmid = x;
    A.h2.resize(size_t(T * E));
    for (int64_t t = 0; t < T; ++t) rms_norm(x.data() + t * E, w.ffn_norm.data(), E, h.eps, A.h2.data() + t * E);
    // The dense FFN, or a MoE layer's shared expert (LoRA's gate/up/down), then its experts.
    const TensorView &wg = b.weight(l, kLoraGate), &wu = b.weight(l, kLoraUp), &wd = b.weight(l, kLoraDown);
    const int64_t F = wg.ne[1];
    A.g.assign(size_t(T * F), 0.f);
    A.u.assign(size_t(T * F), 0.f);
    matmul_shared_input(ctx, {{&wg, A.g.data()}, {&wu, A.u.data()}}, A.h2.data(), T, mm);
    flops += 4.0 * double(T) * double(E) * double(F);
    lora_fwd(l, kLoraGate, A.h2.data(), A.g.data(), A);
    lora_fwd(l, kLoraUp, A.h2.data(), A.u.data(), A);
    A.a.resize(size_t(T * F));
    silu_mul(ctx, A.g.data(), A.u.data(), T * F, A.a.data());
    mm_fwd(wd, A.a.data(), o.data());
    lora_fwd(l, kLoraDown, A.a.data(), o.data(), A);
    if (moe_on(l)) experts_forward(l, A, o.data());
    add_rows(ctx, T * E, o.data(), x.data());
  }

  // Llama 4's routed experts (frozen): the top-k of the router per token, each fed h2 scaled by
  // the sigmoid of its score; out += their outputs. Keeps the choices and pre-activations.
  void experts_forward(int64_t l, Acts& A, float* out) {
    const HParams& h = hp();
    const LayerWeights& w = b.m->layers[size_t(l)];
    const int64_t E = h.n_embd, NE = h.n_expert, K = std::min(h.n_expert_used, NE), F = h.n_ff_exp;
    std::vector<float> logits(size_t(T * NE));
    matmul(ctx, w.router, A.h2.data(), T, logits.data(), mm);
    flops += 2.0 * double(T) * double(E) * double(NE);
    A.ex.resize(size_t(T * K));
    A.sc.resize(size_t(T * K));
    moe_route(logits.data(), T, NE, K, A.ex.data(), A.sc.data());
    A.eg.assign(size_t(T * K * F), 0.f);
    A.eu.assign(size_t(T * K * F), 0.f);
    std::vector<float> xin, g, u, y;
    for (int64_t e = 0; e < NE; ++e) {
      std::vector<int64_t> rows;  // (token, k) slots routed to e, in order
      for (int64_t i = 0; i < T * K; ++i)
        if (A.ex[size_t(i)] == e) rows.push_back(i);
      if (rows.empty()) continue;
      const int64_t n = int64_t(rows.size());
      xin.resize(size_t(n * E)), g.resize(size_t(n * F)), u.resize(size_t(n * F)), y.resize(size_t(n * E));
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < E; ++j) xin[size_t(i * E + j)] = A.h2[size_t(rows[size_t(i)] / K * E + j)] * A.sc[size_t(rows[size_t(i)])];
      const TensorView ge = w.gate_exps.slice2(e), ue = w.up_exps.slice2(e), de = w.down_exps.slice2(e);
      matmul_shared_input(ctx, {{&ge, g.data()}, {&ue, u.data()}}, xin.data(), n, mm);
      for (int64_t i = 0; i < n; ++i) {
        std::memcpy(A.eg.data() + rows[size_t(i)] * F, g.data() + i * F, size_t(F) * 4);
        std::memcpy(A.eu.data() + rows[size_t(i)] * F, u.data() + i * F, size_t(F) * 4);
      }
      silu_mul(ctx, g.data(), u.data(), n * F, g.data());
      matmul(ctx, de, g.data(), n, y.data(), mm);
      flops += 6.0 * double(n) * double(E) * double(F);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < E; ++j) out[rows[size_t(i)] / K * E + j] += y[size_t(i * E + j)];
    }
  }

  // Backward of experts_forward: dh2 += d(out)/d(h2) . dy, through the experts (transposed
  // weights), the input scaling and the sigmoid of the chosen router scores.
  void experts_backward(int64_t l, const float* dy, Acts& A, float* dh2) {
    const HParams& h = hp();
    const int64_t E = h.n_embd, NE = h.n_expert, K = std::min(h.n_expert_used, NE), F = h.n_ff_exp;
    const std::vector<float>& router = b.router[size_t(l)];
    std::vector<float> dyr, da, dg, du, dxin, tmp;
    for (int64_t e = 0; e < NE; ++e) {
      std::vector<int64_t> rows;
      for (int64_t i = 0; i < T * K; ++i)
        if (A.ex[size_t(i)] == e) rows.push_back(i);
      if (rows.empty()) continue;
      const int64_t n = int64_t(rows.size());
      const auto& wt = b.experts[size_t(l)][size_t(e)];
      dyr.resize(size_t(n * E)), da.resize(size_t(n * F)), dg.resize(size_t(n * F)), du.resize(size_t(n * F));
      dxin.assign(size_t(n * E), 0.f), tmp.resize(size_t(n * E));
      for (int64_t i = 0; i < n; ++i) std::memcpy(dyr.data() + i * E, dy + rows[size_t(i)] / K * E, size_t(E) * 4);
      multiply_transposed(ctx, *wt[2], dyr.data(), n, da.data(), mm);
      for (int64_t i = 0; i < n; ++i)
        swiglu_backward(ctx, A.eg.data() + rows[size_t(i)] * F, A.eu.data() + rows[size_t(i)] * F, da.data() + i * F, F,
                        dg.data() + i * F, du.data() + i * F);
      multiply_transposed(ctx, *wt[0], dg.data(), n, tmp.data(), mm);
      for (int64_t i = 0; i < n * E; ++i) dxin[size_t(i)] += tmp[size_t(i)];
      multiply_transposed(ctx, *wt[1], du.data(), n, tmp.data(), mm);
      for (int64_t i = 0; i < n * E; ++i) dxin[size_t(i)] += tmp[size_t(i)];
      flops += 6.0 * double(n) * double(E) * double(F);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t slot = rows[size_t(i)], t = slot / K;
        const float sg = A.sc[size_t(slot)];
        const float* xi = dxin.data() + i * E;
        const float* h2 = A.h2.data() + t * E;
        double ds = 0;
        for (int64_t j = 0; j < E; ++j) ds += double(xi[j]) * h2[j];
        const float dlogit = float(ds * sg * (1.0 - sg));
        const float* re = router.data() + e * E;
        for (int64_t j = 0; j < E; ++j) dh2[t * E + j] += sg * xi[j] + dlogit * re[j];
      }
    }
    flops += 2.0 * double(T) * double(E) * double(NE);
  }

  // dx: gradient of the layer's output in, of its input out.
  void layer_backward(int64_t l, std::vector<float>& dx, Acts& A, LoraAdapter* g) {
    const HParams& h = hp();
    const LayerWeights& w = b.m->layers[size_t(l)];
    const int64_t E = h.n_embd, hd = h.head_dim, qd = h.n_head * hd, kvd = h.n_head_kv * hd;
    const int64_t F = b.weight(l, kLoraGate).ne[1];
    // Scratch written before it is read, so not zeroed (make_unique_for_overwrite).
    const auto tmp = std::make_unique_for_overwrite<float[]>(size_t(T * std::max(E, F)));
    // FFN: out = xmid + down(silu(gate h2) * up h2) [+ the routed experts of h2]
    const auto da = std::make_unique_for_overwrite<float[]>(size_t(T * F));
    mm_bwd(l, kLoraDown, dx.data(), da.get());
    lora_bwd(l, kLoraDown, A.a.data(), dx.data(), da.get(), A, g);
    const auto dg = std::make_unique_for_overwrite<float[]>(size_t(T * F));
    const auto du = std::make_unique_for_overwrite<float[]>(size_t(T * F));
    swiglu_backward(ctx, A.g.data(), A.u.data(), da.get(), T * F, dg.get(), du.get());
    std::vector<float> dh(size_t(T * E));
    mm_bwd(l, kLoraGate, dg.get(), dh.data());
    mm_bwd(l, kLoraUp, du.get(), dh.data(), tmp.get());
    lora_bwd(l, kLoraGate, A.h2.data(), dg.get(), dh.data(), A, g);
    lora_bwd(l, kLoraUp, A.h2.data(), du.get(), dh.data(), A, g);
    if (moe_on(l)) experts_backward(l, dx.data(), A, dh.data());
    for (int64_t t = 0; t < T; ++t)
      rms_norm_backward(A.xmid.data() + t * E, w.ffn_norm.data(), E, h.eps, dh.data() + t * E, dx.data() + t * E);
    // Attention: xmid = xin + o(attn(rope(q h), rope(k h), v h))
    std::vector<float> datt(size_t(T * qd));
    mm_bwd(l, kLoraO, dx.data(), datt.data());
    lora_bwd(l, kLoraO, A.att.data(), dx.data(), datt.data(), A, g);
    std::vector<float> dq(size_t(T * qd)), dk(size_t(T * kvd)), dv(size_t(T * kvd));
    const DenseAttention ap{h.n_head, h.n_head_kv, hd, 1.f / std::sqrt(float(hd))};
    const int32_t* win = window(l, A);
    causal_attention_backward(ctx, ap, T, win, A.q.data(), A.k.data(), A.v.data(), A.att.data(),
                              A.lse.data(), datt.data(), dq.data(), dk.data(), dv.data());
    flops += 10.0 * attention_pairs(win) * double(hd) * double(h.n_head);
    if (rope_on(l)) {
      if (is_llama4() && h.qk_norm) {
        std::vector<float> dr(dq.size(), 0.f);
        for (int64_t i = 0; i < T * h.n_head; ++i) rms_norm_backward(A.qr.data() + i * hd, nullptr, hd, h.eps, dq.data() + i * hd, dr.data() + i * hd);
        dq.swap(dr);
        dr.assign(dk.size(), 0.f);
        for (int64_t i = 0; i < T * h.n_head_kv; ++i) rms_norm_backward(A.kr.data() + i * hd, nullptr, hd, h.eps, dk.data() + i * hd, dr.data() + i * hd);
        dk.swap(dr);
      }
      for (int64_t t = 0; t < T; ++t) {
        b.rope.apply_backward(dq.data() + t * qd, h.n_head, hd, s.pos[size_t(t)]);
        b.rope.apply_backward(dk.data() + t * kvd, h.n_head_kv, hd, s.pos[size_t(t)]);
      }
    } else if (h.temp_tuning) {
      for (int64_t t = 0; t < T; ++t) {
        const float sc = temp_scale(t);
        for (int64_t i = 0; i < qd; ++i) dq[size_t(t * qd + i)] *= sc;
      }
    }
    mm_bwd(l, kLoraQ, dq.data(), dh.data());
    mm_bwd(l, kLoraK, dk.data(), dh.data(), tmp.get());
    mm_bwd(l, kLoraV, dv.data(), dh.data(), tmp.get());
    lora_bwd(l, kLoraQ, A.h.data(), dq.data(), dh.data(), A, g);
    lora_bwd(l, kLoraK, A.h.data(), dk.data(), dh.data(), A, g);
    lora_bwd(l, kLoraV, A.h.data(), dv.data(), dh.data(), A, g);
    for (int64_t t = 0; t < T; ++t)
      rms_norm_backward(A.xin.data() + t * E, w.attn_norm.data(), E, h.eps, dh.data() + t * E, dx.data() + t * E);
  }

  // The LM head and cross-entropy over the predicted tokens; dx (when not null) gets the gradient
  // of loss_scale * loss_sum.
  SeqStats head(const std::vector<float>& x, float loss_scale, std::vector<float>* dx) {
    const Model& m = *b.m;
    const int64_t E = m.hp.n_embd, V = m.hp.n_vocab;
    std::vector<int64_t> pred;
    for (int64_t t = 0; t < T; ++t)
      if (s.target[size_t(t)] >= 0) pred.push_back(t);
    SeqStats st;
    // 192 predicted positions per chunk (matmul_gemm's token block, 4 x NR on AVX-512): the head
    // weight (V x E, 525 MB in BF16 at 1B) is streamed and unpacked once per chunk in each
    // direction; logits and their gradient take n*V*4 bytes each (98 MB at V = 128256). The
    // chunking changes no value (rows are independent).
    constexpr int64_t kChunk = 192;
    std::vector<float> hn, logits, dl, dhn;
    for (size_t c0 = 0; c0 < pred.size(); c0 += kChunk) {
      const int64_t n = std::min<int64_t>(kChunk, int64_t(pred.size() - c0));
      hn.resize(size_t(n * E));
      for (int64_t i = 0; i < n; ++i)
        rms_norm(x.data() + pred[c0 + size_t(i)] * E, m.output_norm.data(), E, m.hp.eps, hn.data() + i * E);
      logits.resize(size_t(n * V));
      matmul(ctx, m.output, hn.data(), n, logits.data(), mm);
      flops += 2.0 * double(n) * double(E) * double(V);
      if (dx) dl.resize(size_t(n * V));
      // Rows in parallel; the sums are then taken in row order (the same for any thread count).
      std::vector<double> row_loss(static_cast<size_t>(n));
      std::vector<char> row_ok(static_cast<size_t>(n));
      ctx.pool->parallel_for(n, [&](int64_t i) {
        const float* lg = logits.data() + i * V;
        const int32_t tgt = s.target[size_t(pred[c0 + size_t(i)])];
        int64_t best = 0;
        for (int64_t v = 1; v < V; ++v)
          if (lg[v] > lg[best]) best = v;
        // One exp per logit (the kernel table's, summed in a fixed order): p_v = e_v / sum.
        const float mx = lg[best];
        thread_local std::vector<float> scratch;
        float* d = dx ? dl.data() + i * V : nullptr;
        if (!d) scratch.resize(size_t(V));
        const double sum = kernels_best().exp_f32(V, lg, 1.f, mx, d ? d : scratch.data());
        const double lse = double(mx) + std::log(sum);
        row_loss[size_t(i)] = lse - double(lg[tgt]);
        row_ok[size_t(i)] = best == tgt;
        if (d) {
          const float f = float(double(loss_scale) / sum);
          for (int64_t v = 0; v < V; ++v) d[v] *= f;
          d[tgt] -= loss_scale;
        }
      });
      for (int64_t i = 0; i < n; ++i) {
        st.loss_sum += row_loss[size_t(i)];
        st.correct += row_ok[size_t(i)];
        ++st.predicted;
      }
      if (!dx) continue;
      dhn.resize(size_t(n * E));
      multiply_transposed(ctx, *b.out_t, dl.data(), n, dhn.data(), mm);
      flops += 2.0 * double(n) * double(E) * double(V);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t t = pred[c0 + size_t(i)];
        rms_norm_backward(x.data() + t * E, m.output_norm.data(), E, m.hp.eps, dhn.data() + i * E,
                          dx->data() + t * E);
      }
    }
    return st;
  }
};

Status check_sequence(const Model& m, const PackedSequence& s) {
  const size_t T = s.tokens.size();
  if (T == 0) return make_error("an empty training sequence");
  if (s.pos.size() != T || s.start.size() != T || s.target.size() != T || s.doc.size() != T)
    return make_error("a training sequence's fields differ in length");
  for (size_t t = 0; t < T; ++t) {
    if (s.tokens[t] < 0 || s.tokens[t] >= m.hp.n_vocab || s.target[t] >= m.hp.n_vocab)
      return make_error("token id " + std::to_string(std::max(s.tokens[t], s.target[t])) +
                        " is outside the vocabulary (" + std::to_string(m.hp.n_vocab) + " tokens)");
    if (s.start[t] < 0 || size_t(s.start[t]) > t) return make_error("a document start past its token");
  }
  return Status::ok();
}

std::vector<float> embed(const Model& m, const PackedSequence& s) {
  const int64_t E = m.hp.n_embd, T = int64_t(s.tokens.size());
  std::vector<float> x(size_t(T * E));
  embedding_forward(m.token_embd, s.tokens.data(), T, E, x.data());
  return x;
}

}  // namespace

size_t layer_activation_bytes(const HParams& hp, const LoraAdapter& ad, int64_t T, bool dropout) {
  const int64_t E = hp.n_embd, qd = hp.n_head * hp.head_dim, kvd = hp.n_head_kv * hp.head_dim;
  int64_t per = 4 * E + 2 * qd + 2 * kvd + 3 * hp.n_ff + hp.n_head;
  for (int t = 0; t < kLoraTargets; ++t)
    for (auto& l : ad.layers) {
      if (!l[size_t(t)].present()) continue;
      per += ad.rank + (dropout ? l[size_t(t)].n_in : 0);
      break;
    }
  return size_t(T) * size_t(per) * 4;
}

Expected<SeqStats> forward_backward(Context& ctx, const TrainBase& b, const LoraAdapter& ad,
                                    const PackedSequence& s, float loss_scale, const Dropout& drop,
                                    bool recompute, LoraAdapter* grads,
                                    std::map<int32_t, std::vector<float>>* embed_grad) {
  CORRAL_RETURN_IF_ERROR(check_sequence(*b.m, s));
  Ctx c{ctx, b, ad, s, drop, int64_t(s.tokens.size()), {}, 0};
  const int64_t L = b.m->hp.n_layer;
  std::vector<float> x = embed(*b.m, s);
  std::vector<Acts> acts(static_cast<size_t>(L));
  for (int64_t l = 0; l < L; ++l) {
    c.layer_forward(l, x, acts[size_t(l)]);
    if (recompute) {  // keep the input only
      std::vector<float> xin = std::move(acts[size_t(l)].xin);
      acts[size_t(l)] = Acts{};
      acts[size_t(l)].xin = std::move(xin);
    }
  }
  std::vector<float> dx(x.size(), 0.f);
  SeqStats st = c.head(x, loss_scale, &dx);
  for (int64_t l = L - 1; l >= 0; --l) {
    if (recompute) {
      std::vector<float> xr = acts[size_t(l)].xin;
      c.layer_forward(l, xr, acts[size_t(l)]);
    }
    c.layer_backward(l, dx, acts[size_t(l)], grads);
    acts[size_t(l)] = Acts{};
  }
  if (embed_grad) embedding_backward(s.tokens.data(), int64_t(s.tokens.size()), dx.data(), b.m->hp.n_embd, embed_grad);
  st.flops = c.flops;
  return st;
}

Expected<SeqStats> forward_loss(Context& ctx, const TrainBase& b, const LoraAdapter& ad,
                                const PackedSequence& s) {
  CORRAL_RETURN_IF_ERROR(check_sequence(*b.m, s));
  const Dropout none;
  Ctx c{ctx, b, ad, s, none, int64_t(s.tokens.size()), {}, 0};
  std::vector<float> x = embed(*b.m, s);
  for (int64_t l = 0; l < b.m->hp.n_layer; ++l) {
    Acts a;
    c.layer_forward(l, x, a);
  }
  SeqStats st = c.head(x, 0.f, nullptr);
  st.flops = c.flops;
  return st;
}

}  // namespace corral
