// AVX2 + FMA + F16C kernels (compiled with those flags only; selected at run time).
#include <immintrin.h>

#include "backend/cpu/avx2_util.h"
#include "backend/cpu/gemm_int8.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/q6_k_dots.h"
#include "core/fp16.h"
#include "format/quant.h"

namespace corral {
void gemv_q4_0x8_avx2(int64_t K, const uint8_t* g, const int8_t* xq, const float* xd,
                      const float* xs, float* out);
void gemv_q4_kx8_avx2(int64_t K, const uint8_t* g, const void* xq8k, float* out);
void gemm_q4_kx8x4_avx2(int64_t K, const uint8_t* g, const uint8_t* x8k, size_t ldx, float* out);
void gemm_q4_0x8x4_avx2(int64_t K, const uint8_t* g, const int8_t* xq, int64_t ldx, const float* xd,
                        const float* xs, int64_t ldb, float* out);
void gemv_q8_0x8_avx2(int64_t K, const uint8_t* g, const int8_t* x, const float* xd, float* out);
void gemm_q8_0x8x4_avx2(int64_t K, const uint8_t* g, const int8_t* x, int64_t ldx, const float* xd,
                        int64_t ldb, float* out);
namespace {

using avx2::h2f;
using avx2::hsum;

float dot_f32(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const float*>(w);
  auto* b = static_cast<const float*>(x);
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8)
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// One F32 row against 4 activation rows (ldx bytes apart): each token's sums are dot_f32's, in
// its order, so out[t] is bitwise dot_f32 for row t; the weight is read once for all four.
void dot4_f32(int64_t n, const void* w, const void* x, size_t ldx, float* out) {
  auto* a = static_cast<const float*>(w);
  const float* b[4];
  for (int t = 0; t < 4; ++t)
    b[t] = reinterpret_cast<const float*>(static_cast<const uint8_t*>(x) + size_t(t) * ldx);
  __m256 s[4][4];
  for (auto& st : s)
    for (auto& v : st) v = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int q = 0; q < 4; ++q) {
      const __m256 wv = _mm256_loadu_ps(a + i + 8 * q);
      for (int t = 0; t < 4; ++t)
        s[t][q] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(b[t] + i + 8 * q), s[t][q]);
    }
  for (; i + 8 <= n; i += 8) {
    const __m256 wv = _mm256_loadu_ps(a + i);
    for (int t = 0; t < 4; ++t) s[t][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(b[t] + i), s[t][0]);
  }
  for (int t = 0; t < 4; ++t) {
    float r = hsum(_mm256_add_ps(_mm256_add_ps(s[t][0], s[t][1]), _mm256_add_ps(s[t][2], s[t][3])));
    for (int64_t k = i; k < n; ++k) r += a[k] * b[t][k];
    out[t] = r;
  }
}

float dot_f16(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const uint16_t*>(w);
  auto* b = static_cast<const float*>(x);
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    if ((i & 31) == 0) _mm_prefetch(reinterpret_cast<const char*>(a + i) + 3072, _MM_HINT_T0);
    s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(a + i))),
                         _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(a + i + 8))),
                         _mm256_loadu_ps(b + i + 8), s1);
  }
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += h2f(a[i]) * b[i];
  return s;
}

inline __m256 bf16x8(const uint16_t* p) {
  return _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
}

