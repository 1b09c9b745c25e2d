#include "model/layers/lora.h"

#include <algorithm>

#include "format/lora.h"
#include "model/batch.h"

namespace corral {

namespace {
constexpr int64_t kChunk = 64;  // columns (or rows) per work item
int64_t chunks(int64_t n) { return (n + kChunk - 1) / kChunk; }
}  // namespace

void lora_forward(Context& ctx, const LoraView& m, const float* x, int64_t T, float* ax, float* y) {
  const int64_t r = m.r;
  ctx.pool->parallel_for(T, [&](int64_t t) {
    const float* xt = x + t * m.n_in;
    float* at = ax + t * r;
    for (int64_t j = 0; j < r; ++j) {
      const float* aj = m.a + j * m.n_in;
      float s = 0;
      for (int64_t i = 0; i < m.n_in; ++i) s += aj[i] * xt[i];
      at[j] = s;
    }
    float* yt = y + t * m.n_out;
    for (int64_t o = 0; o < m.n_out; ++o) {
      const float* bo = m.b + o * r;
      float s = 0;
      for (int64_t j = 0; j < r; ++j) s += bo[j] * at[j];
      yt[o] += m.scale * s;
    }
  });
}

void lora_backward(Context& ctx, const LoraView& m, const float* x, int64_t T, const float* ax,
                   const float* dy, float* dA, float* dB, float* dx, float* dax) {
  const int64_t r = m.r;
  // dax[t] = s B^T dy[t]
  ctx.pool->parallel_for(T, [&](int64_t t) {
    const float* g = dy + t * m.n_out;
    float* d = dax + t * r;
    std::fill(d, d + r, 0.f);
    for (int64_t o = 0; o < m.n_out; ++o) {
      const float* bo = m.b + o * r;
      for (int64_t j = 0; j < r; ++j) d[j] += g[o] * bo[j];
    }
    for (int64_t j = 0; j < r; ++j) d[j] *= m.scale;
  });
  // dB[o][j] += s sum_t dy[t][o] ax[t][j], by chunks of rows o.
  ctx.pool->parallel_for(chunks(m.n_out), [&](int64_t c) {
    for (int64_t o = c * kChunk; o < std::min(m.n_out, (c + 1) * kChunk); ++o) {
      float* db = dB + o * r;
      for (int64_t t = 0; t < T; ++t) {
        const float g = m.scale * dy[t * m.n_out + o];
        const float* at = ax + t * r;
        for (int64_t j = 0; j < r; ++j) db[j] += g * at[j];
      }
    }
  });
  // dA[j][i] += sum_t dax[t][j] x[t][i], by chunks of columns i.
  ctx.pool->parallel_for(chunks(m.n_in), [&](int64_t c) {
    const int64_t i0 = c * kChunk, i1 = std::min(m.n_in, (c + 1) * kChunk);
    for (int64_t t = 0; t < T; ++t) {
      const float* xt = x + t * m.n_in;
      const float* d = dax + t * r;
      for (int64_t j = 0; j < r; ++j) {
        float* da = dA + j * m.n_in;
        for (int64_t i = i0; i < i1; ++i) da[i] += d[j] * xt[i];
      }
    }
  });
  if (!dx) return;
  ctx.pool->parallel_for(T, [&](int64_t t) {
    const float* d = dax + t * r;
    float* g = dx + t * m.n_in;
    for (int64_t j = 0; j < r; ++j) {
      const float* aj = m.a + j * m.n_in;
      for (int64_t i = 0; i < m.n_in; ++i) g[i] += d[j] * aj[i];
    }
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
