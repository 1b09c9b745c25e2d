#include "ops/matmul.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "backend/cpu/gemm_int8.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/repack.h"
#include "core/fp16.h"
#include "format/quant.h"
#include "ops/packed.h"
#include "ops/packed_walk.h"

namespace corral {

namespace packed_detail {

// Prompt-sized batches: blocked GEMM. Weight rows are expanded to f32 one (64-row x 256-col)
// tile at a time and reused by up to 192 tokens; activations are packed [group][k][NR] once,
// so the micro-kernel streams both with unit stride. Activations stay f32 (no rounding).
void matmul_gemm(Context& ctx, const TensorView& w, const float* x, int64_t T, float* y,
                 MatmulScratch& s) {
  const KernelTable& k = kernels_best();
  const int64_t K = w.ne[0], N = w.ne[1], MR = k.gemm_mr, NR = k.gemm_nr;
  constexpr int64_t RP = 64, TB = 192, KC = 256;
  const int64_t groups = (T + NR - 1) / NR;
  s.packed.resize(size_t(groups * K * NR));
  float* xp = s.packed.data();
  ctx.pool->parallel_for(groups, [&](int64_t g) {
    float* dst = xp + g * K * NR;
    for (int64_t kk = 0; kk < K; ++kk)
      for (int64_t j = 0; j < NR; ++j) {
        const int64_t t = g * NR + j;
        dst[kk * NR + j] = t < T ? x[t * K + kk] : 0.f;
      }
  });
  const int64_t panels = (N + RP - 1) / RP, tblocks = (T + TB - 1) / TB;
  const int nt = ctx.pool->size();
  s.wtile.resize(size_t(nt) * RP * KC);
  s.ctile.resize(size_t(nt) * RP * TB);
  const size_t rb = w.row_size();
  const uint8_t* wd = static_cast<const uint8_t*>(w.data);
  std::atomic<int64_t> next{0};
  ctx.pool->run_on_all([&](int ti, int) {
    float* wt = s.wtile.data() + size_t(ti) * RP * KC;
    float* ct = s.ctile.data() + size_t(ti) * RP * TB;
    for (int64_t item; (item = next.fetch_add(1)) < panels * tblocks;) {
      const int64_t p = item / tblocks, tb = item % tblocks;
      const int64_t r0 = p * RP, nr = std::min(RP, N - r0);
      const int64_t nr_pad = (nr + MR - 1) / MR * MR;
      const int64_t g0 = tb * TB / NR, ng = std::min(TB / NR, groups - g0);
      for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = std::min(KC, K - k0);
        const DequantFn deq = k.dequant[uint32_t(w.type)];
        if (w.repacked) {  // F16/BF16/F32 in 8-row groups, k-major (backend/cpu/repack.h)
          const Unpack16Fn unpack = k.unpack16[uint32_t(w.type)];
          const size_t col = repacked_group_bytes(w.type, 1);  // bytes of one k of a group
          for (int64_t r = 0; r < nr; r += 8)
            unpack(reinterpret_cast<const uint16_t*>(
                       wd + (size_t((r0 + r) / 8) * size_t(K) + size_t(k0)) * col),
                   kc, wt + r * kc, kc);
        } else {
          for (int64_t r = 0; r < nr; ++r) {
            const uint8_t* src = wd + size_t(r0 + r) * rb + row_bytes(w.type, k0);
            if (deq)
              deq(src, wt + r * kc, kc);
            else
              dequantize_row(w.type, src, wt + r * kc, kc);
          }
        }
        for (int64_t r = nr; r < nr_pad; ++r) std::fill(wt + r * kc, wt + (r + 1) * kc, 0.f);
        for (int64_t r = 0; r < nr_pad; r += MR)
          for (int64_t g = 0; g < ng; ++g)
            k.gemm_micro(kc, wt + r * kc, kc, xp + ((g0 + g) * K + k0) * NR, ct + r * TB + g * NR,
                         TB, k0 > 0);
      }
      // Token-major so each write is a contiguous run of nr floats (y rows are N apart).
      const int64_t nt_blk = std::min(ng * NR, T - g0 * NR);
      for (int64_t j = 0; j < nt_blk; ++j) {
        float* yr = y + (g0 * NR + j) * N + r0;
        for (int64_t r = 0; r < nr; ++r) yr[r] = ct[r * TB + j];
      }
    }
  });
}

// Activations as s8 blocks for the Q4_0/Q8_0 kernels ([Tp][K] levels, [Tp][K/32] scales and sums;
// padding tokens are zero).
void quantize_activations(Context& ctx, const float* x, int64_t K, int64_t T, int64_t Tp,
                          MatmulScratch& s) {
  const int64_t nb = K / 32;
  s.xq.assign(size_t(Tp * K), 0);
  s.xd.assign(size_t(Tp * nb), 0.f);
  s.xs.assign(size_t(Tp * nb), 0.f);
  const QuantizeBlocksFn q = kernels_best().quantize_s8_blocks;
  ctx.pool->parallel_for(T, [&](int64_t t) {  // inline for a single token
    q(x + t * K, K, s.xq.data() + t * K, s.xd.data() + t * nb, s.xs.data() + t * nb, 1);
  });
}

// Activations as Q8_K rows for the Q4_K kernels (padding tokens are zero).
size_t quantize_activations_q8k(Context& ctx, const float* x, int64_t K, int64_t T, int64_t Tp,
                                MatmulScratch& s) {
  const size_t arow = row_bytes(DType::Q8_K, K);
  s.act.assign(arow * size_t(Tp), 0);
  const QuantizeActFn q = kernels_best().quantize_q8_k;
  ctx.pool->parallel_for(T, [&](int64_t t) { q(x + t * K, s.act.data() + size_t(t) * arow, K); });
  return arow;
}

}  // namespace packed_detail

