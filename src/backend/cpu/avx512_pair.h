// Loads shared by the AVX-512 kernels that take two repacked 8-row groups at once (the VNNI pair
// kernels and the AMX tiles): include only from files built with AVX-512 flags.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace corral {

// Group a's 32 bytes at offset off in the low half, group b's in the high half.
static inline __m512i pair_load(const uint8_t* a, const uint8_t* b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)a)),
                            _mm256_loadu_si256((const __m256i*)b), 1);
}

// The 8 fp16 row scales of both groups' block as 16 floats.
static inline __m512 pair_scales(const uint8_t* a, const uint8_t* b) {
  return _mm512_cvtph_ps(
      _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i*)a)),
                              _mm_loadu_si128((const __m128i*)b), 1));
}

}  // namespace corral
