#include "model/layers/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "backend/cpu/kernels.h"
#include "core/fp16.h"
#include "format/quant.h"
#include "ops/matmul.h"

namespace corral {

void kv_store(KvStore& kv, const AttnParams& p, const std::vector<BatchToken>& batch,
              const float* k, const float* v) {
  const int64_t row = p.n_head_kv * p.head_dim, bs = kv.block_size();
  const bool f16 = kv.type() == DType::F16;
  const size_t esz = f16 ? 2 : 4;
  for (size_t t = 0; t < batch.size(); ++t) {
    const int32_t b = kv.blocks(batch[t].seq)[size_t(batch[t].pos / bs)];
    const size_t off = size_t(batch[t].pos % bs) * size_t(row) * esz;
    uint8_t* kd = kv.k_block(p.layer, b) + off;
    uint8_t* vd = kv.v_block(p.layer, b) + off;
    const float* ks = k + int64_t(t) * row;
    const float* vs = v + int64_t(t) * row;
    if (f16) {
      auto* k16 = reinterpret_cast<uint16_t*>(kd);
      auto* v16 = reinterpret_cast<uint16_t*>(vd);
      for (int64_t i = 0; i < row; ++i) k16[i] = f32_to_fp16(ks[i]), v16[i] = f32_to_fp16(vs[i]);
    } else {
      std::memcpy(kd, ks, size_t(row) * 4);
      std::memcpy(vd, vs, size_t(row) * 4);
    }
  }
}

namespace {

// Queries handled together: up to kMaxTokens consecutive tokens of one sequence times the query
// heads of one KV head (GQA). Per item, scores = Q K^T and out = P V run as small GEMMs on the
// f32 micro-kernel: each cached K/V row is converted and packed once for all of the item's
// queries.
constexpr int64_t kMaxTokens = 8;
// Per-thread score buffer cap (floats): long contexts take fewer tokens per item.
constexpr int64_t kScoreBudget = int64_t(1) << 22;
// Positions per packed V panel.
constexpr int64_t kVChunk = 256;

struct TokenBlock {
  int64_t t0, n;
};

int64_t round_up(int64_t x, int64_t m) {
  return (x + m - 1) / m * m;
}

// Softmax of scale * s over [a, e); entries of [0, span) outside it get weight 0.
void softmax_window(float* s, int64_t a, int64_t e, int64_t span, float scale) {
  float mx = -INFINITY;
  for (int64_t i = a; i < e; ++i) mx = std::max(mx, s[i] * scale);
  double sum = 0;
  for (int64_t i = a; i < e; ++i) sum += (s[i] = std::exp(s[i] * scale - mx));
  const float inv = float(1.0 / sum);
  for (int64_t i = 0; i < a; ++i) s[i] = 0.f;
  for (int64_t i = a; i < e; ++i) s[i] *= inv;
  for (int64_t i = e; i < span; ++i) s[i] = 0.f;
}

}  // namespace

void attention(Context& ctx, KvStore& kv, const AttnParams& p, const std::vector<BatchToken>& batch,
               const float* q, float* out, ForwardScratch& scratch) {
  const int64_t T = int64_t(batch.size()), hd = p.head_dim, row = p.n_head_kv * hd;
  const int64_t bs = kv.block_size(), group = p.n_head / p.n_head_kv;
  const bool f16 = kv.type() == DType::F16;
  const size_t esz = f16 ? 2 : 4;
  const KernelTable& k = kernels_best();
  const int64_t MR = k.gemm_mr, NR = k.gemm_nr;
  const DequantFn deq16 = k.dequant[uint32_t(DType::F16)];
  const DotFn dot = k.dot[uint32_t(DType::F32)];
  const AxpyFn axpy = k.axpy_f32;
  int64_t max_pos = 0;
  for (auto& b : batch) max_pos = std::max<int64_t>(max_pos, std::max(b.pos + 1, b.span));
  const int64_t max_tok =
      std::clamp<int64_t>(kScoreBudget / std::max<int64_t>(1, group * max_pos), 1, kMaxTokens);
  std::vector<TokenBlock> blocks;
  for (int64_t t = 0; t < T;) {
    int64_t n = 1;
    while (n < max_tok && t + n < T && batch[size_t(t + n)].seq == batch[size_t(t)].seq) ++n;
    blocks.push_back({t, n});
    t += n;
  }
  const int64_t nq_max = round_up(max_tok * group, MR), ld_s = round_up(max_pos, NR) + NR;
  const int64_t hd_pad = round_up(hd, NR), n_dp = hd_pad / NR;
  // Per thread: Q [nq][hd], S [nq][ld_s], acc [nq][hd_pad], K panel [hd][NR],
  // V panels [n_dp][kVChunk][NR], one converted row [hd].
  const size_t per_thread =
      size_t(nq_max * hd + nq_max * ld_s + nq_max * hd_pad + hd * NR + n_dp * kVChunk * NR + hd);
  if (scratch.att_scores.size() < per_thread * size_t(ctx.pool->size()))
    scratch.att_scores.resize(per_thread * size_t(ctx.pool->size()));
  std::atomic<int64_t> next{0};
  const int64_t items = int64_t(blocks.size()) * p.n_head_kv;
  ctx.pool->run_on_all([&](int ti, int) {
    float* qp = scratch.att_scores.data() + per_thread * size_t(ti);
    float* sc = qp + nq_max * hd;
    float* acc = sc + nq_max * ld_s;
    float* kp = acc + nq_max * hd_pad;
    float* vp = kp + hd * NR;
    float* rowf = vp + n_dp * kVChunk * NR;
    for (int64_t item; (item = next.fetch_add(1)) < items;) {
      const TokenBlock& tb = blocks[size_t(item / p.n_head_kv)];
      const int64_t kvh = item % p.n_head_kv, nq = tb.n * group, nq_pad = round_up(nq, MR);
      const auto& kvb = kv.blocks(batch[size_t(tb.t0)].seq);
      // Query j: token tb.t0 + j / group, head kvh * group + j % group; it sees [p0, p1).
      int64_t p0[kMaxTokens], p1[kMaxTokens], lo = INT64_MAX, hi = 0;
      for (int64_t i = 0; i < tb.n; ++i) {
        const int64_t pos = batch[size_t(tb.t0 + i)].pos, span = batch[size_t(tb.t0 + i)].span;
        p1[i] = span > 0 ? span : pos + 1;
        p0[i] = p.chunk > 0 ? (pos / p.chunk) * p.chunk : 0;
        lo = std::min(lo, p0[i]);
        hi = std::max(hi, p1[i]);
      }
      for (int64_t j = 0; j < nq_pad; ++j) {
        if (j < nq)
          std::memcpy(qp + j * hd,
                      q + (tb.t0 + j / group) * p.n_head * hd + (kvh * group + j % group) * hd,
                      size_t(hd) * 4);
        else
          std::fill(qp + j * hd, qp + (j + 1) * hd, 0.f);
      }
      auto cached_row = [&](bool is_v, int64_t pos) -> const float* {
        const int32_t b = kvb[size_t(pos / bs)];
        const uint8_t* r = (is_v ? kv.v_block(p.layer, b) : kv.k_block(p.layer, b)) +
                           (size_t(pos % bs) * size_t(row) + size_t(kvh * hd)) * esz;
        if (!f16) return reinterpret_cast<const float*>(r);
        if (deq16)
          deq16(r, rowf, hd);
        else
          dequantize_row(DType::F16, r, rowf, hd);
        return rowf;
      };
      const int64_t span = hi - lo;
      // The row-wise decode path is quicker for one token but reduces in another order than
      // the GEMM path, so with batch invariance every token takes the GEMM path.
      if (tb.n == 1 && !batch_invariant()) {
        // Decode, row by row (the GEMM's packing costs more than it saves for one token): each
        // cached row converted once, dotted with every query, then added to every accumulator.
        for (int64_t pos = lo; pos < hi; ++pos) {
          const float* kr = cached_row(false, pos);
          for (int64_t j = 0; j < nq; ++j) sc[j * ld_s + (pos - lo)] = dot(hd, kr, qp + j * hd);
        }
        for (int64_t j = 0; j < nq; ++j) softmax_window(sc + j * ld_s, 0, span, span, p.scale);
        std::fill(acc, acc + nq * hd_pad, 0.f);
        for (int64_t pos = lo; pos < hi; ++pos) {
          const float* vr = cached_row(true, pos);
          for (int64_t j = 0; j < nq; ++j)
            axpy(hd, sc[j * ld_s + (pos - lo)], vr, acc + j * hd_pad);
        }
      } else {
        // S[j][pos - lo] = q_j . k_pos, NR positions per packed K panel (zeros past hi).
        for (int64_t c0 = lo; c0 < hi; c0 += NR) {
          for (int64_t c = 0; c < NR; ++c) {
            if (c0 + c < hi) {
              const float* kr = cached_row(false, c0 + c);
              for (int64_t d = 0; d < hd; ++d) kp[d * NR + c] = kr[d];
            } else {
              for (int64_t d = 0; d < hd; ++d) kp[d * NR + c] = 0.f;
            }
          }
          for (int64_t r = 0; r < nq_pad; r += MR)
            k.gemm_micro(hd, qp + r * hd, hd, kp, sc + r * ld_s + (c0 - lo), ld_s, false);
        }
        // Softmax over each query's own window; everything else in [lo, hi) gets weight 0.
        for (int64_t j = 0; j < nq_pad; ++j) {
          if (j < nq)
            softmax_window(sc + j * ld_s, p0[j / group] - lo, p1[j / group] - lo, span, p.scale);
          else
            std::fill(sc + j * ld_s, sc + j * ld_s + span, 0.f);
        }
        // acc = P V, V packed per chunk of positions into n_dp panels of NR dimensions.
        for (int64_t c0 = lo; c0 < hi; c0 += kVChunk) {
          const int64_t kc = std::min(kVChunk, hi - c0);
          for (int64_t c = 0; c < kc; ++c) {
            const float* vr = cached_row(true, c0 + c);
            for (int64_t dp = 0; dp < n_dp; ++dp)
              for (int64_t d = 0; d < NR; ++d)
                vp[(dp * kVChunk + c) * NR + d] = dp * NR + d < hd ? vr[dp * NR + d] : 0.f;
          }
          for (int64_t r = 0; r < nq_pad; r += MR)
            for (int64_t dp = 0; dp < n_dp; ++dp)
              k.gemm_micro(kc, sc + r * ld_s + (c0 - lo), ld_s, vp + dp * kVChunk * NR,
                           acc + r * hd_pad + dp * NR, hd_pad, c0 > lo);
        }
      }
      for (int64_t j = 0; j < nq; ++j)
        std::memcpy(out + (tb.t0 + j / group) * p.n_head * hd + (kvh * group + j % group) * hd,
                    acc + j * hd_pad, size_t(hd) * 4);
    }
  });
}

}  // namespace corral
