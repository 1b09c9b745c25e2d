// y = W x for a batch of activation rows, W in any directly supported weight type.
// Shapes: W ne = {in, out}; x f32 [n_tok][in]; y f32 [n_tok][out] (row stride out).
#pragma once
#include <cstdint>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"

namespace corral {

// Reusable buffers for quantized activations, so the hot path does not allocate.
struct MatmulScratch {
  std::vector<uint8_t> act;
  std::vector<float> packed, wtile, ctile;
  std::vector<int8_t> xq;     // int8 GEMM: activation levels [T][K]
  std::vector<float> xd, xs;  // per-block scale and scale * sum
  std::vector<uint8_t> lv;    // per-thread unpacked weight panels
  std::vector<float> wsc;     // per-thread panel scales and offsets
};

void matmul(Context& ctx, const TensorView& w, const float* x, int64_t n_tok, float* y,
            MatmulScratch& scratch);

// Single-threaded reference: dequantizes each weight row and accumulates in double.
void matmul_reference(const TensorView& w, const float* x, int64_t n_tok, float* y);

}  // namespace corral
