// Dense causal attention over a packed training sequence, forward and backward side by side
// (the serving path, attention.h, reads a paged KV cache instead). Documents packed into one
// sequence do not see each other: token t attends to [start[t], t].
// Shapes: q, dq [T][n_head * hd]; k, v, dk, dv [T][n_kv * hd]; out, dout [T][n_head * hd];
// lse [n_head][T] (the log-sum-exp of each query's scaled scores, kept so the backward
// recomputes the probabilities instead of storing T x T of them).
#pragma once
#include <cstdint>

#include "core/context.h"

namespace corral {

struct DenseAttention {
  int64_t n_head = 0, n_kv = 0, hd = 0;
  float scale = 1.f;
};

void causal_attention_forward(Context& ctx, const DenseAttention& p, int64_t T, const int32_t* start,
                              const float* q, const float* k, const float* v, float* out, float* lse);

// dq, dk, dv are overwritten. Each KV head's gradients come from one thread in a fixed order,
// so the result does not depend on the thread count.
void causal_attention_backward(Context& ctx, const DenseAttention& p, int64_t T, const int32_t* start,
                               const float* q, const float* k, const float* v, const float* out,
                               const float* lse, const float* dout, float* dq, float* dk, float* dv);

}  // namespace corral
