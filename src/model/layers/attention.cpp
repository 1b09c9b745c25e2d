#include "model/layers/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "backend/cpu/kernels.h"
#include "core/fp16.h"
#include "format/quant.h"

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
// heads of one KV head (GQA), so each cached K/V row is converted and loaded once per item
// instead of once per query.
constexpr int64_t kMaxTokens = 8;
// Per-thread score buffer cap (floats): long contexts take fewer tokens per item.
constexpr int64_t kScoreBudget = int64_t(1) << 22;

struct TokenBlock {
  int64_t t0, n;
};

}  // namespace

void attention(Context& ctx, KvStore& kv, const AttnParams& p, const std::vector<BatchToken>& batch,
               const float* q, float* out, ForwardScratch& scratch) {
  const int64_t T = int64_t(batch.size()), hd = p.head_dim, row = p.n_head_kv * hd;
  const int64_t bs = kv.block_size(), group = p.n_head / p.n_head_kv;
  const bool f16 = kv.type() == DType::F16;
  const size_t esz = f16 ? 2 : 4;
  const KernelTable& k = kernels_best();
  const DotFn dot = k.dot[uint32_t(DType::F32)];
  const AxpyFn axpy = k.axpy_f32;
  const DequantFn deq16 = k.dequant[uint32_t(DType::F16)];
  int64_t max_pos = 0;
  for (auto& b : batch) max_pos = std::max<int64_t>(max_pos, b.pos + 1);
  const int64_t max_tok =
      std::clamp<int64_t>(kScoreBudget / std::max<int64_t>(1, group * max_pos), 1, kMaxTokens);
  std::vector<TokenBlock> blocks;
  for (int64_t t = 0; t < T;) {
    int64_t n = 1;
    while (n < max_tok && t + n < T && batch[size_t(t + n)].seq == batch[size_t(t)].seq) ++n;
    blocks.push_back({t, n});
    t += n;
  }
  const int64_t nq_max = max_tok * group;
  const int nt = ctx.pool->size();
  // Per thread: scores [nq_max][max_pos], accumulators [nq_max][hd], one K or V row in f32.
  const size_t per_thread = size_t(nq_max) * size_t(max_pos + hd) + size_t(hd);
  if (scratch.att_scores.size() < per_thread * size_t(nt))
    scratch.att_scores.resize(per_thread * size_t(nt));
  std::atomic<int64_t> next{0};
  const int64_t items = int64_t(blocks.size()) * p.n_head_kv;
  ctx.pool->run_on_all([&](int ti, int) {
    float* sc = scratch.att_scores.data() + per_thread * size_t(ti);
    float* acc = sc + size_t(nq_max) * size_t(max_pos);
    float* rowf = acc + size_t(nq_max) * size_t(hd);
    for (int64_t item; (item = next.fetch_add(1)) < items;) {
      const TokenBlock& tb = blocks[size_t(item / p.n_head_kv)];
      const int64_t kvh = item % p.n_head_kv, nq = tb.n * group;
      const auto& kvb = kv.blocks(batch[size_t(tb.t0)].seq);
      // Query j: token tb.t0 + j / group, head kvh * group + j % group; it sees [p0[j], p1[j]).
      int64_t p0[kMaxTokens], p1[kMaxTokens], lo = INT64_MAX, hi = 0;
      for (int64_t i = 0; i < tb.n; ++i) {
        const int64_t pos = batch[size_t(tb.t0 + i)].pos;
        p1[i] = pos + 1;
        p0[i] = p.chunk > 0 ? (pos / p.chunk) * p.chunk : 0;
        lo = std::min(lo, p0[i]);
        hi = std::max(hi, p1[i]);
      }
      auto cached_row = [&](const uint8_t* base, int64_t pos) -> const float* {
        const uint8_t* r = base + (size_t(pos % bs) * size_t(row) + size_t(kvh * hd)) * esz;
        if (!f16) return reinterpret_cast<const float*>(r);
        if (deq16)
          deq16(r, rowf, hd);
        else
          dequantize_row(DType::F16, r, rowf, hd);
        return rowf;
      };
      auto query = [&](int64_t j) {
        return q + (tb.t0 + j / group) * p.n_head * hd + (kvh * group + j % group) * hd;
      };
      for (int64_t pos = lo; pos < hi; ++pos) {
        const float* kr = cached_row(kv.k_block(p.layer, kvb[size_t(pos / bs)]), pos);
        for (int64_t j = 0; j < nq; ++j) {
          const int64_t i = j / group;
          if (pos >= p0[i] && pos < p1[i]) sc[j * max_pos + pos] = dot(hd, kr, query(j)) * p.scale;
        }
      }
      for (int64_t j = 0; j < nq; ++j) {
        const int64_t i = j / group;
        float* s = sc + j * max_pos;
        float mx = -INFINITY;
        for (int64_t pos = p0[i]; pos < p1[i]; ++pos) mx = std::max(mx, s[pos]);
        double sum = 0;
        for (int64_t pos = p0[i]; pos < p1[i]; ++pos) {
          s[pos] = std::exp(s[pos] - mx);
          sum += s[pos];
        }
        const float inv = float(1.0 / sum);
        for (int64_t pos = p0[i]; pos < p1[i]; ++pos) s[pos] *= inv;
      }
      std::fill(acc, acc + nq * hd, 0.f);
      for (int64_t pos = lo; pos < hi; ++pos) {
        const float* vr = cached_row(kv.v_block(p.layer, kvb[size_t(pos / bs)]), pos);
        for (int64_t j = 0; j < nq; ++j) {
          const int64_t i = j / group;
          if (pos >= p0[i] && pos < p1[i]) axpy(hd, sc[j * max_pos + pos], vr, acc + j * hd);
        }
      }
      for (int64_t j = 0; j < nq; ++j)
        std::memcpy(out + (tb.t0 + j / group) * p.n_head * hd + (kvh * group + j % group) * hd,
                    acc + j * hd, size_t(hd) * 4);
    }
  });
}

}  // namespace corral
