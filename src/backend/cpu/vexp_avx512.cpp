// exp over a row in 16-float lanes (see ExpFn in kernels.h): Cody-Waite reduction
// z = n ln2 + r with |r| <= ln2 / 2, a degree-7 polynomial for exp(r), then scalef by 2^n.
#include <immintrin.h>

#include "backend/cpu/kernels.h"

namespace corral {

namespace {

__m512 exp16(__m512 z) {
  const __m512 keep = z;
  z = _mm512_min_ps(_mm512_set1_ps(88.7f), _mm512_max_ps(_mm512_set1_ps(-88.f), z));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(z, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), z);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  // Below -87.3 (under FLT_MIN) the result is 0, as the AVX2 version gives; NaN stays NaN.
  const __mmask16 live = _mm512_cmp_ps_mask(keep, _mm512_set1_ps(-87.33f), _CMP_NLT_UQ);
  return _mm512_maskz_mov_ps(live, _mm512_scalef_ps(p, n));
}

}  // namespace

double exp_f32_avx512(int64_t n, const float* x, float a, float b, float* y) {
  const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
  __m512d total = _mm512_setzero_pd();
  for (int64_t c = 0; c < n; c += 1024) {
    const int64_t e = c + 1024 < n ? c + 1024 : n;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = c; i < e; i += 16) {
      const __mmask16 m = e - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (e - i)) - 1);
      const __m512 v = exp16(_mm512_fmsub_ps(va, _mm512_maskz_loadu_ps(m, x + i), vb));
      _mm512_mask_storeu_ps(y + i, m, v);
      acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(m, v));
    }
    total = _mm512_add_pd(total, _mm512_cvtps_pd(_mm512_castps512_ps256(acc)));
    total = _mm512_add_pd(
        total, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1))));
  }
  alignas(64) double t[8];
  _mm512_store_pd(t, total);
  return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

}  // namespace corral
