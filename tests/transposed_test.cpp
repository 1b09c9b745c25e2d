// Training's transposed copies of frozen weights (ops/transposed.h): dx = W^T dy against a float64
// reference, and the Q8_0 offset layout (levels + 128) bitwise the plain Q8_0 layout's outputs.
#include "ops/transposed.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/cpu/kernels.h"
#include "core/context.h"
#include "format/quant.h"
#include "ops/packed.h"
#include "test_util.h"

namespace corral {
namespace {

struct Weight {
  std::vector<uint8_t> bytes;
  std::vector<float> deq;  // [n_out][n_in], what the file's rows decode to
  TensorView view;
};
Weight quantized(DType t, int64_t n_in, int64_t n_out, uint32_t seed) {
  Weight w;
  const auto wf = test::randn(n_in * n_out, seed);
  const size_t rb = row_bytes(t, n_in);
  w.bytes.resize(rb * size_t(n_out));
  w.deq.resize(wf.size());
  for (int64_t r = 0; r < n_out; ++r) {
    quantize_row(t, wf.data() + r * n_in, w.bytes.data() + size_t(r) * rb, n_in);
    dequantize_row(t, w.bytes.data() + size_t(r) * rb, w.deq.data() + r * n_in, n_in);
  }
  w.view.data = w.bytes.data();
  w.view.type = t;
  w.view.ne = {n_in, n_out, 1, 1};
  w.view.n_dims = 2;
  return w;
}

std::vector<float> multiply(Context& ctx, const TransposedWeight& wt, const std::vector<float>& dy,
                            int64_t T) {
  std::vector<float> y(size_t(T * wt.view.ne[1]));
  MatmulScratch s;
  multiply_transposed(ctx, wt, dy.data(), T, y.data(), s);
  return y;
}

TEST(Transposed, QuantizedBasesMatchAFloat64ReferenceAndTheOffsetLayoutIsBitwisePlain) {
  Context ctx(2);
  const int64_t n_in = 256, n_out = 128, T = 37;  // dy [T][n_out] -> dx [T][n_in]
  const auto dy = test::randn(T * n_out, 7);
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    const Weight w = quantized(t, n_in, n_out, 11);
    auto offset = transpose_weight(w.view, ctx.pool.get());
    ASSERT_TRUE(offset.is_ok()) << offset.message();
    std::unique_ptr<TransposedWeight> plain;
    {
      test::ScopedEnv env("CORRAL_BACKWARD_PLAIN", "1");
      auto p = transpose_weight(w.view, ctx.pool.get());
      ASSERT_TRUE(p.is_ok());
      plain = std::move(*p);
    }
    ASSERT_EQ(plain->layout, nullptr);
    const bool has_offset = kernels_best().pair_q8_0_offset != nullptr;
    EXPECT_EQ((*offset)->layout != nullptr, has_offset) << type_name(t);
    const auto y = multiply(ctx, **offset, dy, T);
    // The Q8_0 copy re-quantizes the base along the other axis: within 1% of the scale of the sum.
    for (int64_t tk = 0; tk < T; ++tk)
      for (int64_t i = 0; i < n_in; ++i) {
        double ref = 0, mag = 0;
        for (int64_t o = 0; o < n_out; ++o) {
          const double p = double(w.deq[size_t(o * n_in + i)]) * dy[size_t(tk * n_out + o)];
          ref += p;
          mag += std::fabs(p);
        }
        ASSERT_NEAR(y[size_t(tk * n_in + i)], ref, 1e-2 * mag)
            << type_name(t) << " token " << tk << " column " << i;
      }
    // Bitwise the plain layout's outputs, for every token count (padding tokens included).
    for (int64_t n : {int64_t(1), int64_t(2), int64_t(5), T}) {
      const std::vector<float> part(dy.begin(), dy.begin() + n * n_out);
      const auto a = multiply(ctx, **offset, part, n), b = multiply(ctx, *plain, part, n);
      for (size_t k = 0; k < a.size(); ++k)
        ASSERT_EQ(a[k], b[k]) << type_name(t) << " T=" << n << " at " << k;
    }
    if ((*offset)->layout) {
      // Rows read back through the offset layout equal the plain copy's rows.
      const PackedLayout* pl = packed_layout(DType::Q8_0, n_out);
      std::vector<uint8_t> ra(row_bytes(DType::Q8_0, n_out)), rb(ra.size());
      for (int64_t r = 0; r < n_in; ++r) {
        (*offset)->layout->row((*offset)->view, r, ra.data());
        pl->row(plain->view, r, rb.data());
        ASSERT_EQ(ra, rb) << "row " << r;
      }
    }
  }
}

}  // namespace
}  // namespace corral
