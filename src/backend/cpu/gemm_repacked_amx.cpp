// AMX kernels over repacked Q4_0/Q8_0 (see repack.h): a pair of 8-row groups (16 rows) against
// full tiles of 16 tokens, for prompts and large decode batches.
//
// Batch invariance: each 32-value block's integer sum is one tile multiply with K = 32 (exact,
// as vpdpbusd's is), and the float steps per block are the VNNI pair kernels' operations in their
// order, lane by lane (lane r = row r of the pair). So every output is bitwise what
// gemm_repacked_avx512.cpp gives, and a batch can mix tiles with those kernels freely.
//
// Layouts per block: the weights become tile B (8 rows of 64 bytes; row q holds values 4q..4q+3
// of all 16 rows, 4 bytes a row: exactly the repacked chunks, the Q4_0 nibbles split into their
// low (values 0-15) and high (16-31) halves), the activations are tile A as quantized (16 tokens
// x 32 levels, natural order), and C = A x B is 16 tokens x 16 rows of int32.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "backend/cpu/avx512_pair.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/repack.h"
#include "format/quant.h"

namespace corral {
namespace {

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// The configuration a thread's tiles hold (0: none yet; 1: the int8 kernels'; 100 + m: BF16 with
// m-row tiles): loaded only when it changes, and never released, since loading and releasing per
// call cost more than a one-token multiply (the state goes with the thread).
thread_local int tl_config = 0;

// Two sets, for even and odd blocks (so one block's tile multiply overlaps the previous block's
// float steps): C (16 tokens x 16 int32) in tiles 0 and 3, A (16 tokens x 32 levels) in 1 and 4,
// B (8 x 64 bytes) in 2 and 5.
void load_config() {
  if (tl_config == 1) return;
  tl_config = 1;
  TileConfig c;
  for (int s = 0; s < 2; ++s) {
    c.rows[3 * s] = 16, c.colsb[3 * s] = 64;
    c.rows[3 * s + 1] = 16, c.colsb[3 * s + 1] = 32;
    c.rows[3 * s + 2] = 8, c.colsb[3 * s + 2] = 64;
  }
  _tile_loadconfig(&c);
}

// Both groups' weights of every block as B tiles ([nb][8][64]) and their scales ([nb][16]).
template <bool Q8>
void unpack_pair(int64_t nb, const uint8_t* g, const uint8_t* h, uint8_t* tiles, float* scales) {
  const size_t gb = Q8 ? kQ8_0GroupBytes : kQ4_0GroupBytes;
  const __m512i m4 = _mm512_set1_epi8(0xF);
  for (int64_t b = 0; b < nb; ++b, g += gb, h += gb) {
    uint8_t* t = tiles + b * 512;
    if (Q8) {
      for (int c = 0; c < 8; ++c)
        _mm512_storeu_si512(t + 64 * c, pair_load(g + 16 + 32 * c, h + 16 + 32 * c));
    } else {
      for (int c = 0; c < 4; ++c) {
        const __m512i bits = pair_load(g + 16 + 32 * c, h + 16 + 32 * c);
        _mm512_storeu_si512(t + 64 * c, _mm512_and_si512(bits, m4));
        _mm512_storeu_si512(t + 64 * (4 + c), _mm512_and_si512(_mm512_srli_epi16(bits, 4), m4));
      }
    }
    _mm512_storeu_ps(scales + 16 * b, pair_scales(g, h));
  }
}

template <bool Q8>
void amx_pair(int64_t K, const uint8_t* g, size_t gbytes, const int8_t* xq, int64_t ldx,
              int64_t bstride, const float* xd, const float* xs, int64_t ldb, int64_t T16,
              float* out, int64_t ldo) {
  const int64_t nb = K / 32;
  thread_local std::vector<uint8_t> tiles;
  thread_local std::vector<float> scales;
  if (tiles.size() < size_t(nb) * 512) tiles.resize(size_t(nb) * 512);
  if (scales.size() < size_t(nb) * 16) scales.resize(size_t(nb) * 16);
  unpack_pair<Q8>(nb, g, g + gbytes, tiles.data(), scales.data());
  load_config();
  alignas(64) int32_t c[2][16 * 16];
  const uint8_t* bt = tiles.data();
  // Block b's integer sums into c[b % 2] (s8 levels x s8 levels for Q8_0; s8 levels x u8
  // nibbles for Q4_0, whose -8 offset is applied in float below).
#define CORRAL_AMX_BLOCK(C, A, B, b)                    \
  do {                                                  \
    _tile_zero(C);                                      \
    _tile_loadd(A, xq + t0 * ldx + bstride * (b), ldx); \
    _tile_loadd(B, bt + (b)*512, 64);                   \
    if (Q8)                                             \
      _tile_dpbssd(C, A, B);                            \
    else                                                \
      _tile_dpbsud(C, A, B);                            \
    _tile_stored(C, c[(b)&1], 64);                      \
  } while (0)
  for (int64_t t0 = 0; t0 < T16; t0 += 16) {
    __m512 acc[16];
    for (int t = 0; t < 16; ++t) acc[t] = _mm512_setzero_ps();
    CORRAL_AMX_BLOCK(0, 1, 2, 0);
    for (int64_t b = 0; b < nb; ++b) {
      if (b + 1 < nb) {  // the next block's tiles first: they run while this block's floats do
        if (b & 1)
          CORRAL_AMX_BLOCK(0, 1, 2, b + 1);
        else
          CORRAL_AMX_BLOCK(3, 4, 5, b + 1);
      }
      const int32_t* cb = c[b & 1];
      const __m512 d = _mm512_loadu_ps(scales.data() + 16 * b);
      for (int t = 0; t < 16; ++t) {
        const int64_t at = (t0 + t) * ldb + b;
        const __m512 s = _mm512_cvtepi32_ps(_mm512_load_si512(cb + 16 * t));
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(xd[at])), s, acc[t]);
        if (!Q8) acc[t] = _mm512_fnmadd_ps(d, _mm512_set1_ps(8.f * xs[at]), acc[t]);
      }
    }
    for (int t = 0; t < 16; ++t) _mm512_storeu_ps(out + (t0 + t) * ldo, acc[t]);
  }
#undef CORRAL_AMX_BLOCK
}

