// AVX-512 VNNI kernels over repacked Q4_0/Q8_0 (see repack.h): two 8-row groups per call, one
// per 256-bit half of a register, against 1 or 4 tokens.
//
// Batch invariance across ISAs: each block's integer sum is exact whichever instructions form
// it (vpdpbusd here, maddubs + madd in the AVX2 kernels), and the float steps per block are the
// AVX2 kernels' operations in their order, lane by lane. So every output is bitwise what the
// AVX2 kernels give for its group alone, and a table can mix these with them freely.
#include <immintrin.h>

#include "backend/cpu/avx512_pair.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/repack.h"
#include "format/quant.h"

namespace corral {
namespace {

inline int32_t load32(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return v;
}


inline void store_pair(float* out, int t, __m512 acc) {
  _mm256_storeu_ps(out + 8 * t, _mm512_castps512_ps256(acc));
  _mm256_storeu_ps(out + 32 + 8 * t, _mm512_extractf32x8_ps(acc, 1));
}

// Q4_0: per block, chunk c holds 8 values of each row (low nibbles: 4c..4c+3, high:
// 16+4c..+3); u8 nibbles times s8 levels, the -8 offset applied in float as the AVX2 kernels do.
// Token t: xq + t * ldx levels, xd/xs + t * ldb; out[t * 8 + r] for group a, out[32 + ...] for b.
template <int NT>
void q4_0_pair(int64_t K, const uint8_t* g, size_t gbytes, const int8_t* xq, int64_t ldx,
               const float* xd, const float* xs, int64_t ldb, float* out) {
  const int64_t nb = K / 32;
  const __m512i m4 = _mm512_set1_epi8(0xF);
  const uint8_t* h = g + gbytes;
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += kQ4_0GroupBytes, h += kQ4_0GroupBytes) {
    if (NT == 1) {  // decode streams the weights once: fetch ahead as the AVX2 kernel does
      _mm_prefetch(reinterpret_cast<const char*>(g) + 3072, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(g) + 3072 + 64, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(g) + 3072 + 128, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(h) + 3072, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(h) + 3072 + 64, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(h) + 3072 + 128, _MM_HINT_T0);
    }
    __m512i s[NT];
    for (int t = 0; t < NT; ++t) s[t] = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      const __m512i bits = pair_load(g + 16 + 32 * c, h + 16 + 32 * c);
      const __m512i lo = _mm512_and_si512(bits, m4);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(bits, 4), m4);
      for (int t = 0; t < NT; ++t) {
        const int8_t* x = xq + t * ldx + 32 * b;
        s[t] = _mm512_dpbusd_epi32(s[t], lo, _mm512_set1_epi32(load32(x + 4 * c)));
        s[t] = _mm512_dpbusd_epi32(s[t], hi, _mm512_set1_epi32(load32(x + 16 + 4 * c)));
      }
    }
    const __m512 d = pair_scales(g, h);
    for (int t = 0; t < NT; ++t) {
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(xd[t * ldb + b])),
                               _mm512_cvtepi32_ps(s[t]), acc[t]);
      acc[t] = _mm512_fnmadd_ps(d, _mm512_set1_ps(8.f * xs[t * ldb + b]), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) store_pair(out, t, acc[t]);
}

// Q8_0: chunk c holds 4 levels of each row. Signed times signed as |w| times x with w's sign
// moved onto x (a masked negation: AVX-512 has no 512-bit vpsignb). xs is unused.
template <int NT>
void q8_0_pair(int64_t K, const uint8_t* g, size_t gbytes, const int8_t* xq, int64_t ldx,
               const float* xd, const float*, int64_t ldb, float* out) {
  const int64_t nb = K / 32;
  const __m512i zero = _mm512_setzero_si512();
  const uint8_t* h = g + gbytes;
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += kQ8_0GroupBytes, h += kQ8_0GroupBytes) {
    if (NT == 1)
      for (int l = 0; l < 5; ++l) {
        _mm_prefetch(reinterpret_cast<const char*>(g) + 3072 + 64 * l, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(h) + 3072 + 64 * l, _MM_HINT_T0);
      }
    __m512i s[NT];
    for (int t = 0; t < NT; ++t) s[t] = zero;
    for (int c = 0; c < 8; ++c) {
      const __m512i w = pair_load(g + 16 + 32 * c, h + 16 + 32 * c);
      const __m512i aw = _mm512_abs_epi8(w);
      const __mmask64 neg = _mm512_movepi8_mask(w);
      for (int t = 0; t < NT; ++t) {
        const __m512i v = _mm512_set1_epi32(load32(xq + t * ldx + 32 * b + 4 * c));
        s[t] = _mm512_dpbusd_epi32(s[t], aw, _mm512_mask_sub_epi8(v, neg, zero, v));
      }
    }
    const __m512 d = pair_scales(g, h);
    for (int t = 0; t < NT; ++t)
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(xd[t * ldb + b])),
                               _mm512_cvtepi32_ps(s[t]), acc[t]);
  }
  for (int t = 0; t < NT; ++t) store_pair(out, t, acc[t]);
}

