// SwiGLU feed-forward: down(silu(gate x) * up x), for a batch of rows.
#pragma once
#include <cmath>
#include <functional>

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

// Called after each projection's matmul (0: gate, 1: up, 2: down) with its input and output,
// [T][n_in] and [T][n_out]: where LoRA adds its term.
using ProjectionHook = std::function<void(int which, const float* in, int64_t n_in, float* out, int64_t n_out)>;

// x: [T][n_embd] -> out: [T][n_embd]. g, u: scratch of T*n_ff floats each.
inline void swiglu(Context& ctx, const TensorView& gate, const TensorView& up,
                   const TensorView& down, const float* x, int64_t T, float* out,
                   std::vector<float>& g, std::vector<float>& u, MatmulScratch& mm,
                   const ProjectionHook* hook = nullptr) {
  const int64_t n_ff = gate.ne[1], n_embd = gate.ne[0];
  if (g.size() < size_t(T * n_ff)) g.resize(size_t(T * n_ff));
  if (u.size() < size_t(T * n_ff)) u.resize(size_t(T * n_ff));
  matmul_shared_input(ctx, {{&gate, g.data()}, {&up, u.data()}}, x, T, mm);
  if (hook) (*hook)(0, x, n_embd, g.data(), n_ff), (*hook)(1, x, n_embd, u.data(), n_ff);
  for (int64_t i = 0; i < T * n_ff; ++i) g[size_t(i)] = silu(g[size_t(i)]) * u[size_t(i)];
  matmul(ctx, down, g.data(), T, out, mm);
  if (hook) (*hook)(2, g.data(), n_ff, out, n_embd);
}

}  // namespace corral