// Q4_K: per superblock and row pair, each 32-value sub-block's sums are one tile multiply (s8
// Q8_K levels x u8 nibbles), combined in int32 with the 6-bit scales (exact, as the AVX2 kernels'
// int16/int32 sums are); the mins against the Q8_K block sums likewise; then the AVX2 kernels'
// two fused multiply-adds per superblock. Q8_K activations: row t at x8k + t * ldx bytes.
void amx_q4_k_pair(int64_t K, const uint8_t* g, size_t gbytes, const uint8_t* x8k, size_t ldx,
                   int64_t T16, float* out, int64_t ldo) {
  const int64_t nsb = K / 256;
  const uint8_t* h = g + gbytes;
  // Per superblock: 8 B tiles (512 bytes each), then scales and mins [8 sub][16 rows] as int32,
  // then d and dmin [16] as floats.
  constexpr size_t kSb = 8 * 512 + 2 * 8 * 16 * 4 + 2 * 16 * 4;
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < size_t(nsb) * kSb) buf.resize(size_t(nsb) * kSb);
  const __m512i m4 = _mm512_set1_epi8(0xF);
  for (int64_t s = 0; s < nsb; ++s) {
    const uint8_t* ga = g + s * kQ4KGroupBytes;
    const uint8_t* gb = h + s * kQ4KGroupBytes;
    uint8_t* sb = buf.data() + s * kSb;
    for (int j = 0; j < 4; ++j)
      for (int c = 0; c < 8; ++c) {
        const __m512i bits = pair_load(ga + 160 + 256 * j + 32 * c, gb + 160 + 256 * j + 32 * c);
        _mm512_storeu_si512(sb + (2 * j) * 512 + 64 * c, _mm512_and_si512(bits, m4));
        _mm512_storeu_si512(sb + (2 * j + 1) * 512 + 64 * c,
                            _mm512_and_si512(_mm512_srli_epi16(bits, 4), m4));
      }
    int32_t* sc = reinterpret_cast<int32_t*>(sb + 8 * 512);
    int32_t* mn = sc + 8 * 16;
    for (int q = 0; q < 8; ++q)
      for (int r = 0; r < 16; ++r) {
        const uint8_t* gr = r < 8 ? ga : gb;
        sc[q * 16 + r] = gr[32 + 8 * q + r % 8];
        mn[q * 16 + r] = gr[96 + 8 * q + r % 8];
      }
    float* dd = reinterpret_cast<float*>(mn + 8 * 16);
    _mm512_storeu_ps(dd, pair_scales(ga, gb));
    _mm512_storeu_ps(dd + 16, pair_scales(ga + 16, gb + 16));
  }
  load_config();
  alignas(64) int32_t c[8][16 * 16];
  for (int64_t t0 = 0; t0 < T16; t0 += 16) {
    __m512 acc[16];
    for (int t = 0; t < 16; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t s = 0; s < nsb; ++s) {
      const uint8_t* sb = buf.data() + s * kSb;
      const int8_t* a = reinterpret_cast<const BlockQ8_K*>(x8k + size_t(t0) * ldx)[s].qs;
      for (int q = 0; q < 8; ++q) {
        _tile_zero(0);
        _tile_loadd(1, a + 32 * q, ldx);
        _tile_loadd(2, sb + q * 512, 64);
        _tile_dpbsud(0, 1, 2);
        _tile_stored(0, c[q], 64);
      }
      const int32_t* sc = reinterpret_cast<const int32_t*>(sb + 8 * 512);
      const int32_t* mn = sc + 8 * 16;
      const float* dd = reinterpret_cast<const float*>(mn + 8 * 16);
      const __m512 d = _mm512_loadu_ps(dd), dm = _mm512_loadu_ps(dd + 16);
      for (int t = 0; t < 16; ++t) {
        const BlockQ8_K& xb = reinterpret_cast<const BlockQ8_K*>(x8k + size_t(t0 + t) * ldx)[s];
        __m512i is = _mm512_setzero_si512(), ms = _mm512_setzero_si512();
        for (int q = 0; q < 8; ++q) {
          is = _mm512_add_epi32(is, _mm512_mullo_epi32(_mm512_loadu_si512(sc + 16 * q),
                                                       _mm512_load_si512(c[q] + 16 * t)));
          ms = _mm512_add_epi32(
              ms, _mm512_mullo_epi32(_mm512_loadu_si512(mn + 16 * q),
                                     _mm512_set1_epi32(xb.bsums[2 * q] + xb.bsums[2 * q + 1])));
        }
        const __m512 xd = _mm512_set1_ps(xb.d);
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, xd), _mm512_cvtepi32_ps(is), acc[t]);
        acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(dm, xd), _mm512_cvtepi32_ps(ms), acc[t]);
      }
    }
    for (int t = 0; t < 16; ++t) _mm512_storeu_ps(out + (t0 + t) * ldo, acc[t]);
  }
}

