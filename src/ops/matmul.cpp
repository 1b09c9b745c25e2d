#include "ops/matmul.h"

#include <algorithm>
#include <cstring>

#include "backend/cpu/kernels.h"
#include "format/quant.h"

namespace corral {

void matmul(Context& ctx, const TensorView& w, const float* x, int64_t n_tok, float* y,
            MatmulScratch& scratch) {
  const KernelTable& k = kernels_best();
  const int64_t n_in = w.ne[0], n_out = w.ne[1];
  const DType at = act_type(w.type);
  const DotFn dot = k.dot[uint32_t(w.type)];
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
    ctx.pool->parallel_for(n_tok, [&](int64_t t) { q(x + t * n_in, dst + size_t(t) * act_row, n_in); });
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
        for (int64_t t = t0; t < t1; ++t) y[t * n_out + r] = dot(n_in, wr, act + size_t(t) * act_row);
      }
    }
  });
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
