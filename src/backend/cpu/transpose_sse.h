// A strided float transpose in 4x4 blocks with SSE (part of every x86-64, so no ISA dispatch):
// sgemm's B^T panels, packed once per query block by training's attention, were a scalar loop
// of one strided store per float (about 3% of a training step).
#pragma once
#include <xmmintrin.h>

#include <cstdint>

namespace corral {

// dst[q * ld_dst + j] = src[j * ld_src + q] for j < nj, q < nq (the rest of dst untouched).
inline void transpose_strided(const float* src, int64_t ld_src, int64_t nj, int64_t nq, float* dst,
                              int64_t ld_dst) {
  const int64_t j4 = nj / 4 * 4, q4 = nq / 4 * 4;
  for (int64_t j = 0; j < j4; j += 4) {
    const float* s = src + j * ld_src;
    for (int64_t q = 0; q < q4; q += 4) {
      __m128 r0 = _mm_loadu_ps(s + q), r1 = _mm_loadu_ps(s + ld_src + q);
      __m128 r2 = _mm_loadu_ps(s + 2 * ld_src + q), r3 = _mm_loadu_ps(s + 3 * ld_src + q);
      _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
      float* d = dst + q * ld_dst + j;
      _mm_storeu_ps(d, r0);
      _mm_storeu_ps(d + ld_dst, r1);
      _mm_storeu_ps(d + 2 * ld_dst, r2);
      _mm_storeu_ps(d + 3 * ld_dst, r3);
    }
    for (int64_t q = q4; q < nq; ++q)
      for (int64_t jj = 0; jj < 4; ++jj) dst[q * ld_dst + j + jj] = s[jj * ld_src + q];
  }
  for (int64_t j = j4; j < nj; ++j)
    for (int64_t q = 0; q < nq; ++q) dst[q * ld_dst + j] = src[j * ld_src + q];
}

}  // namespace corral
