// Every dot kernel, on every ISA this CPU has, against a plain reference on random data:
// dequantize the weight row, use the activation row exactly as the kernel sees it, sum in double.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>

#include "backend/cpu/kernels.h"
#include "backend/cpu/repack.h"
#include "core/context.h"
#include "core/fp16.h"
#include "engine/kv_cache.h"
#include "format/quant.h"
#include "model/layers/attention.h"
#include "ops/matmul.h"
#include "ops/packed.h"
#include "test_util.h"

using namespace corral;

namespace {

using test::randn;

std::vector<const KernelTable*> tables() {
  std::vector<const KernelTable*> t{&kernels_scalar()};
  __builtin_cpu_init();
  if (kernels_avx2()) t.push_back(kernels_avx2());
  if (kernels_avx512()) t.push_back(kernels_avx512());
  return t;
}

// Rows of wf ([n_out][n_in]) quantized to t, with a view over them.
struct QuantWeights {
  std::vector<uint8_t> bytes;
  TensorView view;
};
QuantWeights quantize_weights(DType t, const std::vector<float>& wf, int64_t n_in, int64_t n_out) {
  QuantWeights q;
  q.bytes.resize(row_bytes(t, n_in) * size_t(n_out));
  for (int64_t r = 0; r < n_out; ++r)
    quantize_row(t, wf.data() + r * n_in, q.bytes.data() + size_t(r) * row_bytes(t, n_in), n_in);
  q.view.data = q.bytes.data();
  q.view.type = t;
  q.view.ne = {n_in, n_out, 1, 1};
  q.view.n_dims = 2;
  return q;
}

// y [n_tok][n_out] against the reference yr, within rel * sum_i |w_ri x_ti| per output (the
// scale of activation-rounding error); wf holds the float weights the quantized ones came from.
::testing::AssertionResult near_reference(const std::vector<float>& y, const std::vector<float>& yr,
                                          const std::vector<float>& wf, const std::vector<float>& x,
                                          int64_t n_in, int64_t n_out, int64_t n_tok, double rel) {
  for (int64_t tk = 0; tk < n_tok; ++tk)
    for (int64_t r = 0; r < n_out; ++r) {
      double mag = 0;
      for (int64_t i = 0; i < n_in; ++i)
        mag += std::fabs(wf[size_t(r * n_in + i)] * x[size_t(tk * n_in + i)]);
      const size_t o = size_t(tk * n_out + r);
      if (!(std::fabs(double(y[o]) - yr[o]) <= rel * mag))
        return ::testing::AssertionFailure()
               << "token " << tk << " row " << r << ": " << y[o] << " vs reference " << yr[o]
               << " (tolerance " << rel * mag << ")";
    }
  return ::testing::AssertionSuccess();
}

// w repacked as the engine does it: the copy in buf, seen as a repacked view.
TensorView repacked_view(const TensorView& w, std::vector<uint8_t>& buf) {
  buf.resize(repacked_bytes(w));
  repack_weight(w, buf.data());
  TensorView wp = w;
  wp.data = buf.data();
  wp.repacked = true;
  return wp;
}

// Every row of the repacked copy read back by its layout, byte for byte the file's row.
::testing::AssertionResult rows_read_back(const TensorView& w, const TensorView& wp) {
  const PackedLayout* l = packed_layout(w.type, w.ne[0]);
  std::vector<uint8_t> back(w.row_size());
  for (int64_t r = 0; r < w.ne[1]; ++r) {
    l->row(wp, r, back.data());
    if (std::memcmp(back.data(), w.row(r), w.row_size()) != 0)
      return ::testing::AssertionFailure() << l->name << " row " << r;
  }
  return ::testing::AssertionSuccess();
}

// Batches of each size, every `step` tokens, bitwise what the T-token call gave (all: [T][N]).
::testing::AssertionResult same_in_every_batch(Context& ctx, const TensorView& wp,
                                               const std::vector<float>& x, int64_t T,
                                               const std::vector<float>& all,
                                               std::initializer_list<int64_t> sizes, int64_t step) {
  const int64_t n_in = wp.ne[0], n_out = wp.ne[1];
  MatmulScratch s;
  for (int64_t n : sizes) {
    std::vector<float> y(size_t(n_out * n));
    for (int64_t t0 = 0; t0 + n <= T; t0 += step) {
      matmul(ctx, wp, x.data() + t0 * n_in, n, y.data(), s);
      if (std::memcmp(y.data(), all.data() + t0 * n_out, y.size() * 4) != 0)
        return ::testing::AssertionFailure() << "batch of " << n << " at token " << t0;
    }
  }
  return ::testing::AssertionSuccess();
}

const DType kTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0,
                        DType::Q4_0, DType::Q4_K, DType::Q6_K};

}  // namespace

TEST(Kernels, DotMatchesReferenceOnEveryIsa) {
  for (int64_t n : {256, 512, 4096}) {
    for (DType t : kTypes) {
      const auto w = randn(n, 1), x = randn(n, 2);
      std::vector<uint8_t> wq(row_bytes(t, n));
      quantize_row(t, w.data(), wq.data(), n);
      std::vector<float> wd(static_cast<size_t>(n));
      dequantize_row(t, wq.data(), wd.data(), n);
      // The activation row as the kernel consumes it, and its dequantized values.
      const DType at = act_type(t);
      std::vector<uint8_t> xq(row_bytes(at, n));
      quantize_row(at, x.data(), xq.data(), n);
      std::vector<float> xd(static_cast<size_t>(n));
      dequantize_row(at, xq.data(), xd.data(), n);
      double ref = 0, mag = 0;
      for (int64_t i = 0; i < n; ++i)
        ref += double(wd[size_t(i)]) * xd[size_t(i)],
            mag += std::fabs(wd[size_t(i)] * xd[size_t(i)]);
      for (const KernelTable* k : tables()) {
        ASSERT_NE(k->dot[uint32_t(t)], nullptr) << k->isa << " " << type_name(t);
        const float got =
            k->dot[uint32_t(t)](n, wq.data(), at == DType::F32 ? (const void*)x.data() : xq.data());
        EXPECT_NEAR(got, ref, 1e-5 * mag + 1e-4) << k->isa << " " << type_name(t) << " n=" << n;
      }
    }
  }
}