float dot_bf16(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const uint16_t*>(w);
  auto* b = static_cast<const float*>(x);
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    if ((i & 31) == 0) _mm_prefetch(reinterpret_cast<const char*>(a + i) + 3072, _MM_HINT_T0);
    s0 = _mm256_fmadd_ps(bf16x8(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(bf16x8(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += bf16_to_f32(a[i]) * b[i];
  return s;
}

// dot_f16 / dot_bf16 for four activation rows: the same two accumulators per row, the same
// order; Wide converts 8 weights to floats, Narrow one (exactly, as the one-row dot does).
template <__m256 (*Wide)(const uint16_t*), float (*Narrow)(uint16_t)>
void dot4_16bit(int64_t n, const void* w, const void* x, size_t ldx, float* out) {
  auto* a = static_cast<const uint16_t*>(w);
  const float* b[4];
  for (int t = 0; t < 4; ++t)
    b[t] = reinterpret_cast<const float*>(static_cast<const uint8_t*>(x) + t * ldx);
  __m256 s00 = _mm256_setzero_ps(), s01 = s00, s10 = s00, s11 = s00, s20 = s00, s21 = s00,
         s30 = s00, s31 = s00;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    if ((i & 31) == 0) _mm_prefetch(reinterpret_cast<const char*>(a + i) + 3072, _MM_HINT_T0);
    const __m256 w0 = Wide(a + i), w1 = Wide(a + i + 8);
    s00 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(b[0] + i), s00);
    s01 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(b[0] + i + 8), s01);
    s10 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(b[1] + i), s10);
    s11 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(b[1] + i + 8), s11);
    s20 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(b[2] + i), s20);
    s21 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(b[2] + i + 8), s21);
    s30 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(b[3] + i), s30);
    s31 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(b[3] + i + 8), s31);
  }
  out[0] = hsum(_mm256_add_ps(s00, s01));
  out[1] = hsum(_mm256_add_ps(s10, s11));
  out[2] = hsum(_mm256_add_ps(s20, s21));
  out[3] = hsum(_mm256_add_ps(s30, s31));
  for (int t = 0; t < 4; ++t)
    for (int64_t k = i; k < n; ++k) out[t] += Narrow(a[k]) * b[t][k];
}

inline __m256 f16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p));
}
// F32 columns of a repacked group: the same uint16_t addressing, two units per value.
inline __m256 f32x8(const uint16_t* p) {
  return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
}
inline float f16_one(uint16_t h) {
  return h2f(h);
}
inline float bf16_one(uint16_t h) {
  return bf16_to_f32(h);
}

void dot4_f16(int64_t n, const void* w, const void* x, size_t ldx, float* out) {
  dot4_16bit<f16x8, f16_one>(n, w, x, ldx, out);
}
void dot4_bf16(int64_t n, const void* w, const void* x, size_t ldx, float* out) {
  dot4_16bit<bf16x8, bf16_one>(n, w, x, ldx, out);
}

// gemv16 (see kernels.h): the group's 8 rows of column k are one load of S uint16_t units (8
// for F16/BF16, 16 for F32).
template <__m256 (*Wide)(const uint16_t*), int G, int NT, int S>
void gemv16_n(int64_t K, const uint8_t* groups, size_t gbytes, const float* x, int64_t ldx,
              float* out) {
  __m256 a[G][NT];
  for (int g = 0; g < G; ++g)
    for (int t = 0; t < NT; ++t) a[g][t] = _mm256_setzero_ps();
  const uint16_t* w[G];
  for (int g = 0; g < G; ++g) w[g] = reinterpret_cast<const uint16_t*>(groups + g * gbytes);
  for (int64_t k = 0; k < K; ++k) {
    if ((k & 7) == 0)
      for (int g = 0; g < G; ++g)
        _mm_prefetch(reinterpret_cast<const char*>(w[g] + k * S) + 1024, _MM_HINT_T0);
    __m256 xb[NT];
    for (int t = 0; t < NT; ++t) xb[t] = _mm256_broadcast_ss(x + t * ldx + k);
    for (int g = 0; g < G; ++g) {
      const __m256 c = Wide(w[g] + k * S);
      for (int t = 0; t < NT; ++t) a[g][t] = _mm256_fmadd_ps(c, xb[t], a[g][t]);
    }
  }
  for (int t = 0; t < NT; ++t)
    for (int g = 0; g < G; ++g) _mm256_storeu_ps(out + (t * G + g) * 8, a[g][t]);
}

