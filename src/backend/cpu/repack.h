// Weight repacking for decode: Q4_0 rows are regrouped eight at a time so that one 32-byte load
// holds four values of each of eight rows. With the activation's four matching bytes broadcast,
// maddubs+madd leave one row per int32 lane: no per-row reduction, no sign trick, one scale
// conversion per eight rows, and a single sequential stream through memory.
//
// Layout of a group of 8 rows, per 32-value block b (144 bytes, the size of 8 Q4_0 blocks):
//   d[8] (fp16, one per row), then 4 chunks of 32 bytes; chunk c holds, for row i, the original
//   quant bytes qs[4c .. 4c+3] at bytes [4i .. 4i+3] (low nibble = value 4c+j, high = 16+4c+j).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace corral {

constexpr size_t kQ4_0GroupBytes = 144;

// Q4_K (2-d weights only: the regrouped superblock is 1184 bytes instead of 8 x 144), per group
// of 8 rows and superblock: d[8], dmin[8] (fp16), scales[8 sub][8 rows], mins[8 sub][8 rows]
// (u8), then for each 64-value chunk j, 8 x 32 bytes: chunk c holds row i's quant bytes
// [32j + 4c .. +3] at [4i .. 4i+3] (low nibbles: values 64j+4c+k, high: 64j+32+4c+k).
constexpr size_t kQ4KGroupBytes = 1184;

// Q8_0, per group of 8 rows and 32-value block (272 bytes, the size of 8 Q8_0 blocks): d[8]
// (fp16), then 8 chunks of 32 bytes; chunk c holds row i's levels qs[4c .. 4c+3] at [4i .. 4i+3]
// (the Q4_0 grouping with whole bytes).
constexpr size_t kQ8_0GroupBytes = 272;

// Q6_K (2-d weights, rows a multiple of 16: its kernels take two groups at once), per group of 8
// rows and superblock (1680 bytes, the size of 8 Q6_K blocks): d[8] (fp16), scales[16 sub][8 rows]
// (s8), then per 16-value sub-block j, 96 bytes: two chunks of 32 bytes whose bytes [4i .. 4i+3]
// hold row i's low 4 bits of values 16j+b (low nibble) and 16j+4+b (high nibble), resp. 16j+8+b
// and 16j+12+b, b = 0..3; then 32 bytes whose byte 4i+b holds the high 2 bits of values
// 16j+4m+b at bits 2m, 2m+1 (m = 0..3).
constexpr size_t kQ6KGroupBytes = 1680;
void repack_q6_k(const TensorView& w, uint8_t* dst, ThreadPool* pool = nullptr);
void repacked_q6_k_row(const uint8_t* data, int64_t K, int64_t r, uint8_t* out_blocks);

// F16 / BF16 / F32 (2-d weights only), per group of 8 rows: for each k, the 8 rows' values (16
// bytes, 32 for F32), so one load is a column of the group and the few-token kernels keep one
// output row per lane, each a fused multiply-add after another in k order (the f32 GEMM's
// per-output arithmetic).
inline bool repacked_by_column(DType t) {
  return t == DType::F16 || t == DType::BF16 || t == DType::F32;
}
void repack_16bit_x8(const TensorView& w, uint8_t* dst, ThreadPool* pool = nullptr);
// Row r of a repacked F16/BF16 weight of n_rows rows (either layout below).
void repacked_16bit_row(DType t, const uint8_t* data, int64_t K, int64_t n_rows, int64_t r, uint16_t* out);
// BF16 on the AMX table (K a multiple of 32): each pair of groups (16 rows) is laid out as AMX-BF16
// B tiles instead, chunk c (values 32c..32c+31) 16 rows of 64 bytes, row p holding for each of
// the 16 weight rows its values 32c+2p and 32c+2p+1 (1 KiB per chunk, the pair's same 2*K*16
// bytes); a weight's odd last group keeps the column layout.
bool bf16_tile_layout(DType t, int64_t K);
void repacked_f32_row(const uint8_t* data, int64_t K, int64_t r, float* out);

// Whether a weight can be repacked (Q4_0/Q8_0 with rows a multiple of 8, Q4_K 2-d) and a kernel
// uses it.
bool repack_supported(const TensorView& w);
// dst gets the repacked copy of w's rows (w.nbytes() bytes); pool (optional) splits the work.
void repack_q4_0x8(const TensorView& w, uint8_t* dst, ThreadPool* pool = nullptr);
void repack_q8_0x8(const TensorView& w, uint8_t* dst, ThreadPool* pool = nullptr);
// Bytes the repacked copy needs.
size_t repacked_bytes(const TensorView& w);
// Bytes of one group of 8 rows of width K in the repacked layout of type t (Q4_0, Q8_0, Q4_K).
size_t repacked_group_bytes(DType t, int64_t K);
void repack_q4_k(const TensorView& w, uint8_t* dst, ThreadPool* pool = nullptr);
// Row r of a repacked tensor back in plain blocks: the inverse of the layout (tests check it).
void repacked_q4_0_row(const uint8_t* data, int64_t K, int64_t r, uint8_t* out_blocks);
void repacked_q4_k_row(const uint8_t* data, int64_t K, int64_t r, uint8_t* out_blocks);
void repacked_q8_0_row(const uint8_t* data, int64_t K, int64_t r, uint8_t* out_blocks);
// Repacks w into dst with the routine for its type, in slices of kRepackSliceRows rows;
// after_slice (optional) gets each source slice once it has been copied (to release it).
constexpr int64_t kRepackSliceRows = 4096;
void repack_weight(const TensorView& w, uint8_t* dst, ThreadPool* pool = nullptr,
                   const std::function<void(const TensorView&)>& after_slice = {});

}  // namespace corral
