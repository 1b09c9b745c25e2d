// CPU dot-product kernels per weight type, one table per ISA, chosen once at start-up from
// CPUID (CORRAL_ISA=scalar|avx2|avx512 forces one, for tests and comparisons).
// A weight row of type W is dotted with an activation row already converted to act_type(W):
// F32 for float weights, Q8_0 for Q8_0/Q4_0 (integer dot products), Q8_K for the K-quants.
#pragma once
#include <cstdint>
#include <string>

#include "core/types.h"

namespace corral {

using DotFn = float (*)(int64_t n, const void* w, const void* x);
// One weight row against 4 activation rows (ldx bytes apart): out[t] is bitwise what DotFn
// gives for row t alone (batch invariance), with the weight converted once for all four.
using Dot4Fn = void (*)(int64_t n, const void* w, const void* x, size_t ldx, float* out4);
using QuantizeActFn = void (*)(const float* x, void* dst, int64_t n);

// GEMM micro-kernel: c[MR][NR] (+)= w[MR][k] * xp[k][NR] over k in [0, kc).
// w: MR rows with stride ldw (f32); xp: packed activations, NR floats per k.
using GemmMicroFn = void (*)(int64_t kc, const float* w, int64_t ldw, const float* xp, float* c,
                             int64_t ldc, bool accumulate);
// Few tokens over repacked F16/BF16/F32 (backend/cpu/repack.h): ng (1-4) consecutive 8-row groups
// (gbytes apart) against nt (1-4) activation rows (ldx floats apart); out[(t * ng + g) * 8 + r].
// Each output is one fused multiply-add after another in k order from 0: exactly gemm_micro's
// per-output arithmetic, so a token's result never depends on the path its batch takes.
using Gemv16Fn = void (*)(int64_t K, const uint8_t* groups, size_t gbytes, int ng, const float* x,
                          int64_t ldx, int nt, float* out);
// The 8 rows of a repacked F16/BF16/F32 group, values [k0, k0 + kc), as f32 rows (ldo apart); g
// points at the group's column k0.
using Unpack16Fn = void (*)(const uint16_t* g, int64_t kc, float* out, int64_t ldo);
// y[i] += a * x[i] for x in F32 or F16 (attention's weighted sum of V rows).
using AxpyFn = void (*)(int64_t n, float a, const void* x, float* y);
// y[i] = exp(a x[i] - b) for n values (y may be x), returning their sum. The vector versions
// are within 2 ulp of std::exp and sum in a fixed order (float lanes per 1,024 values, then
// double), so a row's result does not depend on where it sits; exp of < -87.3 is 0.
using ExpFn = double (*)(int64_t n, const float* x, float a, float b, float* y);
double exp_f32_avx2(int64_t n, const float* x, float a, float b, float* y);
double exp_f32_avx512(int64_t n, const float* x, float a, float b, float* y);

// n values of a weight row (type-specific) to f32.
using DequantFn = void (*)(const void* src, float* dst, int64_t n);

// Integer GEMM micro-kernel (see backend/cpu/gemm_int8.h); nullptr where the ISA lacks one.
using Int8MicroFn = void (*)(bool signed_weights, int64_t nb, const uint8_t* w, int64_t ldw,
                             const float* ws, const float* wo, int64_t lds, const int8_t* x,
                             int64_t ldx, const float* xd4, const float* xs4, float* out);

// Decode over repacked Q4_0 (backend/cpu/repack.h): 8 rows of one group against one activation
// row given as s8 levels with per-32 scales and scale*sum.
using GemvRepackedFn = void (*)(int64_t K, const uint8_t* group, const int8_t* xq, const float* xd,
                                const float* xs, float* out8);

// Decode over repacked Q4_K: 8 rows against one activation row in Q8_K blocks.
using GemvRepackedKFn = void (*)(int64_t K, const uint8_t* group, const void* xq8k, float* out8);

// Prompts over repacked Q4_0: 8 rows x 4 tokens; out[t * 8 + r].
using GemmRepackedFn = void (*)(int64_t K, const uint8_t* group, const int8_t* xq, int64_t ldx,
                                const float* xd, const float* xs, int64_t ldb, float* out32);

// Prompts over repacked Q4_K: 8 rows x 4 tokens of Q8_K activations (ldx bytes apart);
// out[t * 8 + r].
using GemmRepackedKFn = void (*)(int64_t K, const uint8_t* group, const uint8_t* x8k, size_t ldx,
                                 float* out);

// Repacked Q8_0 (s8 activation levels, per-32 scales): decode, 8 rows x 1 token ...
using GemvRepacked8Fn = void (*)(int64_t K, const uint8_t* group, const int8_t* x, const float* xd,
                                 float* out8);
// ... and prompts, 8 rows x 4 tokens (token t at x + t * ldx, xd + t * ldb); out[t * 8 + r].
using GemmRepacked8Fn = void (*)(int64_t K, const uint8_t* group, const int8_t* x, int64_t ldx,
                                 const float* xd, int64_t ldb, float* out32);

// Two repacked Q4_0 (or Q8_0) groups at once, g and g + gbytes, against 1 or 4 tokens (token t:
// xq + t * ldx levels, xd/xs + t * ldb; xs unused for Q8_0); out[t * 8 + r] for the first group,
// out[32 + t * 8 + r] for the second. Bitwise what the one-group kernels give.
using RepackedPairFn = void (*)(int64_t K, const uint8_t* g, size_t gbytes, const int8_t* xq,
                                int64_t ldx, const float* xd, const float* xs, int64_t ldb,
                                float* out64);
// AMX: the same pair of groups (16 rows) against T16 tokens (a multiple of 16), written to
// out[t * ldo + r], r < 16 (the first group's rows, then the second's). Token t's levels of
// block b at xq + t * ldx + b * bstride (row-major: ldx = K, bstride = 32; block-major, which
// loads a tile from 8 cache lines instead of 16: ldx = 32, bstride = 32 * T16). Bitwise what the
// pair kernels give (gemm_repacked_amx.cpp).
using AmxPairFn = void (*)(int64_t K, const uint8_t* g, size_t gbytes, const int8_t* xq,
                           int64_t ldx, int64_t bstride, const float* xd, const float* xs,
                           int64_t ldb, int64_t T16, float* out, int64_t ldo);
// The same for repacked Q4_K against Q8_K activation rows (x8k + t * ldx bytes); bitwise what
// gemm_q4_kx8 gives.
using AmxPairKFn = void (*)(int64_t K, const uint8_t* g, size_t gbytes, const uint8_t* x8k,
                            size_t ldx, int64_t T16, float* out, int64_t ldo);

// AMX-BF16: np (1 or 2) pairs of repacked BF16 groups (16 rows each, at g and g + 2 gbytes, in
// repack.h's tile layout) against T tokens (the last tile has T % 16 rows: one row for decode),
// out[t * ldo + r], r < 16 np. Activations come split in two bf16 parts, x = hi + lo (+ a rest
// under 2^-16 |x|), block-major: token t's values 32q..32q+31 at xh + (t / 16) * 16 * K + 512 q
// + (t % 16) * 32 (each A tile 1 KiB in a row); each output is the hi parts' tile
// multiply-adds over k into one f32 accumulator, the lo parts' into another, then their sum:
// it depends only on its own token. Every BF16 output of the AMX table takes this path.
using AmxBf16Fn = void (*)(int64_t K, const uint8_t* g, size_t gbytes, int np, const uint16_t* xh,
                           const uint16_t* xl, int64_t T, float* out, int64_t ldo);
// n floats to their two bf16 parts (round to nearest even, then the remainder likewise).
using SplitBf16Fn = void (*)(const float* x, int64_t n, uint16_t* hi, uint16_t* lo);

// Repacked Q6_K (repack.h): two 8-row groups (g, g + gbytes) against 1 or 4 Q8_K activation rows
// (x8k + t * ldx bytes); out[t * 16 + r]. Each output: per superblock one exact integer, sum_j
// scale_j * sum (q - 32) a over the 16-value sub-blocks j, then one fused multiply-add by d_w * d_x.
using Q6KPairFn = void (*)(int64_t K, const uint8_t* g, size_t gbytes, const uint8_t* x8k, size_t ldx,
                           float* out);

// One activation row to s8 blocks of 32: levels q[K], and per block b its scale d[b * stride]
// and scale * sum(levels) s[b * stride] (the repacked Q4_0/Q8_0 kernels' input).
using QuantizeBlocksFn = void (*)(const float* x, int64_t K, int8_t* q, float* d, float* s,
                                  int64_t stride);

struct KernelTable {
  const char* isa;
  QuantizeBlocksFn quantize_s8_blocks;
  GemvRepacked8Fn gemv_q8_0x8;
  GemmRepacked8Fn gemm_q8_0x8x4;
  RepackedPairFn pair_q4_0[2];  // [0]: 1 token, [1]: 4 tokens; nullptr: one group per call
  RepackedPairFn pair_q8_0[2];
  // Training's Q8_0 transposes in the offset layout (levels stored as w + 128, u8): 4 tokens, xs
  // holding 128 * sum(levels) per block as an exact float (ops/packed_int8.cpp); AVX-512 only.
  RepackedPairFn pair_q8_0_offset = nullptr;
  Q6KPairFn pair_q6_k[2] = {nullptr, nullptr};  // [0]: 1 token, [1]: 4; AVX-512 only
  GemmRepackedFn gemm_q4_0x8x4;
  GemmRepackedKFn gemm_q4_kx8;
  GemvRepackedFn gemv_q4_0x8;
  GemvRepackedKFn gemv_q4_kx8;
  Int8MicroFn int8_micro;
  DequantFn dequant[32];  // nullptr: use the generic dequantize_row
  GemmMicroFn gemm_micro;
  // Optional: gemm_micro for panels of 16 ([0]) and 32 ([1]) columns (xp then holds that many
  // floats per k), bitwise what gemm_micro gives per output; ops/sgemm's narrow last panels.
  GemmMicroFn gemm_micro_narrow[2] = {nullptr, nullptr};
  int gemm_mr, gemm_nr;
  AxpyFn axpy_f32, axpy_f16;
  ExpFn exp_f32;
  DotFn dot[32];            // indexed by DType id; nullptr = unsupported
  Dot4Fn dot4[32];          // nullptr: call dot once per row
  Gemv16Fn gemv16[32];      // F16, BF16, F32 repacked (nullptr: not repacked on this ISA)
  Unpack16Fn unpack16[32];  // and their rows back to f32 for the GEMM
  QuantizeActFn quantize_q8_0;
  QuantizeActFn quantize_q8_k;
  AmxPairFn amx_pair_q4_0 = nullptr;  // the AMX table only
  AmxPairFn amx_pair_q8_0 = nullptr;
  AmxPairKFn amx_pair_q4_k = nullptr;
  AmxBf16Fn amx_bf16 = nullptr;
  SplitBf16Fn split_bf16 = nullptr;
};

// Activation type a weight type is multiplied with.
DType act_type(DType w);
// Whether the CPU backend multiplies this weight type directly (else it is dequantized at load).
bool kernel_supports(DType w);

const KernelTable& kernels_scalar();
// nullptr when this CPU lacks the ISA (checked here, in code built for any x86-64: the tables
// themselves are built with the ISA's flags and must not be touched on other CPUs).
const KernelTable* kernels_avx2();
const KernelTable* kernels_avx512();
// Defined in the per-ISA files; call only after the CPU check.
const KernelTable* kernels_avx2_unchecked();
const KernelTable* kernels_avx512_unchecked();
void set_repacked_pair_kernels_avx512(KernelTable& t);
// The AVX-512 table plus the AMX tile kernels: nullptr without AMX-INT8 or when the kernel
// refuses the tile state (arch_prctl ARCH_REQ_XCOMP_PERM), with the reason in *why.
const KernelTable* kernels_amx(std::string* why = nullptr);
void set_amx_kernels(KernelTable& t);  // defined in the AMX file: assigns pointers only
// Best table for this CPU (or the one CORRAL_ISA names).
const KernelTable& kernels_best();
inline const char* kernels_isa_name() {
  return kernels_best().isa;
}

}  // namespace corral
