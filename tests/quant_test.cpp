// Block layouts: dequantization of hand-built blocks of every type (expected values written
// from the ggml layout description, not from Corral's code), and quantize -> dequantize
// round trips within each type's error bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/fp16.h"
#include "format/quant.h"

using namespace corral;

namespace {
const uint16_t kHalf = 0x3800;  // 0.5 in fp16
const uint16_t kOne = 0x3C00;   // 1.0
const uint16_t kTwo = 0x4000;   // 2.0
}  // namespace

TEST(Fp16, KnownValues) {
  EXPECT_EQ(fp16_to_f32(kHalf), 0.5f);
  EXPECT_EQ(fp16_to_f32(0xC000), -2.f);
  EXPECT_EQ(f32_to_fp16(1.f), kOne);
  EXPECT_EQ(f32_to_fp16(65504.f), 0x7BFF);
  EXPECT_EQ(fp16_to_f32(0x0001), std::ldexp(1.f, -24));  // smallest subnormal
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.f);
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3F80);  // ties to even
}

TEST(Dequant, Q4_0) {
  BlockQ4_0 b;
  b.d = kHalf;
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | ((15 - j) << 4));
  float y[32];
  dequantize_row(DType::Q4_0, &b, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 0.5f);
    EXPECT_EQ(y[j + 16], (15 - j - 8) * 0.5f);
  }
}

TEST(Dequant, Q4_1) {
  BlockQ4_1 b;
  b.d = kTwo;
  b.m = kOne;
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | (3 << 4));
  float y[32];
  dequantize_row(DType::Q4_1, &b, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], j * 2.f + 1.f);
    EXPECT_EQ(y[j + 16], 3 * 2.f + 1.f);
  }
}

TEST(Dequant, Q5_0AndQ5_1) {
  BlockQ5_0 b;
  b.d = kOne;
  // element j's fifth bit is bit j of qh; element j+16's is bit j+16.
  const uint32_t qh = 0x0000FFFFu;  // low elements get +16, high ones not
  std::memcpy(b.qh, &qh, 4);
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | (j << 4));
  float y[32];
  dequantize_row(DType::Q5_0, &b, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], float(j + 16 - 16));
    EXPECT_EQ(y[j + 16], float(j - 16));
  }
  BlockQ5_1 c;
  c.d = kHalf;
  c.m = kOne;
  const uint32_t qh2 = 0xFFFF0000u;
  std::memcpy(c.qh, &qh2, 4);
  for (int j = 0; j < 16; ++j) c.qs[j] = uint8_t(1 | (2 << 4));
  dequantize_row(DType::Q5_1, &c, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 1 * 0.5f + 1.f);
    EXPECT_EQ(y[j + 16], (2 + 16) * 0.5f + 1.f);
  }
}

TEST(Dequant, Q8_0) {
  BlockQ8_0 b;
  b.d = kHalf;
  for (int j = 0; j < 32; ++j) b.qs[j] = int8_t(j - 16);
  float y[32];
  dequantize_row(DType::Q8_0, &b, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j - 16) * 0.5f);
}

TEST(Dequant, Q2_K) {
  BlockQ2_K b{};
  b.d = kOne;
  b.dmin = kHalf;
  // 16 sub-blocks of 16: scale nibble = i % 16, min nibble = 1.
  for (int i = 0; i < 16; ++i) b.scales[i] = uint8_t((i & 0xF) | (1 << 4));
  // qs byte l of 32-byte half h holds 4 values at shifts 0,2,4,6: set them to 0,1,2,3.
  for (int i = 0; i < 64; ++i) b.qs[i] = uint8_t(0 | (1 << 2) | (2 << 4) | (3 << 6));
  float y[256];
  dequantize_row(DType::Q2_K, &b, y, 256);
  // Output order: for each 128-half, for shift s in 0..3, two 16-value groups.
  int k = 0;
  for (int half = 0; half < 2; ++half)
    for (int s = 0; s < 4; ++s)
      for (int g = 0; g < 2; ++g) {
        const int is = half * 8 + s * 2 + g;
        for (int l = 0; l < 16; ++l) EXPECT_EQ(y[k++], float(is & 0xF) * s - 0.5f) << k;
      }
}

