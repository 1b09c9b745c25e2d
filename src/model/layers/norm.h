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

// Backward of rms_norm (w frozen): dx += d out / d x . dy. With g = w * dy and r = 1 / rms(x):
// dx_i = r g_i - x_i r^3 (sum_j g_j x_j) / n. x, dy, dx: [n]
inline void rms_norm_backward(const float* x, const float* w, int64_t n, float eps, const float* dy,
                              float* dx) {
  double ss = 0, gx = 0;
  for (int64_t i = 0; i < n; ++i) {
    ss += double(x[i]) * x[i];
    gx += double(dy[i]) * (w ? w[i] : 1.f) * x[i];
  }
  const double r = 1.0 / std::sqrt(ss / double(n) + eps), c = r * r * r * gx / double(n);
  for (int64_t i = 0; i < n; ++i)
    dx[i] += float(r * double(dy[i]) * (w ? w[i] : 1.f) - double(x[i]) * c);
}

}  // namespace corral
