#include "model/layers/causal_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/kernels.h"

namespace corral {

namespace {

// The kernel table's f32 dot product and axpy (vectorized for the ISA).
struct Vec {
  DotFn d = kernels_best().dot[uint32_t(DType::F32)];
  AxpyFn ax = kernels_best().axpy_f32;
  float dot(const float* a, const float* b, int64_t n) const { return d(n, a, b); }
  void axpy(int64_t n, float c, const float* x, float* y) const { ax(n, c, x, y); }
};

constexpr int64_t kTokensPerItem = 16;

}  // namespace

void causal_attention_forward(Context& ctx, const DenseAttention& p, int64_t T, const int32_t* start,
                              const float* q, const float* k, const float* v, float* out, float* lse) {
  const int64_t hd = p.hd, group = p.n_head / p.n_kv, qrow = p.n_head * hd, kvrow = p.n_kv * hd;
  const int64_t blocks = (T + kTokensPerItem - 1) / kTokensPerItem;
  const Vec vec;
  ctx.pool->parallel_for(p.n_head * blocks, [&](int64_t item) {
    const int64_t h = item / blocks, kvh = h / group;
    std::vector<float> s(static_cast<size_t>(T));
    for (int64_t t = (item % blocks) * kTokensPerItem; t < std::min(T, (item % blocks + 1) * kTokensPerItem); ++t) {
      const float* qt = q + t * qrow + h * hd;
      const int64_t a = start[t];
      float mx = -INFINITY;
      for (int64_t j = a; j <= t; ++j) {
        s[size_t(j)] = p.scale * vec.dot(qt, k + j * kvrow + kvh * hd, hd);
        mx = std::max(mx, s[size_t(j)]);
      }
      double sum = 0;
      for (int64_t j = a; j <= t; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - mx));
      const float inv = float(1.0 / sum);
      float* o = out + t * qrow + h * hd;
      std::fill(o, o + hd, 0.f);
      for (int64_t j = a; j <= t; ++j) vec.axpy(hd, s[size_t(j)] * inv, v + j * kvrow + kvh * hd, o);
      lse[h * T + t] = mx + float(std::log(sum));
    }
  });
}

void causal_attention_backward(Context& ctx, const DenseAttention& p, int64_t T, const int32_t* start,
                               const float* q, const float* k, const float* v, const float* out,
                               const float* lse, const float* dout, float* dq, float* dk, float* dv) {
  const int64_t hd = p.hd, group = p.n_head / p.n_kv, qrow = p.n_head * hd, kvrow = p.n_kv * hd;
  for (int64_t t = 0; t < T; ++t) {
    std::fill(dk + t * kvrow, dk + (t + 1) * kvrow, 0.f);
    std::fill(dv + t * kvrow, dv + (t + 1) * kvrow, 0.f);
  }
  // One item per KV head: its query heads' dq and its own dk, dv.
  const Vec vec;
  ctx.pool->parallel_for(p.n_kv, [&](int64_t kvh) {
    std::vector<float> pr(static_cast<size_t>(T)), ds(static_cast<size_t>(T));
    for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const float* qt = q + t * qrow + h * hd;
        const float* go = dout + t * qrow + h * hd;
        const int64_t a = start[t];
        const float l = lse[h * T + t];
        // D = sum_j p_j (dout . v_j) = dout . out
        const float D = vec.dot(go, out + t * qrow + h * hd, hd);
        for (int64_t j = a; j <= t; ++j) {
          const float* kj = k + j * kvrow + kvh * hd;
          const float* vj = v + j * kvrow + kvh * hd;
          pr[size_t(j)] = std::exp(p.scale * vec.dot(qt, kj, hd) - l);
          ds[size_t(j)] = pr[size_t(j)] * (vec.dot(go, vj, hd) - D);
        }
        float* dqt = dq + t * qrow + h * hd;
        std::fill(dqt, dqt + hd, 0.f);
        for (int64_t j = a; j <= t; ++j) {
          const float c = p.scale * ds[size_t(j)];
          vec.axpy(hd, c, k + j * kvrow + kvh * hd, dqt);
          vec.axpy(hd, c, qt, dk + j * kvrow + kvh * hd);
          vec.axpy(hd, pr[size_t(j)], go, dv + j * kvrow + kvh * hd);
        }
      }
  });
}

}  // namespace corral
