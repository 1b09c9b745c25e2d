// Packed weight layouts: the copy a weight type gets for one kernel table (backend/cpu/repack.h)
// and how T tokens are multiplied with it. One object per weight type and table: the vector
// layouts (Q4_0, Q8_0 and Q4_K in 8-row groups; F16/BF16/F32 by column) and the AMX ones (the
// integer tiles over the same copies, BF16 as tiles). matmul() asks a repacked weight's layout to
// multiply and nothing else, so a new ISA is more layout objects, not more conditions there.
#pragma once
#include <initializer_list>

#include "ops/matmul.h"

namespace corral {

struct PackedLayout {
  const char* name;  // e.g. "q4_0x8 vnni", "q8_0x8 amx", "bf16 tiles amx"
  // y_j = W_j x for targets packed in this layout with one K (Q/K/V, gate/up share x); x is
  // [T][K]. Each token's outputs are bitwise the same for any T (batch invariance).
  void (*multiply)(Context& ctx, std::initializer_list<MatmulTarget> targets, const float* x,
                   int64_t T, MatmulScratch& s);
  // Row r of a packed weight back in the file's own encoding (the layout's inverse).
  void (*row)(const TensorView& packed, int64_t r, void* out);
};

// The layout the current kernel table packs type t (rows of K values) with; nullptr: none.
// CORRAL_NO_AMX=1 picks the vector layout of an integer type (same copy, no tiles).
const PackedLayout* packed_layout(DType t, int64_t K);

// Every layout's scalar reference: the packed rows read back, dequantized and accumulated in
// double (what tests hold each layout's multiply to).
void packed_reference(const TensorView& packed, const float* x, int64_t T, float* y);

// The layouts, for the registry and for tests (an AMX one only where kernels_best() has its tiles).
const PackedLayout& packed_q4_0_vector();
const PackedLayout& packed_q8_0_vector();
const PackedLayout& packed_q4_k_vector();
const PackedLayout& packed_q6_k_vector();
const PackedLayout& packed_q4_0_amx();
const PackedLayout& packed_q8_0_amx();
const PackedLayout& packed_q4_k_amx();
const PackedLayout& packed_columns();
// Training's Q8_0 transposes (ops/transposed.h): the repacked Q8_0 groups with every level stored
// as w + 128 (u8), so the AVX-512 kernel multiplies them without moving signs, bitwise the same
// outputs as the plain layout. Supported for a repacked Q8_0 weight with rows a multiple of 16
// on a table with the offset kernel; offset_q8_0_levels converts a plain copy in place (and back).
const PackedLayout& packed_q8_0_offset();
bool offset_q8_0_supported(const TensorView& repacked_q8_0);
void offset_q8_0_levels(uint8_t* repacked, size_t bytes);
const PackedLayout& packed_bf16_tiles();

}  // namespace corral