namespace {

using packed_detail::kMaxFusedTargets;
using packed_detail::matmul_gemm;

void matmul_int8(Context& ctx, const TensorView& w, const float* x, int64_t T, float* y,
                 MatmulScratch& s, bool signed_levels) {
  const KernelTable& k = kernels_best();
  const int64_t K = w.ne[0], N = w.ne[1], nb = K / 32, Tp = (T + 3) / 4 * 4;
  constexpr int64_t RP = 16, TB = 128;
  s.xq.assign(size_t(Tp * K), 0);
  // Block scales and scaled sums interleaved per group of 4 tokens: [Tp/4][nb][4].
  s.xd.assign(size_t(Tp * nb), 0.f);
  s.xs.assign(size_t(Tp * nb), 0.f);
  ctx.pool->parallel_for(T, [&](int64_t t) {
    const int64_t g = t / 4, lane = t % 4;
    k.quantize_s8_blocks(x + t * K, K, s.xq.data() + t * K, s.xd.data() + g * nb * 4 + lane,
                         s.xs.data() + g * nb * 4 + lane, 4);
  });
  const int64_t panels = (N + RP - 1) / RP, tblocks = (Tp + TB - 1) / TB;
  const int nt = ctx.pool->size();
  s.lv.resize(size_t(nt * RP * K));
  s.wsc.resize(size_t(nt * RP * nb * 2));
  const size_t rb = w.row_size();
  const uint8_t* wd = static_cast<const uint8_t*>(w.data);
  std::atomic<int64_t> next{0};
  ctx.pool->run_on_all([&](int ti, int) {
    uint8_t* lv = s.lv.data() + size_t(ti) * RP * K;
    float* sc = s.wsc.data() + size_t(ti) * RP * nb * 2;
    float* off = sc + RP * nb;
    int64_t last_panel = -1;
    for (int64_t item; (item = next.fetch_add(1)) < panels * tblocks;) {
      const int64_t p = item / tblocks, tb = item % tblocks;
      const int64_t r0 = p * RP, nr = std::min(RP, N - r0);
      if (p != last_panel) {
        for (int64_t r = 0; r < RP; ++r) {
          if (r < nr) {
            int8_unpack_row(w.type, wd + size_t(r0 + r) * rb, K, lv + r * K, sc + r * nb,
                            off + r * nb, true);
          } else {
            std::fill(lv + r * K, lv + (r + 1) * K, uint8_t(0));
            std::fill(sc + r * nb, sc + (r + 1) * nb, 0.f);
            std::fill(off + r * nb, off + (r + 1) * nb, 0.f);
          }
        }
        last_panel = p;
      }
      const int64_t t_end = std::min(Tp, (tb + 1) * TB);
      float out[8];
      for (int64_t r = 0; r < nr; r += 2)
        for (int64_t t = tb * TB; t < t_end; t += 4) {
          k.int8_micro(signed_levels, nb, lv + r * K, K, sc + r * nb, off + r * nb, nb,
                       s.xq.data() + t * K, K, s.xd.data() + t * nb, s.xs.data() + t * nb, out);
          for (int64_t rr = 0; rr < 2 && r + rr < nr; ++rr)
            for (int64_t tt = 0; tt < 4 && t + tt < T; ++tt)
              y[(t + tt) * N + r0 + r + rr] = out[rr * 4 + tt];
        }
    }
  });
}

}  // namespace

bool batch_invariant() {
  static const bool on = std::getenv("CORRAL_BATCH_VARIANT") == nullptr;
  return on;
}