template <__m256 (*Wide)(const uint16_t*), int S>
void gemv16(int64_t K, const uint8_t* groups, size_t gbytes, int ng, const float* x, int64_t ldx,
            int nt, float* out) {
  switch (ng * 8 + nt) {
    case 4 * 8 + 1:
      return gemv16_n<Wide, 4, 1, S>(K, groups, gbytes, x, ldx, out);
    case 3 * 8 + 1:
      return gemv16_n<Wide, 3, 1, S>(K, groups, gbytes, x, ldx, out);
    case 2 * 8 + 1:
      return gemv16_n<Wide, 2, 1, S>(K, groups, gbytes, x, ldx, out);
    case 2 * 8 + 2:
      return gemv16_n<Wide, 2, 2, S>(K, groups, gbytes, x, ldx, out);
    case 2 * 8 + 3:
      return gemv16_n<Wide, 2, 3, S>(K, groups, gbytes, x, ldx, out);
    case 2 * 8 + 4:
      return gemv16_n<Wide, 2, 4, S>(K, groups, gbytes, x, ldx, out);
    case 1 * 8 + 2:
      return gemv16_n<Wide, 1, 2, S>(K, groups, gbytes, x, ldx, out);
    case 1 * 8 + 3:
      return gemv16_n<Wide, 1, 3, S>(K, groups, gbytes, x, ldx, out);
    case 1 * 8 + 4:
      return gemv16_n<Wide, 1, 4, S>(K, groups, gbytes, x, ldx, out);
    default:
      return gemv16_n<Wide, 1, 1, S>(K, groups, gbytes, x, ldx, out);
  }
}

// 8 x 8 transpose of rows r[i].
inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

template <__m256 (*Wide)(const uint16_t*), int S>
void unpack16(const uint16_t* g, int64_t kc, float* out, int64_t ldo) {
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    __m256 c[8];
    for (int i = 0; i < 8; ++i) c[i] = Wide(g + (k + i) * S);  // column k + i
    transpose8(c);                                             // row r, values k .. k + 7
    for (int r = 0; r < 8; ++r) _mm256_storeu_ps(out + r * ldo + k, c[r]);
  }
  for (; k < kc; ++k) {
    float col[8];
    _mm256_storeu_ps(col, Wide(g + k * S));
    for (int r = 0; r < 8; ++r) out[r * ldo + k] = col[r];
  }
}

// 32 signed int8 products summed in pairs of four -> 8 floats.
inline __m256 mul_sum_i8(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x);
  const __m256i sy = _mm256_sign_epi8(y, x);
  const __m256i dot = _mm256_maddubs_epi16(ax, sy);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(dot, _mm256_set1_epi16(1)));
}

// Two blocks per iteration into independent accumulators. Decode kernels also prefetch ~3 KiB
// ahead: rows streamed from mapped 4 KiB pages otherwise stall at every page (+10-20% tg).
float dot_q8_0(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const BlockQ8_0*>(w);
  auto* b = static_cast<const BlockQ8_0*>(x);
  const int64_t nb = n / 32;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    _mm_prefetch(reinterpret_cast<const char*>(a + i) + 3072, _MM_HINT_T0);
    const __m256 p0 = mul_sum_i8(_mm256_loadu_si256((const __m256i*)a[i].qs),
                                 _mm256_loadu_si256((const __m256i*)b[i].qs));
    const __m256 p1 = mul_sum_i8(_mm256_loadu_si256((const __m256i*)a[i + 1].qs),
                                 _mm256_loadu_si256((const __m256i*)b[i + 1].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d)), p0, acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a[i + 1].d) * h2f(b[i + 1].d)), p1, acc1);
  }
  for (; i < nb; ++i) {
    const __m256 p0 = mul_sum_i8(_mm256_loadu_si256((const __m256i*)a[i].qs),
                                 _mm256_loadu_si256((const __m256i*)b[i].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d)), p0, acc0);
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

