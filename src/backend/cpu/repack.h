// Weight repacking for decode: Q4_0 rows are regrouped eight at a time so that one 32-byte load
// holds four values of each of eight rows. With the activation's four matching bytes broadcast,
// maddubs+madd leave one row per int32 lane: no per-row reduction, no sign trick, one scale
// conversion per eight rows, and a single sequential stream through memory.
//
// Layout of a group of 8 rows, per 32-value block b (144 bytes, the size of 8 Q4_0 blocks):
//   d[8] (fp16, one per row), then 4 chunks of 32 bytes; chunk c holds, for row i, the original
//   quant bytes qs[4c .. 4c+3] at bytes [4i .. 4i+3] (low nibble = value 4c+j, high = 16+4c+j).
#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace corral {

// Whether a weight can be repacked (Q4_0 with rows a multiple of 8) and a kernel uses it.
bool repack_supported(const TensorView& w);
// dst gets the repacked copy of w's rows (w.nbytes() bytes); pool (optional) splits the work.
void repack_q4_0x8(const TensorView& w, uint8_t* dst, ThreadPool* pool = nullptr);
// Row r of a repacked Q4_0 tensor back in plain Q4_0 blocks (for the prompt GEMM's unpacking).
void repacked_q4_0_row(const uint8_t* data, int64_t K, int64_t r, uint8_t* out_blocks);

}  // namespace corral
