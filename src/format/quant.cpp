#include "format/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"

namespace corral {
namespace {

// ---- dequantization, one function per block type ----

void deq_q4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = float((b[i].qs[j] & 0xF) - 8) * d;
      y[j + 16] = float((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void deq_q4_1(const BlockQ4_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = fp16_to_f32(b[i].d), m = fp16_to_f32(b[i].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = float(b[i].qs[j] & 0xF) * d + m;
      y[j + 16] = float(b[i].qs[j] >> 4) * d + m;
    }
  }
}

template <class B>
void deq_q5(const B* b, float* y, int64_t nb, bool has_min) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = fp16_to_f32(b[i].d);
    float m = 0;
    if constexpr (sizeof(B) == sizeof(BlockQ5_1)) m = fp16_to_f32(b[i].m);
    uint32_t qh;
    std::memcpy(&qh, b[i].qh, 4);
    for (int j = 0; j < 16; ++j) {
      const int xh0 = ((qh >> j) << 4) & 0x10;
      const int xh1 = (qh >> (j + 12)) & 0x10;
      const int x0 = (b[i].qs[j] & 0xF) | xh0;
      const int x1 = (b[i].qs[j] >> 4) | xh1;
      if (has_min) {
        y[j] = float(x0) * d + m;
        y[j + 16] = float(x1) * d + m;
      } else {
        y[j] = float(x0 - 16) * d;
        y[j + 16] = float(x1 - 16) * d;
      }
    }
  }
}

void deq_q8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < 32; ++j) y[j] = float(b[i].qs[j]) * d;
  }
}

void deq_q8_1(const BlockQ8_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < 32; ++j) y[j] = float(b[i].qs[j]) * d;
  }
}

void deq_q2_k(const BlockQ2_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    int is = 0;
    for (int n = 0; n < QK_K; n += 128) {
      int shift = 0;
      for (int j = 0; j < 4; ++j) {
        for (int half = 0; half < 2; ++half) {
          const uint8_t sc = b[i].scales[is++];
          const float dl = d * float(sc & 0xF), ml = dmin * float(sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * float((q[l + 16 * half] >> shift) & 3) - ml;
        }
        shift += 2;
      }
      q += 32;
    }
  }
}

