#include "backend/cpu/repack.h"

#include <cstring>

#include "backend/cpu/gemm_int8.h"
#include "backend/cpu/kernels.h"
#include "format/quant.h"

namespace corral {

bool repack_supported(const TensorView& w) {
  // Prompts over a repacked weight go through the integer GEMM, so its limits apply too.
  return w.type == DType::Q4_0 && !w.repacked && w.rows() % 8 == 0 && w.ne[0] % 32 == 0 &&
         w.ne[0] <= kInt8MaxBlocks * 32 && kernels_best().gemv_q4_0x8 != nullptr &&
         kernels_best().int8_micro != nullptr;
}

void repack_q4_0x8(const TensorView& w, uint8_t* dst, ThreadPool* pool) {
  const int64_t K = w.ne[0], nb = K / 32, rows = w.rows();
  auto group = [&](int64_t g) {
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* o = dst + size_t(g * nb + b) * 144;
      for (int i = 0; i < 8; ++i) {
        const auto* blk = reinterpret_cast<const BlockQ4_0*>(w.row(g * 8 + i)) + b;
        std::memcpy(o + 2 * i, &blk->d, 2);
        for (int c = 0; c < 4; ++c) std::memcpy(o + 16 + 32 * c + 4 * i, blk->qs + 4 * c, 4);
      }
    }
  };
  if (pool) {
    pool->parallel_for(rows / 8, group);
  } else {
    for (int64_t g = 0; g < rows / 8; ++g) group(g);
  }
}

void repacked_q4_0_row(const uint8_t* data, int64_t K, int64_t r, uint8_t* out) {
  const int64_t nb = K / 32, g = r / 8, i = r % 8;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* in = data + size_t(g * nb + b) * 144;
    auto* blk = reinterpret_cast<BlockQ4_0*>(out) + b;
    std::memcpy(&blk->d, in + 2 * i, 2);
    for (int c = 0; c < 4; ++c) std::memcpy(blk->qs + 4 * c, in + 16 + 32 * c + 4 * i, 4);
  }
}

}  // namespace corral