// ---- BF16 ----
// Tiles: accumulators hi/lo of the first token tile in 0/1, of the second in 2/3; A in 4, 5, 6
// (reused); B (16 pair rows x 16 rows' pairs) in 7; all 16 rows of 64 bytes.
// m: the rows of the accumulator and A tiles (tokens; 16 but for a batch's last tile).
void load_bf16_config(int m) {
  if (tl_config == 100 + m) return;
  tl_config = 100 + m;
  TileConfig c;
  for (int i = 0; i < 8; ++i) c.rows[i] = uint8_t(i >= 6 ? 16 : m), c.colsb[i] = 64;  // 6, 7: B
  _tile_loadconfig(&c);
}

void split_bf16(const float* x, int64_t n, uint16_t* hi, uint16_t* lo) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __m256i h = (__m256i)_mm512_cvtneps_pbh(v);
    const __m512 hf = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    const __m256i l = (__m256i)_mm512_cvtneps_pbh(_mm512_sub_ps(v, hf));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi + i), h);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo + i), l);
  }
  if (i < n) {  // the tail through a zero-padded vector: the same rounding per value
    alignas(64) float t[16] = {};
    alignas(64) uint16_t h[16], l[16];
    for (int64_t j = i; j < n; ++j) t[j - i] = x[j];
    split_bf16(t, 16, h, l);
    for (int64_t j = i; j < n; ++j) hi[j] = h[j - i], lo[j] = l[j - i];
  }
}