void deq_q3_k(const BlockQ3_K* b, float* y, int64_t nb) {
  const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
  for (int64_t i = 0; i < nb; ++i) {
    const float d_all = fp16_to_f32(b[i].d);
    const uint8_t* q = b[i].qs;
    const uint8_t* hm = b[i].hmask;
    uint8_t m = 1;
    uint32_t aux[4];
    std::memcpy(aux, b[i].scales, 12);
    const uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    const int8_t* scales = reinterpret_cast<const int8_t*>(aux);
    int is = 0;
    for (int n = 0; n < QK_K; n += 128) {
      int shift = 0;
      for (int j = 0; j < 4; ++j) {
        for (int half = 0; half < 2; ++half) {
          const float dl = d_all * float(scales[is++] - 32);
          for (int l = 16 * half; l < 16 * half + 16; ++l)
            *y++ = dl * float(int((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
        }
        shift += 2;
        m <<= 1;
      }
      q += 32;
    }
  }
}

void deq_q4_k(const BlockQ4_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
      uint8_t sc, m;
      get_scale_min_k4(is, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      get_scale_min_k4(is + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
    }
  }
}

void deq_q5_k(const BlockQ5_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
    const uint8_t* ql = b[i].qs;
    const uint8_t* qh = b[i].qh;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
      uint8_t sc, m;
      get_scale_min_k4(is, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      get_scale_min_k4(is + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
  }
}

void deq_q6_k(const BlockQ6_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d);
    const uint8_t* ql = b[i].ql;
    const uint8_t* qh = b[i].qh;
    const int8_t* sc = b[i].scales;
    for (int n = 0; n < QK_K; n += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = int((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = int((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

void deq_q8_k(const BlockQ8_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i)
    for (int j = 0; j < QK_K; ++j) *y++ = b[i].d * float(b[i].qs[j]);
}

// ---- quantization ----

void q_q8_0(const float* x, BlockQ8_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f, id = d ? 1.f / d : 0.f;
    b[i].d = f32_to_fp16(d);
    for (int j = 0; j < 32; ++j) b[i].qs[j] = int8_t(std::lround(x[j] * id));
  }
}

// Value with the largest magnitude, keeping its sign (ggml's symmetric-type convention).
float signed_absmax(const float* x, int n) {
  float amax = 0, max = 0;
  for (int j = 0; j < n; ++j)
    if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
  return max;
}

void q_q4_0(const float* x, BlockQ4_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    const float d = signed_absmax(x, 32) / -8.f, id = d ? 1.f / d : 0.f;
    b[i].d = f32_to_fp16(d);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, int(x[j] * id + 8.5f));
      const int q1 = std::min(15, int(x[j + 16] * id + 8.5f));
      b[i].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void q_q4_1(const float* x, BlockQ4_1* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float mn = x[0], mx = x[0];
    for (int j = 1; j < 32; ++j) mn = std::min(mn, x[j]), mx = std::max(mx, x[j]);
    const float d = (mx - mn) / 15.f, id = d ? 1.f / d : 0.f;
    b[i].d = f32_to_fp16(d);
    b[i].m = f32_to_fp16(mn);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, int((x[j] - mn) * id + 0.5f));
      const int q1 = std::min(15, int((x[j + 16] - mn) * id + 0.5f));
      b[i].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

template <class B>
void q_q5(const float* x, B* b, int64_t nb) {
  constexpr bool kMin = sizeof(B) == sizeof(BlockQ5_1);
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float d, id, mn = 0;
    if constexpr (kMin) {
      float mx = x[0];
      mn = x[0];
      for (int j = 1; j < 32; ++j) mn = std::min(mn, x[j]), mx = std::max(mx, x[j]);
      d = (mx - mn) / 31.f;
      b[i].m = f32_to_fp16(mn);
    } else {
      d = signed_absmax(x, 32) / -16.f;
    }
    id = d ? 1.f / d : 0.f;
    b[i].d = f32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      int q0, q1;
      if constexpr (kMin) {
        q0 = std::min(31, int((x[j] - mn) * id + 0.5f));
        q1 = std::min(31, int((x[j + 16] - mn) * id + 0.5f));
      } else {
        q0 = std::min(31, int(x[j] * id + 16.5f));
        q1 = std::min(31, int(x[j + 16] * id + 16.5f));
      }
      b[i].qs[j] = uint8_t((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= uint32_t((q0 & 0x10) >> 4) << j;
      qh |= uint32_t((q1 & 0x10) >> 4) << (j + 16);
    }
    std::memcpy(b[i].qh, &qh, 4);
  }
}

// Asymmetric fit of n values to levels 0..nmax: x ≈ scale * q - min_out. Starts from the
// min/max rounding and refines (scale, min) by least squares on the chosen levels, keeping
// the best error seen, so the result is never worse than plain min/max rounding.
void fit_asym(const float* x, int n, int nmax, float* scale_out, float* min_out) {
  float mn = x[0], mx = x[0];
  for (int i = 1; i < n; ++i) mn = std::min(mn, x[i]), mx = std::max(mx, x[i]);
  if (mn > 0) mn = 0;  // mins are stored as non-negative offsets
  if (mx == mn) {
    *scale_out = 0;
    *min_out = -mn;
    return;
  }
  float scale = (mx - mn) / nmax, off = mn;
  auto error = [&](float s, float o) {
    float e = 0;
    for (int i = 0; i < n; ++i) {
      int q = int(std::lround((x[i] - o) / s));
      q = std::clamp(q, 0, nmax);
      float d = s * q + o - x[i];
      e += d * d;
    }
    return e;
  };
  float best = error(scale, off), best_s = scale, best_o = off;
  for (int it = 0; it < 4; ++it) {
    // Least squares for x ≈ s*q + o given levels q.
    double sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (int i = 0; i < n; ++i) {
      int q = std::clamp(int(std::lround((x[i] - off) / scale)), 0, nmax);
      sq += q, sqq += double(q) * q, sx += x[i], sqx += double(q) * x[i];
    }
    const double det = n * sqq - sq * sq;
    if (det <= 0) break;
    double s = (n * sqx - sq * sx) / det, o = (sx - s * sq) / n;
    if (o > 0) o = 0, s = sqq > 0 ? sqx / sqq : s;
    if (s <= 0) break;
    scale = float(s), off = float(o);
    const float e = error(scale, off);
    if (e < best) best = e, best_s = scale, best_o = off;
  }
  *scale_out = best_s;
  *min_out = -best_o;
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): 8 sub-blocks of 32 with 6-bit scales/mins.
void quantize_k_scales(const float* x, int nmax, uint16_t* d_out, uint16_t* dmin_out,
                       uint8_t* scales12, uint8_t* L) {
  float sc[8], mins[8];
  float max_sc = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    fit_asym(x + 32 * j, 32, nmax, &sc[j], &mins[j]);
    max_sc = std::max(max_sc, sc[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_s = max_sc > 0 ? 63.f / max_sc : 0.f;
  const float inv_m = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = uint8_t(std::min(63, int(std::lround(inv_s * sc[j]))));
    lm[j] = uint8_t(std::min(63, int(std::lround(inv_m * mins[j]))));
  }
  *d_out = f32_to_fp16(max_sc / 63.f);
  *dmin_out = f32_to_fp16(max_min / 63.f);
  std::memset(scales12, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      scales12[j] = ls[j];
      scales12[j + 4] = lm[j];
    } else {
      scales12[j + 4] = uint8_t((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      scales12[j - 4] |= uint8_t((ls[j] >> 4) << 6);
      scales12[j] |= uint8_t((lm[j] >> 4) << 6);
    }
  }
  // Levels against the scales as they will be decoded.
  const float d = fp16_to_f32(*d_out), dmin = fp16_to_f32(*dmin_out);
  for (int j = 0; j < 8; ++j) {
    uint8_t s, m;
    get_scale_min_k4(j, scales12, &s, &m);
    const float dl = d * s, ml = dmin * m;
    for (int i = 0; i < 32; ++i) {
      int q = dl > 0 ? int(std::lround((x[32 * j + i] + ml) / dl)) : 0;
      L[32 * j + i] = uint8_t(std::clamp(q, 0, nmax));
    }
  }
}

void q_q4_k(const float* x, BlockQ4_K* b, int64_t nb) {
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    quantize_k_scales(x, 15, &b[i].d, &b[i].dmin, b[i].scales, L);
    uint8_t* q = b[i].qs;
    for (int j = 0; j < QK_K; j += 64, q += 32)
      for (int l = 0; l < 32; ++l) q[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
  }
}

void q_q5_k(const float* x, BlockQ5_K* b, int64_t nb) {
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    quantize_k_scales(x, 31, &b[i].d, &b[i].dmin, b[i].scales, L);
    std::memset(b[i].qh, 0, 32);
    uint8_t* ql = b[i].qs;
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < QK_K; n += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[n + j], l2 = L[n + j + 32];
        if (l1 > 15) l1 -= 16, b[i].qh[j] |= m1;
        if (l2 > 15) l2 -= 16, b[i].qh[j] |= m2;
        ql[j] = uint8_t(l1 | (l2 << 4));
      }
    }
  }
}

void q_q6_k(const float* x, BlockQ6_K* b, int64_t nb) {
  int8_t L[QK_K];
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    float scales[16], max_scale = 0, max_abs = 0;
    for (int ib = 0; ib < 16; ++ib) {
      scales[ib] = signed_absmax(x + 16 * ib, 16) / -32.f;
      if (std::fabs(scales[ib]) > max_abs) max_abs = std::fabs(scales[ib]), max_scale = scales[ib];
    }
    if (max_abs == 0) {
      std::memset(&b[i], 0, sizeof(BlockQ6_K));
      continue;
    }
    const float iscale = -128.f / max_scale;
    b[i].d = f32_to_fp16(1.f / iscale);
    const float d = fp16_to_f32(b[i].d);
    for (int ib = 0; ib < 16; ++ib) {
      b[i].scales[ib] = int8_t(std::min(127, int(std::lround(iscale * scales[ib]))));
      const float dl = d * b[i].scales[ib];
      for (int j = 0; j < 16; ++j) {
        int q = dl != 0 ? int(std::lround(x[16 * ib + j] / dl)) : 0;
        L[16 * ib + j] = int8_t(std::clamp(q, -32, 31) + 32);
      }
    }
    uint8_t* ql = b[i].ql;
    uint8_t* qh = b[i].qh;
    for (int n = 0; n < QK_K; n += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = L[n + l], q2 = L[n + l + 32], q3 = L[n + l + 64], q4 = L[n + l + 96];
        ql[l] = uint8_t((q1 & 0xF) | ((q3 & 0xF) << 4));
        ql[l + 32] = uint8_t((q2 & 0xF) | ((q4 & 0xF) << 4));
        qh[l] = uint8_t((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
    }
  }
}

void q_q8_k(const float* x, BlockQ8_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    float amax = 0;
    for (int j = 0; j < QK_K; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f, id = d ? 1.f / d : 0.f;
    b[i].d = d;
    for (int j = 0; j < QK_K; ++j) b[i].qs[j] = int8_t(std::lround(x[j] * id));
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int j = 0; j < 16; ++j) s += b[i].qs[16 * g + j];
      b[i].bsums[g] = int16_t(s);
    }
  }
}

}  // namespace

bool can_dequantize(DType t) {
  switch (t) {
    case DType::F32: case DType::F16: case DType::BF16: case DType::Q4_0: case DType::Q4_1:
    case DType::Q5_0: case DType::Q5_1: case DType::Q8_0: case DType::Q8_1: case DType::Q2_K:
    case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: case DType::Q8_K:
      return true;
    default:
      return false;
  }
}

bool can_quantize(DType t) {
  switch (t) {
    case DType::F32: case DType::F16: case DType::BF16: case DType::Q4_0: case DType::Q4_1:
    case DType::Q5_0: case DType::Q5_1: case DType::Q8_0: case DType::Q4_K: case DType::Q5_K:
    case DType::Q6_K: case DType::Q8_K:
      return true;
    default:
      return false;
  }
}

void dequantize_row(DType t, const void* src, float* y, int64_t n) {
  const int64_t nb32 = n / 32, nbk = n / QK_K;
  switch (t) {
    case DType::F32: std::memcpy(y, src, size_t(n) * 4); break;
    case DType::F16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_f32(s[i]);
      break;
    }
    case DType::BF16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(s[i]);
      break;
    }
    case DType::Q4_0: deq_q4_0(static_cast<const BlockQ4_0*>(src), y, nb32); break;
    case DType::Q4_1: deq_q4_1(static_cast<const BlockQ4_1*>(src), y, nb32); break;
    case DType::Q5_0: deq_q5(static_cast<const BlockQ5_0*>(src), y, nb32, false); break;
    case DType::Q5_1: deq_q5(static_cast<const BlockQ5_1*>(src), y, nb32, true); break;
    case DType::Q8_0: deq_q8_0(static_cast<const BlockQ8_0*>(src), y, nb32); break;
    case DType::Q8_1: deq_q8_1(static_cast<const BlockQ8_1*>(src), y, nb32); break;
    case DType::Q2_K: deq_q2_k(static_cast<const BlockQ2_K*>(src), y, nbk); break;
    case DType::Q3_K: deq_q3_k(static_cast<const BlockQ3_K*>(src), y, nbk); break;
    case DType::Q4_K: deq_q4_k(static_cast<const BlockQ4_K*>(src), y, nbk); break;
    case DType::Q5_K: deq_q5_k(static_cast<const BlockQ5_K*>(src), y, nbk); break;
    case DType::Q6_K: deq_q6_k(static_cast<const BlockQ6_K*>(src), y, nbk); break;
    case DType::Q8_K: deq_q8_k(static_cast<const BlockQ8_K*>(src), y, nbk); break;
    default: std::memset(y, 0, size_t(n) * 4); break;
  }
}

void quantize_row(DType t, const float* x, void* dst, int64_t n) {
  const int64_t nb32 = n / 32, nbk = n / QK_K;
  switch (t) {
    case DType::F32: std::memcpy(dst, x, size_t(n) * 4); break;
    case DType::F16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_fp16(x[i]);
      break;
    }
    case DType::BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(x[i]);
      break;
    }
    case DType::Q4_0: q_q4_0(x, static_cast<BlockQ4_0*>(dst), nb32); break;
    case DType::Q4_1: q_q4_1(x, static_cast<BlockQ4_1*>(dst), nb32); break;
    case DType::Q5_0: q_q5(x, static_cast<BlockQ5_0*>(dst), nb32); break;
    case DType::Q5_1: q_q5(x, static_cast<BlockQ5_1*>(dst), nb32); break;
    case DType::Q8_0: q_q8_0(x, static_cast<BlockQ8_0*>(dst), nb32); break;
    case DType::Q4_K: q_q4_k(x, static_cast<BlockQ4_K*>(dst), nbk); break;
    case DType::Q5_K: q_q5_k(x, static_cast<BlockQ5_K*>(dst), nbk); break;
    case DType::Q6_K: q_q6_k(x, static_cast<BlockQ6_K*>(dst), nbk); break;
    case DType::Q8_K: q_q8_k(x, static_cast<BlockQ8_K*>(dst), nbk); break;
    default: break;
  }
}

}  // namespace corral
