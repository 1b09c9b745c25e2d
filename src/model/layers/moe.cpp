#include "model/layers/moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/layers/mlp.h"

namespace corral {

void moe_route(const float* logits, int64_t T, int64_t NE, int64_t k, int32_t* ex, float* sc) {
  std::vector<int64_t> idx(static_cast<size_t>(NE));
  for (int64_t t = 0; t < T; ++t) {
    const float* r = logits + t * NE;
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                      [&](int64_t a, int64_t b) { return r[a] > r[b] || (r[a] == r[b] && a < b); });
    for (int64_t j = 0; j < k; ++j) {
      ex[t * k + j] = int32_t(idx[size_t(j)]);
      sc[t * k + j] = 1.f / (1.f + std::exp(-r[idx[size_t(j)]]));
    }
  }
}

void moe_forward(Context& ctx, const LayerWeights& w, const HParams& hp, const float* x, int64_t T,
                 float* out, ForwardScratch& s, const ProjectionHook* hook) {
  const int64_t E = hp.n_embd, NE = hp.n_expert, K = std::min(hp.n_expert_used, NE);
  // Shared expert first, into out.
  swiglu(ctx, w.gate_shexp, w.up_shexp, w.down_shexp, x, T, out, s.g, s.u, s.mm, hook);
  std::vector<float> router(static_cast<size_t>(T * NE));
  matmul(ctx, w.router, x, T, router.data(), s.mm);
  // expert -> (token, sigmoid(score))
  std::vector<int32_t> ex(static_cast<size_t>(T * K));
  std::vector<float> sc(static_cast<size_t>(T * K));
  moe_route(router.data(), T, NE, K, ex.data(), sc.data());
  std::vector<std::vector<std::pair<int64_t, float>>> routed(static_cast<size_t>(NE));
  for (int64_t i = 0; i < T * K; ++i) routed[size_t(ex[size_t(i)])].push_back({i / K, sc[size_t(i)]});
  std::vector<float> xin, yout;
  for (int64_t e = 0; e < NE; ++e) {
    const auto& toks = routed[size_t(e)];
    if (toks.empty()) continue;
    const int64_t n = int64_t(toks.size());
    xin.resize(size_t(n * E));
    yout.resize(size_t(n * E));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < E; ++j) xin[size_t(i * E + j)] = x[toks[size_t(i)].first * E + j] * toks[size_t(i)].second;
    swiglu(ctx, w.gate_exps.slice2(e), w.up_exps.slice2(e), w.down_exps.slice2(e), xin.data(), n,
           yout.data(), s.g, s.u, s.mm);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < E; ++j) out[toks[size_t(i)].first * E + j] += yout[size_t(i * E + j)];
  }
}

}  // namespace corral
