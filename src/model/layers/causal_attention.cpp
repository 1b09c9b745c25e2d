#include "model/layers/causal_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/kernels.h"
#include "ops/sgemm.h"

namespace corral {

namespace {

// Queries per work item: each item's scores are a [kQ][span] block of GEMMs against the keys.
constexpr int64_t kQ = 32;

struct Block {
  int64_t t0, n, lo, span;  // queries [t0, t0 + n), keys [lo, lo + span)
};

// Windows start at non-decreasing tokens (documents and chunks are packed in order), so a
// block's keys are [start[t0], t0 + n).
Block block_of(int64_t b, int64_t T, const int32_t* start) {
  Block k;
  k.t0 = b * kQ;
  k.n = std::min(kQ, T - k.t0);
  k.lo = start[k.t0];
  for (int64_t t = k.t0; t < k.t0 + k.n; ++t) k.lo = std::min<int64_t>(k.lo, start[t]);
  k.span = k.t0 + k.n - k.lo;
  return k;
}

// The probabilities of the block's queries (row i: query t0 + i over keys lo + j), zero outside
// each query's window [start[t], t]; s holds the scores q . k on entry. With lse null the
// softmax is computed (and its log-sum-exp stored); else exp(scale s - lse).
void probabilities(const Block& bk, const int32_t* start, float scale, float* s, float* lse_out,
                   const float* lse_in) {
  const ExpFn ex = kernels_best().exp_f32;
  for (int64_t i = 0; i < bk.n; ++i) {
    const int64_t t = bk.t0 + i, a = start[t] - bk.lo, e = t - bk.lo + 1;
    float* r = s + i * bk.span;
    std::fill(r, r + a, 0.f);
    std::fill(r + e, r + bk.span, 0.f);
    if (lse_in) {
      ex(e - a, r + a, scale, lse_in[i], r + a);
      continue;
    }
    float mx = -INFINITY;  // of the raw scores: scale > 0
    for (int64_t j = a; j < e; ++j) mx = std::max(mx, r[j]);
    const double sum = ex(e - a, r + a, scale, scale * mx, r + a);
    const float inv = float(1.0 / sum);
    for (int64_t j = a; j < e; ++j) r[j] *= inv;
    lse_out[i] = scale * mx + float(std::log(sum));
  }
}

}  // namespace

void causal_attention_forward(Context& ctx, const DenseAttention& p, int64_t T, const int32_t* start,
                              const float* q, const float* k, const float* v, float* out, float* lse) {
  const int64_t hd = p.hd, group = p.n_head / p.n_kv, qrow = p.n_head * hd, kvrow = p.n_kv * hd;
  const int64_t blocks = (T + kQ - 1) / kQ;
  ctx.pool->parallel_for(p.n_head * blocks, [&](int64_t item) {
    const int64_t h = item / blocks, kvh = h / group;
    const Block bk = block_of(item % blocks, T, start);
    thread_local SgemmScratch gs;
    thread_local std::vector<float> s;
    s.resize(size_t(bk.n * bk.span));
    const float* kb = k + bk.lo * kvrow + kvh * hd;
    sgemm(false, true, bk.n, bk.span, hd, q + bk.t0 * qrow + h * hd, qrow, kb, kvrow, s.data(), bk.span, false, gs);
    probabilities(bk, start, p.scale, s.data(), lse + h * T + bk.t0, nullptr);
    sgemm(false, false, bk.n, hd, bk.span, s.data(), bk.span, v + bk.lo * kvrow + kvh * hd, kvrow,
          out + bk.t0 * qrow + h * hd, qrow, false, gs);
  });
}

void causal_attention_backward(Context& ctx, const DenseAttention& p, int64_t T, const int32_t* start,
                               const float* q, const float* k, const float* v, const float* out,
                               const float* lse, const float* dout, float* dq, float* dk, float* dv) {
  const int64_t hd = p.hd, group = p.n_head / p.n_kv, qrow = p.n_head * hd, kvrow = p.n_kv * hd;
  const int64_t blocks = (T + kQ - 1) / kQ;
  for (int64_t t = 0; t < T; ++t) {
    std::fill(dk + t * kvrow, dk + (t + 1) * kvrow, 0.f);
    std::fill(dv + t * kvrow, dv + (t + 1) * kvrow, 0.f);
  }
  // One item per KV head: its query heads' dq and its own dk, dv, blocks in order.
  ctx.pool->parallel_for(p.n_kv, [&](int64_t kvh) {
    SgemmScratch gs;
    std::vector<float> pr, ds;
    for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h)
      for (int64_t b = 0; b < blocks; ++b) {
        const Block bk = block_of(b, T, start);
        const float* qb = q + bk.t0 * qrow + h * hd;
        const float* gb = dout + bk.t0 * qrow + h * hd;
        const float* kb = k + bk.lo * kvrow + kvh * hd;
        const float* vb = v + bk.lo * kvrow + kvh * hd;
        pr.resize(size_t(bk.n * bk.span));
        ds.resize(size_t(bk.n * bk.span));
        sgemm(false, true, bk.n, bk.span, hd, qb, qrow, kb, kvrow, pr.data(), bk.span, false, gs);
        probabilities(bk, start, p.scale, pr.data(), nullptr, lse + h * T + bk.t0);
        // dP = dout V^T; dS = scale P (dP - D), D = dout . out (= sum_j p_j dout . v_j).
        sgemm(false, true, bk.n, bk.span, hd, gb, qrow, vb, kvrow, ds.data(), bk.span, false, gs);
        for (int64_t i = 0; i < bk.n; ++i) {
          const float* go = gb + i * qrow;
          const float* o = out + (bk.t0 + i) * qrow + h * hd;
          float D = 0;
          for (int64_t d = 0; d < hd; ++d) D += go[d] * o[d];
          float* r = ds.data() + i * bk.span;
          const float* pi = pr.data() + i * bk.span;
          for (int64_t j = 0; j < bk.span; ++j) r[j] = p.scale * pi[j] * (r[j] - D);
        }
        sgemm(false, false, bk.n, hd, bk.span, ds.data(), bk.span, kb, kvrow, dq + bk.t0 * qrow + h * hd, qrow, false, gs);
        sgemm(true, false, bk.span, hd, bk.n, ds.data(), bk.span, qb, qrow, dk + bk.lo * kvrow + kvh * hd, kvrow, true, gs);
        sgemm(true, false, bk.span, hd, bk.n, pr.data(), bk.span, gb, qrow, dv + bk.lo * kvrow + kvh * hd, kvrow, true, gs);
      }
  });
}

}  // namespace corral
