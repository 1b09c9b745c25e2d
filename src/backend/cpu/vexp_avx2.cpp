// exp over a row in 8-float lanes (see ExpFn in kernels.h): Cody-Waite reduction
// z = n ln2 + r with |r| <= ln2 / 2, a degree-7 polynomial for exp(r), then 2^n built in the
// exponent bits (z clamped so n stays in [-126, 128]).
#include <immintrin.h>

#include "backend/cpu/kernels.h"

namespace corral {

namespace {

__m256 exp8(__m256 z) {
  const __m256 keep = z;
  z = _mm256_min_ps(_mm256_set1_ps(88.7f), _mm256_max_ps(_mm256_set1_ps(-87.33f), z));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(z, _mm256_set1_ps(1.44269504f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), z);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 v = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  // Below -87.3 (under FLT_MIN) the result is 0; NaN stays NaN (the comparison is unordered).
  return _mm256_and_ps(v, _mm256_cmp_ps(keep, _mm256_set1_ps(-87.33f), _CMP_NLT_UQ));
}

}  // namespace

double exp_f32_avx2(int64_t n, const float* x, float a, float b, float* y) {
  const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
  __m256d total = _mm256_setzero_pd();
  for (int64_t c = 0; c < n; c += 1024) {
    const int64_t e = c + 1024 < n ? c + 1024 : n;
    __m256 acc = _mm256_setzero_ps();
    int64_t i = c;
    for (; i + 8 <= e; i += 8) {
      const __m256 v = exp8(_mm256_fmsub_ps(va, _mm256_loadu_ps(x + i), vb));
      _mm256_storeu_ps(y + i, v);
      acc = _mm256_add_ps(acc, v);
    }
    if (i < e) {  // the tail through a lane mask
      const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(e - i)),
                                           _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      const __m256 v = _mm256_and_ps(exp8(_mm256_fmsub_ps(va, _mm256_maskload_ps(x + i, m), vb)),
                                     _mm256_castsi256_ps(m));
      _mm256_maskstore_ps(y + i, m, v);
      acc = _mm256_add_ps(acc, v);
    }
    total = _mm256_add_pd(total, _mm256_cvtps_pd(_mm256_castps256_ps128(acc)));
    total = _mm256_add_pd(total, _mm256_cvtps_pd(_mm256_extractf128_ps(acc, 1)));
  }
  alignas(32) double t[4];
  _mm256_store_pd(t, total);
  return (t[0] + t[1]) + (t[2] + t[3]);
}

}  // namespace corral