TEST(Dequant, Q3_K) {
  BlockQ3_K b{};
  b.d = kOne;
  // All 16 6-bit scales = 33 (scale - 32 = 1): low 4 bits 0x1 in bytes 0..7, high 2 bits 0b10
  // in bytes 8..11 for each of 4 groups.
  for (int i = 0; i < 8; ++i) b.scales[i] = 0x11;
  for (int i = 8; i < 12; ++i) b.scales[i] = 0xAA;
  for (int i = 0; i < 64; ++i) b.qs[i] = 0xE4;  // values 0,1,2,3 at shifts 0,2,4,6
  for (int i = 0; i < 32; ++i) b.hmask[i] = 0x0F;  // high bit set for the first 4 shifts (m=1..8)
  float y[256];
  dequantize_row(DType::Q3_K, &b, y, 256);
  int k = 0;
  for (int half = 0; half < 2; ++half)
    for (int s = 0; s < 4; ++s)
      for (int g = 0; g < 2; ++g)
        for (int l = 0; l < 16; ++l) {
          const bool hbit = half == 0;  // hmask bits 0..3 cover the first half's four shifts
          EXPECT_EQ(y[k++], float(s - (hbit ? 0 : 4))) << k;
        }
}

TEST(Dequant, Q4_K) {
  BlockQ4_K b{};
  b.d = kOne;
  b.dmin = kHalf;
  // Scales j<4: scales[j] low 6 bits; mins: scales[j+4]. j>=4: low nibbles in scales[j+4],
  // high 2 bits in the top of scales[j-4] (scale) and scales[j] (min).
  for (int j = 0; j < 4; ++j) b.scales[j] = uint8_t(j + 1), b.scales[j + 4] = 2;
  for (int j = 4; j < 8; ++j) b.scales[j + 4] = uint8_t((j + 1) | (2 << 4));
  b.scales[0] |= 1 << 6;  // scale 4 gets +16
  for (int i = 0; i < 128; ++i) b.qs[i] = uint8_t(3 | (5 << 4));
  float y[256];
  dequantize_row(DType::Q4_K, &b, y, 256);
  for (int sb = 0; sb < 8; ++sb) {
    const float sc = float(sb + 1 + (sb == 4 ? 16 : 0));
    const float q = sb % 2 == 0 ? 3.f : 5.f;
    for (int l = 0; l < 32; ++l) EXPECT_EQ(y[sb * 32 + l], sc * q - 0.5f * 2) << sb;
  }
}

TEST(Dequant, Q5_K) {
  BlockQ5_K b{};
  b.d = kOne;
  b.dmin = kOne;
  for (int j = 0; j < 4; ++j) b.scales[j] = 1, b.scales[j + 4] = 0;
  for (int j = 4; j < 8; ++j) b.scales[j + 4] = 1;
  for (int i = 0; i < 128; ++i) b.qs[i] = uint8_t(1 | (2 << 4));
  for (int i = 0; i < 32; ++i) b.qh[i] = 0x55;  // bit 2k set: the low-nibble sub-blocks get +16
  float y[256];
  dequantize_row(DType::Q5_K, &b, y, 256);
  for (int sb = 0; sb < 8; ++sb)
    for (int l = 0; l < 32; ++l) EXPECT_EQ(y[sb * 32 + l], sb % 2 == 0 ? 17.f : 2.f) << sb;
}

TEST(Dequant, Q6_K) {
  BlockQ6_K b{};
  b.d = kHalf;
  for (int i = 0; i < 16; ++i) b.scales[i] = int8_t(i - 8);
  for (int i = 0; i < 128; ++i) b.ql[i] = 0x21;  // low nibble 1, high nibble 2
  for (int i = 0; i < 64; ++i) b.qh[i] = 0xE4;   // 2-bit fields 0,1,2,3
  float y[256];
  dequantize_row(DType::Q6_K, &b, y, 256);
  // Within each 128-half: 4 groups of 32 (ql low of [0..32), ql low of [32..64), ql high of
  // [0..32), ql high of [32..64)) with high bits from qh fields 0..3; 16-value scales.
  for (int half = 0; half < 2; ++half)
    for (int g = 0; g < 4; ++g)
      for (int l = 0; l < 32; ++l) {
        const int lo = g < 2 ? 1 : 2;
        const int q = (lo | (g << 4)) - 32;
        const int sc = half * 8 + g * 2 + l / 16 - 8;
        EXPECT_EQ(y[half * 128 + g * 32 + l], 0.5f * float(sc) * float(q));
      }
}

TEST(Dequant, Q8_K) {
  BlockQ8_K b{};
  b.d = 0.25f;
  for (int i = 0; i < 256; ++i) b.qs[i] = int8_t(i % 100 - 50);
  float y[256];
  dequantize_row(DType::Q8_K, &b, y, 256);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], 0.25f * float(i % 100 - 50));
}

