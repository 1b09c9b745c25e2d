// Internal to ops/: the work splits the packed layouts share (8-row groups across the pool,
// pairs of groups for the AMX tiles), the activation quantizers of the integer layouts, and the
// f32 GEMM the column layout hands large batches to.
#pragma once
#include <algorithm>
#include <initializer_list>

#include "ops/matmul.h"

namespace corral::packed_detail {

// Most weights one matmul_shared_input call fuses into one pass (Q, K, V).
constexpr size_t kMaxFusedTargets = 4;

// A kernel's outputs for tokens t .. t + n - 1, o[tt * cols + c], into y ([T][N]) at columns
// c0 .. c0 + cols - 1.
inline void store_rows(float* y, int64_t N, int64_t c0, int64_t cols, const float* o, int64_t t,
                       int64_t n) {
  for (int64_t tt = 0; tt < n; ++tt)
    std::copy(o + tt * cols, o + (tt + 1) * cols, y + (t + tt) * N + c0);
}

// Walks the 8-row groups of one or more repacked weights (one output each) across the pool in
// panels of 8 groups x 64-token blocks (a panel's weights stay in cache across its tokens).
// tile(j, gi, t, out, two) fills out[tt * 8 + i] for target j's group gi and tokens t ..
// t + per_call - 1, and with two (only where pairs is set) out[32 + tt * 8 + i] for group gi + 1;
// rows of padding tokens (t >= T) are dropped.
// Tokens before t_begin (a multiple of per_call) are left alone (the AMX tiles did them).
template <class Tile>
void for_each_repacked_tile(Context& ctx, std::initializer_list<MatmulTarget> targets, int64_t T,
                            int64_t per_call, bool pairs, Tile&& tile, int64_t t_begin = 0) {
  constexpr int64_t kPanel = 8, kTok = 64;  // kTok is a multiple of every per_call (1, 4)
  int64_t first[kMaxFusedTargets + 1] = {
      0};  // target j owns global groups [first[j], first[j + 1])
  const MatmulTarget* tg = targets.begin();
  const size_t n = targets.size();
  for (size_t j = 0; j < n; ++j) first[j + 1] = first[j] + tg[j].w->ne[1] / 8;
  const int64_t groups = first[n], Tp = (T + per_call - 1) / per_call * per_call;
  if (t_begin >= Tp) return;
  const int64_t panels = (groups + kPanel - 1) / kPanel, tblocks = (Tp - t_begin + kTok - 1) / kTok;
  ctx.pool->parallel_for(panels * tblocks, [&](int64_t item) {
    const int64_t p = item / tblocks, tb = item % tblocks;
    float o[64];
    size_t j = 0;
    const int64_t g_end = std::min(groups, (p + 1) * kPanel);
    for (int64_t g = p * kPanel; g < g_end;) {
      while (g >= first[j + 1]) ++j;
      const int64_t gi = g - first[j], N = tg[j].w->ne[1];
      const int n_g = pairs && g + 1 < g_end && g + 1 < first[j + 1] ? 2 : 1;
      float* y = tg[j].y;
      for (int64_t t = t_begin + tb * kTok; t < std::min(Tp, t_begin + (tb + 1) * kTok);
           t += per_call) {
        tile(j, gi, t, o, n_g == 2);
        for (int h = 0; h < n_g; ++h)
          store_rows(y, N, (gi + h) * 8, 8, o + h * 32, t, std::min(per_call, T - t));
      }
      g += n_g;
    }
  });
}

// The AMX work items: each pair of 8-row groups of every target (and a target's odd last group
// alone), across the pool. fn(j, gi, y, N, pair): target j's groups gi (and gi + 1 when pair).
template <class Fn>
void for_each_amx_pair(Context& ctx, std::initializer_list<MatmulTarget> targets, Fn&& fn) {
  const MatmulTarget* tg = targets.begin();
  const size_t n = targets.size();
  int64_t first[kMaxFusedTargets + 1] = {0};  // target j owns work items [first[j], first[j + 1])
  for (size_t j = 0; j < n; ++j) first[j + 1] = first[j] + (tg[j].w->ne[1] / 8 + 1) / 2;
  ctx.pool->parallel_for(first[n], [&](int64_t item) {
    size_t j = 0;
    while (item >= first[j + 1]) ++j;
    const int64_t gi = (item - first[j]) * 2, N = tg[j].w->ne[1];
    fn(j, gi, tg[j].y, N, gi + 1 < N / 8);
  });
}

// Activations as s8 blocks for the Q4_0/Q8_0 kernels ([Tp][K] levels, [Tp][K/32] scales and sums;
// padding tokens are zero).
void quantize_activations(Context& ctx, const float* x, int64_t K, int64_t T, int64_t Tp,
                          MatmulScratch& s);
// Activations as Q8_K rows for the Q4_K kernels (padding tokens are zero); returns the row bytes.
size_t quantize_activations_q8k(Context& ctx, const float* x, int64_t K, int64_t T, int64_t Tp,
                                MatmulScratch& s);
// The blocked f32 GEMM (matmul.cpp), which also reads repacked 16-bit weights.
void matmul_gemm(Context& ctx, const TensorView& w, const float* x, int64_t T, float* y,
                 MatmulScratch& s);

}  // namespace corral::packed_detail
