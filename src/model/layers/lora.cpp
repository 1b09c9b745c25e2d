#include "model/layers/lora.h"

#include <algorithm>

#include "backend/cpu/kernels.h"
#include "format/lora.h"
#include "model/batch.h"
#include "model/model.h"
#include "ops/sgemm.h"

namespace corral {

namespace {

// The LoRA term of tokens ts: for each, ax = A x (ax [n][r]), then y += (s ax_j) B^T_j for j in
// order. Each row of A and B^T is read once for all of ts; each token's arithmetic is the same
// whatever else is in ts (training and serving share it).
void lora_rows(const float* a, const float* bt, int64_t n_in, int64_t n_out, int64_t r, float scale,
               const float* x, float* y, const int64_t* ts, size_t n, float* ax) {
  const KernelTable& k = kernels_best();
  const DotFn dot = k.dot[uint32_t(DType::F32)];
  for (int64_t j = 0; j < r; ++j)
    for (size_t q = 0; q < n; ++q) ax[q * size_t(r) + size_t(j)] = dot(n_in, a + j * n_in, x + ts[q] * n_in);
  for (int64_t j = 0; j < r; ++j)
    for (size_t q = 0; q < n; ++q) k.axpy_f32(n_out, scale * ax[q * size_t(r) + size_t(j)], bt + j * n_out, y + ts[q] * n_out);
}

}  // namespace

const TensorView& lora_projection(const LayerWeights& w, int t) {
  const bool shexp = !w.ffn_gate.data && w.gate_shexp.data;  // a MoE layer: its shared expert
  switch (t) {
    case kLoraQ: return w.wq;
    case kLoraK: return w.wk;
    case kLoraV: return w.wv;
    case kLoraO: return w.wo;
    case kLoraGate: return shexp ? w.gate_shexp : w.ffn_gate;
    case kLoraUp: return shexp ? w.up_shexp : w.ffn_up;
    default: return shexp ? w.down_shexp : w.ffn_down;
  }
}

LoraBaseShape lora_base_shape(const Model& m) {
  LoraBaseShape b;
  for (const LayerWeights& w : m.layers) {
    std::array<std::array<int64_t, 2>, kLoraTargets> d{};
    for (int t = 0; t < kLoraTargets; ++t) {
      const TensorView& v = lora_projection(w, t);
      d[size_t(t)] = {v.ne[0], v.ne[1]};
    }
    b.dims.push_back(d);
    b.shexp.push_back(!w.ffn_gate.data && w.gate_shexp.data ? 1 : 0);
  }
  return b;
}

// Training's LoRA products as small GEMMs (ops/sgemm.h), tokens in blocks of kRows, columns in
// chunks of kCols, each item in a fixed order, so the result does not depend on the thread count.
namespace {
constexpr int64_t kRows = 64, kCols = 192;
int64_t chunks(int64_t n, int64_t c) { return (n + c - 1) / c; }
}  // namespace

void lora_forward(Context& ctx, const LoraView& m, const float* x, int64_t T, float* ax, float* y) {
  const int64_t r = m.r;
  ctx.pool->parallel_for(chunks(T, kRows), [&](int64_t c) {
    thread_local SgemmScratch gs;
    thread_local std::vector<float> sax;
    const int64_t t0 = c * kRows, n = std::min(kRows, T - t0);
    // ax = x A^T [n][r]; y += (s ax) B^T, B [n_out][r]
    sgemm(false, true, n, r, m.n_in, x + t0 * m.n_in, m.n_in, m.a, m.n_in, ax + t0 * r, r, false, gs);
    sax.resize(size_t(n * r));
    for (int64_t i = 0; i < n * r; ++i) sax[size_t(i)] = m.scale * ax[t0 * r + i];
    sgemm(false, true, n, m.n_out, r, sax.data(), r, m.b, r, y + t0 * m.n_out, m.n_out, true, gs);
  });
}

void lora_backward(Context& ctx, const LoraView& m, const float* x, int64_t T, const float* ax,
                   const float* dy, float* dA, float* dB, float* dx, float* dax) {
  const int64_t r = m.r;
  // dax = s dy B [T][r]: dy's rows read in place (no transpose of the T x n_out gradient).
  ctx.pool->parallel_for(chunks(T, kRows), [&](int64_t c) {
    thread_local SgemmScratch gs;
    const int64_t t0 = c * kRows, n = std::min(kRows, T - t0);
    sgemm(false, false, n, r, m.n_out, dy + t0 * m.n_out, m.n_out, m.b, r, dax + t0 * r, r, false, gs);
    for (int64_t i = t0 * r; i < (t0 + n) * r; ++i) dax[i] *= m.scale;
  });
  // dB^T = (s ax)^T dy [r][n_out], then dB [n_out][r] += its transpose; dA [r][n_in] += dax^T x.
  std::vector<float> sax(size_t(T * r)), dbt(size_t(r * m.n_out));
  for (int64_t i = 0; i < T * r; ++i) sax[size_t(i)] = m.scale * ax[i];
  const int64_t cb = chunks(m.n_out, kCols), ca = chunks(m.n_in, kCols);
  ctx.pool->parallel_for(cb + ca, [&](int64_t c) {
    thread_local SgemmScratch gs;
    if (c < cb) {
      const int64_t o0 = c * kCols, n = std::min(kCols, m.n_out - o0);
      sgemm(true, false, r, n, T, sax.data(), r, dy + o0, m.n_out, dbt.data() + o0, m.n_out, false, gs);
    } else {
      const int64_t i0 = (c - cb) * kCols, n = std::min(kCols, m.n_in - i0);
      sgemm(true, false, r, n, T, dax, r, x + i0, m.n_in, dA + i0, m.n_in, true, gs);
    }
  });
  for (int64_t o = 0; o < m.n_out; ++o)
    for (int64_t j = 0; j < r; ++j) dB[o * r + j] += dbt[size_t(j * m.n_out + o)];
  if (!dx) return;
  // dx += dax A [T][n_in]
  ctx.pool->parallel_for(chunks(T, kRows), [&](int64_t c) {
    thread_local SgemmScratch gs;
    const int64_t t0 = c * kRows, n = std::min(kRows, T - t0);
    sgemm(false, false, n, m.n_in, r, dax + t0 * r, r, m.a, m.n_in, dx + t0 * m.n_in, m.n_in, true, gs);
  });
}

void lora_apply_batch(Context& ctx, const std::vector<BatchToken>& batch, ForwardScratch& s,
                      int64_t layer, int target, const float* x, int64_t n_in, float* y, int64_t n_out) {
  if (s.adapters.empty()) return;
  // The matrix each adapter has here (null: none, or not this shape).
  std::vector<const LoraMatrix*> mats(s.adapters.size(), nullptr);
  bool any = false;
  for (size_t i = 0; i < s.adapters.size(); ++i) {
    const LoraAdapter* ad = s.adapters[i];
    if (!ad || size_t(layer) >= ad->layers.size()) continue;
    const LoraMatrix& m = ad->layers[size_t(layer)][size_t(target)];
    if (m.present() && m.n_in == n_in && m.n_out == n_out && m.bt.size() == m.b.size()) mats[i] = &m, any = true;
  }
  if (!any) return;
  // Work items: up to 8 tokens of one adapter (lora_rows reads A and B^T once for them).
  constexpr size_t kTokens = 8;
  std::vector<std::vector<int64_t>> items;
  for (size_t i = 0; i < mats.size(); ++i) {
    if (!mats[i]) continue;
    std::vector<int64_t> cur;
    for (int64_t t = 0; t < int64_t(batch.size()); ++t)
      if (batch[size_t(t)].adapter == int32_t(i)) {
        cur.push_back(t);
        if (cur.size() == kTokens) items.push_back(std::move(cur)), cur.clear();
      }
    if (!cur.empty()) items.push_back(std::move(cur));
  }
  ctx.pool->parallel_for(int64_t(items.size()), [&](int64_t it) {
    const std::vector<int64_t>& ts = items[size_t(it)];
    const int32_t ai = batch[size_t(ts[0])].adapter;
    const LoraMatrix& m = *mats[size_t(ai)];
    const LoraAdapter& ad = *s.adapters[size_t(ai)];
    std::vector<float> ax(ts.size() * size_t(ad.rank));
    lora_rows(m.a.data(), m.bt.data(), n_in, n_out, ad.rank, ad.scale(), x, y, ts.data(), ts.size(), ax.data());
  });
}

}  // namespace corral
