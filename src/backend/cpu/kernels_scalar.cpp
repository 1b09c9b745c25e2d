// Plain C++ kernels: the fallback on CPUs without AVX2, and the reference the SIMD versions
// are tested against. Integer types use the same integer arithmetic as the SIMD kernels.
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "backend/cpu/kernels.h"
#include "core/fp16.h"
#include "format/quant.h"

namespace corral {

DType act_type(DType w) {
  switch (w) {
    case DType::Q8_0:
    case DType::Q4_0:
      return DType::Q8_0;
    case DType::Q4_K:
    case DType::Q6_K:
      return DType::Q8_K;
    default:
      return DType::F32;
  }
}

bool kernel_supports(DType w) {
  switch (w) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_K:
    case DType::Q6_K:
      return true;
    default:
      return false;
  }
}

namespace {

float dot_f32(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const float*>(w);
  auto* b = static_cast<const float*>(x);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

float dot_f16(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const uint16_t*>(w);
  auto* b = static_cast<const float*>(x);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += fp16_to_f32(a[i]) * b[i];
  return s;
}

float dot_bf16(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const uint16_t*>(w);
  auto* b = static_cast<const float*>(x);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += bf16_to_f32(a[i]) * b[i];
  return s;
}

float dot_q8_0(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const BlockQ8_0*>(w);
  auto* b = static_cast<const BlockQ8_0*>(x);
  float s = 0;
  for (int64_t i = 0; i < n / 32; ++i) {
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += int(a[i].qs[j]) * int(b[i].qs[j]);
    s += fp16_to_f32(a[i].d) * fp16_to_f32(b[i].d) * float(sum);
  }
  return s;
}

float dot_q4_0(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const BlockQ4_0*>(w);
  auto* b = static_cast<const BlockQ8_0*>(x);
  float s = 0;
  for (int64_t i = 0; i < n / 32; ++i) {
    int sum = 0;
    for (int j = 0; j < 16; ++j) {
      sum += ((a[i].qs[j] & 0xF) - 8) * int(b[i].qs[j]);
      sum += ((a[i].qs[j] >> 4) - 8) * int(b[i].qs[j + 16]);
    }
    s += fp16_to_f32(a[i].d) * fp16_to_f32(b[i].d) * float(sum);
  }
  return s;
}

float dot_q4_k(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const BlockQ4_K*>(w);
  auto* b = static_cast<const BlockQ8_K*>(x);
  float s = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const uint8_t* q = a[i].qs;
    const int8_t* y = b[i].qs;
    int sum = 0, msum = 0;
    for (int j = 0; j < 4; ++j) {
      uint8_t sc1, m1, sc2, m2;
      get_scale_min_k4(2 * j, a[i].scales, &sc1, &m1);
      get_scale_min_k4(2 * j + 1, a[i].scales, &sc2, &m2);
      int s1 = 0, s2 = 0;
      for (int l = 0; l < 32; ++l) {
        s1 += (q[l] & 0xF) * y[l];
        s2 += (q[l] >> 4) * y[l + 32];
      }
      sum += sc1 * s1 + sc2 * s2;
      msum += m1 * (b[i].bsums[4 * j] + b[i].bsums[4 * j + 1]) +
              m2 * (b[i].bsums[4 * j + 2] + b[i].bsums[4 * j + 3]);
      q += 32;
      y += 64;
    }
    s += b[i].d * (fp16_to_f32(a[i].d) * float(sum) - fp16_to_f32(a[i].dmin) * float(msum));
  }
  return s;
}

float dot_q6_k(int64_t n, const void* w, const void* x) {
  auto* a = static_cast<const BlockQ6_K*>(w);
  auto* b = static_cast<const BlockQ8_K*>(x);
  float s = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const uint8_t* ql = a[i].ql;
    const uint8_t* qh = a[i].qh;
    const int8_t* y = b[i].qs;
    int sum = 0;
    for (int half = 0; half < 2; ++half) {
      const int8_t* sc = a[i].scales + 8 * half;
      for (int g = 0; g < 4; ++g)            // the four 32-value groups of this half
        for (int h16 = 0; h16 < 2; ++h16) {  // two 16-value sub-blocks per group
          int sub = 0;
          for (int l = 16 * h16; l < 16 * h16 + 16; ++l) {
            int q;
            switch (g) {
              case 0:
                q = (ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4);
                break;
              case 1:
                q = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
                break;
              case 2:
                q = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                break;
              default:
                q = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
                break;
            }
            sub += (q - 32) * y[32 * g + l];
          }
          sum += sc[2 * g + h16] * sub;
        }
      ql += 64;
      qh += 32;
      y += 128;
    }
    s += b[i].d * fp16_to_f32(a[i].d) * float(sum);
  }
  return s;
}

void gemm_micro(int64_t kc, const float* w, int64_t ldw, const float* xp, float* c, int64_t ldc,
                bool acc) {
  constexpr int MR = 4, NR = 8;
  float t[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k)
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < NR; ++j) t[r][j] += w[r * ldw + k] * xp[k * NR + j];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) c[r * ldc + j] = (acc ? c[r * ldc + j] : 0.f) + t[r][j];
}

void axpy_f32(int64_t n, float a, const void* x, float* y) {
  auto* v = static_cast<const float*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] += a * v[i];
}

void axpy_f16(int64_t n, float a, const void* x, float* y) {
  auto* v = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] += a * fp16_to_f32(v[i]);
}

