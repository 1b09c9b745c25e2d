#include "model/layers/lora.h"

#include <algorithm>

#include "backend/cpu/kernels.h"
#include "format/lora.h"
#include "model/batch.h"

namespace corral {

namespace {

// [rows][cols] -> [cols][rows]
std::vector<float> transposed(const float* m, int64_t rows, int64_t cols) {
  std::vector<float> t(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[size_t(c * rows + r)] = m[r * cols + c];
  return t;
}

}  // namespace

void lora_forward(Context& ctx, const LoraView& m, const float* x, int64_t T, float* ax, float* y) {
  const KernelTable& k = kernels_best();
  const DotFn dot = k.dot[uint32_t(DType::F32)];
  const int64_t r = m.r;
  const std::vector<float> bt = transposed(m.b, m.n_out, r);  // [r][n_out]
  // ax[t] = A x[t]; y[t] += sum_j (s ax[t][j]) B[:, j], each token on its own.
  ctx.pool->parallel_for(T, [&](int64_t t) {
    const float* xt = x + t * m.n_in;
    float* at = ax + t * r;
    for (int64_t j = 0; j < r; ++j) at[j] = dot(m.n_in, m.a + j * m.n_in, xt);
    float* yt = y + t * m.n_out;
    for (int64_t j = 0; j < r; ++j) k.axpy_f32(m.n_out, m.scale * at[j], bt.data() + j * m.n_out, yt);
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
  const int64_t T = int64_t(batch.size());
  for (size_t k = 0; k < s.adapters.size(); ++k) {
    const LoraAdapter* ad = s.adapters[k];
    if (!ad || size_t(layer) >= ad->layers.size()) continue;
    const LoraMatrix& m = ad->layers[size_t(layer)][size_t(target)];
    if (!m.present() || m.n_in != n_in || m.n_out != n_out) continue;
    std::vector<int64_t> rows;
    for (int64_t t = 0; t < T; ++t)
      if (batch[size_t(t)].adapter == int32_t(k)) rows.push_back(t);
    if (rows.empty()) continue;
    const int64_t n = int64_t(rows.size());
    s.lora_in.resize(size_t(n * n_in));
    s.lora_ax.resize(size_t(n * ad->rank));
    s.lora_out.assign(size_t(n * n_out), 0.f);
    for (int64_t i = 0; i < n; ++i)
      std::copy(x + rows[size_t(i)] * n_in, x + (rows[size_t(i)] + 1) * n_in, s.lora_in.data() + i * n_in);
    const LoraView v{m.a.data(), m.b.data(), n_in, n_out, ad->rank, ad->scale()};
    lora_forward(ctx, v, s.lora_in.data(), n, s.lora_ax.data(), s.lora_out.data());
    for (int64_t i = 0; i < n; ++i) {
      float* yt = y + rows[size_t(i)] * n_out;
      const float* d = s.lora_out.data() + i * n_out;
      for (int64_t o = 0; o < n_out; ++o) yt[o] += d[o];
    }
  }
}

}  // namespace corral
