// AVX2 decode kernel over repacked Q4_0 (see repack.h): eight rows per call.
#include <immintrin.h>

#include "backend/cpu/kernels.h"

namespace corral {

// out[8] = rows . x; xq: s8 levels [K]; xd: per-block scale; xs: per-block scale * sum(levels).
void gemv_q4_0x8_avx2(int64_t K, const uint8_t* g, const int8_t* xq, const float* xd, const float* xs,
                      float* out) {
  const int64_t nb = K / 32;
  const __m256i m4 = _mm256_set1_epi8(0xF), ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps(), corr = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += 144) {
    const int8_t* x = xq + 32 * b;
    __m256i sum16 = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i bits = _mm256_loadu_si256((const __m256i*)(g + 16 + 32 * c));
      const __m256i lo = _mm256_and_si256(bits, m4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
      int32_t xl, xh;
      __builtin_memcpy(&xl, x + 4 * c, 4);
      __builtin_memcpy(&xh, x + 16 + 4 * c, 4);
      // 8 products of <= 2*15*127 each stay below 32767 in int16.
      sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(lo, _mm256_set1_epi32(xl)));
      sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(hi, _mm256_set1_epi32(xh)));
    }
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)g));  // one scale per row
    const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(sum16, ones));
    acc = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(xd[b])), p, acc);
    corr = _mm256_fmadd_ps(d, _mm256_set1_ps(8.f * xs[b]), corr);  // the -8 offset of Q4_0
  }
  _mm256_storeu_ps(out, _mm256_sub_ps(acc, corr));
}

}  // namespace corral
