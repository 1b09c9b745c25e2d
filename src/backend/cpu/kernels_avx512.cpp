// AVX-512 (F, BW, VL, VNNI) kernels: the 512-bit F32 dot and GEMM micro-kernel, VNNI integer
// dots for Q8_0/Q4_0 (the repacked ones are in gemm_repacked_avx512.cpp). The K-quant dots come
// from the AVX2 table (the file is built with both).
#include <immintrin.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/q6_k_dots.h"
#include "core/fp16.h"
#include "format/quant.h"

namespace corral {
namespace {

inline float h2f(uint16_t h) {
  return _cvtsh_ss(h);
}

float dot_f32(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const float*>(w);
  auto* b = static_cast<const float*>(x);
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
    s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
  }
  for (; i + 16 <= n; i += 16)
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

// dot_f32 for 4 activation rows (ldx bytes apart), each token's arithmetic exactly dot_f32's.
void dot4_f32(int64_t n, const void* w, const void* x, size_t ldx, float* out) {
  auto* a = static_cast<const float*>(w);
  const float* b[4];
  for (int t = 0; t < 4; ++t)
    b[t] = reinterpret_cast<const float*>(static_cast<const uint8_t*>(x) + size_t(t) * ldx);
  __m512 s[4][4];
  for (auto& st : s)
    for (auto& v : st) v = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int q = 0; q < 4; ++q) {
      const __m512 wv = _mm512_loadu_ps(a + i + 16 * q);
      for (int t = 0; t < 4; ++t)
        s[t][q] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(b[t] + i + 16 * q), s[t][q]);
    }
  for (; i + 16 <= n; i += 16) {
    const __m512 wv = _mm512_loadu_ps(a + i);
    for (int t = 0; t < 4; ++t) s[t][0] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(b[t] + i), s[t][0]);
  }
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    const __m512 wv = _mm512_maskz_loadu_ps(m, a + i);
    for (int t = 0; t < 4; ++t)
      s[t][1] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, b[t] + i), s[t][1]);
  }
  for (int t = 0; t < 4; ++t)
    out[t] = _mm512_reduce_add_ps(
        _mm512_add_ps(_mm512_add_ps(s[t][0], s[t][1]), _mm512_add_ps(s[t][2], s[t][3])));
}

inline __m512 pair_scale(float s0, float s1) {
  return _mm512_insertf32x8(_mm512_set1_ps(s0), _mm256_set1_ps(s1), 1);
}

// Two Q8_0 weight blocks (signed) against two activation blocks: VNNI needs an unsigned
// operand, so w + 128 is used and 128 * sum(x) subtracted.
float dot_q8_0(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const BlockQ8_0*>(w);
  auto* b = static_cast<const BlockQ8_0*>(x);
  const int64_t nb = n / 32;
  const __m512i bias = _mm512_set1_epi8(char(0x80)), ones128 = _mm512_set1_epi8(char(0x80));
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m512i wa =
        _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)a[i].qs)),
                           _mm256_loadu_si256((const __m256i*)a[i + 1].qs), 1);
    const __m512i xb =
        _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)b[i].qs)),
                           _mm256_loadu_si256((const __m256i*)b[i + 1].qs), 1);
    const __m512i wu = _mm512_xor_si512(wa, bias);  // w + 128 as u8
    __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wu, xb);
    d = _mm512_sub_epi32(d, _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones128, xb));
    acc = _mm512_fmadd_ps(pair_scale(h2f(a[i].d) * h2f(b[i].d), h2f(a[i + 1].d) * h2f(b[i + 1].d)),
                          _mm512_cvtepi32_ps(d), acc);
  }
  float s = _mm512_reduce_add_ps(acc);
  for (; i < nb; ++i) {
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += int(a[i].qs[j]) * int(b[i].qs[j]);
    s += h2f(a[i].d) * h2f(b[i].d) * float(sum);
  }
  return s;
}

inline __m256i nibbles32(const uint8_t* qs) {
  const __m128i t = _mm_loadu_si128((const __m128i*)qs);
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0xF));
}