// Batch invariance: a 4-row dot gives each row bitwise what the 1-row dot gives.
TEST(Kernels, FourRowDotEqualsOneRowDotBitwise) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.f, 1.f);
  int checked = 0;
  for (const KernelTable* k : tables())
    for (uint32_t type = 0; type < 32; ++type) {
      if (!k->dot4[type]) continue;
      const DType dt = DType(type);
      const bool k_quant = dt == DType::Q6_K;
      ASSERT_TRUE(dt == DType::F32 || dt == DType::F16 || dt == DType::BF16 || k_quant);
      for (int64_t n : k_quant ? std::vector<int64_t>{256, 2048}
                               : std::vector<int64_t>{16, 48, 2048, 37, 100}) {
        std::vector<float> wf(static_cast<size_t>(n)), x(static_cast<size_t>(4 * n));
        for (auto& v : wf) v = nd(rng);
        for (auto& v : x) v = nd(rng);
        std::vector<uint8_t> w(row_bytes(dt, n) + 64);
        // Activations as the kernel takes them: f32 rows, or Q8_K rows for the K-quants.
        size_t ldx = size_t(n) * 4;
        std::vector<uint8_t> act(ldx * 4);
        std::memcpy(act.data(), x.data(), act.size());
        if (k_quant) {
          quantize_row(dt, wf.data(), w.data(), n);
          ldx = row_bytes(DType::Q8_K, n);
          act.assign(ldx * 4, 0);
          for (int t = 0; t < 4; ++t) k->quantize_q8_k(x.data() + t * n, act.data() + t * ldx, n);
        } else if (dt == DType::F32) {
          std::memcpy(w.data(), wf.data(), size_t(n) * 4);
        } else {
          for (int64_t i = 0; i < n; ++i)
            reinterpret_cast<uint16_t*>(w.data())[i] =
                dt == DType::F16 ? f32_to_fp16(wf[size_t(i)]) : f32_to_bf16(wf[size_t(i)]);
        }
        float out[4];
        k->dot4[type](n, w.data(), act.data(), ldx, out);
        for (int t = 0; t < 4; ++t) {
          const float one = k->dot[type](n, w.data(), act.data() + t * ldx);
          EXPECT_EQ(std::memcmp(&one, &out[t], 4), 0)
              << k->isa << " " << type_name(dt) << " n=" << n << " row " << t;
        }
        ++checked;
      }
    }
  if (kernels_avx2()) {
    EXPECT_GT(checked, 0);
  }
}

TEST(Kernels, OddLengthFloatRows) {
  for (int64_t n : {1, 7, 33, 100}) {
    const auto w = randn(n, 3), x = randn(n, 4);
    double ref = 0;
    for (int64_t i = 0; i < n; ++i) ref += double(w[size_t(i)]) * x[size_t(i)];
    for (const KernelTable* k : tables())
      EXPECT_NEAR(k->dot[uint32_t(DType::F32)](n, w.data(), x.data()), ref, 1e-4)
          << k->isa << " n=" << n;
  }
}

TEST(Kernels, ThreadedMatmulMatchesReference) {
  Context ctx(2);
  const int64_t n_in = 512, n_out = 77, n_tok = 5;
  const auto wf = randn(n_in * n_out, 5), x = randn(n_in * n_tok, 6);
  for (DType t : kTypes) {
    const QuantWeights qw = quantize_weights(t, wf, n_in, n_out);
    const TensorView& w = qw.view;
    const std::vector<uint8_t>& wq = qw.bytes;
    std::vector<float> y(size_t(n_out * n_tok)), yr(size_t(n_out * n_tok));
    MatmulScratch s;
    matmul(ctx, w, x.data(), n_tok, y.data(), s);
    matmul_reference(w, x.data(), n_tok, yr.data());
    // Threads and tiling must not change a single value: compare with one dot per output.
    const KernelTable& k = kernels_best();
    const DType at = act_type(t);
    std::vector<uint8_t> xq(row_bytes(at, n_in));
    for (int64_t tk = 0; tk < n_tok; ++tk) {
      quantize_row(at, x.data() + tk * n_in, xq.data(), n_in);
      const void* xa = at == DType::F32 ? (const void*)(x.data() + tk * n_in) : xq.data();
      for (int64_t r = 0; r < n_out; ++r) {
        const float want = k.dot[uint32_t(t)](n_in, wq.data() + size_t(r) * row_bytes(t, n_in), xa);
        ASSERT_EQ(y[size_t(tk * n_out + r)], want) << type_name(t);  // n_tok < 16: the dot path
        // And against the float reference, within the activation quantization noise.
        double mag = 0;
        for (int64_t i = 0; i < n_in; ++i)
          mag += std::fabs(wf[size_t(r * n_in + i)] * x[size_t(tk * n_in + i)]);
        EXPECT_NEAR(y[size_t(tk * n_out + r)], yr[size_t(tk * n_out + r)],
                    (at == DType::F32 ? 1e-5 : 2e-2) * mag);
      }
    }
  }
}

TEST(Kernels, FastDequantMatchesReference) {
  for (const KernelTable* k : tables())
    for (DType t : kTypes) {
      if (!k->dequant[uint32_t(t)]) continue;
      const int64_t n = 512;
      const auto w = randn(n, 9);
      std::vector<uint8_t> q(row_bytes(t, n));
      quantize_row(t, w.data(), q.data(), n);
      std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
      dequantize_row(t, q.data(), a.data(), n);
      k->dequant[uint32_t(t)](q.data(), b.data(), n);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_NEAR(a[size_t(i)], b[size_t(i)], 1e-6f * (1 + std::fabs(a[size_t(i)])))
            << k->isa << " " << type_name(t);
    }
}

