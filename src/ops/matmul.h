// y = W x for a batch of activation rows, W in any directly supported weight type.
// Shapes: W ne = {in, out}; x f32 [n_tok][in]; y f32 [n_tok][out] (row stride out).
#pragma once
#include <cstdint>
#include <initializer_list>
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

// True unless CORRAL_BATCH_VARIANT is set: every token's result is then bitwise independent of
// the other tokens in the call (see matmul() and attention()).
bool batch_invariant();

void matmul(Context& ctx, const TensorView& w, const float* x, int64_t n_tok, float* y,
            MatmulScratch& scratch);

// Several weights applied to the same input (Q, K and V; gate and up): y_i = W_i x. Repacked
// weights of one type share one activation quantization and one pass over the pool (fewer
// hand-offs per decoded token); anything else runs as separate matmuls.
struct MatmulTarget {
  const TensorView* w;
  float* y;  // [n_tok][w->ne[1]]
};
void matmul_shared_input(Context& ctx, std::initializer_list<MatmulTarget> targets, const float* x,
                         int64_t n_tok, MatmulScratch& scratch);

// Single-threaded reference: dequantizes each weight row and accumulates in double.
void matmul_reference(const TensorView& w, const float* x, int64_t n_tok, float* y);

}  // namespace corral
