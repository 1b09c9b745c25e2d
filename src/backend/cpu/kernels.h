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
using QuantizeActFn = void (*)(const float* x, void* dst, int64_t n);

struct KernelTable {
  const char* isa;
  DotFn dot[32];  // indexed by DType id; nullptr = unsupported
  QuantizeActFn quantize_q8_0;
  QuantizeActFn quantize_q8_k;
};

// Activation type a weight type is multiplied with.
DType act_type(DType w);
// Whether the CPU backend multiplies this weight type directly (else it is dequantized at load).
bool kernel_supports(DType w);

const KernelTable& kernels_scalar();
const KernelTable* kernels_avx2();    // nullptr when not compiled in
const KernelTable* kernels_avx512();  // nullptr when not compiled in
// Best table for this CPU (or the one CORRAL_ISA names).
const KernelTable& kernels_best();

}  // namespace corral