TEST(Kernels, PromptGemmPathsMatchReference) {
  Context ctx(2);
  const int64_t n_in = 512, n_out = 70, n_tok = 37;  // odd sizes exercise every tail
  const auto wf = randn(n_in * n_out, 11), x = randn(n_in * n_tok, 12);
  for (DType t : kTypes) {
    const QuantWeights qw = quantize_weights(t, wf, n_in, n_out);
    const TensorView& w = qw.view;
    std::vector<float> y(size_t(n_out * n_tok)), yr(size_t(n_out * n_tok));
    MatmulScratch s;
    matmul(ctx, w, x.data(), n_tok, y.data(), s);
    matmul_reference(w, x.data(), n_tok, yr.data());
    ASSERT_TRUE(near_reference(y, yr, wf, x, n_in, n_out, n_tok, 2e-2)) << type_name(t);
  }
}

TEST(Kernels, RepackedWeightsMatchPlainRows) {
  Context ctx(2);
  // More rows than one repacking slice, so the slices' seams are checked too.
  const int64_t n_in = 256, n_out = kRepackSliceRows + 72;
  const auto wf = randn(n_in * n_out, 21);
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K}) {
    const QuantWeights qw = quantize_weights(t, wf, n_in, n_out);
    const TensorView& w = qw.view;
    if (!repack_supported(w)) GTEST_SKIP() << "no repacked kernel on " << kernels_isa_name();
    std::vector<uint8_t> packed(repacked_bytes(w));
    int64_t sliced_rows = 0;
    repack_weight(w, packed.data(), nullptr,
                  [&](const TensorView& part) { sliced_rows += part.rows(); });
    ASSERT_EQ(sliced_rows, n_out);
    // Every row comes back bit-identical.
    std::vector<uint8_t> row(row_bytes(t, n_in));
    for (int64_t r = 0; r < n_out; ++r) {
      if (t == DType::Q4_K)
        repacked_q4_k_row(packed.data(), n_in, r, row.data());
      else if (t == DType::Q8_0)
        repacked_q8_0_row(packed.data(), n_in, r, row.data());
      else
        repacked_q4_0_row(packed.data(), n_in, r, row.data());
      ASSERT_EQ(std::memcmp(row.data(), w.row(r), row.size()), 0) << type_name(t) << " row " << r;
    }
    TensorView wp = w;
    wp.data = packed.data();
    wp.repacked = true;
    for (int64_t n_tok : {1, 3, 37}) {
      const auto x = randn(n_in * n_tok, 22);
      std::vector<float> y(size_t(n_out * n_tok)), yr(size_t(n_out * n_tok));
      MatmulScratch s;
      matmul(ctx, wp, x.data(), n_tok, y.data(), s);
      matmul_reference(w, x.data(), n_tok, yr.data());
      ASSERT_TRUE(near_reference(y, yr, wf, x, n_in, n_out, n_tok, 2e-2))
          << type_name(t) << " T=" << n_tok;
    }
  }
}

// Q, K and V style: three weights over one input, fused into one pass where all are repacked of
// one type, else run one by one (a plain F16 weight among them); each output equals its own
// reference product.
TEST(Kernels, SharedInputMatmulMatchesSeparateProducts) {
  Context ctx(2);
  const int64_t n_in = 256, outs[3] = {64, 16, 24};
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K}) {
    for (bool mixed : {false, true}) {
      std::vector<QuantWeights> qw;
      std::vector<std::vector<uint8_t>> packed(3);
      std::vector<TensorView> views(3);
      std::vector<std::vector<float>> wf(3);
      for (int j = 0; j < 3; ++j) {
        const DType tj = mixed && j == 1 ? DType::F16 : t;
        wf[size_t(j)] = randn(n_in * outs[j], 31 + uint32_t(j));
        qw.push_back(quantize_weights(tj, wf[size_t(j)], n_in, outs[j]));
        views[size_t(j)] = qw.back().view;
        if (!repack_supported(views[size_t(j)])) continue;
        packed[size_t(j)].resize(repacked_bytes(views[size_t(j)]));
        repack_weight(views[size_t(j)], packed[size_t(j)].data());
        views[size_t(j)].data = packed[size_t(j)].data();
        views[size_t(j)].repacked = true;
      }
      if (!views[0].repacked) GTEST_SKIP() << "no repacked kernel on " << kernels_isa_name();
      for (int64_t n_tok : {1, 37}) {
        const auto x = randn(n_in * n_tok, 33);
        std::vector<std::vector<float>> y(3);
        for (int j = 0; j < 3; ++j) y[size_t(j)].assign(size_t(n_tok * outs[j]), -1.f);
        MatmulScratch s;
        matmul_shared_input(
            ctx, {{&views[0], y[0].data()}, {&views[1], y[1].data()}, {&views[2], y[2].data()}},
            x.data(), n_tok, s);
        for (int j = 0; j < 3; ++j) {
          std::vector<float> yr(size_t(n_tok * outs[j]));
          matmul_reference(qw[size_t(j)].view, x.data(), n_tok, yr.data());
          ASSERT_TRUE(
              near_reference(y[size_t(j)], yr, wf[size_t(j)], x, n_in, outs[j], n_tok, 5e-3))
              << type_name(t) << " target " << j << " T=" << n_tok << " mixed=" << mixed;
        }
      }
    }
  }
}