float dot_q4_0(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const BlockQ4_0*>(w);
  auto* b = static_cast<const BlockQ8_0*>(x);
  const int64_t nb = n / 32;
  const __m512i eights = _mm512_set1_epi8(8);
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m512i wu =
        _mm512_inserti64x4(_mm512_castsi256_si512(nibbles32(a[i].qs)), nibbles32(a[i + 1].qs), 1);
    const __m512i xb =
        _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)b[i].qs)),
                           _mm256_loadu_si256((const __m256i*)b[i + 1].qs), 1);
    __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wu, xb);
    d = _mm512_sub_epi32(d, _mm512_dpbusd_epi32(_mm512_setzero_si512(), eights, xb));
    acc = _mm512_fmadd_ps(pair_scale(h2f(a[i].d) * h2f(b[i].d), h2f(a[i + 1].d) * h2f(b[i + 1].d)),
                          _mm512_cvtepi32_ps(d), acc);
  }
  float s = _mm512_reduce_add_ps(acc);
  for (; i < nb; ++i) {
    int sum = 0;
    for (int j = 0; j < 16; ++j)
      sum += ((a[i].qs[j] & 0xF) - 8) * int(b[i].qs[j]) +
             ((a[i].qs[j] >> 4) - 8) * int(b[i].qs[j + 16]);
    s += h2f(a[i].d) * h2f(b[i].d) * float(sum);
  }
  return s;
}

