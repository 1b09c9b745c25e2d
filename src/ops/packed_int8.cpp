// The packed integer layouts: Q4_0 and Q8_0 (s8 activation blocks) and Q4_K (Q8_K activations)
// in 8-row groups. The vector implementation takes 1 token (decode) or 4 (prompts) per kernel
// call, two groups at once where the table has pair kernels; the AMX implementation runs whole
// tiles of 16 tokens over pairs of groups and hands the tokens left over to the vector one.
// Every output is the same arithmetic either way (the tiles equal the pair kernels bitwise).
#include <algorithm>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/repack.h"
#include "ops/packed.h"
#include "ops/packed_walk.h"

namespace corral {
namespace {

using namespace packed_detail;

// Tokens per kernel call: the 4-token kernels do per token exactly what the decode kernels do
// (batch invariance), so any batch of a few tokens (several sequences decoding) takes them.
int64_t per_call(int64_t T) {
  return T >= 3 ? 4 : 1;
}
int64_t padded(int64_t T) {
  return (T + per_call(T) - 1) / per_call(T) * per_call(T);
}
const uint8_t* group_of(const MatmulTarget* tg, size_t j, int64_t gi, size_t gbytes) {
  return static_cast<const uint8_t*>(tg[j].w->data) + size_t(gi) * gbytes;
}

// ---- Q4_0 / Q8_0: activations quantized into s.xq / s.xd / s.xs ----
void s8_vector_tokens(Context& ctx, std::initializer_list<MatmulTarget> targets, int64_t T,
                      int64_t t_begin, MatmulScratch& s) {
  const KernelTable& k = kernels_best();
  const MatmulTarget* tg = targets.begin();
  const TensorView& w0 = *tg->w;
  const int64_t K = w0.ne[0], nb = K / 32;
  const size_t gbytes = repacked_group_bytes(w0.type, K);
  const bool prompt = per_call(T) == 4, q8 = w0.type == DType::Q8_0;
  const int8_t* xq = s.xq.data();
  const float *xd = s.xd.data(), *xs = s.xs.data();
  const RepackedPairFn pair = (q8 ? k.pair_q8_0 : k.pair_q4_0)[prompt ? 1 : 0];
  for_each_repacked_tile(
      ctx, targets, T, per_call(T), pair != nullptr,
      [&](size_t j, int64_t gi, int64_t t, float* o, bool two) {
        const uint8_t* g = group_of(tg, j, gi, gbytes);
        if (two)
          pair(K, g, gbytes, xq + t * K, K, xd + t * nb, xs + t * nb, nb, o);
        else if (q8 && prompt)
          k.gemm_q8_0x8x4(K, g, xq + t * K, K, xd + t * nb, nb, o);
        else if (q8)
          k.gemv_q8_0x8(K, g, xq + t * K, xd + t * nb, o);
        else if (prompt)
          k.gemm_q4_0x8x4(K, g, xq + t * K, K, xd + t * nb, xs + t * nb, nb, o);
        else
          k.gemv_q4_0x8(K, g, xq + t * K, xd + t * nb, xs + t * nb, o);
      },
      t_begin);
}

void s8_vector_multiply(Context& ctx, std::initializer_list<MatmulTarget> targets, const float* x,
                        int64_t T, MatmulScratch& s) {
  quantize_activations(ctx, x, targets.begin()->w->ne[0], T, padded(T), s);
  s8_vector_tokens(ctx, targets, T, 0, s);
}

void s8_amx_multiply(Context& ctx, std::initializer_list<MatmulTarget> targets, const float* x,
                     int64_t T, MatmulScratch& s) {
  const KernelTable& k = kernels_best();
  const MatmulTarget* tg = targets.begin();
  const TensorView& w0 = *tg->w;
  const int64_t K = w0.ne[0], nb = K / 32;
  const size_t gbytes = repacked_group_bytes(w0.type, K);
  const bool q8 = w0.type == DType::Q8_0;
  quantize_activations(ctx, x, K, T, padded(T), s);
  const int64_t t_amx = T / 16 * 16;
  if (t_amx > 0) {
    const int8_t* xq = s.xq.data();
    const float *xd = s.xd.data(), *xs = s.xs.data();
    const AmxPairFn amx = q8 ? k.amx_pair_q8_0 : k.amx_pair_q4_0;
    // Levels row-major as quantized (a block-major copy, whose tile loads touch 8 lines instead
    // of 16, measured 10-20% slower with its copy included).
    for_each_amx_pair(ctx, targets, [&](size_t j, int64_t gi, float* y, int64_t N, bool pair) {
      const uint8_t* g = group_of(tg, j, gi, gbytes);
      if (pair) return amx(K, g, gbytes, xq, K, 32, xd, xs, nb, t_amx, y + gi * 8, N);
      float o[64];  // an odd last group: the one-group 4-token kernel
      for (int64_t t = 0; t < t_amx; t += 4) {
        if (q8)
          k.gemm_q8_0x8x4(K, g, xq + t * K, K, xd + t * nb, nb, o);
        else
          k.gemm_q4_0x8x4(K, g, xq + t * K, K, xd + t * nb, xs + t * nb, nb, o);
        store_rows(y, N, gi * 8, 8, o, t, 4);
      }
    });
  }
  if (t_amx < T) s8_vector_tokens(ctx, targets, T, t_amx, s);
}

// ---- Q4_K: Q8_K activation rows in s.act ----
void q4k_vector_tokens(Context& ctx, std::initializer_list<MatmulTarget> targets, int64_t T,
                       int64_t t_begin, size_t arow, MatmulScratch& s) {
  const KernelTable& k = kernels_best();
  const MatmulTarget* tg = targets.begin();
  const int64_t K = tg->w->ne[0];
  const size_t gbytes = repacked_group_bytes(DType::Q4_K, K);
  const bool prompt = per_call(T) == 4;
  const uint8_t* act = s.act.data();
  for_each_repacked_tile(
      ctx, targets, T, per_call(T), false,
      [&](size_t j, int64_t gi, int64_t t, float* o, bool) {
        if (prompt)
          k.gemm_q4_kx8(K, group_of(tg, j, gi, gbytes), act + size_t(t) * arow, arow, o);
        else
          k.gemv_q4_kx8(K, group_of(tg, j, gi, gbytes), act + size_t(t) * arow, o);
      },
      t_begin);
}

void q4k_vector_multiply(Context& ctx, std::initializer_list<MatmulTarget> targets, const float* x,
                         int64_t T, MatmulScratch& s) {
  const size_t arow = quantize_activations_q8k(ctx, x, targets.begin()->w->ne[0], T, padded(T), s);
  q4k_vector_tokens(ctx, targets, T, 0, arow, s);
}

void q4k_amx_multiply(Context& ctx, std::initializer_list<MatmulTarget> targets, const float* x,
                      int64_t T, MatmulScratch& s) {
  const KernelTable& k = kernels_best();
  const MatmulTarget* tg = targets.begin();
  const int64_t K = tg->w->ne[0];
  const size_t gbytes = repacked_group_bytes(DType::Q4_K, K);
  const size_t arow = quantize_activations_q8k(ctx, x, K, T, padded(T), s);
  const uint8_t* act = s.act.data();
  const int64_t t_amx = T / 16 * 16;
  if (t_amx > 0)
    for_each_amx_pair(ctx, targets, [&](size_t j, int64_t gi, float* y, int64_t N, bool pair) {
      const uint8_t* g = group_of(tg, j, gi, gbytes);
      if (pair) return k.amx_pair_q4_k(K, g, gbytes, act, arow, t_amx, y + gi * 8, N);
      float o[32];
      for (int64_t t = 0; t < t_amx; t += 4) {
        k.gemm_q4_kx8(K, g, act + size_t(t) * arow, arow, o);
        store_rows(y, N, gi * 8, 8, o, t, 4);
      }
    });
  if (t_amx < T) q4k_vector_tokens(ctx, targets, T, t_amx, arow, s);
}

// ---- Q6_K: pairs of groups (rows a multiple of 16), 4 tokens per call for prompts ----
void q6k_vector_multiply(Context& ctx, std::initializer_list<MatmulTarget> targets, const float* x,
                         int64_t T, MatmulScratch& s) {
  const KernelTable& k = kernels_best();
  const MatmulTarget* tg = targets.begin();
  const int64_t K = tg->w->ne[0], pc = per_call(T), Tp = padded(T);
  const size_t gbytes = repacked_group_bytes(DType::Q6_K, K);
  const size_t arow = quantize_activations_q8k(ctx, x, K, T, Tp, s);
  const uint8_t* act = s.act.data();
  const Q6KPairFn kern = k.pair_q6_k[pc == 4 ? 1 : 0];
  for_each_amx_pair(ctx, targets, [&](size_t j, int64_t gi, float* y, int64_t N, bool) {
    const uint8_t* g = group_of(tg, j, gi, gbytes);
    float o[4 * 16];
    for (int64_t t = 0; t < Tp; t += pc) {
      kern(K, g, gbytes, act + size_t(t) * arow, arow, o);
      store_rows(y, N, gi * 8, 16, o, t, std::min(pc, T - t));
    }
  });
}

// ---- Q8_0 in the offset layout (training's transposes): levels + 128 as u8 ----
void q8_0_offset_multiply(Context& ctx, std::initializer_list<MatmulTarget> targets, const float* x,
                          int64_t T, MatmulScratch& s) {
  const KernelTable& k = kernels_best();
  const MatmulTarget* tg = targets.begin();
  const int64_t K = tg->w->ne[0], nb = K / 32, Tp = (T + 3) / 4 * 4;
  const size_t gbytes = repacked_group_bytes(DType::Q8_0, K);
  quantize_activations(ctx, x, K, T, Tp, s);
  // xs (unused by Q8_0) becomes 128 * sum(levels) per block, exact in float (|.| < 2^20).
  ctx.pool->parallel_for(T, [&](int64_t t) {
    for (int64_t b = 0; b < nb; ++b) {
      int32_t sum = 0;
      for (int i = 0; i < 32; ++i) sum += s.xq[size_t(t * K + 32 * b + i)];
      s.xs[size_t(t * nb + b)] = float(128 * sum);
    }
  });
  const int8_t* xq = s.xq.data();
  const float *xd = s.xd.data(), *xs = s.xs.data();
  for_each_repacked_tile(ctx, targets, T, 4, true, [&](size_t j, int64_t gi, int64_t t, float* o, bool) {
    k.pair_q8_0_offset(K, group_of(tg, j, gi, gbytes), gbytes, xq + t * K, K, xd + t * nb, xs + t * nb,
                       nb, o);
  });
}

void offset_row(const TensorView& w, int64_t r, void* out) {
  // The group back in the plain repacked layout, then its row.
  const int64_t K = w.ne[0];
  const size_t gbytes = repacked_group_bytes(DType::Q8_0, K);
  std::vector<uint8_t> g(static_cast<const uint8_t*>(w.data) + size_t(r / 8) * gbytes,
                         static_cast<const uint8_t*>(w.data) + size_t(r / 8 + 1) * gbytes);
  offset_q8_0_levels(g.data(), g.size());
  repacked_q8_0_row(g.data(), K, r % 8, static_cast<uint8_t*>(out));
}

void block_row(const TensorView& w, int64_t r, void* out) {
  const auto* d = static_cast<const uint8_t*>(w.data);
  auto* o = static_cast<uint8_t*>(out);
  if (w.type == DType::Q4_K) return repacked_q4_k_row(d, w.ne[0], r, o);
  if (w.type == DType::Q6_K) return repacked_q6_k_row(d, w.ne[0], r, o);
  if (w.type == DType::Q8_0) return repacked_q8_0_row(d, w.ne[0], r, o);
  repacked_q4_0_row(d, w.ne[0], r, o);
}

}  // namespace

const PackedLayout& packed_q4_0_vector() {
  static const PackedLayout l{"q4_0x8 vector", s8_vector_multiply, block_row};
  return l;
}
const PackedLayout& packed_q8_0_vector() {
  static const PackedLayout l{"q8_0x8 vector", s8_vector_multiply, block_row};
  return l;
}
const PackedLayout& packed_q4_k_vector() {
  static const PackedLayout l{"q4_kx8 vector", q4k_vector_multiply, block_row};
  return l;
}
const PackedLayout& packed_q6_k_vector() {
  static const PackedLayout l{"q6_kx16 vector", q6k_vector_multiply, block_row};
  return l;
}
const PackedLayout& packed_q4_0_amx() {
  static const PackedLayout l{"q4_0x8 amx", s8_amx_multiply, block_row};
  return l;
}
const PackedLayout& packed_q8_0_amx() {
  static const PackedLayout l{"q8_0x8 amx", s8_amx_multiply, block_row};
  return l;
}
const PackedLayout& packed_q8_0_offset() {
  static const PackedLayout l{"q8_0x8 offset", q8_0_offset_multiply, offset_row};
  return l;
}
bool offset_q8_0_supported(const TensorView& w) {
  return w.type == DType::Q8_0 && w.repacked && w.ne[1] % 16 == 0 && kernels_best().pair_q8_0_offset;
}
void offset_q8_0_levels(uint8_t* data, size_t bytes) {
  // Groups are runs of kQ8_0GroupBytes (16 bytes of scales, then 256 of levels) per block.
  for (size_t at = 0; at + kQ8_0GroupBytes <= bytes; at += kQ8_0GroupBytes)
    for (size_t i = 16; i < kQ8_0GroupBytes; ++i) data[at + i] ^= 0x80;
}
const PackedLayout& packed_q4_k_amx() {
  static const PackedLayout l{"q4_kx8 amx", q4k_amx_multiply, block_row};
  return l;
}

}  // namespace corral
