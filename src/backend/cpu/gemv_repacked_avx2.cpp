// AVX2 decode kernel over repacked Q4_0 (see repack.h): eight rows per call.
#include <immintrin.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/repack.h"
#include "format/quant.h"

namespace corral {

// out[8] = rows . x; xq: s8 levels [K]; xd: per-block scale; xs: per-block scale * sum(levels).
void gemv_q4_0x8_avx2(int64_t K, const uint8_t* g, const int8_t* xq, const float* xd,
                      const float* xs, float* out) {
  const int64_t nb = K / 32;
  const __m256i m4 = _mm256_set1_epi8(0xF), ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += kQ4_0GroupBytes) {
    _mm_prefetch(reinterpret_cast<const char*>(g) + 3072, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(g) + 3072 + 64, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(g) + 3072 + 128, _MM_HINT_T0);
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
    // Same operations in the same order as one token of gemm_q4_0x8x4, so a token's result
    // does not depend on whether it was decoded alone or in a prompt (batch invariance).
    acc = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(xd[b])), p, acc);
    acc = _mm256_fnmadd_ps(d, _mm256_set1_ps(8.f * xs[b]), acc);  // the -8 offset of Q4_0
  }
  _mm256_storeu_ps(out, acc);
}

// Prompts over repacked Q4_0: 8 rows x 4 tokens per call, so each unpacked weight chunk
// serves four tokens. out[t * 8 + r]. Token t's data: xq + t * ldx, xd/xs + t * ldb.
void gemm_q4_0x8x4_avx2(int64_t K, const uint8_t* g, const int8_t* xq, int64_t ldx, const float* xd,
                        const float* xs, int64_t ldb, float* out) {
  const int64_t nb = K / 32;
  const __m256i m4 = _mm256_set1_epi8(0xF), ones = _mm256_set1_epi16(1);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t b = 0; b < nb; ++b, g += kQ4_0GroupBytes) {
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (int c = 0; c < 4; ++c) {
      const __m256i bits = _mm256_loadu_si256((const __m256i*)(g + 16 + 32 * c));
      const __m256i lo = _mm256_and_si256(bits, m4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
#define CORRAL_TOK(T, S)                                                      \
  {                                                                           \
    const int8_t* x = xq + (T)*ldx + 32 * b;                                  \
    int32_t xl, xh;                                                           \
    __builtin_memcpy(&xl, x + 4 * c, 4);                                      \
    __builtin_memcpy(&xh, x + 16 + 4 * c, 4);                                 \
    S = _mm256_add_epi16(S, _mm256_maddubs_epi16(lo, _mm256_set1_epi32(xl))); \
    S = _mm256_add_epi16(S, _mm256_maddubs_epi16(hi, _mm256_set1_epi32(xh))); \
  }
      CORRAL_TOK(0, s0)
      CORRAL_TOK(1, s1)
      CORRAL_TOK(2, s2)
      CORRAL_TOK(3, s3)
#undef CORRAL_TOK
    }
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)g));
#define CORRAL_FIN(T, S, A)                                               \
  A = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(xd[(T)*ldb + b])),  \
                      _mm256_cvtepi32_ps(_mm256_madd_epi16(S, ones)), A); \
  A = _mm256_fnmadd_ps(d, _mm256_set1_ps(8.f * xs[(T)*ldb + b]), A);
    CORRAL_FIN(0, s0, a0)
    CORRAL_FIN(1, s1, a1)
    CORRAL_FIN(2, s2, a2)
    CORRAL_FIN(3, s3, a3)
#undef CORRAL_FIN
  }
  _mm256_storeu_ps(out, a0);
  _mm256_storeu_ps(out + 8, a1);
  _mm256_storeu_ps(out + 16, a2);
  _mm256_storeu_ps(out + 24, a3);
}

// Row scales (u8, one per row) as int16 pairs: madd against per-row int16 pair sums then gives
// scale * (pair sum) per row in one instruction (no 32-bit multiply).
static inline __m256i scales_x2(const uint8_t* p) {
  const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)p));
  return _mm256_or_si256(v, _mm256_slli_epi32(v, 16));
}

// Mins of sub-blocks 2p and 2p+1 per row as int16 pairs (lo: 2p, hi: 2p+1), to madd against a
// token's pair of 32-value sums.
static inline __m256i mins_pair(const uint8_t* g, int p) {
  const __m256i a = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(g + 96 + 16 * p)));
  const __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(g + 96 + 16 * p + 8)));
  return _mm256_or_si256(a, _mm256_slli_epi32(b, 16));
}

// The sums of sub-blocks 2p and 2p+1 of a Q8_K block (each <= 32 * 127, fits int16) as one int32.
static inline __m256i bsum_pair(const BlockQ8_K& x, int p) {
  const int32_t lo = x.bsums[4 * p] + x.bsums[4 * p + 1],
                hi = x.bsums[4 * p + 2] + x.bsums[4 * p + 3];
  return _mm256_set1_epi32(int32_t(uint32_t(uint16_t(lo)) | (uint32_t(uint16_t(hi)) << 16)));
}