inline __m256i q4_nibbles(const uint8_t* qs) {
  const __m128i t = _mm_loadu_si128((const __m128i*)qs);
  const __m256i q = _mm256_insertf128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
  return _mm256_sub_epi8(_mm256_and_si256(q, _mm256_set1_epi8(0xF)), _mm256_set1_epi8(8));
}

float dot_q4_0(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const BlockQ4_0*>(w);
  auto* b = static_cast<const BlockQ8_0*>(x);
  const int64_t nb = n / 32;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m256 p0 = mul_sum_i8(q4_nibbles(a[i].qs), _mm256_loadu_si256((const __m256i*)b[i].qs));
    const __m256 p1 =
        mul_sum_i8(q4_nibbles(a[i + 1].qs), _mm256_loadu_si256((const __m256i*)b[i + 1].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d)), p0, acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a[i + 1].d) * h2f(b[i + 1].d)), p1, acc1);
  }
  for (; i < nb; ++i) {
    const __m256 p0 = mul_sum_i8(q4_nibbles(a[i].qs), _mm256_loadu_si256((const __m256i*)b[i].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d)), p0, acc0);
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

float dot_q4_k(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const BlockQ4_K*>(w);
  auto* b = static_cast<const BlockQ8_K*>(x);
  const __m256i m4 = _mm256_set1_epi8(0xF);
  __m256 acc = _mm256_setzero_ps();
  float mins_acc = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    for (int l = 0; l < 3; ++l)
      _mm_prefetch(reinterpret_cast<const char*>(a + i) + 3072 + 64 * l, _MM_HINT_T0);
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) get_scale_min_k4(j, a[i].scales, &sc[j], &mn[j]);
    int msum = 0;
    for (int j = 0; j < 8; ++j) msum += mn[j] * (b[i].bsums[2 * j] + b[i].bsums[2 * j + 1]);
    mins_acc += b[i].d * h2f(a[i].dmin) * float(msum);
    __m256i sumi = _mm256_setzero_si256();
    const uint8_t* q = a[i].qs;
    const int8_t* y = b[i].qs;
    for (int j = 0; j < 4; ++j, q += 32, y += 64) {
      const __m256i bits = _mm256_loadu_si256((const __m256i*)q);
      const __m256i lo = _mm256_and_si256(bits, m4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
      __m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i*)y));
      __m256i ph = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i*)(y + 32)));
      pl = _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * j]), pl);
      ph = _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * j + 1]), ph);
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(b[i].d * h2f(a[i].d)), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum(acc) - mins_acc;
}

struct MaddAddAvx2 {
  static __m256i f(__m256i acc, __m256i p, __m256i s) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, s));
  }
};

