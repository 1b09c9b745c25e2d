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

namespace corral {

namespace {

// Most weights one matmul_shared_input call fuses into one pass (Q, K, V).
constexpr size_t kMaxFusedTargets = 4;

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
      for (int64_t r = 0; r < nr; ++r)
        for (int64_t j = 0; j < ng * NR; ++j) {
          const int64_t t = g0 * NR + j;
          if (t < T) y[t * N + r0 + r] = ct[r * TB + j];
        }
    }
  });
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
      for (int64_t t = t_begin + tb * kTok; t < std::min(Tp, t_begin + (tb + 1) * kTok); t += per_call) {
        tile(j, gi, t, o, n_g == 2);
        for (int h = 0; h < n_g; ++h)
          for (int64_t tt = 0; tt < per_call && t + tt < T; ++tt)
            for (int i = 0; i < 8; ++i) y[(t + tt) * N + (gi + h) * 8 + i] = o[h * 32 + tt * 8 + i];
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

// Repacked F16/BF16/F32: up to 8 tokens through gemv16 (4 groups per call for one token, so four
// chains hide the multiply-add latency; 2 groups x up to 4 tokens otherwise), more through the
// f32 GEMM. Both give every output the same k-ordered fused multiply-adds: batch-invariant.
// Repacked BF16 on the AMX table (repack.h's tile layout): every token count through the tiles
// (one token is a tile with 15 zero rows), so each output is the same arithmetic in any batch. A
// target's odd last group (column layout) takes gemv16 for every token count.
bool matmul_bf16_amx(Context& ctx, const TensorView& w, const float* x, int64_t T, float* y,
                     MatmulScratch& s) {
  const KernelTable& k = kernels_best();
  const int64_t K = w.ne[0], N = w.ne[1], groups = N / 8;
  if (!bf16_tile_layout(w.type, K)) return false;
  const int64_t T16 = (T + 15) / 16 * 16;
  s.act.assign(size_t(T16 * K) * 2 * sizeof(uint16_t), 0);
  uint16_t* xh = reinterpret_cast<uint16_t*>(s.act.data());
  uint16_t* xl = xh + T16 * K;
  // Block-major (kernels.h): token t's 32-value chunk q at (t / 16) * 16 * K + 512 q + (t % 16) * 32.
  ctx.pool->parallel_for(T, [&](int64_t t) {
    const int64_t off = t / 16 * 16 * K + t % 16 * 32;
    for (int64_t q = 0; q < K / 32; ++q)
      k.split_bf16(x + t * K + 32 * q, 32, xh + off + 512 * q, xl + off + 512 * q);
  });
  const size_t gbytes = repacked_group_bytes(w.type, K);
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  const Gemv16Fn gemv = k.gemv16[uint32_t(w.type)];
  // Two row pairs (32 rows) per item across the pool; the odd last group through gemv16.
  const int64_t pairs = groups / 2;
  ctx.pool->parallel_for((pairs + 1) / 2 + groups % 2, [&](int64_t item) {
    const int64_t p0 = item * 2;
    if (p0 < pairs) {
      const int np = int(std::min<int64_t>(2, pairs - p0));
      return k.amx_bf16(K, base + size_t(p0 * 2) * gbytes, gbytes, np, xh, xl, T, y + p0 * 16, N);
    }
    const int64_t gi = groups - 1;
    float o[4 * 8];
    for (int64_t t0 = 0; t0 < T; t0 += 4) {
      const int nt = int(std::min<int64_t>(4, T - t0));
      gemv(K, base + size_t(gi) * gbytes, gbytes, 1, x + t0 * K, K, nt, o);
      for (int t = 0; t < nt; ++t)
        for (int r = 0; r < 8; ++r) y[(t0 + t) * N + gi * 8 + r] = o[t * 8 + r];
    }
  });
  return true;
}

void matmul_16bit_repacked(Context& ctx, const TensorView& w, const float* x, int64_t T, float* y,
                           MatmulScratch& s) {
  if (w.type == DType::BF16 && matmul_bf16_amx(ctx, w, x, T, y, s)) return;
  constexpr int64_t kMaxGemvTokens = 8;
  if (T > kMaxGemvTokens) return matmul_gemm(ctx, w, x, T, y, s);
  const KernelTable& k = kernels_best();
  const Gemv16Fn gemv = k.gemv16[uint32_t(w.type)];
  const int64_t K = w.ne[0], N = w.ne[1], groups = N / 8;
  const size_t gbytes = repacked_group_bytes(w.type, K);
  const int ng = T == 1 ? 4 : 2;
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  ctx.pool->parallel_for((groups + ng - 1) / ng, [&](int64_t item) {
    const int64_t g0 = item * ng;
    const int cnt = int(std::min<int64_t>(ng, groups - g0));
    float o[4 * 4 * 8];
    for (int64_t t0 = 0; t0 < T; t0 += 4) {
      const int nt = int(std::min<int64_t>(4, T - t0));
      gemv(K, base + size_t(g0) * gbytes, gbytes, cnt, x + t0 * K, K, nt, o);
      for (int t = 0; t < nt; ++t)
        for (int g = 0; g < cnt; ++g)
          for (int r = 0; r < 8; ++r) y[(t0 + t) * N + (g0 + g) * 8 + r] = o[(t * cnt + g) * 8 + r];
    }
  });
}

// Repacked Q4_0/Q8_0/Q4_K weights (one type and input width across targets): decode (one token
// per kernel call) and prompts (8 rows x 4 tokens per call).
void matmul_repacked(Context& ctx, std::initializer_list<MatmulTarget> targets, const float* x,
                     int64_t T, MatmulScratch& s) {
  const TensorView& w0 = *targets.begin()->w;
  if (repacked_by_column(w0.type)) {
    for (const MatmulTarget& t : targets) matmul_16bit_repacked(ctx, *t.w, x, T, t.y, s);
    return;
  }
  const KernelTable& k = kernels_best();
  const int64_t K = w0.ne[0], nb = K / 32;
  const MatmulTarget* tg = targets.begin();
  // The 4-token kernels do per token exactly what the decode kernels do (batch invariance), so
  // any batch of a few tokens (several sequences decoding at once) takes them.
  const bool prompt = T >= 3;
  const int64_t per_call = prompt ? 4 : 1, Tp = (T + per_call - 1) / per_call * per_call;
  const size_t gbytes = repacked_group_bytes(w0.type, K);
  auto group = [&](size_t j, int64_t gi) {
    return static_cast<const uint8_t*>(tg[j].w->data) + size_t(gi) * gbytes;
  };
  if (w0.type == DType::Q4_K) {
    const size_t arow = quantize_activations_q8k(ctx, x, K, T, Tp, s);
    const uint8_t* act = s.act.data();
    int64_t t_amx = 0;
    if (k.amx_pair_q4_k && T >= 16 && std::getenv("CORRAL_NO_AMX") == nullptr) {
      t_amx = T / 16 * 16;
      for_each_amx_pair(ctx, targets, [&](size_t j, int64_t gi, float* y, int64_t N, bool pair) {
        if (pair) return k.amx_pair_q4_k(K, group(j, gi), gbytes, act, arow, t_amx, y + gi * 8, N);
        float o[32];
        for (int64_t t = 0; t < t_amx; t += 4) {
          k.gemm_q4_kx8(K, group(j, gi), act + size_t(t) * arow, arow, o);
          for (int64_t tt = 0; tt < 4; ++tt)
            for (int i = 0; i < 8; ++i) y[(t + tt) * N + gi * 8 + i] = o[tt * 8 + i];
        }
      });
      if (t_amx == T) return;
    }
    for_each_repacked_tile(
        ctx, targets, T, per_call, false,
        [&](size_t j, int64_t gi, int64_t t, float* o, bool) {
          if (prompt)
            k.gemm_q4_kx8(K, group(j, gi), act + size_t(t) * arow, arow, o);
          else
            k.gemv_q4_kx8(K, group(j, gi), act + size_t(t) * arow, o);
        },
        t_amx);
    return;
  }
  quantize_activations(ctx, x, K, T, Tp, s);
  const int8_t* xq = s.xq.data();
  const float *xd = s.xd.data(), *xs = s.xs.data();
  const bool q8 = w0.type == DType::Q8_0;
  const RepackedPairFn pair = (q8 ? k.pair_q8_0 : k.pair_q4_0)[prompt ? 1 : 0];
  // AMX: whole tiles of 16 tokens against pairs of groups; the tokens left over (and a target's
  // odd last group) take the kernels below. Every output is the same arithmetic either way.
  const AmxPairFn amx = q8 ? k.amx_pair_q8_0 : k.amx_pair_q4_0;
  int64_t t_amx = 0;
  if (amx && T >= 16 && std::getenv("CORRAL_NO_AMX") == nullptr) {
    t_amx = T / 16 * 16;
    // Levels row-major as quantized (a block-major copy, whose tile loads touch 8 lines instead
    // of 16, measured 10-20% slower with its copy included).
    for_each_amx_pair(ctx, targets, [&](size_t j, int64_t gi, float* y, int64_t N, bool pair) {
      if (pair) return amx(K, group(j, gi), gbytes, xq, K, 32, xd, xs, nb, t_amx, y + gi * 8, N);
      float o[64];  // an odd last group: the one-group 4-token kernel
      for (int64_t t = 0; t < t_amx; t += 4) {
        if (q8)
          k.gemm_q8_0x8x4(K, group(j, gi), xq + t * K, K, xd + t * nb, nb, o);
        else
          k.gemm_q4_0x8x4(K, group(j, gi), xq + t * K, K, xd + t * nb, xs + t * nb, nb, o);
        for (int64_t tt = 0; tt < 4; ++tt)
          for (int i = 0; i < 8; ++i) y[(t + tt) * N + gi * 8 + i] = o[tt * 8 + i];
      }
    });
    if (t_amx == T) return;
  }
  for_each_repacked_tile(
      ctx, targets, T, per_call, pair != nullptr,
      [&](size_t j, int64_t gi, int64_t t, float* o, bool two) {
        if (two)
          pair(K, group(j, gi), gbytes, xq + t * K, K, xd + t * nb, xs + t * nb, nb, o);
        else if (q8 && prompt)
          k.gemm_q8_0x8x4(K, group(j, gi), xq + t * K, K, xd + t * nb, nb, o);
        else if (q8)
          k.gemv_q8_0x8(K, group(j, gi), xq + t * K, xd + t * nb, o);
        else if (prompt)
          k.gemm_q4_0x8x4(K, group(j, gi), xq + t * K, K, xd + t * nb, xs + t * nb, nb, o);
        else
          k.gemv_q4_0x8(K, group(j, gi), xq + t * K, xd + t * nb, xs + t * nb, o);
      },
      t_amx);
}

// Prompt-sized batches over Q8_0/Q4_0/Q4_K weights: integer GEMM. A 16-row panel is unpacked
// to per-block levels/scales/offsets once per 128-token block; activations become s8 blocks.
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
  if (w.repacked) {  // repack_supported() guarantees the kernels exist
    matmul_repacked(ctx, {MatmulTarget{&w, y}}, x, n_tok, scratch);
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
    matmul_repacked(ctx, targets, x, n_tok, scratch);
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
