// SwiGLU feed-forward: down(silu(gate x) * up x), for a batch of rows.
#pragma once
#include <cmath>

#include "core/context.h"
#include "core/tensor.h"
#include "ops/matmul.h"

namespace corral {

inline float silu(float x) {
  return x / (1.f + std::exp(-x));
}

// Backward of a = silu(g) * u, elementwise over n values: dg = da u silu'(g), du = da silu(g),
// with silu'(g) = sigmoid(g) (1 + g (1 - sigmoid(g))).
inline void swiglu_backward(const float* g, const float* u, const float* da, int64_t n, float* dg,
                            float* du) {
  for (int64_t i = 0; i < n; ++i) {
    const float sg = 1.f / (1.f + std::exp(-g[i]));
    du[i] = da[i] * g[i] * sg;
    dg[i] = da[i] * u[i] * sg * (1.f + g[i] * (1.f - sg));
  }
}

// x: [T][n_embd] -> out: [T][n_embd]. g, u: scratch of T*n_ff floats each.
inline void swiglu(Context& ctx, const TensorView& gate, const TensorView& up,
                   const TensorView& down, const float* x, int64_t T, float* out,
                   std::vector<float>& g, std::vector<float>& u, MatmulScratch& mm) {
  const int64_t n_ff = gate.ne[1];
  if (g.size() < size_t(T * n_ff)) g.resize(size_t(T * n_ff));
  if (u.size() < size_t(T * n_ff)) u.resize(size_t(T * n_ff));
  matmul_shared_input(ctx, {{&gate, g.data()}, {&up, u.data()}}, x, T, mm);
  for (int64_t i = 0; i < T * n_ff; ++i) g[size_t(i)] = silu(g[size_t(i)]) * u[size_t(i)];
  matmul(ctx, down, g.data(), T, out, mm);
}

}  // namespace corral
