// RMSNorm (Llama's block norms) and the weightless L2 norm Llama 4 applies to q and k.
#pragma once
#include <cmath>
#include <cstdint>

namespace corral {

// out[i] = x[i] / rms(x) * w[i]; out may alias x. x: [n]
inline void rms_norm(const float* x, const float* w, int64_t n, float eps, float* out) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const float r = float(1.0 / std::sqrt(ss / double(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * r * (w ? w[i] : 1.f);
}

}  // namespace corral