// Activation quantizers of every ISA against the scalar ones (levels, scales, sums), on random
// rows with a zero block (scale 0) in them.
TEST(Kernels, ActivationQuantizersMatchScalarOnEveryIsa) {
  const int64_t K = 1024, nb = K / 32;
  auto x = randn(K, 41);
  std::fill(x.begin() + 64, x.begin() + 96, 0.f);
  const KernelTable& ref = kernels_scalar();
  std::vector<int8_t> q0(static_cast<size_t>(K)), q1(static_cast<size_t>(K));
  std::vector<float> d0(size_t(nb * 2)), d1(size_t(nb * 2)), s0(size_t(nb * 2)), s1(size_t(nb * 2));
  ref.quantize_s8_blocks(x.data(), K, q0.data(), d0.data(), s0.data(), 2);
  std::vector<uint8_t> k0(row_bytes(DType::Q8_K, K)), k1(k0.size());
  ref.quantize_q8_k(x.data(), k0.data(), K);
  for (const KernelTable* k : tables()) {
    k->quantize_s8_blocks(x.data(), K, q1.data(), d1.data(), s1.data(), 2);
    EXPECT_EQ(q0, q1) << k->isa;
    for (int64_t b = 0; b < nb; ++b) {
      EXPECT_EQ(d0[size_t(2 * b)], d1[size_t(2 * b)]) << k->isa << " block " << b;
      EXPECT_FLOAT_EQ(s0[size_t(2 * b)], s1[size_t(2 * b)]) << k->isa << " block " << b;
    }
    k->quantize_q8_k(x.data(), k1.data(), K);
    EXPECT_EQ(k0, k1) << k->isa;
  }
  // The levels really are the rounded scaled inputs.
  for (int64_t i = 0; i < K; ++i)
    ASSERT_NEAR(q0[size_t(i)] * d0[size_t(2 * (i / 32))], x[size_t(i)],
                0.51 * d0[size_t(2 * (i / 32))] + 1e-7);
}

// Attention over the paged cache against a direct computation in double: three sequences in one
// batch (a prompt of 21 tokens, a continuation of 3 after 9 cached positions, and one decode
// step after 13), grouped-query heads, with and without chunking, F32 and F16 cache (the
// reference reads the cache's values).
TEST(Attention, MatchesDirectComputation) {
  Context ctx(2);
  const int64_t n_head = 8, n_kv = 2, hd = 64, row = n_kv * hd;
  for (DType kt : {DType::F32, DType::F16}) {
    for (int64_t chunk : {int64_t(0), int64_t(8)}) {
      PagedKvCache kv({1, row, 16, 16, kt});
      // Sequence 1 already holds positions 0..8; the batch adds 9..11 of it and 0..20 of seq 0.
      std::vector<BatchToken> warm, batch;
      for (int32_t p = 0; p < 9; ++p) warm.push_back({1, p, 0, false});
      for (int32_t p = 0; p < 13; ++p) warm.push_back({2, p, 0, false});
      for (int32_t p = 0; p < 21; ++p) batch.push_back({0, p, 0, false});
      for (int32_t p = 9; p < 12; ++p) batch.push_back({1, p, 0, false});
      batch.push_back({2, 13, 0, false});
      const AttnParams ap{0, n_head, n_kv, hd, 0.125f, chunk};
      ASSERT_TRUE(kv.reserve(0, 21) && kv.reserve(1, 12) && kv.reserve(2, 14));
      const auto kw = randn(22 * row, 51), vw = randn(22 * row, 52);
      kv_store(kv, ap, warm, kw.data(), vw.data());
      const int64_t T = int64_t(batch.size());
      const auto q = randn(T * n_head * hd, 53), k = randn(T * row, 54), v = randn(T * row, 55);
      kv_store(kv, ap, batch, k.data(), v.data());
      std::vector<float> out(size_t(T * n_head * hd));
      ForwardScratch s;
      attention(ctx, kv, ap, batch, q.data(), out.data(), s);
      auto cached = [&](bool is_v, int32_t seq, int64_t pos, int64_t i) {
        const uint8_t* b = (is_v ? kv.v_block(0, kv.blocks(seq)[size_t(pos / 16)])
                                 : kv.k_block(0, kv.blocks(seq)[size_t(pos / 16)]));
        const int64_t o = (pos % 16) * row + i;
        if (kt == DType::F32) return double(reinterpret_cast<const float*>(b)[o]);
        return double(fp16_to_f32(reinterpret_cast<const uint16_t*>(b)[o]));
      };
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < n_head; ++h) {
          const BatchToken& bt = batch[size_t(t)];
          const int64_t kvh = h / (n_head / n_kv), p0 = chunk ? bt.pos / chunk * chunk : 0;
          std::vector<double> sc;
          double mx = -1e300, sum = 0;
          for (int64_t pos = p0; pos <= bt.pos; ++pos) {
            double d = 0;
            for (int64_t i = 0; i < hd; ++i)
              d += q[size_t((t * n_head + h) * hd + i)] * cached(false, bt.seq, pos, kvh * hd + i);
            sc.push_back(d * 0.125);
            mx = std::max(mx, sc.back());
          }
          for (double& x : sc) sum += (x = std::exp(x - mx));
          for (int64_t i = 0; i < hd; ++i) {
            double o = 0;
            for (int64_t pos = p0; pos <= bt.pos; ++pos)
              o += sc[size_t(pos - p0)] / sum * cached(true, bt.seq, pos, kvh * hd + i);
            ASSERT_NEAR(out[size_t((t * n_head + h) * hd + i)], o, 1e-5)
                << type_name(kt) << " chunk " << chunk << " token " << t << " head " << h;
          }
        }
    }
  }
}

