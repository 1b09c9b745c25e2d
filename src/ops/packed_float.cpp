// The packed float layouts: F16/BF16/F32 by column (the vector kernels) and BF16 as AMX tiles.
#include <algorithm>

#include "backend/cpu/kernels.h"
#include "backend/cpu/repack.h"
#include "ops/packed.h"
#include "ops/packed_walk.h"

namespace corral {
namespace {

using packed_detail::matmul_gemm;

// Repacked F16/BF16/F32: up to 8 tokens through gemv16 (4 groups per call for one token, so four
// chains hide the multiply-add latency; 2 groups x up to 4 tokens otherwise), more through the
// f32 GEMM. Both give every output the same k-ordered fused multiply-adds: batch-invariant.
void columns_one(Context& ctx, const TensorView& w, const float* x, int64_t T, float* y,
                 MatmulScratch& s) {
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
      packed_detail::store_rows(y, N, g0 * 8, cnt * 8, o, t0, nt);
    }
  });
}

// BF16 on the AMX table (repack.h's tile layout): every token count through the tiles (one token
// is a tile of one row), so each output is the same arithmetic in any batch. A target's odd last
// group (column layout) takes gemv16 for every token count.
void bf16_tiles_one(Context& ctx, const TensorView& w, const float* x, int64_t T, float* y,
                    MatmulScratch& s) {
  const KernelTable& k = kernels_best();
  const int64_t K = w.ne[0], N = w.ne[1], groups = N / 8;
  const int64_t T16 = (T + 15) / 16 * 16;
  s.act.assign(size_t(T16 * K) * 2 * sizeof(uint16_t), 0);
  uint16_t* xh = reinterpret_cast<uint16_t*>(s.act.data());
  uint16_t* xl = xh + T16 * K;
  // Block-major (kernels.h): token t's 32-value chunk q at (t / 16) * 16 * K + 512 q + (t % 16)
  // * 32.
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
      packed_detail::store_rows(y, N, gi * 8, 8, o, t0, nt);
    }
  });
}

void columns_multiply(Context& ctx, std::initializer_list<MatmulTarget> targets, const float* x,
                      int64_t T, MatmulScratch& s) {
  for (const MatmulTarget& t : targets) columns_one(ctx, *t.w, x, T, t.y, s);
}
void bf16_tiles_multiply(Context& ctx, std::initializer_list<MatmulTarget> targets, const float* x,
                         int64_t T, MatmulScratch& s) {
  for (const MatmulTarget& t : targets) bf16_tiles_one(ctx, *t.w, x, T, t.y, s);
}
void columns_row(const TensorView& w, int64_t r, void* out) {
  if (w.type == DType::F32)
    return repacked_f32_row(static_cast<const uint8_t*>(w.data), w.ne[0], r,
                            static_cast<float*>(out));
  repacked_16bit_row(w.type, static_cast<const uint8_t*>(w.data), w.ne[0], w.ne[1], r,
                     static_cast<uint16_t*>(out));
}

}  // namespace

const PackedLayout& packed_columns() {
  static const PackedLayout l{"columns x8", columns_multiply, columns_row};
  return l;
}
const PackedLayout& packed_bf16_tiles() {
  static const PackedLayout l{"bf16 tiles amx", bf16_tiles_multiply, columns_row};
  return l;
}

}  // namespace corral
