// Q6_K dot kernels (one row, and one row against four tokens) over Q8_K activations, shared by
// the AVX2 and AVX-512 tables. MaddAdd::f(acc, p, s) adds the int16 pair products p * s to the
// int32 lanes of acc: madd + add on AVX2, one vpdpwssd with VNNI. The integer sums are exact
// either way, so both tables give bitwise the same floats.
// Include only from files built with AVX2 flags; everything here has internal linkage, so each
// ISA's copy stays its own (no instruction of one ISA reaches the other's table).
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "backend/cpu/avx2_util.h"
#include "format/quant.h"

namespace corral {
namespace {  // NOLINT: internal linkage per ISA file, on purpose

// Q6_K values are q - 32: the kernels multiply q and subtract 32 * scale_j * bsum_j (the
// activation's 16-value sums) per int32 lane. dot_q6_k and dot4_q6_k both do exactly this, so
// their lane sums, and then their floats, agree bitwise.
inline __m256i q6_k_offset(const BlockQ6_K& w, const BlockQ8_K& x) {
  const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)w.scales));
  return _mm256_slli_epi32(_mm256_madd_epi16(sc, _mm256_loadu_si256((const __m256i*)x.bsums)), 5);
}

template <class MaddAdd>
float dot_q6_k(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const BlockQ6_K*>(w);
  auto* b = static_cast<const BlockQ8_K*>(x);
  const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK_K; ++i) {
    for (int l = 0; l < 4; ++l)
      _mm_prefetch(reinterpret_cast<const char*>(a + i) + 3072 + 64 * l, _MM_HINT_T0);
    const uint8_t* ql = a[i].ql;
    const uint8_t* qh = a[i].qh;
    const int8_t* sc = a[i].scales;
    const int8_t* y = b[i].qs;
    __m256i sumi = _mm256_setzero_si256();
    for (int half = 0; half < 2; ++half, ql += 64, qh += 32, y += 128, sc += 8) {
      const __m256i b1 = _mm256_loadu_si256((const __m256i*)ql);
      const __m256i b2 = _mm256_loadu_si256((const __m256i*)(ql + 32));
      const __m256i bh = _mm256_loadu_si256((const __m256i*)qh);
      __m256i q[4];
      q[0] =
          _mm256_or_si256(_mm256_and_si256(b1, m4), _mm256_slli_epi16(_mm256_and_si256(bh, m2), 4));
      q[1] = _mm256_or_si256(_mm256_and_si256(b2, m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 2), m2), 4));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 4), m2), 4));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 6), m2), 4));
      for (int k = 0; k < 4; ++k) {
        const __m256i q8 = _mm256_loadu_si256((const __m256i*)(y + 32 * k));
        const __m256i s =
            _mm256_set_m128i(_mm_set1_epi16(sc[2 * k + 1]), _mm_set1_epi16(sc[2 * k]));
        sumi = MaddAdd::f(sumi, _mm256_maddubs_epi16(q[k], q8), s);
      }
    }
    sumi = _mm256_sub_epi32(sumi, q6_k_offset(a[i], b[i]));
    acc =
        _mm256_fmadd_ps(_mm256_set1_ps(b[i].d * avx2::h2f(a[i].d)), _mm256_cvtepi32_ps(sumi), acc);
  }
  return avx2::hsum(acc);
}

// One Q6_K row against 4 Q8_K activation rows (ldx bytes apart): the 6-bit values are unpacked
// once per half block for all four; each token's integer sum and float steps are dot_q6_k's, so
// out[t] is bitwise dot_q6_k for row t (batch invariance without the GEMM's other K order).
template <class MaddAdd>
void dot4_q6_k(int64_t n, const void* w, const void* x, size_t ldx, float* out) {
  auto* a = static_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* b[4];
  for (int t = 0; t < 4; ++t)
    b[t] = reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(x) + size_t(t) * ldx);
  const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const uint8_t* ql = a[i].ql;
    const uint8_t* qh = a[i].qh;
    const int8_t* sc = a[i].scales;
    __m256i sumi[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                       _mm256_setzero_si256()};
    for (int half = 0; half < 2; ++half, ql += 64, qh += 32, sc += 8) {
      const __m256i b1 = _mm256_loadu_si256((const __m256i*)ql);
      const __m256i b2 = _mm256_loadu_si256((const __m256i*)(ql + 32));
      const __m256i bh = _mm256_loadu_si256((const __m256i*)qh);
      for (int k = 0; k < 4; ++k) {
        const __m256i lo = k & 1 ? b2 : b1;
        const __m256i q = _mm256_or_si256(
            _mm256_and_si256(k < 2 ? lo : _mm256_srli_epi16(lo, 4), m4),
            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 2 * k), m2), 4));
        const __m256i s =
            _mm256_set_m128i(_mm_set1_epi16(sc[2 * k + 1]), _mm_set1_epi16(sc[2 * k]));
        for (int t = 0; t < 4; ++t) {
          const __m256i q8 = _mm256_loadu_si256((const __m256i*)(b[t][i].qs + 128 * half + 32 * k));
          sumi[t] = MaddAdd::f(sumi[t], _mm256_maddubs_epi16(q, q8), s);
        }
      }
    }
    for (int t = 0; t < 4; ++t) sumi[t] = _mm256_sub_epi32(sumi[t], q6_k_offset(a[i], b[t][i]));
    for (int t = 0; t < 4; ++t)
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(b[t][i].d * avx2::h2f(a[i].d)),
                               _mm256_cvtepi32_ps(sumi[t]), acc[t]);
  }
  for (int t = 0; t < 4; ++t) out[t] = avx2::hsum(acc[t]);
}

}  // namespace
}  // namespace corral