// Repacked F16/BF16/F32: rows come back bit-identical; every token's outputs are bitwise the same
// whether it is alone (gemv16, 4 groups), among a few (gemv16, 2 groups x 4 tokens) or in a
// prompt (the f32 GEMM over unpacked rows), and within float noise of the reference.
TEST(Kernels, Repacked16BitIsBatchInvariant) {
  test::ScopedEnv env("CORRAL_AMX_BF16", "0");  // the vector kernels (the AMX tiles: the next test)
  Context ctx(2);
  for (int64_t n_in : {256, 37 * 8 + 3}) {
    const int64_t n_out = 8 * 13;  // 13 groups: one item of 4 groups is short
    const auto wf = randn(n_in * n_out, 31);
    for (DType t : {DType::F16, DType::BF16, DType::F32}) {
      const QuantWeights qw = quantize_weights(t, wf, n_in, n_out);
      const TensorView& w = qw.view;
      if (!repack_supported(w)) GTEST_SKIP() << "no repacked F16 kernels on " << kernels_isa_name();
      std::vector<uint8_t> packed;
      const TensorView wp = repacked_view(w, packed);
      ASSERT_TRUE(rows_read_back(w, wp)) << type_name(t);
      const int64_t T = 30;
      const auto x = randn(n_in * T, 32);
      std::vector<float> all(size_t(n_out * T)), yr(size_t(n_out * T));
      MatmulScratch s;
      matmul(ctx, wp, x.data(), T, all.data(), s);  // T > 8: the GEMM
      matmul_reference(w, x.data(), T, yr.data());
      ASSERT_TRUE(near_reference(all, yr, wf, x, n_in, n_out, T, 1e-5)) << type_name(t);
      ASSERT_TRUE(same_in_every_batch(ctx, wp, x, T, all, {1, 2, 3, 5, 8}, 7))
          << type_name(t) << " K=" << n_in;
    }
  }
}

// Every packed layout of this table (and, with CORRAL_NO_AMX=1, the vector layouts the AMX ones
// hand their left-over tokens to): rows read back exactly, multiply within the type's tolerance
// of the layout's scalar reference, and each token bitwise the same in batches of any size.
TEST(PackedLayouts, EachMatchesItsReferenceAndIsBatchInvariant) {
  Context ctx(2);
  const int64_t n_in = 512, T = 40;
  const auto x = randn(n_in * T, 52);
  int tested = 0;
  for (const char* no_amx : {"0", "1"}) {
    std::optional<test::ScopedEnv> env;
    if (std::string(no_amx) == "1") env.emplace("CORRAL_NO_AMX", "1");
    for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K,
                    DType::Q6_K}) {
      // 3 pairs of groups and an odd one; Q6_K's kernels take pairs only: 4 pairs.
      const int64_t n_out = t == DType::Q6_K ? 16 * 4 : 8 * 7;
      const auto wf = randn(n_in * n_out, 51);
      const QuantWeights qw = quantize_weights(t, wf, n_in, n_out);
      const TensorView& w = qw.view;
      if (!repack_supported(w)) continue;
      ++tested;
      const PackedLayout* l = packed_layout(t, n_in);
      ASSERT_NE(l, nullptr) << type_name(t);
      std::vector<uint8_t> packed;
      const TensorView wp = repacked_view(w, packed);
      ASSERT_TRUE(rows_read_back(w, wp));
      std::vector<float> all(size_t(n_out * T)), yr(size_t(n_out * T));
      MatmulScratch s;
      matmul(ctx, wp, x.data(), T, all.data(), s);
      packed_reference(wp, x.data(), T, yr.data());
      const double tol = t == DType::F32 || t == DType::F16 || t == DType::BF16 ? 1e-5 : 2e-2;
      EXPECT_TRUE(near_reference(all, yr, wf, x, n_in, n_out, T, tol)) << l->name;
      ASSERT_TRUE(same_in_every_batch(ctx, wp, x, T, all, {1, 2, 3, 4, 7, 16, 17, 33}, 11))
          << l->name;
    }
  }
  if (tested == 0) GTEST_SKIP() << "the " << kernels_isa_name() << " table packs no weight type";
  EXPECT_GE(tested, 8);
}

// AMX-BF16 (the AMX table's default; CORRAL_AMX_BF16=0 turns it off): every token count through the
// tiles, bitwise the same per token in any batch (tails of 1-15 rows included), within 1e-5 of the
// float64 reference (activations split in two bf16 parts), and rows read back from the tile layout
// exactly.
TEST(Kernels, AmxBf16TilesAreBatchInvariantAndExactEnough) {
  if (!kernels_best().amx_bf16) GTEST_SKIP() << "no AMX-BF16 on " << kernels_isa_name();
  test::ScopedEnv env("CORRAL_AMX_BF16", "1");
  Context ctx(2);
  const int64_t n_in = 256 + 64, n_out = 8 * 11;  // 5 pairs and an odd last group
  auto wf = randn(n_in * n_out, 41);
  wf[5] = 0, wf[7] = 1e-39f, wf[9] = -3e38f / 1e30f;  // a zero, a subnormal, a large value
  const QuantWeights qw = quantize_weights(DType::BF16, wf, n_in, n_out);
  const TensorView& w = qw.view;
  ASSERT_TRUE(bf16_tile_layout(w.type, n_in));
  std::vector<uint8_t> packed;
  const TensorView wp = repacked_view(w, packed);
  ASSERT_TRUE(rows_read_back(w, wp));
  const int64_t T = 50;
  const auto x = randn(n_in * T, 42);
  std::vector<float> all(size_t(n_out * T)), yr(size_t(n_out * T));
  MatmulScratch s;
  matmul(ctx, wp, x.data(), T, all.data(), s);
  matmul_reference(w, x.data(), T, yr.data());
  EXPECT_TRUE(near_reference(all, yr, wf, x, n_in, n_out, T, 1e-5));
  EXPECT_TRUE(same_in_every_batch(ctx, wp, x, T, all, {1, 2, 5, 15, 16, 17, 33}, 9));
}