// out[8] for a repacked Q4_K group against a Q8_K activation row.
void gemv_q4_kx8_avx2(int64_t K, const uint8_t* g, const void* xq8k, float* out) {
  const int64_t nsb = K / QK_K;
  const auto* xb = static_cast<const BlockQ8_K*>(xq8k);
  const __m256i m4 = _mm256_set1_epi8(0xF);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t s = 0; s < nsb; ++s, g += kQ4KGroupBytes) {
    const int8_t* x = xb[s].qs;
    __m256i isum = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      __m256i slo = _mm256_setzero_si256(), shi = _mm256_setzero_si256();
      const uint8_t* q = g + 160 + 256 * j;
      for (int l = 0; l < 4; ++l)
        _mm_prefetch(reinterpret_cast<const char*>(q) + 3072 + 64 * l, _MM_HINT_T0);
      for (int c = 0; c < 8; ++c) {
        const __m256i bits = _mm256_loadu_si256((const __m256i*)(q + 32 * c));
        int32_t xl, xh;
        __builtin_memcpy(&xl, x + 64 * j + 4 * c, 4);
        __builtin_memcpy(&xh, x + 64 * j + 32 + 4 * c, 4);
        slo = _mm256_add_epi16(
            slo, _mm256_maddubs_epi16(_mm256_and_si256(bits, m4), _mm256_set1_epi32(xl)));
        shi = _mm256_add_epi16(
            shi, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                                      _mm256_set1_epi32(xh)));
      }
      isum = _mm256_add_epi32(isum, _mm256_madd_epi16(slo, scales_x2(g + 32 + 16 * j)));
      isum = _mm256_add_epi32(isum, _mm256_madd_epi16(shi, scales_x2(g + 32 + 16 * j + 8)));
    }
    __m256i msum = _mm256_setzero_si256();
    for (int p = 0; p < 4; ++p)
      msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mins_pair(g, p), bsum_pair(xb[s], p)));
    const __m256 xd = _mm256_set1_ps(xb[s].d);
    const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)g)), xd);
    const __m256 dmin =
        _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(g + 16))), xd);
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum), acc);
    acc = _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(msum), acc);
  }
  _mm256_storeu_ps(out, acc);
}

}  // namespace corral

namespace corral {

// Repacked Q8_0 (see repack.h): a 32-byte chunk holds four levels of each of eight rows. Signed
// times signed through maddubs (unsigned x signed) takes the sign trick: |w| times x with w's
// sign moved onto x. A pair of products (<= 2 * 127 * 127) fits int16, two pairs would not, so
// every maddubs is widened at once by madd with ones.
void gemv_q8_0x8_avx2(int64_t K, const uint8_t* g, const int8_t* x, const float* xd, float* out) {
  const int64_t nb = K / 32;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += kQ8_0GroupBytes, x += 32) {
    for (int l = 0; l < 5; ++l)
      _mm_prefetch(reinterpret_cast<const char*>(g) + 3072 + 64 * l, _MM_HINT_T0);
    __m256i s0 = _mm256_setzero_si256(), s1 = s0;
    for (int c = 0; c < 8; c += 2) {
      const __m256i w0 = _mm256_loadu_si256((const __m256i*)(g + 16 + 32 * c));
      const __m256i w1 = _mm256_loadu_si256((const __m256i*)(g + 48 + 32 * c));
      int32_t p0, p1;
      __builtin_memcpy(&p0, x + 4 * c, 4);
      __builtin_memcpy(&p1, x + 4 * c + 4, 4);
      const __m256i v0 = _mm256_sign_epi8(_mm256_set1_epi32(p0), w0),
                    v1 = _mm256_sign_epi8(_mm256_set1_epi32(p1), w1);
      s0 = _mm256_add_epi32(s0,
                            _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w0), v0), ones));
      s1 = _mm256_add_epi32(s1,
                            _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w1), v1), ones));
    }
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)g));
    acc = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(xd[b])),
                          _mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1)), acc);
  }
  _mm256_storeu_ps(out, acc);
}

