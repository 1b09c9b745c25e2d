#include "model/layers/lora.h"

#include <algorithm>

#include "backend/cpu/kernels.h"
#include "format/lora.h"
#include "model/batch.h"
#include "model/model.h"

namespace corral {

namespace {

// [rows][cols] -> [cols][rows]
std::vector<float> transposed(const float* m, int64_t rows, int64_t cols) {
  std::vector<float> t(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[size_t(c * rows + r)] = m[r * cols + c];
  return t;
}

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

void lora_forward(Context& ctx, const LoraView& m, const float* x, int64_t T, float* ax, float* y) {
  const std::vector<float> bt = transposed(m.b, m.n_out, m.r);  // [r][n_out]
  ctx.pool->parallel_for(T, [&](int64_t t) {
    lora_rows(m.a, bt.data(), m.n_in, m.n_out, m.r, m.scale, x, y, &t, 1, ax + t * m.r);
  });
}

void lora_backward(Context& ctx, const LoraView& m, const float* x, int64_t T, const float* ax,
                   const float* dy, float* dA, float* dB, float* dx, float* dax) {
  const KernelTable& k = kernels_best();
  const DotFn dot = k.dot[uint32_t(DType::F32)];
  const int64_t r = m.r;
  const std::vector<float> bt = transposed(m.b, m.n_out, r);  // [r][n_out]
  // dax[t][j] = s B[:, j] . dy[t]
  ctx.pool->parallel_for(T, [&](int64_t t) {
    for (int64_t j = 0; j < r; ++j)
      dax[t * r + j] = m.scale * dot(m.n_out, bt.data() + j * m.n_out, dy + t * m.n_out);
  });
  // Weight gradients as long axpys over column slices (each slice one item, tokens in order):
  // dB^T[j] += s ax[t][j] dy[t] and dA[j] += dax[t][j] x[t].
  std::vector<float> dbt(size_t(r * m.n_out), 0.f);
  constexpr int64_t kCols = 512;
  ctx.pool->parallel_for((m.n_out + kCols - 1) / kCols, [&](int64_t c) {
    const int64_t o0 = c * kCols, n = std::min(kCols, m.n_out - o0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < r; ++j)
        k.axpy_f32(n, m.scale * ax[t * r + j], dy + t * m.n_out + o0, dbt.data() + j * m.n_out + o0);
  });
  for (int64_t o = 0; o < m.n_out; ++o)
    for (int64_t j = 0; j < r; ++j) dB[o * r + j] += dbt[size_t(j * m.n_out + o)];
  ctx.pool->parallel_for((m.n_in + kCols - 1) / kCols, [&](int64_t c) {
    const int64_t i0 = c * kCols, n = std::min(kCols, m.n_in - i0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < r; ++j) k.axpy_f32(n, dax[t * r + j], x + t * m.n_in + i0, dA + j * m.n_in + i0);
  });
  if (!dx) return;
  ctx.pool->parallel_for(T, [&](int64_t t) {
    for (int64_t j = 0; j < r; ++j) k.axpy_f32(m.n_in, dax[t * r + j], m.a + j * m.n_in, dx + t * m.n_in);
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
