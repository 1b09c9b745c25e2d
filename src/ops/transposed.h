// A frozen weight's transpose, for backward passes: dx = W^T dy is then a plain matmul with W^T
// ({out, in} -> {in, out}), on the same kernels (and tiles) as the forward. The copy is F32 for
// F32 weights (exact) and BF16 for every other type (the precision QLoRA computes in; exact for
// BF16 weights).
#pragma once
#include <memory>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "ops/matmul.h"

namespace corral {

struct PackedLayout;

struct TransposedWeight {
  std::vector<uint8_t> bytes;
  TensorView view;  // {n_out, n_in}: n_in rows of n_out values
  // A training-only packing of the copy (ops/packed.h's Q8_0 offset layout), else nullptr: the
  // copy is then a plain (possibly repacked) weight for matmul().
  const PackedLayout* layout = nullptr;
};

// y = W^T x for x [T][n_out]: y [T][n_in].
void multiply_transposed(Context& ctx, const TransposedWeight& wt, const float* x, int64_t T, float* y,
                         MatmulScratch& s);

// CORRAL_BACKWARD_F32=1 keeps every transpose in F32 (slower, for checks).
Expected<std::unique_ptr<TransposedWeight>> transpose_weight(const TensorView& w, ThreadPool* pool);

// Row r of a weight (repacked or not) as f32. out: [w.ne[0]]
void weight_row_f32(const TensorView& w, int64_t r, float* out);

}  // namespace corral