double exp_f32(int64_t n, const float* x, float a, float b, float* y) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float z = a * x[i] - b;
    sum += double(y[i] = z < -87.33f ? 0.f : std::exp(z));  // 0 under FLT_MIN, as the vectors give
  }
  return sum;
}

void q8_0_act(const float* x, void* dst, int64_t n) {
  quantize_row(DType::Q8_0, x, dst, n);
}
void q8_k_act(const float* x, void* dst, int64_t n) {
  quantize_row(DType::Q8_K, x, dst, n);
}

void s8_blocks(const float* x, int64_t K, int8_t* q, float* d_out, float* s_out, int64_t stride) {
  for (int64_t b = 0; b < K / 32; ++b) {
    const float* src = x + b * 32;
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / 127.f, id = d > 0 ? 1.f / d : 0.f;
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += (q[b * 32 + j] = int8_t(std::nearbyint(src[j] * id)));
    d_out[b * stride] = d;
    s_out[b * stride] = d * float(sum);
  }
}

KernelTable make_scalar() {
  KernelTable t{};
  t.isa = "scalar";
  t.dot[uint32_t(DType::F32)] = dot_f32;
  t.dot[uint32_t(DType::F16)] = dot_f16;
  t.dot[uint32_t(DType::BF16)] = dot_bf16;
  t.dot[uint32_t(DType::Q8_0)] = dot_q8_0;
  t.dot[uint32_t(DType::Q4_0)] = dot_q4_0;
  t.dot[uint32_t(DType::Q4_K)] = dot_q4_k;
  t.dot[uint32_t(DType::Q6_K)] = dot_q6_k;
  t.quantize_q8_0 = q8_0_act;
  t.quantize_q8_k = q8_k_act;
  t.quantize_s8_blocks = s8_blocks;
  t.gemm_micro = gemm_micro;
  t.gemm_mr = 4;
  t.gemm_nr = 8;
  t.axpy_f32 = axpy_f32;
  t.axpy_f16 = axpy_f16;
  t.exp_f32 = exp_f32;
  return t;
}

}  // namespace

const KernelTable& kernels_scalar() {
  static const KernelTable t = make_scalar();
  return t;
}

namespace {
bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c") && __builtin_cpu_supports("bmi2");
}
bool cpu_has_avx512() {
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
}
}  // namespace

const KernelTable* kernels_avx2() {
  return cpu_has_avx2() ? kernels_avx2_unchecked() : nullptr;
}
const KernelTable* kernels_avx512() {
  return cpu_has_avx512() ? kernels_avx512_unchecked() : nullptr;
}

namespace {
// CPUID.(EAX=7,ECX=0):EDX bit 24 AMX-TILE, bit 25 AMX-INT8.
bool cpu_has_amx_int8() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return (d >> 24 & 1) && (d >> 25 & 1);
}
// EDX bit 22 AMX-BF16, and AVX512_BF16 (CPUID.(EAX=7,ECX=1):EAX bit 5) for the activation split.
bool cpu_has_amx_bf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d >> 22 & 1)) return false;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return a >> 5 & 1;
}
}  // namespace

const KernelTable* kernels_amx(std::string* why) {
  static std::string reason;
  static const KernelTable* t = []() -> const KernelTable* {
    if (!kernels_avx512()) {
      reason = "no AVX-512 VNNI";
      return nullptr;
    }
    if (!cpu_has_amx_int8()) {
      reason = "the CPU reports no AMX-INT8";
      return nullptr;
    }
    // Linux hands out the 8 KiB tile state only on request (once per process).
    // CORRAL_AMX_DENY=1 simulates a kernel or hypervisor that refuses it (tests).
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    if (std::getenv("CORRAL_AMX_DENY") != nullptr) {
      reason = "the kernel refused the tile state (simulated by CORRAL_AMX_DENY)";
      return nullptr;
    }
    if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) {
      reason = std::string("the kernel refused the tile state (arch_prctl: ") + std::strerror(errno) + ")";
      return nullptr;
    }
    static KernelTable amx = *kernels_avx512();
    set_amx_kernels(amx);
    if (!cpu_has_amx_bf16()) amx.amx_bf16 = nullptr, amx.split_bf16 = nullptr;
    return &amx;
  }();
  if (why) *why = reason;
  return t;
}

const KernelTable& kernels_best() {
  static const KernelTable* best = [] {
    const char* force = std::getenv("CORRAL_ISA");
    const std::string f = force ? force : "";
    if (f == "scalar") return &kernels_scalar();
    // AMX where the CPU has it and the kernel grants the tile state, unless another table is
    // asked for; when it is missing, one line says which table runs and why.
    if (f.empty() || f == "amx") {
      std::string why;
      if (const KernelTable* t = kernels_amx(&why)) return t;
      if (f == "amx" || cpu_has_amx_int8())
        std::fprintf(stderr, "corral: AMX kernels unavailable (%s): using %s\n", why.c_str(),
                     kernels_avx512() ? "avx512" : kernels_avx2() ? "avx2" : "scalar");
    }
    // AVX-512 (with VNNI) first unless AVX2 is asked for: its tests ran against the reference
    // and the AVX2 table on an AVX-512 machine (Xeon, family 6 model 207) on 2026-12-01.
    if (f != "avx2" && kernels_avx512()) return kernels_avx512();
    if (kernels_avx2()) return kernels_avx2();
    return &kernels_scalar();
  }();
  return *best;
}

}  // namespace corral
