// Small AVX2 helpers shared by the kernel files (include only from files built with AVX2 flags).
// Internal linkage: a file built with AVX-512 flags gets its own copy, so the linker can never
// hand an AVX-512-encoded helper to the AVX2 table.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace corral::avx2 {
namespace {  // NOLINT: internal linkage per ISA file, on purpose

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float h2f(uint16_t h) {
  return _cvtsh_ss(h);
}

}  // namespace
}  // namespace corral::avx2
