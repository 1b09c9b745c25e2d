#include "backend/cpu/gemm_int8.h"

#include <cstdlib>
#include <cstring>

#include "core/fp16.h"
#include "format/quant.h"

namespace corral {

// Q8_0 has a signed-level path too, but the f32 GEMM measured faster for it on AVX2 (the sign
// trick costs two extra operations per block pair), so only the 4-bit types use it by default.
bool int8_gemm_supports(DType t, bool* signed_levels) {
  *signed_levels = t == DType::Q8_0;
  if (t == DType::Q8_0) return std::getenv("CORRAL_INT8_Q8_0") != nullptr;
  return t == DType::Q4_0 || t == DType::Q4_K;
}

void int8_unpack_row(DType t, const void* src, int64_t n, uint8_t* lv, float* sc, float* off,
                     bool avx2) {
  if (t == DType::Q8_0) {
    auto* b = static_cast<const BlockQ8_0*>(src);
    for (int64_t i = 0; i < n / 32; ++i) {
      std::memcpy(lv + 32 * i, b[i].qs, 32);
      sc[i] = fp16_to_f32(b[i].d);
      off[i] = 0;
    }
  } else if (t == DType::Q4_0) {
    auto* b = static_cast<const BlockQ4_0*>(src);
    for (int64_t i = 0; i < n / 32; ++i) {
      if (avx2)
        int8_unpack_nibbles_avx2(b[i].qs, 16, true, lv + 32 * i);
      else
        for (int j = 0; j < 16; ++j)
          lv[32 * i + j] = b[i].qs[j] & 0xF, lv[32 * i + j + 16] = b[i].qs[j] >> 4;
      sc[i] = fp16_to_f32(b[i].d);
      off[i] = 8 * sc[i];
    }
  } else {  // Q4_K: 8 sub-blocks of 32 per 256
    auto* b = static_cast<const BlockQ4_K*>(src);
    for (int64_t i = 0; i < n / QK_K; ++i) {
      const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
      const uint8_t* q = b[i].qs;
      if (avx2) int8_unpack_nibbles_avx2(q, 128, false, lv + i * QK_K);
      for (int j = 0; j < 4; ++j, q += 32) {
        uint8_t s1, m1, s2, m2;
        get_scale_min_k4(2 * j, b[i].scales, &s1, &m1);
        get_scale_min_k4(2 * j + 1, b[i].scales, &s2, &m2);
        uint8_t* o = lv + i * QK_K + 64 * j;
        if (!avx2)
          for (int l = 0; l < 32; ++l) o[l] = q[l] & 0xF, o[l + 32] = q[l] >> 4;
        const int64_t sb = i * 8 + 2 * j;
        sc[sb] = d * s1, off[sb] = dmin * m1;
        sc[sb + 1] = d * s2, off[sb + 1] = dmin * m2;
      }
    }
  }
}

}  // namespace corral
