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

#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/repack.h"

namespace corral {
namespace {

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles: 0 = C (16 tokens x 16 int32), 1 = A (16 tokens x 32 levels), 2 = B (8 x 64 bytes).
void load_config() {
  TileConfig c;
  c.rows[0] = 16, c.colsb[0] = 64;
  c.rows[1] = 16, c.colsb[1] = 32;
  c.rows[2] = 8, c.colsb[2] = 64;
  _tile_loadconfig(&c);
}

inline __m512i pair_load(const uint8_t* a, const uint8_t* b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)a)),
                            _mm256_loadu_si256((const __m256i*)b), 1);
}
inline __m512 pair_scales(const uint8_t* a, const uint8_t* b) {
  return _mm512_cvtph_ps(
      _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i*)a)),
                              _mm_loadu_si128((const __m128i*)b), 1));
}

// Both groups' weights of every block as B tiles ([nb][8][64]) and their scales ([nb][16]).
template <bool Q8>
void unpack_pair(int64_t nb, const uint8_t* g, const uint8_t* h, uint8_t* tiles, float* scales) {
  const size_t gb = Q8 ? kQ8_0GroupBytes : kQ4_0GroupBytes;
  const __m512i m4 = _mm512_set1_epi8(0xF);
  for (int64_t b = 0; b < nb; ++b, g += gb, h += gb) {
    uint8_t* t = tiles + b * 512;
    if (Q8) {
      for (int c = 0; c < 8; ++c) _mm512_storeu_si512(t + 64 * c, pair_load(g + 16 + 32 * c, h + 16 + 32 * c));
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
              const float* xd, const float* xs, int64_t ldb, int64_t T16, float* out, int64_t ldo) {
  const int64_t nb = K / 32;
  thread_local std::vector<uint8_t> tiles;
  thread_local std::vector<float> scales;
  if (tiles.size() < size_t(nb) * 512) tiles.resize(size_t(nb) * 512);
  if (scales.size() < size_t(nb) * 16) scales.resize(size_t(nb) * 16);
  unpack_pair<Q8>(nb, g, g + gbytes, tiles.data(), scales.data());
  load_config();
  alignas(64) int32_t c[16 * 16];
  for (int64_t t0 = 0; t0 < T16; t0 += 16) {
    __m512 acc[16];
    for (int t = 0; t < 16; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      _tile_zero(0);
      _tile_loadd(1, xq + t0 * ldx + 32 * b, ldx);
      _tile_loadd(2, tiles.data() + b * 512, 64);
      if (Q8)
        _tile_dpbssd(0, 1, 2);  // s8 levels x s8 levels
      else
        _tile_dpbsud(0, 1, 2);  // s8 levels x u8 nibbles (the -8 offset applied in float below)
      _tile_stored(0, c, 64);
      const __m512 d = _mm512_loadu_ps(scales.data() + 16 * b);
      for (int t = 0; t < 16; ++t) {
        const int64_t at = (t0 + t) * ldb + b;
        const __m512 s = _mm512_cvtepi32_ps(_mm512_load_si512(c + 16 * t));
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(xd[at])), s, acc[t]);
        if (!Q8) acc[t] = _mm512_fnmadd_ps(d, _mm512_set1_ps(8.f * xs[at]), acc[t]);
      }
    }
    for (int t = 0; t < 16; ++t) _mm512_storeu_ps(out + (t0 + t) * ldo, acc[t]);
  }
  _tile_release();
}

}  // namespace

void set_amx_kernels(KernelTable& t) {
  t.isa = "amx";
  t.amx_pair_q4_0 = amx_pair<false>;
  t.amx_pair_q8_0 = amx_pair<true>;
}

}  // namespace corral