void matmul(Context& ctx, const TensorView& w, const float* x, int64_t n_tok, float* y,
            MatmulScratch& scratch) {
  const KernelTable& k = kernels_best();
  // Batch invariance: weights that are not repacked go through the per-token dot kernels
  // whatever n_tok is (the GEMMs below reduce over K in another order). Repacked weights keep
  // their prompt kernels, whose per-token arithmetic equals the decode kernels'.
  const bool gemm_ok = !batch_invariant();
  // KC chunks must start on block boundaries of the weight type.
  const int64_t blk = type_traits(w.type)->block_size;
  bool signed_levels = false;
  if (w.repacked) {  // its layout multiplies (repack_supported() guaranteed one)
    packed_layout(w.type, w.ne[0])->multiply(ctx, {MatmulTarget{&w, y}}, x, n_tok, scratch);
    return;
  }
  if (gemm_ok && n_tok >= 16 && k.int8_micro && int8_gemm_supports(w.type, &signed_levels) &&
      w.ne[0] % blk == 0 && w.ne[0] <= kInt8MaxBlocks * 32 &&
      std::getenv("CORRAL_NO_INT8_GEMM") == nullptr) {
    matmul_int8(ctx, w, x, n_tok, y, scratch, signed_levels);
    return;
  }
  if (gemm_ok && n_tok >= 16 && (256 % blk == 0) && w.ne[0] % blk == 0) {
    matmul_gemm(ctx, w, x, n_tok, y, scratch);
    return;
  }
  const int64_t n_in = w.ne[0], n_out = w.ne[1];
  const DType at = act_type(w.type);
  const DotFn dot = k.dot[uint32_t(w.type)];
  const Dot4Fn dot4 = k.dot4[uint32_t(w.type)];
  const size_t w_row = w.row_size();
  const uint8_t* wd = static_cast<const uint8_t*>(w.data);
  // Activations in the type the weight kernel consumes.
  const uint8_t* act = reinterpret_cast<const uint8_t*>(x);
  size_t act_row = size_t(n_in) * 4;
  if (at != DType::F32) {
    act_row = row_bytes(at, n_in);
    if (scratch.act.size() < act_row * size_t(n_tok)) scratch.act.resize(act_row * size_t(n_tok));
    const QuantizeActFn q = at == DType::Q8_0 ? k.quantize_q8_0 : k.quantize_q8_k;
    uint8_t* dst = scratch.act.data();
    ctx.pool->parallel_for(n_tok,
                           [&](int64_t t) { q(x + t * n_in, dst + size_t(t) * act_row, n_in); });
    act = dst;
  }
  // Work items: blocks of output rows; each weight row is reused across all tokens while hot.
  const int64_t rows_per = n_tok > 1 ? 8 : 32;
  const int64_t n_chunks = (n_out + rows_per - 1) / rows_per;
  const int64_t tok_block = 64;
  ctx.pool->parallel_for(n_chunks, [&](int64_t c) {
    const int64_t r0 = c * rows_per, r1 = std::min(n_out, r0 + rows_per);
    for (int64_t t0 = 0; t0 < n_tok; t0 += tok_block) {
      const int64_t t1 = std::min(n_tok, t0 + tok_block);
      for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* wr = wd + size_t(r) * w_row;
        int64_t t = t0;
        float o4[4];
        if (dot4)
          for (; t + 4 <= t1; t += 4) {
            dot4(n_in, wr, act + size_t(t) * act_row, act_row, o4);
            for (int j = 0; j < 4; ++j) y[(t + j) * n_out + r] = o4[j];
          }
        for (; t < t1; ++t) y[t * n_out + r] = dot(n_in, wr, act + size_t(t) * act_row);
      }
    }
  });
}

void matmul_shared_input(Context& ctx, std::initializer_list<MatmulTarget> targets, const float* x,
                         int64_t n_tok, MatmulScratch& scratch) {
  const TensorView& w0 = *targets.begin()->w;
  bool fused = w0.repacked && targets.size() <= kMaxFusedTargets;
  for (const MatmulTarget& t : targets)
    fused = fused && t.w->repacked && t.w->type == w0.type && t.w->ne[0] == w0.ne[0];
  if (fused) {
    packed_layout(w0.type, w0.ne[0])->multiply(ctx, targets, x, n_tok, scratch);
    return;
  }
  for (const MatmulTarget& t : targets) matmul(ctx, *t.w, x, n_tok, t.y, scratch);
}

void matmul_reference(const TensorView& w, const float* x, int64_t n_tok, float* y) {
  const int64_t n_in = w.ne[0], n_out = w.ne[1];
  std::vector<float> row(static_cast<size_t>(n_in));
  for (int64_t r = 0; r < n_out; ++r) {
    dequantize_row(w.type, w.row(r), row.data(), n_in);
    for (int64_t t = 0; t < n_tok; ++t) {
      double s = 0;
      for (int64_t i = 0; i < n_in; ++i) s += double(row[size_t(i)]) * x[t * n_in + i];
      y[t * n_out + r] = float(s);
    }
  }
}

}  // namespace corral
