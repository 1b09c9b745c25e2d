// Rotary position embedding in the interleaved pairing (x[2i], x[2i+1]) that GGUF llama
// weights, llama2.c and Llama 4 use (HF Llama 1-3 q/k rows are permuted to it at load).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/fp16.h"

namespace corral {

struct Rope {
  std::vector<float> inv_freq;  // [head_dim/2]: theta^(-2i/d) / divisor_i
  float pos_scale = 1.f;        // 1/linear factor

  // bf16_freqs: HF keeps inv_freq as a buffer that follows the model's dtype, so a bf16
  // checkpoint rotates with bf16-rounded frequencies; matching the reference needs the same.
  static Rope make(int64_t head_dim, float theta, const std::vector<float>& divisors, float linear,
                   bool bf16_freqs = false) {
    Rope r;
    r.pos_scale = 1.f / linear;
    for (int64_t i = 0; i < head_dim / 2; ++i)
      r.inv_freq.push_back(float(std::pow(double(theta), -2.0 * double(i) / double(head_dim)) /
                                 double(divisors.empty() ? 1.f : divisors[size_t(i)])));
    if (bf16_freqs)
      for (auto& f : r.inv_freq) f = bf16_to_f32(f32_to_bf16(f));
    return r;
  }

  // x: [n_heads][head_dim], rotated in place for position pos.
  void apply(float* x, int64_t n_heads, int64_t head_dim, int64_t pos) const {
    rotate(x, n_heads, head_dim, pos, 1.f);
  }

  // Backward of apply(): the rotation is orthogonal, so the gradient turns back by -angle.
  void apply_backward(float* dx, int64_t n_heads, int64_t head_dim, int64_t pos) const {
    rotate(dx, n_heads, head_dim, pos, -1.f);
  }

 private:
  // Each pair (x[2i], x[2i+1]) turned by sign * pos * inv_freq[i] (negating sin is exact).
  void rotate(float* x, int64_t n_heads, int64_t head_dim, int64_t pos, float sign) const {
    const int64_t half = head_dim / 2;
    for (int64_t i = 0; i < half; ++i) {
      const double a = double(pos) * pos_scale * inv_freq[size_t(i)];
      const float c = float(std::cos(a)), s = sign * float(std::sin(a));
      for (int64_t h = 0; h < n_heads; ++h) {
        float* p = x + h * head_dim + 2 * i;
        const float x0 = p[0], x1 = p[1];
        p[0] = x0 * c - x1 * s;
        p[1] = x0 * s + x1 * c;
      }
    }
  }
};

}  // namespace corral
