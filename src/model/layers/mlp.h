// SwiGLU feed-forward: down(silu(gate x) * up x), for a batch of rows.
#pragma once
#include <cmath>
#include <algorithm>
#include <functional>

#include "backend/cpu/kernels.h"
#include "core/context.h"
#include "core/tensor.h"
#include "ops/matmul.h"

namespace corral {

inline float silu(float x) {
  return x / (1.f + std::exp(-x));
}

// Elementwise work over n values in pieces of kPiece, run on the pool when there are several
// (a prompt's [T][n_ff] activations), inline for one token's row. Each value's arithmetic is the
// same either way.
template <class F>
void elementwise(Context& ctx, int64_t n, const F& piece) {
  constexpr int64_t kPiece = 1024, kParallel = 64 * kPiece;
  if (n <= kParallel || !ctx.pool) {
    for (int64_t i = 0; i < n; i += kPiece) piece(i, std::min(kPiece, n - i));
    return;
  }
  const int64_t per = 16 * kPiece, items = (n + per - 1) / per;
  ctx.pool->parallel_for(items, [&](int64_t it) {
    const int64_t e = std::min(n, (it + 1) * per);
    for (int64_t i = it * per; i < e; i += kPiece) piece(i, std::min(kPiece, e - i));
  });
}

// a = silu(g) * u over n values (a may be g), with the kernel table's vector exp.
inline void silu_mul(Context& ctx, const float* g, const float* u, int64_t n, float* a) {
  const ExpFn ex = kernels_best().exp_f32;
  elementwise(ctx, n, [&](int64_t i0, int64_t m) {
    float e[1024];
    ex(m, g + i0, -1.f, 0.f, e);
    for (int64_t i = 0; i < m; ++i) a[i0 + i] = g[i0 + i] / (1.f + e[i]) * u[i0 + i];
  });
}

// Backward of a = silu(g) * u, elementwise over n values: dg = da u silu'(g), du = da silu(g),
// with silu'(g) = sigmoid(g) (1 + g (1 - sigmoid(g))).
inline void swiglu_backward(Context& ctx, const float* g, const float* u, const float* da, int64_t n,
                            float* dg, float* du) {
  const ExpFn ex = kernels_best().exp_f32;
  elementwise(ctx, n, [&](int64_t i0, int64_t m) {
    float e[1024];
    ex(m, g + i0, -1.f, 0.f, e);
    for (int64_t j = 0; j < m; ++j) {
      const int64_t i = i0 + j;
      const float sg = 1.f / (1.f + e[j]);
      du[i] = da[i] * g[i] * sg;
      dg[i] = da[i] * u[i] * sg * (1.f + g[i] * (1.f - sg));
    }
  });
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
  silu_mul(ctx, g.data(), u.data(), T * n_ff, g.data());
  matmul(ctx, down, g.data(), T, out, mm);
  if (hook) (*hook)(2, g.data(), n_ff, out, n_embd);
}

}  // namespace corral