// 8 rows x 48 tokens: 24 accumulators; per k: 3 loads, 8 broadcasts, 24 FMAs.
void gemm_micro(int64_t kc, const float* w, int64_t ldw, const float* xp, float* c, int64_t ldc,
                bool acc) {
  // Accumulators as named locals: GCC keeps them in registers (an array spills to the stack).
  __m512 a00 = acc ? _mm512_loadu_ps(c + 0 * ldc + 0) : _mm512_setzero_ps();
  __m512 a01 = acc ? _mm512_loadu_ps(c + 0 * ldc + 16) : _mm512_setzero_ps();
  __m512 a02 = acc ? _mm512_loadu_ps(c + 0 * ldc + 32) : _mm512_setzero_ps();
  __m512 a10 = acc ? _mm512_loadu_ps(c + 1 * ldc + 0) : _mm512_setzero_ps();
  __m512 a11 = acc ? _mm512_loadu_ps(c + 1 * ldc + 16) : _mm512_setzero_ps();
  __m512 a12 = acc ? _mm512_loadu_ps(c + 1 * ldc + 32) : _mm512_setzero_ps();
  __m512 a20 = acc ? _mm512_loadu_ps(c + 2 * ldc + 0) : _mm512_setzero_ps();
  __m512 a21 = acc ? _mm512_loadu_ps(c + 2 * ldc + 16) : _mm512_setzero_ps();
  __m512 a22 = acc ? _mm512_loadu_ps(c + 2 * ldc + 32) : _mm512_setzero_ps();
  __m512 a30 = acc ? _mm512_loadu_ps(c + 3 * ldc + 0) : _mm512_setzero_ps();
  __m512 a31 = acc ? _mm512_loadu_ps(c + 3 * ldc + 16) : _mm512_setzero_ps();
  __m512 a32 = acc ? _mm512_loadu_ps(c + 3 * ldc + 32) : _mm512_setzero_ps();
  __m512 a40 = acc ? _mm512_loadu_ps(c + 4 * ldc + 0) : _mm512_setzero_ps();
  __m512 a41 = acc ? _mm512_loadu_ps(c + 4 * ldc + 16) : _mm512_setzero_ps();
  __m512 a42 = acc ? _mm512_loadu_ps(c + 4 * ldc + 32) : _mm512_setzero_ps();
  __m512 a50 = acc ? _mm512_loadu_ps(c + 5 * ldc + 0) : _mm512_setzero_ps();
  __m512 a51 = acc ? _mm512_loadu_ps(c + 5 * ldc + 16) : _mm512_setzero_ps();
  __m512 a52 = acc ? _mm512_loadu_ps(c + 5 * ldc + 32) : _mm512_setzero_ps();
  __m512 a60 = acc ? _mm512_loadu_ps(c + 6 * ldc + 0) : _mm512_setzero_ps();
  __m512 a61 = acc ? _mm512_loadu_ps(c + 6 * ldc + 16) : _mm512_setzero_ps();
  __m512 a62 = acc ? _mm512_loadu_ps(c + 6 * ldc + 32) : _mm512_setzero_ps();
  __m512 a70 = acc ? _mm512_loadu_ps(c + 7 * ldc + 0) : _mm512_setzero_ps();
  __m512 a71 = acc ? _mm512_loadu_ps(c + 7 * ldc + 16) : _mm512_setzero_ps();
  __m512 a72 = acc ? _mm512_loadu_ps(c + 7 * ldc + 32) : _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 x0 = _mm512_loadu_ps(xp + k * 48 + 0);
    const __m512 x1 = _mm512_loadu_ps(xp + k * 48 + 16);
    const __m512 x2 = _mm512_loadu_ps(xp + k * 48 + 32);
    {
      const __m512 wr = _mm512_set1_ps(w[0 * ldw + k]);
      a00 = _mm512_fmadd_ps(wr, x0, a00);
      a01 = _mm512_fmadd_ps(wr, x1, a01);
      a02 = _mm512_fmadd_ps(wr, x2, a02);
    }
    {
      const __m512 wr = _mm512_set1_ps(w[1 * ldw + k]);
      a10 = _mm512_fmadd_ps(wr, x0, a10);
      a11 = _mm512_fmadd_ps(wr, x1, a11);
      a12 = _mm512_fmadd_ps(wr, x2, a12);
    }
    {
      const __m512 wr = _mm512_set1_ps(w[2 * ldw + k]);
      a20 = _mm512_fmadd_ps(wr, x0, a20);
      a21 = _mm512_fmadd_ps(wr, x1, a21);
      a22 = _mm512_fmadd_ps(wr, x2, a22);
    }
    {
      const __m512 wr = _mm512_set1_ps(w[3 * ldw + k]);
      a30 = _mm512_fmadd_ps(wr, x0, a30);
      a31 = _mm512_fmadd_ps(wr, x1, a31);
      a32 = _mm512_fmadd_ps(wr, x2, a32);
    }
    {
      const __m512 wr = _mm512_set1_ps(w[4 * ldw + k]);
      a40 = _mm512_fmadd_ps(wr, x0, a40);
      a41 = _mm512_fmadd_ps(wr, x1, a41);
      a42 = _mm512_fmadd_ps(wr, x2, a42);
    }
    {
      const __m512 wr = _mm512_set1_ps(w[5 * ldw + k]);
      a50 = _mm512_fmadd_ps(wr, x0, a50);
      a51 = _mm512_fmadd_ps(wr, x1, a51);
      a52 = _mm512_fmadd_ps(wr, x2, a52);
    }
    {
      const __m512 wr = _mm512_set1_ps(w[6 * ldw + k]);
      a60 = _mm512_fmadd_ps(wr, x0, a60);
      a61 = _mm512_fmadd_ps(wr, x1, a61);
      a62 = _mm512_fmadd_ps(wr, x2, a62);
    }
    {
      const __m512 wr = _mm512_set1_ps(w[7 * ldw + k]);
      a70 = _mm512_fmadd_ps(wr, x0, a70);
      a71 = _mm512_fmadd_ps(wr, x1, a71);
      a72 = _mm512_fmadd_ps(wr, x2, a72);
    }
  }
  _mm512_storeu_ps(c + 0 * ldc + 0, a00);
  _mm512_storeu_ps(c + 0 * ldc + 16, a01);
  _mm512_storeu_ps(c + 0 * ldc + 32, a02);
  _mm512_storeu_ps(c + 1 * ldc + 0, a10);
  _mm512_storeu_ps(c + 1 * ldc + 16, a11);
  _mm512_storeu_ps(c + 1 * ldc + 32, a12);
  _mm512_storeu_ps(c + 2 * ldc + 0, a20);
  _mm512_storeu_ps(c + 2 * ldc + 16, a21);
  _mm512_storeu_ps(c + 2 * ldc + 32, a22);
  _mm512_storeu_ps(c + 3 * ldc + 0, a30);
  _mm512_storeu_ps(c + 3 * ldc + 16, a31);
  _mm512_storeu_ps(c + 3 * ldc + 32, a32);
  _mm512_storeu_ps(c + 4 * ldc + 0, a40);
  _mm512_storeu_ps(c + 4 * ldc + 16, a41);
  _mm512_storeu_ps(c + 4 * ldc + 32, a42);
  _mm512_storeu_ps(c + 5 * ldc + 0, a50);
  _mm512_storeu_ps(c + 5 * ldc + 16, a51);
  _mm512_storeu_ps(c + 5 * ldc + 32, a52);
  _mm512_storeu_ps(c + 6 * ldc + 0, a60);
  _mm512_storeu_ps(c + 6 * ldc + 16, a61);
  _mm512_storeu_ps(c + 6 * ldc + 32, a62);
  _mm512_storeu_ps(c + 7 * ldc + 0, a70);
  _mm512_storeu_ps(c + 7 * ldc + 16, a71);
  _mm512_storeu_ps(c + 7 * ldc + 32, a72);
}

