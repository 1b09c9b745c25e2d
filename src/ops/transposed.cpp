#include "ops/transposed.h"

#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "backend/cpu/repack.h"
#include "core/env.h"
#include "core/fp16.h"
#include "format/quant.h"
#include "ops/packed.h"
#include "ops/matmul.h"

namespace corral {

void weight_row_f32(const TensorView& w, int64_t r, float* out) {
  if (!w.repacked) return dequantize_row(w.type, w.row(r), out, w.ne[0]);
  std::vector<uint8_t> plain(w.row_size());
  packed_layout(w.type, w.ne[0])->row(w, r, plain.data());
  dequantize_row(w.type, plain.data(), out, w.ne[0]);
}

Expected<std::unique_ptr<TransposedWeight>> transpose_weight(const TensorView& w, ThreadPool* pool) {
  if (w.ne[2] != 1 || w.ne[3] != 1) return make_error("transpose_weight: 2-d weights only");
  const int64_t I = w.ne[0], O = w.ne[1];
  const bool f32 = w.type == DType::F32 || env_flag("CORRAL_BACKWARD_F32");
  // A quantized base's transpose in Q8_0 (its rows re-quantized along the other axis, 8 bits
  // per value against the base's own 4-6): the activation gradients then run on the same int8
  // kernels as the forward. F16/BF16 bases keep exact BF16 transposes.
  const bool quantized = w.type != DType::F16 && w.type != DType::BF16 && !f32;
  const bool q8 = quantized && O % 32 == 0 && !env_flag("CORRAL_BACKWARD_BF16");
  const DType as = f32 ? DType::F32 : q8 ? DType::Q8_0 : DType::BF16;
  auto t = std::make_unique<TransposedWeight>();
  t->view.type = as;
  t->view.ne = {O, I, 1, 1};
  t->view.n_dims = 2;
  const size_t esz = f32 ? 4 : 2;
  const size_t q8_row = row_bytes(DType::Q8_0, O);
  t->bytes.resize(q8 ? q8_row * size_t(I) : size_t(O) * size_t(I) * esz);
  uint8_t* dst = t->bytes.data();
  constexpr int64_t kRows = 64;
  auto block = [&](int64_t c) {
    std::vector<float> rows(size_t(kRows * I));
    const int64_t o0 = c * kRows, o1 = std::min(O, o0 + kRows);
    for (int64_t o = o0; o < o1; ++o) weight_row_f32(w, o, rows.data() + (o - o0) * I);
    for (int64_t i = 0; i < I; ++i)
      for (int64_t o = o0; o < o1; ++o) {
        const float v = rows[size_t((o - o0) * I + i)];
        const size_t at = size_t(i) * size_t(O) + size_t(o);
        if (f32)
          std::memcpy(dst + at * 4, &v, 4);
        else {
          const uint16_t b = f32_to_bf16(v);
          std::memcpy(dst + at * 2, &b, 2);
        }
      }
  };
  // Q8_0: 64 rows of the base are 64 values of every transposed row, two whole Q8_0 blocks
  // (O is a multiple of 32), quantized in place.
  auto block_q8 = [&](int64_t c) {
    std::vector<float> rows(size_t(kRows * I)), vals(static_cast<size_t>(kRows));
    const int64_t o0 = c * kRows, o1 = std::min(O, o0 + kRows);
    for (int64_t o = o0; o < o1; ++o) weight_row_f32(w, o, rows.data() + (o - o0) * I);
    const size_t at = size_t(o0 / 32) * sizeof(BlockQ8_0);
    for (int64_t i = 0; i < I; ++i) {
      for (int64_t o = o0; o < o1; ++o) vals[size_t(o - o0)] = rows[size_t((o - o0) * I + i)];
      quantize_row(DType::Q8_0, vals.data(), dst + size_t(i) * q8_row + at, o1 - o0);
    }
  };
  const int64_t n = (O + kRows - 1) / kRows;
  const std::function<void(int64_t)> fill = q8 ? std::function<void(int64_t)>(block_q8) : block;
  if (pool)
    pool->parallel_for(n, fill);
  else
    for (int64_t c = 0; c < n; ++c) fill(c);
  t->view.data = t->bytes.data();
  if (repack_supported(t->view)) {
    std::vector<uint8_t> packed(repacked_bytes(t->view));
    repack_weight(t->view, packed.data(), pool);
    t->bytes = std::move(packed);
    t->view.data = t->bytes.data();
    t->view.repacked = true;
    // CORRAL_BACKWARD_PLAIN=1 keeps the plain Q8_0 layout (the same outputs, slower).
    if (offset_q8_0_supported(t->view) && !env_flag("CORRAL_BACKWARD_PLAIN")) {
      offset_q8_0_levels(t->bytes.data(), t->bytes.size());
      t->layout = &packed_q8_0_offset();
    }
  }
  return t;
}

void multiply_transposed(Context& ctx, const TransposedWeight& wt, const float* x, int64_t T, float* y,
                         MatmulScratch& s) {
  if (!wt.layout) return matmul(ctx, wt.view, x, T, y, s);
  wt.layout->multiply(ctx, {MatmulTarget{&wt.view, y}}, x, T, s);
}

}  // namespace corral
