// A LoRA term on a projection, forward and backward: y += s B (A x), s = alpha / r.
// Shapes: x [T][n_in], y [T][n_out], A [r][n_in], B [n_out][r], ax [T][r] (kept for backward).
// Every output element is one thread's fixed-order sum, so results do not depend on the thread
// count or on the other tokens (batch invariance).
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "format/lora.h"

namespace corral {

struct LoraView {
  const float* a = nullptr;  // [r][n_in]
  const float* b = nullptr;  // [n_out][r]
  int64_t n_in = 0, n_out = 0, r = 0;
  float scale = 0;
};

// ax = A x; y += s B ax.
void lora_forward(Context& ctx, const LoraView& m, const float* x, int64_t T, float* ax, float* y);

// Given dy: dB += s dy^T ax, dA += (s B^T dy)^T x, and dx += (s B^T dy) A when dx is not null.
// dax: scratch [T][r].
void lora_backward(Context& ctx, const LoraView& m, const float* x, int64_t T, const float* ax,
                   const float* dy, float* dA, float* dB, float* dx, float* dax);

struct BatchToken;
struct ForwardScratch;
struct LayerWeights;
struct Model;

// The projection LoRA target t (kLoraQ .. kLoraDown, format/lora.h) names in a layer, and what
// an adapter must match in a model (per layer dims, shared-expert layers).
// On Llama 4's MoE layers gate/up/down name the shared expert (the routed experts stay frozen).
const TensorView& lora_projection(const LayerWeights& w, int t);
LoraBaseShape lora_base_shape(const Model& m);

// The adapters of a serving batch: each token through its own adapter's A and B (its rows
// gathered per adapter, multiplied, added back), tokens without one untouched. A token's result
// depends on nothing else in the batch. No-op when no token names an adapter.
// x [T][n_in] (the projection's input), y [T][n_out] (its output, added to).
void lora_apply_batch(Context& ctx, const std::vector<BatchToken>& batch, ForwardScratch& s,
                      int64_t layer, int target, const float* x, int64_t n_in, float* y, int64_t n_out);

}  // namespace corral