// gemm_micro for the last, narrow panel of a product (NV * 16 <= 32 columns: attention's head
// width 64 = 48 + 16, LoRA's rank 16): xp holds NV * 16 floats per k. Each output is the same
// chain of fused multiply-adds in k order as gemm_micro's, so the two agree bitwise.
template <int NV>
void gemm_micro_narrow(int64_t kc, const float* w, int64_t ldw, const float* xp, float* c,
                       int64_t ldc, bool acc) {
  __m512 a[8][NV];
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) a[r][v] = acc ? _mm512_loadu_ps(c + r * ldc + 16 * v) : _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    __m512 x[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) x[v] = _mm512_loadu_ps(xp + k * (16 * NV) + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) {
      const __m512 wr = _mm512_set1_ps(w[r * ldw + k]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) a[r][v] = _mm512_fmadd_ps(wr, x[v], a[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(c + r * ldc + 16 * v, a[r][v]);
}

void axpy_f16(int64_t n, float a, const void* x, float* y) {
  auto* v = static_cast<const uint16_t*>(x);
  const __m512 va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(
        y + i, _mm512_fmadd_ps(va, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(v + i))),
                               _mm512_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * h2f(v[i]);
}

struct MaddAddVnni {
  static __m256i f(__m256i acc, __m256i p, __m256i s) { return _mm256_dpwssd_epi32(acc, p, s); }
};

KernelTable make() {
  KernelTable t = *kernels_avx2_unchecked();
  t.isa = "avx512";
  t.dot[uint32_t(DType::F32)] = dot_f32;
  t.dot4[uint32_t(DType::F32)] = dot4_f32;
  // F16/BF16 keep the AVX2 dots: their 4-row kernels and the repacked gemv16 are defined to
  // match those, and gemv16's per-output chain of fused multiply-adds in k order is also what
  // this table's gemm_micro computes (the test checks it), so repacking stays batch-invariant.
  t.dot[uint32_t(DType::Q8_0)] = dot_q8_0;
  t.dot[uint32_t(DType::Q4_0)] = dot_q4_0;
  t.dot[uint32_t(DType::Q6_K)] = dot_q6_k<MaddAddVnni>;
  t.dot4[uint32_t(DType::Q6_K)] = dot4_q6_k<MaddAddVnni>;
  t.gemm_micro = gemm_micro;
  t.gemm_mr = 8;
  t.gemm_nr = 48;
  t.gemm_micro_narrow[0] = gemm_micro_narrow<1>;
  t.gemm_micro_narrow[1] = gemm_micro_narrow<2>;
  t.axpy_f16 = axpy_f16;
  t.exp_f32 = exp_f32_avx512;
  set_repacked_pair_kernels_avx512(t);
  return t;
}

}  // namespace

const KernelTable* kernels_avx512_unchecked() {
  static const KernelTable t = make();
  return &t;
}

}  // namespace corral