// Per output: the hi parts' products accumulated over k in one tile chain, the lo parts' in
// another (independent chains, so tile multiplies overlap), then hi + lo: the same arithmetic for
// every token whichever loop below takes it. np (1 or 2) pairs at g, g + 2 gbytes: the last tile
// (decode's one row) runs both pairs' four chains together, since one row's chain is short of
// work to hide the multiply's latency.
void amx_bf16_pairs(int64_t K, const uint8_t* g, size_t gbytes, int np, const uint16_t* xh,
                    const uint16_t* xl, int64_t T, float* out, int64_t ldo) {
  // The pairs' weights are already B tiles (repack.h's BF16 tile layout), chunk q at + 1 KiB q;
  // the activations are block-major (kernels.h), so each A tile is 1 KiB in a row.
  const int64_t nc = K / 32;
  const size_t pstride = 2 * gbytes;
  alignas(64) float ch[16 * 16], cl[16 * 16];
  auto store = [&](float* o, int64_t t0, int m) {
    for (int t = 0; t < m; ++t)
      _mm512_storeu_ps(o + (t0 + t) * ldo,
                       _mm512_add_ps(_mm512_load_ps(ch + 16 * t), _mm512_load_ps(cl + 16 * t)));
  };
  // Tile loads are not prefetched by the hardware streams.
  auto prefetch = [&](const uint8_t* bt, int64_t q) {
    if (q < nc)
      for (int i = 0; i < 16; ++i)
        _mm_prefetch(reinterpret_cast<const char*>(bt + q * 1024 + 64 * i), _MM_HINT_T0);
  };
  const int64_t full = T / 32 * 32;  // tokens taken two tiles at a time
  if (full > 0) load_bf16_config(16);
  for (int p = 0; p < np && full > 0; ++p) {
    const uint8_t* bt = g + p * pstride;
    float* o = out + 16 * p;
    for (int64_t t0 = 0; t0 < full; t0 += 32) {  // two token tiles share each B tile
      const uint16_t *h0 = xh + t0 * K, *l0 = xl + t0 * K, *h1 = h0 + 16 * K, *l1 = l0 + 16 * K;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t q = 0; q < nc; ++q) {
        if (t0 == 0) prefetch(bt, q + 16);
        _tile_loadd(7, bt + q * 1024, 64);
        _tile_loadd(4, h0 + 512 * q, 64);
        _tile_loadd(5, l0 + 512 * q, 64);
        _tile_loadd(6, h1 + 512 * q, 64);
        _tile_dpbf16ps(0, 4, 7);
        _tile_dpbf16ps(1, 5, 7);
        _tile_dpbf16ps(2, 6, 7);
        _tile_loadd(4, l1 + 512 * q, 64);
        _tile_dpbf16ps(3, 4, 7);
      }
      _tile_stored(0, ch, 64);
      _tile_stored(1, cl, 64);
      store(o, t0, 16);
      _tile_stored(2, ch, 64);
      _tile_stored(3, cl, 64);
      store(o, t0 + 16, 16);
    }
  }
  for (int64_t t0 = full; t0 < T; t0 += 16) {  // tiles of up to 16 tokens, both pairs at once
    const int m = int(std::min<int64_t>(16, T - t0));
    load_bf16_config(m);
    const uint8_t *b0 = g, *b1 = g + (np > 1 ? pstride : 0);
    const uint16_t *h = xh + t0 * K, *l = xl + t0 * K;
    _tile_zero(0);
    _tile_zero(1);
    if (np > 1) {
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t q = 0; q < nc; ++q) {
        if (full == 0) prefetch(b0, q + 16), prefetch(b1, q + 16);
        _tile_loadd(4, h + 512 * q, 64);
        _tile_loadd(5, l + 512 * q, 64);
        _tile_loadd(6, b0 + q * 1024, 64);
        _tile_loadd(7, b1 + q * 1024, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 5, 6);
        _tile_dpbf16ps(2, 4, 7);
        _tile_dpbf16ps(3, 5, 7);
      }
    } else {
      for (int64_t q = 0; q < nc; ++q) {
        if (full == 0) prefetch(b0, q + 16);
        _tile_loadd(4, h + 512 * q, 64);
        _tile_loadd(5, l + 512 * q, 64);
        _tile_loadd(6, b0 + q * 1024, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 5, 6);
      }
    }
    _tile_stored(0, ch, 64);
    _tile_stored(1, cl, 64);
    store(out, t0, m);
    if (np > 1) {
      _tile_stored(2, ch, 64);
      _tile_stored(3, cl, 64);
      store(out + 16, t0, m);
    }
  }
}

}  // namespace

void set_amx_kernels(KernelTable& t) {
  t.amx_bf16 = amx_bf16_pairs;
  t.split_bf16 = split_bf16;
  t.amx_pair_q4_k = amx_q4_k_pair;
  t.isa = "amx";
  t.amx_pair_q4_0 = amx_pair<false>;
  t.amx_pair_q8_0 = amx_pair<true>;
}

}  // namespace corral
