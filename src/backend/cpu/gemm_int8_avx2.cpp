// AVX2 integer GEMM for 4-bit and 8-bit weights: u8 (or s8) weight blocks of 32 against s8
// activation blocks with maddubs, 2 rows x 4 tokens per micro-kernel call over the whole row.
// c[r][t] = sum_b ws[r][b] * xd[t][b] * dot(w[r][b], x[t][b])   (offsets are applied by the caller)
#include <immintrin.h>

#include "backend/cpu/avx2_util.h"
#include "backend/cpu/gemm_int8.h"

namespace corral {

namespace {

template <bool kSigned>
void micro_2x4(int64_t nb, const uint8_t* w, int64_t ldw, const float* ws, const float* wo,
               int64_t lds, const int8_t* x, int64_t ldx, const float* xd4, const float* xs4,
               float* out) {
  // Scale products for every block first: S[b] = (ws0*xd[t0..3], ws1*xd[t0..3]); in the main
  // loop they are broadcast straight from memory (load ports, not ALU).
  alignas(32) float S[kInt8MaxBlocks * 8];
  __m256 oacc = _mm256_setzero_ps();  // offsets: (r, t) pairs in lanes r*4 + t
  for (int64_t b = 0; b < nb; ++b) {
    const __m256 xd = _mm256_broadcast_ps((const __m128*)(xd4 + 4 * b));
    const __m256 sw = _mm256_set_m128(_mm_broadcast_ss(ws + lds + b), _mm_broadcast_ss(ws + b));
    _mm256_store_ps(S + 8 * b, _mm256_mul_ps(sw, xd));
    if constexpr (!kSigned) {
      const __m256 ow = _mm256_set_m128(_mm_broadcast_ss(wo + lds + b), _mm_broadcast_ss(wo + b));
      oacc = _mm256_fmadd_ps(ow, _mm256_broadcast_ps((const __m128*)(xs4 + 4 * b)), oacc);
    }
  }
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00,
         a12 = a00, a13 = a00;
  for (int64_t b = 0; b < nb; ++b) {
    __m256i w0 = _mm256_loadu_si256((const __m256i*)(w + b * 32));
    __m256i w1 = _mm256_loadu_si256((const __m256i*)(w + ldw + b * 32));
    const __m256i s0 = w0, s1 = w1;  // sign sources (signed weights only)
    if constexpr (kSigned) {
      w0 = _mm256_sign_epi8(w0, w0);
      w1 = _mm256_sign_epi8(w1, w1);
    }
    const float* sb = S + 8 * b;
#define CORRAL_TOKEN(t, A0, A1)                                                                  \
  {                                                                                              \
    const __m256i xt = _mm256_loadu_si256((const __m256i*)(x + (t)*ldx + b * 32));               \
    const __m256i x0 = kSigned ? _mm256_sign_epi8(xt, s0) : xt;                                  \
    const __m256i x1 = kSigned ? _mm256_sign_epi8(xt, s1) : xt;                                  \
    const __m256 p0 = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(w0, x0), ones)); \
    const __m256 p1 = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(w1, x1), ones)); \
    A0 = _mm256_fmadd_ps(_mm256_broadcast_ss(sb + (t)), p0, A0);                                 \
    A1 = _mm256_fmadd_ps(_mm256_broadcast_ss(sb + 4 + (t)), p1, A1);                             \
  }
    CORRAL_TOKEN(0, a00, a10)
    CORRAL_TOKEN(1, a01, a11)
    CORRAL_TOKEN(2, a02, a12)
    CORRAL_TOKEN(3, a03, a13)
#undef CORRAL_TOKEN
  }
  alignas(32) float o[8];
  _mm256_store_ps(o, oacc);
  out[0] = avx2::hsum(a00) - o[0], out[1] = avx2::hsum(a01) - o[1], out[2] = avx2::hsum(a02) - o[2],
  out[3] = avx2::hsum(a03) - o[3];
  out[4] = avx2::hsum(a10) - o[4], out[5] = avx2::hsum(a11) - o[5], out[6] = avx2::hsum(a12) - o[6],
  out[7] = avx2::hsum(a13) - o[7];
}

}  // namespace

void gemm_int8_micro_avx2(bool signed_weights, int64_t nb, const uint8_t* w, int64_t ldw,
                          const float* ws, const float* wo, int64_t lds, const int8_t* x,
                          int64_t ldx, const float* xd4, const float* xs4, float* out) {
  if (signed_weights)
    micro_2x4<true>(nb, w, ldw, ws, wo, lds, x, ldx, xd4, xs4, out);
  else
    micro_2x4<false>(nb, w, ldw, ws, wo, lds, x, ldx, xd4, xs4, out);
}

void int8_unpack_nibbles_avx2(const uint8_t* q, int64_t n_bytes, bool q4_0_order, uint8_t* out) {
  const __m256i m4 = _mm256_set1_epi8(0xF);
  if (q4_0_order) {  // 16 bytes -> 32 levels: low nibbles then high nibbles
    const __m128i t = _mm_loadu_si128((const __m128i*)q);
    const __m256i both =
        _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    _mm256_storeu_si256((__m256i*)out, _mm256_and_si256(both, m4));
    return;
  }
  for (int64_t i = 0; i < n_bytes; i += 32) {  // Q4_K: 32 bytes -> 32 low levels, 32 high levels
    const __m256i bits = _mm256_loadu_si256((const __m256i*)(q + i));
    _mm256_storeu_si256((__m256i*)(out + 2 * i), _mm256_and_si256(bits, m4));
    _mm256_storeu_si256((__m256i*)(out + 2 * i + 32),
                        _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4));
  }
}

}  // namespace corral