// Q8_0 in the offset layout: levels w + 128 as u8, so vpdpbusd takes them as they are (no sign
// moved onto x), and 128 * sum(x) (xs, an exact integer as float) comes off the block's integer
// sum. That integer is the same exact sum as q8_0_pair's, so each output is bitwise the same.
template <int NT>
void q8_0_offset_pair(int64_t K, const uint8_t* g, size_t gbytes, const int8_t* xq, int64_t ldx,
                      const float* xd, const float* xs, int64_t ldb, float* out) {
  const int64_t nb = K / 32;
  const uint8_t* h = g + gbytes;
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, g += kQ8_0GroupBytes, h += kQ8_0GroupBytes) {
    __m512i s[NT];
    for (int t = 0; t < NT; ++t) s[t] = _mm512_set1_epi32(-int32_t(xs[t * ldb + b]));
    for (int c = 0; c < 8; ++c) {
      const __m512i w = pair_load(g + 16 + 32 * c, h + 16 + 32 * c);
      for (int t = 0; t < NT; ++t)
        s[t] = _mm512_dpbusd_epi32(s[t], w, _mm512_set1_epi32(load32(xq + t * ldx + 32 * b + 4 * c)));
    }
    const __m512 d = pair_scales(g, h);
    for (int t = 0; t < NT; ++t)
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(xd[t * ldb + b])),
                               _mm512_cvtepi32_ps(s[t]), acc[t]);
  }
  for (int t = 0; t < NT; ++t) store_pair(out, t, acc[t]);
}

// Q6_K (repack.h's q6_k layout) against Q8_K activations: per superblock and 16-value sub-block
// j, lane r (row r of the pair) gets s = sum q * a (u8 6-bit levels times s8, vpdpbusd, exact),
// then isum += scale_j * (s - 32 * bsum_j): the exact integer sum_j scale_j * sum (q - 32) a;
// then one fused multiply-add by d_w * d_x per superblock. Token t's Q8_K row at x8k + t * ldx;
// out[t * 16 + r].
template <int NT>
void q6_k_pair(int64_t K, const uint8_t* g, size_t gbytes, const uint8_t* x8k, size_t ldx, float* out) {
  const int64_t nsb = K / QK_K;
  const uint8_t* h = g + gbytes;
  const __m512i m4 = _mm512_set1_epi8(0xF), m3 = _mm512_set1_epi8(3);
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb, g += kQ6KGroupBytes, h += kQ6KGroupBytes) {
    const BlockQ8_K* x[NT];
    for (int t = 0; t < NT; ++t) x[t] = reinterpret_cast<const BlockQ8_K*>(x8k + size_t(t) * ldx) + sb;
    __m512i isum[NT];
    for (int t = 0; t < NT; ++t) isum[t] = _mm512_setzero_si512();
    for (int j = 0; j < 16; ++j) {
      const uint8_t *gj = g + 144 + 96 * j, *hj = h + 144 + 96 * j;
      if (NT == 1) {
        _mm_prefetch(reinterpret_cast<const char*>(gj) + 2048, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(hj) + 2048, _MM_HINT_T0);
      }
      const __m512i l0 = pair_load(gj, hj), l1 = pair_load(gj + 32, hj + 32), hb = pair_load(gj + 64, hj + 64);
      __m512i q[4];
      q[0] = _mm512_or_si512(_mm512_and_si512(l0, m4), _mm512_slli_epi16(_mm512_and_si512(hb, m3), 4));
      q[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l0, 4), m4),
                             _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hb, 2), m3), 4));
      q[2] = _mm512_or_si512(_mm512_and_si512(l1, m4),
                             _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hb, 4), m3), 4));
      q[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l1, 4), m4),
                             _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hb, 6), m3), 4));
      const __m512i sc = _mm512_cvtepi8_epi32(
          _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i*)(g + 16 + 8 * j)), _mm_loadl_epi64((const __m128i*)(h + 16 + 8 * j))));
      for (int t = 0; t < NT; ++t) {
        __m512i sj = _mm512_setzero_si512();
        for (int m = 0; m < 4; ++m)
          sj = _mm512_dpbusd_epi32(sj, q[m], _mm512_set1_epi32(load32(x[t]->qs + 16 * j + 4 * m)));
        sj = _mm512_sub_epi32(sj, _mm512_set1_epi32(32 * int32_t(x[t]->bsums[j])));
        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(sc, sj));
      }
    }
    const __m512 d = pair_scales(g, h);
    for (int t = 0; t < NT; ++t)
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(x[t]->d)), _mm512_cvtepi32_ps(isum[t]), acc[t]);
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(out + 16 * t, acc[t]);
}

}  // namespace

void set_repacked_pair_kernels_avx512(KernelTable& t) {
  t.pair_q6_k[0] = q6_k_pair<1>;
  t.pair_q6_k[1] = q6_k_pair<4>;
  t.pair_q4_0[0] = q4_0_pair<1>;
  t.pair_q4_0[1] = q4_0_pair<4>;
  t.pair_q8_0[0] = q8_0_pair<1>;
  t.pair_q8_0[1] = q8_0_pair<4>;
  t.pair_q8_0_offset = q8_0_offset_pair<4>;
}

}  // namespace corral