// 4 rows x 24 tokens: 12 accumulators; per k: 3 loads, 4 broadcasts, 12 FMAs.
void gemm_micro(int64_t kc, const float* w, int64_t ldw, const float* xp, float* c, int64_t ldc,
                bool acc) {
  // Accumulators as named locals: GCC keeps them in registers (an array spills to the stack).
  __m256 a00 = acc ? _mm256_loadu_ps(c + 0 * ldc + 0) : _mm256_setzero_ps();
  __m256 a01 = acc ? _mm256_loadu_ps(c + 0 * ldc + 8) : _mm256_setzero_ps();
  __m256 a02 = acc ? _mm256_loadu_ps(c + 0 * ldc + 16) : _mm256_setzero_ps();
  __m256 a10 = acc ? _mm256_loadu_ps(c + 1 * ldc + 0) : _mm256_setzero_ps();
  __m256 a11 = acc ? _mm256_loadu_ps(c + 1 * ldc + 8) : _mm256_setzero_ps();
  __m256 a12 = acc ? _mm256_loadu_ps(c + 1 * ldc + 16) : _mm256_setzero_ps();
  __m256 a20 = acc ? _mm256_loadu_ps(c + 2 * ldc + 0) : _mm256_setzero_ps();
  __m256 a21 = acc ? _mm256_loadu_ps(c + 2 * ldc + 8) : _mm256_setzero_ps();
  __m256 a22 = acc ? _mm256_loadu_ps(c + 2 * ldc + 16) : _mm256_setzero_ps();
  __m256 a30 = acc ? _mm256_loadu_ps(c + 3 * ldc + 0) : _mm256_setzero_ps();
  __m256 a31 = acc ? _mm256_loadu_ps(c + 3 * ldc + 8) : _mm256_setzero_ps();
  __m256 a32 = acc ? _mm256_loadu_ps(c + 3 * ldc + 16) : _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 x0 = _mm256_loadu_ps(xp + k * 24 + 0);
    const __m256 x1 = _mm256_loadu_ps(xp + k * 24 + 8);
    const __m256 x2 = _mm256_loadu_ps(xp + k * 24 + 16);
    {
      const __m256 wr = _mm256_broadcast_ss(w + 0 * ldw + k);
      a00 = _mm256_fmadd_ps(wr, x0, a00);
      a01 = _mm256_fmadd_ps(wr, x1, a01);
      a02 = _mm256_fmadd_ps(wr, x2, a02);
    }
    {
      const __m256 wr = _mm256_broadcast_ss(w + 1 * ldw + k);
      a10 = _mm256_fmadd_ps(wr, x0, a10);
      a11 = _mm256_fmadd_ps(wr, x1, a11);
      a12 = _mm256_fmadd_ps(wr, x2, a12);
    }
    {
      const __m256 wr = _mm256_broadcast_ss(w + 2 * ldw + k);
      a20 = _mm256_fmadd_ps(wr, x0, a20);
      a21 = _mm256_fmadd_ps(wr, x1, a21);
      a22 = _mm256_fmadd_ps(wr, x2, a22);
    }
    {
      const __m256 wr = _mm256_broadcast_ss(w + 3 * ldw + k);
      a30 = _mm256_fmadd_ps(wr, x0, a30);
      a31 = _mm256_fmadd_ps(wr, x1, a31);
      a32 = _mm256_fmadd_ps(wr, x2, a32);
    }
  }
  _mm256_storeu_ps(c + 0 * ldc + 0, a00);
  _mm256_storeu_ps(c + 0 * ldc + 8, a01);
  _mm256_storeu_ps(c + 0 * ldc + 16, a02);
  _mm256_storeu_ps(c + 1 * ldc + 0, a10);
  _mm256_storeu_ps(c + 1 * ldc + 8, a11);
  _mm256_storeu_ps(c + 1 * ldc + 16, a12);
  _mm256_storeu_ps(c + 2 * ldc + 0, a20);
  _mm256_storeu_ps(c + 2 * ldc + 8, a21);
  _mm256_storeu_ps(c + 2 * ldc + 16, a22);
  _mm256_storeu_ps(c + 3 * ldc + 0, a30);
  _mm256_storeu_ps(c + 3 * ldc + 8, a31);
  _mm256_storeu_ps(c + 3 * ldc + 16, a32);
}

void axpy_f32(int64_t n, float a, const void* x, float* y) {
  auto* v = static_cast<const float*>(x);
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(v + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * v[i];
}

void axpy_f16(int64_t n, float a, const void* x, float* y) {
  auto* v = static_cast<const uint16_t*>(x);
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i,
                     _mm256_fmadd_ps(va, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(v + i))),
                                     _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * h2f(v[i]);
}

void deq_f16(const void* src, float* y, int64_t n) {
  auto* h = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(h + i))));
  for (; i < n; ++i) y[i] = h2f(h[i]);
}

void deq_q8_0(const void* src, float* y, int64_t n) {
  auto* b = static_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < n / 32; ++i, y += 32) {
    const __m256 d = _mm256_set1_ps(h2f(b[i].d));
    for (int j = 0; j < 4; ++j) {
      const __m128i q = _mm_loadl_epi64((const __m128i*)(b[i].qs + 8 * j));
      _mm256_storeu_ps(y + 8 * j, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))));
    }
  }
}

