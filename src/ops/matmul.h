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
};

void matmul(Context& ctx, const TensorView& w, const float* x, int64_t n_tok, float* y,
            MatmulScratch& scratch);

// Single-threaded reference: dequantizes each weight row and accumulates in double.
void matmul_reference(const TensorView& w, const float* x, int64_t n_tok, float* y);

}  // namespace corral