// Prompts over repacked Q8_0: 8 rows x 4 tokens per call (each loaded chunk and its |w| serve
// four tokens). Token t: x + t * ldx levels, xd + t * ldb scales; out[t * 8 + r].
void gemm_q8_0x8x4_avx2(int64_t K, const uint8_t* g, const int8_t* x, int64_t ldx, const float* xd,
                        int64_t ldb, float* out) {
  const int64_t nb = K / 32;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t b = 0; b < nb; ++b, g += kQ8_0GroupBytes) {
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    const int8_t* xb = x + 32 * b;
    for (int c = 0; c < 8; ++c) {
      const __m256i w = _mm256_loadu_si256((const __m256i*)(g + 16 + 32 * c));
      const __m256i aw = _mm256_abs_epi8(w);
#define CORRAL_TOK(T, S)                                                           \
  {                                                                                \
    int32_t p;                                                                     \
    __builtin_memcpy(&p, xb + (T)*ldx + 4 * c, 4);                                 \
    const __m256i v = _mm256_sign_epi8(_mm256_set1_epi32(p), w);                   \
    S = _mm256_add_epi32(S, _mm256_madd_epi16(_mm256_maddubs_epi16(aw, v), ones)); \
  }
      CORRAL_TOK(0, s0)
      CORRAL_TOK(1, s1)
      CORRAL_TOK(2, s2)
      CORRAL_TOK(3, s3)
#undef CORRAL_TOK
    }
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)g));
    a0 = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(xd[b])), _mm256_cvtepi32_ps(s0), a0);
    a1 = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(xd[ldb + b])), _mm256_cvtepi32_ps(s1), a1);
    a2 = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(xd[2 * ldb + b])), _mm256_cvtepi32_ps(s2),
                         a2);
    a3 = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(xd[3 * ldb + b])), _mm256_cvtepi32_ps(s3),
                         a3);
  }
  _mm256_storeu_ps(out, a0);
  _mm256_storeu_ps(out + 8, a1);
  _mm256_storeu_ps(out + 16, a2);
  _mm256_storeu_ps(out + 24, a3);
}

}  // namespace corral

namespace corral {

// Prompts over repacked Q4_K: 8 rows x 4 tokens (Q8_K activations at x8k + t * ldx bytes);
// out[t * 8 + r]. The low and high nibbles of a 64-value chunk are taken in two passes so the
// four tokens' int16 sums fit in registers; the unpacked chunk is re-read from L1.
void gemm_q4_kx8x4_avx2(int64_t K, const uint8_t* g, const uint8_t* x8k, size_t ldx, float* out) {
  const int64_t nsb = K / QK_K;
  const BlockQ8_K* xs[4];
  for (int t = 0; t < 4; ++t) xs[t] = reinterpret_cast<const BlockQ8_K*>(x8k + size_t(t) * ldx);
  const __m256i m4 = _mm256_set1_epi8(0xF);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  for (int64_t s = 0; s < nsb; ++s, g += kQ4KGroupBytes) {
    __m256i is[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                     _mm256_setzero_si256()};
    for (int j = 0; j < 4; ++j) {
      const uint8_t* q = g + 160 + 256 * j;
      for (int half = 0; half < 2; ++half) {  // 0: values 64j .. +31 (low nibbles), 1: the next 32
        __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
        const int off = 64 * j + 32 * half;
        for (int c = 0; c < 8; ++c) {
          const __m256i bits = _mm256_loadu_si256((const __m256i*)(q + 32 * c));
          const __m256i v =
              half ? _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4) : _mm256_and_si256(bits, m4);
          int32_t a, b, e, f;
          __builtin_memcpy(&a, xs[0][s].qs + off + 4 * c, 4);
          __builtin_memcpy(&b, xs[1][s].qs + off + 4 * c, 4);
          __builtin_memcpy(&e, xs[2][s].qs + off + 4 * c, 4);
          __builtin_memcpy(&f, xs[3][s].qs + off + 4 * c, 4);
          s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(v, _mm256_set1_epi32(a)));
          s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(v, _mm256_set1_epi32(b)));
          s2 = _mm256_add_epi16(s2, _mm256_maddubs_epi16(v, _mm256_set1_epi32(e)));
          s3 = _mm256_add_epi16(s3, _mm256_maddubs_epi16(v, _mm256_set1_epi32(f)));
        }
        const __m256i sc = scales_x2(g + 32 + 16 * j + 8 * half);
        is[0] = _mm256_add_epi32(is[0], _mm256_madd_epi16(s0, sc));
        is[1] = _mm256_add_epi32(is[1], _mm256_madd_epi16(s1, sc));
        is[2] = _mm256_add_epi32(is[2], _mm256_madd_epi16(s2, sc));
        is[3] = _mm256_add_epi32(is[3], _mm256_madd_epi16(s3, sc));
      }
    }
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)g));
    const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(g + 16)));
    for (int t = 0; t < 4; ++t) {
      __m256i ms = _mm256_setzero_si256();
      for (int p = 0; p < 4; ++p)
        ms = _mm256_add_epi32(ms, _mm256_madd_epi16(mins_pair(g, p), bsum_pair(xs[t][s], p)));
      const __m256 xd = _mm256_set1_ps(xs[t][s].d);
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, xd), _mm256_cvtepi32_ps(is[t]), acc[t]);
      acc[t] = _mm256_fnmadd_ps(_mm256_mul_ps(dm, xd), _mm256_cvtepi32_ps(ms), acc[t]);
    }
  }
  for (int t = 0; t < 4; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

}  // namespace corral