void deq_q4_0(const void* src, float* y, int64_t n) {
  auto* b = static_cast<const BlockQ4_0*>(src);
  for (int64_t i = 0; i < n / 32; ++i, y += 32) {
    const __m256 d = _mm256_set1_ps(h2f(b[i].d));
    alignas(32) int8_t q[32];
    _mm256_store_si256((__m256i*)q, q4_nibbles(b[i].qs));
    for (int j = 0; j < 4; ++j) {
      const __m128i v = _mm_loadl_epi64((const __m128i*)(q + 8 * j));
      _mm256_storeu_ps(y + 8 * j, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))));
    }
  }
}

void deq_q4_k(const void* src, float* y, int64_t n) {
  auto* b = static_cast<const BlockQ4_K*>(src);
  const __m256i m4 = _mm256_set1_epi8(0xF);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int j = 0; j < 4; ++j, q += 32) {
      uint8_t sc1, m1, sc2, m2;
      get_scale_min_k4(2 * j, b[i].scales, &sc1, &m1);
      get_scale_min_k4(2 * j + 1, b[i].scales, &sc2, &m2);
      const __m256i bits = _mm256_loadu_si256((const __m256i*)q);
      alignas(32) uint8_t lo[32], hi[32];
      _mm256_store_si256((__m256i*)lo, _mm256_and_si256(bits, m4));
      _mm256_store_si256((__m256i*)hi, _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4));
      const __m256 d1 = _mm256_set1_ps(d * sc1), mm1 = _mm256_set1_ps(dmin * m1);
      const __m256 d2 = _mm256_set1_ps(d * sc2), mm2 = _mm256_set1_ps(dmin * m2);
      for (int k = 0; k < 4; ++k) {
        const __m256 vl =
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(lo + 8 * k))));
        const __m256 vh =
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(hi + 8 * k))));
        _mm256_storeu_ps(y + 8 * k, _mm256_fmsub_ps(d1, vl, mm1));
        _mm256_storeu_ps(y + 32 + 8 * k, _mm256_fmsub_ps(d2, vh, mm2));
      }
      y += 64;
    }
  }
}

// 32 floats times id, rounded to nearest (ties to even, like nearbyint) and packed to s8 in order.
inline __m256i round_pack32(const float* x, __m256 id) {
  const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
  const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
  const __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
  const __m256i e = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, e));
  return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline float amax_n(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  __m256 m = _mm256_setzero_ps();
  for (int j = 0; j < n; j += 8)
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

// Sum of 32 s8 levels.
inline int sum_s8(__m256i q) {
  const __m256i w =
      _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
  __m128i h = _mm_add_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
  h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
  h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
  return _mm_cvtsi128_si32(h);
}

void s8_blocks(const float* x, int64_t K, int8_t* q, float* d_out, float* s_out, int64_t stride) {
  for (int64_t b = 0; b < K / 32; ++b, x += 32, q += 32) {
    const float d = amax_n(x, 32) / 127.f, id = d > 0 ? 1.f / d : 0.f;
    const __m256i v = round_pack32(x, _mm256_set1_ps(id));
    _mm256_storeu_si256((__m256i*)q, v);
    d_out[b * stride] = d;
    s_out[b * stride] = d * float(sum_s8(v));
  }
}

void q8_k_act(const float* x, void* dst, int64_t n) {
  auto* blk = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / QK_K; ++i, x += QK_K) {
    const float d = amax_n(x, QK_K) / 127.f, id = d ? 1.f / d : 0.f;
    blk[i].d = d;
    for (int j = 0; j < QK_K; j += 32) {
      const __m256i v = round_pack32(x + j, _mm256_set1_ps(id));
      _mm256_storeu_si256((__m256i*)(blk[i].qs + j), v);
      // bsums: two sums of 16 levels each.
      const __m256i w =
          _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), v), _mm256_set1_epi16(1));
      const __m128i lo = _mm256_castsi256_si128(w), hi = _mm256_extracti128_si256(w, 1);
      const __m128i l2 = _mm_add_epi32(lo, _mm_shuffle_epi32(lo, 0x4E)),
                    h2 = _mm_add_epi32(hi, _mm_shuffle_epi32(hi, 0x4E));
      blk[i].bsums[j / 16] =
          int16_t(_mm_cvtsi128_si32(_mm_add_epi32(l2, _mm_shuffle_epi32(l2, 0xB1))));
      blk[i].bsums[j / 16 + 1] =
          int16_t(_mm_cvtsi128_si32(_mm_add_epi32(h2, _mm_shuffle_epi32(h2, 0xB1))));
    }
  }
}