// The two-group kernels (AVX-512 VNNI) against the one-group AVX2 kernels, bitwise: a token's
// output must not depend on whether its group was paired (batch invariance within a table).
// Hostile levels included: Q8_0 weights of -128, which no quantizer writes but a file may hold.
// AMX tiles: a pair of groups against 16..48 tokens, bitwise what the VNNI pair kernels give
// for every token (hostile -128 weight levels, zero and subnormal block scales, K of 1..64
// blocks), and near a double reference.
TEST(Kernels, AmxTilesEqualVnniPairKernels) {
  std::string why;
  const KernelTable* amx = kernels_amx(&why);
  const KernelTable* wide = kernels_avx512();
  if (!amx || !wide) GTEST_SKIP() << "no AMX here: " << why;
  std::mt19937 rng(77);
  for (int64_t K : {32, 96, 2048}) {
    const int64_t nb = K / 32;
    for (DType t : {DType::Q4_0, DType::Q8_0}) {
      auto wf = randn(16 * K, 50 + uint32_t(K));
      for (int i = 0; i < K; ++i) wf[size_t(3 * K + i)] = 0.f;  // a zero row: zero scales
      for (int i = 0; i < 32; ++i) wf[size_t(5 * K + i)] = 1e-42f * float(i);  // a subnormal scale
      QuantWeights qw = quantize_weights(t, wf, K, 16);
      if (t == DType::Q8_0)
        for (int i = 0; i < 16; ++i) {
          auto* blk = reinterpret_cast<BlockQ8_0*>(qw.bytes.data()) + rng() % (16 * nb);
          blk->qs[rng() % 32] = -128;
        }
      std::vector<uint8_t> packed(repacked_bytes(qw.view));
      repack_weight(qw.view, packed.data());
      const size_t gbytes = repacked_group_bytes(t, K);
      for (int64_t T16 : {16, 48}) {
        const auto x = randn(size_t(T16 * K), 60 + uint32_t(T16));
        std::vector<int8_t> xq(size_t(T16 * K));
        std::vector<float> xd(size_t(T16 * nb)), xs(size_t(T16 * nb));
        for (int64_t tk = 0; tk < T16; ++tk)
          wide->quantize_s8_blocks(x.data() + tk * K, K, xq.data() + tk * K, xd.data() + tk * nb,
                                   xs.data() + tk * nb, 1);
        const int64_t ldo = 40;  // wider than 16: rows land where the caller says
        std::vector<float> got(size_t(T16 * ldo), -1.f);
        (t == DType::Q8_0 ? amx->amx_pair_q8_0 : amx->amx_pair_q4_0)(
            K, packed.data(), gbytes, xq.data(), K, 32, xd.data(), xs.data(), nb, T16, got.data(),
            ldo);
        // Block-major levels give the same.
        std::vector<int8_t> bm(size_t(T16 * K));
        for (int64_t tk = 0; tk < T16; ++tk)
          for (int64_t b = 0; b < nb; ++b)
            std::memcpy(&bm[size_t((b * T16 + tk) * 32)], &xq[size_t(tk * K + 32 * b)], 32);
        std::vector<float> got_bm(size_t(T16 * ldo), -1.f);
        (t == DType::Q8_0 ? amx->amx_pair_q8_0 : amx->amx_pair_q4_0)(
            K, packed.data(), gbytes, bm.data(), 32, 32 * T16, xd.data(), xs.data(), nb, T16,
            got_bm.data(), ldo);
        ASSERT_EQ(std::memcmp(got.data(), got_bm.data(), got.size() * 4), 0)
            << "block-major layout";
        const RepackedPairFn pair = (t == DType::Q8_0 ? wide->pair_q8_0 : wide->pair_q4_0)[1];
        for (int64_t t0 = 0; t0 < T16; t0 += 4) {
          float want[64];
          pair(K, packed.data(), gbytes, xq.data() + t0 * K, K, xd.data() + t0 * nb,
               xs.data() + t0 * nb, nb, want);
          for (int tt = 0; tt < 4; ++tt)
            for (int r = 0; r < 16; ++r) {
              const float w = want[(r / 8) * 32 + tt * 8 + r % 8],
                          g = got[size_t((t0 + tt) * ldo + r)];
              ASSERT_EQ(std::memcmp(&w, &g, 4), 0)
                  << type_name(t) << " K=" << K << " token " << t0 + tt << " row " << r << ": " << g
                  << " vs " << w;
            }
        }
        for (int64_t tk = 0; tk < T16; ++tk)
          for (int r = 16; r < ldo; ++r)
            ASSERT_EQ(got[size_t(tk * ldo + r)], -1.f) << "wrote outside its rows";
        std::vector<float> row(static_cast<size_t>(K));
        for (int r = 0; r < 16; ++r) {
          dequantize_row(t, qw.view.row(r), row.data(), K);
          double ref = 0, mag = 0;
          for (int64_t i = 0; i < K; ++i) {
            const double xv = double(xq[size_t(i)]) * xd[size_t(i / 32)];
            ref += double(row[size_t(i)]) * xv;
            mag += std::fabs(double(row[size_t(i)]) * xv);
          }
          ASSERT_NEAR(got[size_t(r)], ref, 1e-5 * mag + 1e-6)
              << type_name(t) << " K=" << K << " row " << r;
        }
      }
    }
  }
}