namespace {

std::vector<float> random_row(int n, uint32_t seed, float scale = 1.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(g);
  return v;
}

std::vector<float> round_trip(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(row_bytes(t, int64_t(x.size())));
  quantize_row(t, x.data(), q.data(), int64_t(x.size()));
  std::vector<float> y(x.size());
  dequantize_row(t, q.data(), y.data(), int64_t(x.size()));
  return y;
}

double rmse(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(s / double(a.size()));
}

// Plain K-quant: min/max per 32-sub-block, 6-bit scales relative to the largest, rounding.
std::vector<float> naive_k(const std::vector<float>& x, int nmax) {
  std::vector<float> y(x.size());
  for (size_t sb0 = 0; sb0 < x.size(); sb0 += 256) {
    float sc[8], mn[8], msc = 0, mmn = 0;
    for (int j = 0; j < 8; ++j) {
      float lo = 0, hi = -1e30f;
      for (int i = 0; i < 32; ++i) lo = std::min(lo, x[sb0 + 32 * j + i]), hi = std::max(hi, x[sb0 + 32 * j + i]);
      sc[j] = (hi - lo) / float(nmax);
      mn[j] = -lo;
      msc = std::max(msc, sc[j]);
      mmn = std::max(mmn, mn[j]);
    }
    const float d = fp16_to_f32(f32_to_fp16(msc / 63)), dm = fp16_to_f32(f32_to_fp16(mmn / 63));
    for (int j = 0; j < 8; ++j) {
      const float s = d * std::min(63.f, std::round(sc[j] / (msc / 63))), m = dm * std::min(63.f, std::round(mn[j] / (mmn / 63)));
      for (int i = 0; i < 32; ++i) {
        const float v = x[sb0 + 32 * j + i];
        const float q = s > 0 ? std::clamp(std::round((v + m) / s), 0.f, float(nmax)) : 0.f;
        y[sb0 + 32 * j + i] = s * q - m;
      }
    }
  }
  return y;
}

}  // namespace

TEST(RoundTrip, BlockTypesWithinHalfAStep) {
  const int n = 32 * 64;
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    const auto x = random_row(n, seed, 0.02f * float(seed));
    for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1}) {
      const auto y = round_trip(t, x);
      for (int b = 0; b < n / 32; ++b) {
        float lo = 1e30f, hi = -1e30f, amax = 0;
        for (int j = 0; j < 32; ++j) {
          const float v = x[size_t(b * 32 + j)];
          lo = std::min(lo, v), hi = std::max(hi, v), amax = std::max(amax, std::fabs(v));
        }
        // Q4_0/Q5_0 put the largest magnitude on the -8/-16 level, so the other side can be
        // a full step away; the others are within half a step. Plus fp16 scale rounding.
        float step_err = 0;
        switch (t) {
          case DType::Q8_0: step_err = amax / 127 / 2; break;
          case DType::Q4_0: step_err = amax / 8; break;
          case DType::Q5_0: step_err = amax / 16; break;
          case DType::Q4_1: step_err = (hi - lo) / 15 / 2; break;
          default: step_err = (hi - lo) / 31 / 2; break;
        }
        const float bound = step_err * 1.01f + amax * 2e-3f + 1e-7f;
        for (int j = 0; j < 32; ++j)
          ASSERT_LE(std::fabs(y[size_t(b * 32 + j)] - x[size_t(b * 32 + j)]), bound)
              << type_name(t) << " block " << b << " value " << j;
      }
    }
  }
}

TEST(RoundTrip, KQuantsAtLeastAsGoodAsPlainRounding) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    auto x = random_row(256 * 16, seed);
    if (seed % 2) for (auto& v : x) v = std::fabs(v);  // one-sided data exercises the mins
    const double rq4 = rmse(round_trip(DType::Q4_K, x), x), rq4n = rmse(naive_k(x, 15), x);
    const double rq5 = rmse(round_trip(DType::Q5_K, x), x), rq5n = rmse(naive_k(x, 31), x);
    EXPECT_LE(rq4, rq4n * 1.001) << "seed " << seed;
    EXPECT_LE(rq5, rq5n * 1.001) << "seed " << seed;
    // Q6_K: 16-value blocks with 64 levels: rms error well under a step of max/32.
    const double rq6 = rmse(round_trip(DType::Q6_K, x), x);
    EXPECT_LT(rq6, 4.0 / 32 / std::sqrt(12.0) * 1.5);
    EXPECT_LT(rq6, rq5);
    EXPECT_LT(rq5, rq4);
  }
}

TEST(RoundTrip, FloatTypes) {
  const auto x = random_row(1000, 7);
  EXPECT_EQ(rmse(round_trip(DType::F32, x), x), 0.0);
  EXPECT_LT(rmse(round_trip(DType::F16, x), x), 1e-3);
  EXPECT_LT(rmse(round_trip(DType::BF16, x), x), 5e-3);
}
