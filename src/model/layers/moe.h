// Llama 4 mixture of experts: top-k of a linear router; the sigmoid of each chosen score
// scales that expert's *input*; plus a shared expert on every token. Tokens are grouped by
// expert so prompt processing runs one matmul per active expert, and decode touches only the
// chosen experts' weights.
#pragma once
#include <vector>

#include "core/context.h"
#include "model/layers/mlp.h"
#include "model/model.h"

namespace corral {

// x: [T][n_embd] (normed) -> out: [T][n_embd].
// hook: LoRA on the shared expert's projections (the routed experts take none).
void moe_forward(Context& ctx, const LayerWeights& w, const HParams& hp, const float* x, int64_t T,
                 float* out, ForwardScratch& s, const ProjectionHook* hook = nullptr);

}  // namespace corral