// A refused tile state (simulated): the next table runs, one stderr line says which and why,
// and the output is the same.
TEST(Kernels, AmxRefusedFallsBackCleanly) {
  std::string why;
  if (!kernels_amx(&why)) GTEST_SKIP() << "no AMX here: " << why;
  // The child processes ask for the AMX table whatever table this test process was given.
  const char* isa = std::getenv("CORRAL_ISA");
  const std::string saved_isa = isa ? isa : "";
  setenv("CORRAL_ISA", "amx", 1);
  struct Restore {
    std::string v;
    bool had;
    ~Restore() { had ? (void)setenv("CORRAL_ISA", v.c_str(), 1) : (void)unsetenv("CORRAL_ISA"); }
  } restore{saved_isa, isa != nullptr};
  const std::string model = test::tmp_path("amx_deny.gguf");
  ASSERT_EQ(test::run_corral("synth --shape tiny --type q8_0 --seed 3 " + model).status, 0);
  const std::string run =
      "run -m " + model +
      " --prompt-ids 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20 -n 8 --temp 0 --print-ids";
  auto with = test::run_corral(run);
  test::CmdResult denied{0, "", ""};
  {
    const std::string cmd =
        "CORRAL_AMX_DENY=1 " + std::string(CORRAL_BINARY) + " " + run + " 2>" + model + ".err";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[4096];
    std::string out;
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    ASSERT_EQ(pclose(p), 0);
    denied.out = out;
    std::ifstream f(model + ".err");
    denied.err.assign(std::istreambuf_iterator<char>(f), {});
  }
  ASSERT_EQ(with.status, 0) << with.err;
  EXPECT_EQ(with.err.find("AMX kernels unavailable"), std::string::npos) << with.err;
  EXPECT_NE(denied.err.find("AMX kernels unavailable (the kernel refused the tile state (simulated "
                            "by CORRAL_AMX_DENY)): using avx512"),
            std::string::npos)
      << denied.err;
  EXPECT_EQ(denied.out, with.out)
      << "a 20-token prompt through tiles and through VNNI: the same greedy ids";
  std::remove(model.c_str());
}

// The Q4_K tiles: bitwise what the 4-token Q4_K kernel gives, K of 1 and 8 superblocks.
TEST(Kernels, AmxQ4KTilesEqualTheQ4KKernels) {
  std::string why;
  const KernelTable* amx = kernels_amx(&why);
  if (!amx) GTEST_SKIP() << "no AMX here: " << why;
  for (int64_t K : {256, 2048}) {
    auto wf = randn(16 * K, 70 + uint32_t(K));
    for (int i = 0; i < K; ++i) wf[size_t(2 * K + i)] = 0.f;  // a zero row
    QuantWeights qw = quantize_weights(DType::Q4_K, wf, K, 16);
    std::vector<uint8_t> packed(repacked_bytes(qw.view));
    repack_weight(qw.view, packed.data());
    const size_t gbytes = repacked_group_bytes(DType::Q4_K, K);
    const int64_t T16 = 32;
    const size_t arow = row_bytes(DType::Q8_K, K);
    const auto x = randn(size_t(T16 * K), 90);
    std::vector<uint8_t> act(arow * size_t(T16));
    for (int64_t t = 0; t < T16; ++t)
      amx->quantize_q8_k(x.data() + t * K, act.data() + size_t(t) * arow, K);
    std::vector<float> got(size_t(T16 * 16));
    amx->amx_pair_q4_k(K, packed.data(), gbytes, act.data(), arow, T16, got.data(), 16);
    for (int64_t t0 = 0; t0 < T16; t0 += 4)
      for (int h = 0; h < 2; ++h) {
        float want[32];
        amx->gemm_q4_kx8(K, packed.data() + h * gbytes, act.data() + size_t(t0) * arow, arow, want);
        for (int tt = 0; tt < 4; ++tt)
          for (int i = 0; i < 8; ++i) {
            const float w = want[tt * 8 + i], g = got[size_t((t0 + tt) * 16 + h * 8 + i)];
            ASSERT_EQ(std::memcmp(&w, &g, 4), 0) << "K=" << K << " token " << t0 + tt << " row "
                                                 << h * 8 + i << ": " << g << " vs " << w;
          }
      }
  }
}

TEST(Kernels, RepackedPairsEqualOneGroupKernels) {
  const KernelTable* wide = kernels_avx512();
  const KernelTable* one = kernels_avx2();
  if (!wide || !one || !wide->pair_q4_0[0]) GTEST_SKIP() << "no two-group kernels on this CPU";
  std::mt19937 rng(31);
  for (int64_t K : {32, 96, 2048}) {
    const int64_t nb = K / 32;
    const auto wf = randn(16 * K, 32 + uint32_t(K));
    for (DType t : {DType::Q4_0, DType::Q8_0}) {
      QuantWeights qw = quantize_weights(t, wf, K, 16);
      if (t == DType::Q8_0)  // a few -128 levels
        for (int i = 0; i < 8; ++i) {
          auto* blk = reinterpret_cast<BlockQ8_0*>(qw.bytes.data()) + rng() % (16 * nb);
          blk->qs[rng() % 32] = -128;
        }
      std::vector<uint8_t> packed(repacked_bytes(qw.view));
      repack_weight(qw.view, packed.data());
      const size_t gbytes = repacked_group_bytes(t, K);
      const auto x = randn(4 * K, 40);
      std::vector<int8_t> xq(size_t(4 * K));
      std::vector<float> xd(size_t(4 * nb)), xs(size_t(4 * nb));
      for (int tk = 0; tk < 4; ++tk)
        one->quantize_s8_blocks(x.data() + tk * K, K, xq.data() + tk * K, xd.data() + tk * nb,
                                xs.data() + tk * nb, 1);
      for (int nt : {1, 4}) {
        float got[64], want[64];
        const RepackedPairFn pair = (t == DType::Q8_0 ? wide->pair_q8_0 : wide->pair_q4_0)[nt / 4];
        pair(K, packed.data(), gbytes, xq.data(), K, xd.data(), xs.data(), nb, got);
        for (int h = 0; h < 2; ++h) {
          const uint8_t* g = packed.data() + h * gbytes;
          if (t == DType::Q8_0 && nt == 4)
            one->gemm_q8_0x8x4(K, g, xq.data(), K, xd.data(), nb, want + 32 * h);
          else if (t == DType::Q8_0)
            one->gemv_q8_0x8(K, g, xq.data(), xd.data(), want + 32 * h);
          else if (nt == 4)
            one->gemm_q4_0x8x4(K, g, xq.data(), K, xd.data(), xs.data(), nb, want + 32 * h);
          else
            one->gemv_q4_0x8(K, g, xq.data(), xd.data(), xs.data(), want + 32 * h);
        }
        for (int h = 0; h < 2; ++h)
          for (int i = 0; i < nt * 8; ++i)
            ASSERT_EQ(std::memcmp(&got[32 * h + i], &want[32 * h + i], 4), 0)
                << type_name(t) << " K=" << K << " tokens=" << nt << " group " << h << " out " << i
                << ": " << got[32 * h + i] << " vs " << want[32 * h + i];
        // And near the product of the dequantized rows and activation levels, in double.
        std::vector<float> row(static_cast<size_t>(K));
        for (int r = 0; r < 16; ++r) {
          dequantize_row(t, qw.view.row(r), row.data(), K);
          for (int tk = 0; tk < nt; ++tk) {
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < K; ++i) {
              const double xv = double(xq[size_t(tk * K + i)]) * xd[size_t(tk * nb + i / 32)];
              ref += double(row[size_t(i)]) * xv;
              mag += std::fabs(double(row[size_t(i)]) * xv);
            }
            const float v = got[(r / 8) * 32 + tk * 8 + r % 8];
            ASSERT_NEAR(v, ref, 1e-5 * mag + 1e-6) << type_name(t) << " K=" << K << " row " << r;
          }
        }
      }
    }
  }
}