KernelTable make() {
  KernelTable t = kernels_scalar();
  t.isa = "avx2";
  t.dot[uint32_t(DType::F32)] = dot_f32;
  t.dot4[uint32_t(DType::F32)] = dot4_f32;
  t.dot[uint32_t(DType::F16)] = dot_f16;
  t.dot4[uint32_t(DType::F16)] = dot4_f16;
  t.dot4[uint32_t(DType::BF16)] = dot4_bf16;
  t.gemv16[uint32_t(DType::F16)] = gemv16<f16x8, 8>;
  t.gemv16[uint32_t(DType::BF16)] = gemv16<bf16x8, 8>;
  t.gemv16[uint32_t(DType::F32)] = gemv16<f32x8, 16>;
  t.unpack16[uint32_t(DType::F16)] = unpack16<f16x8, 8>;
  t.unpack16[uint32_t(DType::BF16)] = unpack16<bf16x8, 8>;
  t.unpack16[uint32_t(DType::F32)] = unpack16<f32x8, 16>;
  t.dot[uint32_t(DType::BF16)] = dot_bf16;
  t.dot[uint32_t(DType::Q8_0)] = dot_q8_0;
  t.dot[uint32_t(DType::Q4_0)] = dot_q4_0;
  t.dot[uint32_t(DType::Q4_K)] = dot_q4_k;
  t.dot[uint32_t(DType::Q6_K)] = dot_q6_k<MaddAddAvx2>;
  t.dot4[uint32_t(DType::Q6_K)] = dot4_q6_k<MaddAddAvx2>;
  t.gemm_micro = gemm_micro;
  t.gemm_mr = 4;
  t.gemm_nr = 24;
  t.quantize_s8_blocks = s8_blocks;
  t.quantize_q8_k = q8_k_act;
  t.int8_micro = gemm_int8_micro_avx2;
  t.gemv_q4_0x8 = gemv_q4_0x8_avx2;
  t.gemv_q4_kx8 = gemv_q4_kx8_avx2;
  t.gemm_q4_0x8x4 = gemm_q4_0x8x4_avx2;
  t.gemm_q4_kx8 = gemm_q4_kx8x4_avx2;
  t.gemv_q8_0x8 = gemv_q8_0x8_avx2;
  t.gemm_q8_0x8x4 = gemm_q8_0x8x4_avx2;
  t.dequant[uint32_t(DType::F16)] = deq_f16;
  t.dequant[uint32_t(DType::Q8_0)] = deq_q8_0;
  t.dequant[uint32_t(DType::Q4_0)] = deq_q4_0;
  t.dequant[uint32_t(DType::Q4_K)] = deq_q4_k;
  t.axpy_f32 = axpy_f32;
  t.axpy_f16 = axpy_f16;
  t.exp_f32 = exp_f32_avx2;
  return t;
}

}  // namespace

const KernelTable* kernels_avx2_unchecked() {
  static const KernelTable t = make();
  return &t;
}

}  // namespace corral
