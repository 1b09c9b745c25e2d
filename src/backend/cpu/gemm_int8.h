// Integer GEMM for prompt batches over 4/8-bit weights (see ops/matmul.cpp for the driver).
// Weights are unpacked per panel to 32-value blocks: u8 levels (or s8 for Q8_0) with a scale
// and an offset per block (value = scale * level - offset); activations to s8 blocks with a
// scale and a scaled sum, so the offsets cost one small dot per output.
#pragma once
#include <cstdint>

#include "core/types.h"

namespace corral {

// Longest row (in 32-value blocks) the micro-kernel's scale table holds.
constexpr int64_t kInt8MaxBlocks = 1024;

// Whether `t` has an integer GEMM path, and whether its levels are signed.
bool int8_gemm_supports(DType t, bool* signed_levels);

// Unpacks n values of one weight row: levels (32 per block), per-block scale and offset.
void int8_unpack_row(DType t, const void* src, int64_t n, uint8_t* levels, float* scale,
                     float* offset, bool avx2);

// out[2][4] for rows (w, w + ldw) and tokens x + t*ldx, t < 4, over nb <= 256 blocks, offsets
// included. xd4/xs4: the 4 tokens' block scales and scaled sums interleaved [nb][4]. (AVX2 build)
void gemm_int8_micro_avx2(bool signed_weights, int64_t nb, const uint8_t* w, int64_t ldw,
                          const float* ws, const float* wo, int64_t lds, const int8_t* x,
                          int64_t ldx, const float* xd4, const float* xs4, float* out);
// Nibble unpacking: one Q4_0 block (16 bytes, q4_0_order) or n_bytes of Q4_K quants.
void int8_unpack_nibbles_avx2(const uint8_t* q, int64_t n_bytes, bool q4_0_order, uint8_t* out);

}  // namespace corral