// The Q6_K dots are one template on both ISAs (madd + add, or VNNI's vpdpwssd): their integer
// sums are exact, so the two tables' floats must be bitwise equal.
TEST(Kernels, Q6KDotsEqualAcrossIsas) {
  const KernelTable* a = kernels_avx2();
  const KernelTable* b = kernels_avx512();
  if (!a || !b) GTEST_SKIP() << "needs both AVX2 and AVX-512";
  const int64_t n = 2048;
  const auto wf = randn(n, 51), x = randn(4 * n, 52);
  std::vector<uint8_t> w(row_bytes(DType::Q6_K, n));
  quantize_row(DType::Q6_K, wf.data(), w.data(), n);
  const size_t ldx = row_bytes(DType::Q8_K, n);
  std::vector<uint8_t> act(ldx * 4);
  for (int t = 0; t < 4; ++t) a->quantize_q8_k(x.data() + t * n, act.data() + t * ldx, n);
  const uint32_t q6 = uint32_t(DType::Q6_K);
  float oa[4], ob[4];
  a->dot4[q6](n, w.data(), act.data(), ldx, oa);
  b->dot4[q6](n, w.data(), act.data(), ldx, ob);
  for (int t = 0; t < 4; ++t) {
    const float da = a->dot[q6](n, w.data(), act.data() + t * ldx);
    const float db = b->dot[q6](n, w.data(), act.data() + t * ldx);
    EXPECT_EQ(std::memcmp(&da, &db, 4), 0) << "token " << t << ": " << da << " vs " << db;
    EXPECT_EQ(std::memcmp(&oa[t], &ob[t], 4), 0) << "token " << t;
    EXPECT_EQ(std::memcmp(&oa[t], &da, 4), 0) << "token " << t;
  }
}

// exp_f32 on every table against exp in double: within 2 ulp where the result is a normal
// float, 0 below -87.33, NaN kept, the sum within 1e-6, tails of any length, y == x allowed.
TEST(Kernels, ExpMatchesReferenceOnEveryIsa) {
  for (int64_t n : {1, 7, 15, 16, 17, 1000, 1024, 1025, 4099}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[size_t(i)] = -100.f + 188.f * float((i * 7919) % n) / float(n);
    for (auto [a, b] : {std::pair{1.f, 0.f}, std::pair{0.125f, 3.f}, std::pair{-1.f, 0.f}}) {
      double ref_sum = 0;
      std::vector<double> ref(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        // The argument as the kernels form it: a is a power of 2, so a x - b rounds once.
        const float z = float(double(a) * x[size_t(i)] - b);
        ref[size_t(i)] = z < -87.33f ? 0.0 : std::exp(double(z));
        ref_sum += ref[size_t(i)];
      }
      for (const KernelTable* k : tables()) {
        std::vector<float> y(static_cast<size_t>(n), -1.f);
        const double sum = k->exp_f32(n, x.data(), a, b, y.data());
        for (int64_t i = 0; i < n; ++i) {
          const double r = ref[size_t(i)], z = double(a) * x[size_t(i)] - b;
          if (z > 88.f) continue;  // overflow edge: inf or FLT_MAX-ish, either way not compared
          const double tol = r * 2.4e-7;  // 2 ulp
          ASSERT_LE(std::fabs(y[size_t(i)] - r), tol) << k->isa << " n=" << n << " z=" << z;
        }
        if (a > 0) EXPECT_NEAR(sum, ref_sum, 1e-6 * ref_sum + 1e-30) << k->isa << " n=" << n;
        std::vector<float> in = x;  // in place
        const double s2 = k->exp_f32(n, in.data(), a, b, in.data());
        EXPECT_EQ(std::memcmp(in.data(), y.data(), y.size() * 4), 0) << k->isa;
        EXPECT_EQ(s2, sum) << k->isa;
      }
    }
  }
  for (const KernelTable* k : tables()) {
    const float v[3] = {0.f, NAN, -200.f};
    float y[3];
    k->exp_f32(3, v, 1.f, 0.f, y);
    EXPECT_EQ(y[0], 1.f) << k->isa;
    EXPECT_TRUE(std::isnan(y[1])) << k->isa;
    EXPECT_EQ(y[2], 0.f) << k->isa;
  }
}
