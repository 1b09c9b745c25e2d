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
// The routing of T tokens from router logits [T][NE]: per token the top k (ties to the lower
// expert), ex[t * k + j] its experts and sc[t * k + j] the sigmoid of their scores. Serving and
// training route through this one function, so they choose the same experts.
void moe_route(const float* logits, int64_t T, int64_t NE, int64_t k, int32_t* ex, float* sc);

// hook: LoRA on the shared expert's projections (the routed experts take none).
void moe_forward(Context& ctx, const LayerWeights& w, const HParams& hp, const float* x, int64_t T,
                 float* out, ForwardScratch& s, const ProjectionHook* hook = nullptr);

}  // namespace corral
