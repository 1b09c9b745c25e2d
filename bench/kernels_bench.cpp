// Google Benchmark microbenchmarks for each weight type's matmul: T=1 (decode; reported as
// GB/s of weights streamed) and T=128 (prompt; reported as GFLOP/s), plus the bare dot kernel
// on cache-resident data (compute ceiling).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>

#include "backend/cpu/kernels.h"
#include "backend/cpu/repack.h"
#include "core/context.h"
#include "format/quant.h"
#include "model/layers/lora.h"
#include "ops/matmul.h"
#include "ops/transposed.h"

using namespace corral;

namespace {

struct Weights {
  std::vector<uint8_t> data;
  TensorView view;
};

Weights make_weights(DType t, int64_t n_in, int64_t n_out) {
  Weights w;
  w.data.resize(row_bytes(t, n_in) * size_t(n_out));
  std::mt19937 g(1);
  std::normal_distribution<float> d(0, 0.02f);
  std::vector<float> row(static_cast<size_t>(n_in));
  for (int64_t r = 0; r < n_out; ++r) {
    for (auto& x : row) x = d(g);
    quantize_row(t, row.data(), w.data.data() + size_t(r) * row_bytes(t, n_in), n_in);
  }
  w.view.data = w.data.data();
  w.view.type = t;
  w.view.ne = {n_in, n_out, 1, 1};
  w.view.n_dims = 2;
  return w;
}

// CORRAL_BENCH_THREADS=1 isolates a kernel from thread hand-offs (and from a busy sibling core).
Context& bench_context() {
  static const char* threads = std::getenv("CORRAL_BENCH_THREADS");
  static Context ctx(threads ? std::atoi(threads) : default_thread_count());
  return ctx;
}

// st's rate of 2 T n_in n_out multiply-adds per iteration.
void count_gflops(benchmark::State& st, int64_t T, int64_t n_in, int64_t n_out) {
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(T * n_in * n_out) / 1e9 * 1e9,
                                              benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::OneK::kIs1000);
}

void BM_Matmul(benchmark::State& st) {
  const DType t = DType(st.range(0));
  const int64_t T = st.range(1), n_in = 2048, n_out = 8192;
  Context& ctx = bench_context();
  Weights w = make_weights(t, n_in, n_out);
  // Weights the engine repacks at load run here repacked too (their real path).
  std::vector<uint8_t> packed;
  if (repack_supported(w.view) && !std::getenv("CORRAL_NO_REPACK")) {
    packed.resize(repacked_bytes(w.view));
    repack_weight(w.view, packed.data());
    w.view.data = packed.data();
    w.view.repacked = true;
  }
  std::vector<float> x(size_t(T * n_in)), y(size_t(T * n_out));
  std::mt19937 g(2);
  std::normal_distribution<float> nd(0, 1);
  for (auto& v : x) v = nd(g);
  MatmulScratch s;
  for (auto _ : st) {
    matmul(ctx, w.view, x.data(), T, y.data(), s);
    benchmark::DoNotOptimize(y.data());
  }
  st.SetLabel(std::string(type_name(t)) + (w.view.repacked ? " repacked " : " ") +
              kernels_isa_name());
  st.counters["GB/s"] =
      benchmark::Counter(double(w.data.size()), benchmark::Counter::kIsIterationInvariantRate);
  count_gflops(st, T, n_in, n_out);
}

void BM_Dot(benchmark::State& st) {
  const DType t = DType(st.range(0));
  const int64_t n = 4096;
  Weights w = make_weights(t, n, 1);
  std::vector<float> xf(static_cast<size_t>(n), 0.01f);
  const DType at = act_type(t);
  std::vector<uint8_t> xq(row_bytes(at, n));
  quantize_row(at, xf.data(), xq.data(), n);
  const void* xa = at == DType::F32 ? (const void*)xf.data() : xq.data();
  const DotFn dot = kernels_best().dot[uint32_t(t)];
  for (auto _ : st) benchmark::DoNotOptimize(dot(n, w.data.data(), xa));
  st.SetLabel(std::string(type_name(t)) + " " + kernels_isa_name());
  st.counters["GB/s"] =
      benchmark::Counter(double(w.data.size()), benchmark::Counter::kIsIterationInvariantRate);
}

// Training's activation gradients dx = W^T dy through a Q4_0 base's transposed Q8_0 copy: the
// plain Q8_0 layout (arg 0, CORRAL_BACKWARD_PLAIN) against the offset layout (arg 1).
void BM_TransposedQ8(benchmark::State& st) {
  const int64_t T = st.range(1), n_in = 2048, n_out = 8192;
  Context& ctx = bench_context();
  Weights w = make_weights(DType::Q4_0, n_in, n_out);
  if (st.range(0) == 0) setenv("CORRAL_BACKWARD_PLAIN", "1", 1);
  auto wt = transpose_weight(w.view, ctx.pool.get());
  unsetenv("CORRAL_BACKWARD_PLAIN");
  std::vector<float> dy(size_t(T * n_out)), dx(size_t(T * n_in));
  std::mt19937 g(2);
  std::normal_distribution<float> nd(0, 1);
  for (auto& v : dy) v = nd(g);
  MatmulScratch s;
  for (auto _ : st) {
    multiply_transposed(ctx, **wt, dy.data(), T, dx.data(), s);
    benchmark::DoNotOptimize(dx.data());
  }
  st.SetLabel(std::string((*wt)->layout ? "q8_0 offset " : "q8_0 plain ") + kernels_isa_name());
  count_gflops(st, T, n_in, n_out);
}

// Training's LoRA products at rank 16, T = 512 (arg 0: the gate/up shape 2048 -> 8192, arg 1:
// down 8192 -> 2048); forward (ax, y += s B ax) or backward (dA, dB and dx), as GFLOP/s of the
// FLOPs the trainer counts (2 T r (n_in + n_out) forward, twice that backward).
void lora_bench(benchmark::State& st, bool backward) {
  const int64_t T = 512, r = 16, n_in = st.range(0) ? 8192 : 2048, n_out = st.range(0) ? 2048 : 8192;
  Context& ctx = bench_context();
  std::mt19937 g(3);
  std::normal_distribution<float> nd(0, 1);
  auto fill = [&](std::vector<float>& v, size_t n) {
    v.resize(n);
    for (auto& x : v) x = nd(g);
  };
  std::vector<float> a, b, x, y, ax, dy, da, db, dx, dax;
  fill(a, size_t(r * n_in)), fill(b, size_t(n_out * r)), fill(x, size_t(T * n_in)), fill(y, size_t(T * n_out));
  fill(ax, size_t(T * r)), fill(dy, size_t(T * n_out)), fill(da, size_t(r * n_in)), fill(db, size_t(n_out * r));
  fill(dx, size_t(T * n_in)), fill(dax, size_t(T * r));
  const LoraView v{a.data(), b.data(), n_in, n_out, r, 2.f};
  for (auto _ : st) {
    if (backward)
      lora_backward(ctx, v, x.data(), T, ax.data(), dy.data(), da.data(), db.data(), dx.data(), dax.data());
    else
      lora_forward(ctx, v, x.data(), T, ax.data(), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["GFLOP/s"] = benchmark::Counter((backward ? 4.0 : 2.0) * double(T * r * (n_in + n_out)),
                                              benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::OneK::kIs1000);
}
void BM_LoraForward(benchmark::State& st) { lora_bench(st, false); }
void BM_LoraBackward(benchmark::State& st) { lora_bench(st, true); }

const std::vector<int64_t> kTypes = {
    int64_t(DType::F32),  int64_t(DType::F16),  int64_t(DType::Q8_0), int64_t(DType::Q4_0),
    int64_t(DType::Q4_K), int64_t(DType::Q6_K), int64_t(DType::BF16)};

}  // namespace

BENCHMARK(BM_Dot)->ArgsProduct({kTypes});
BENCHMARK(BM_TransposedQ8)->ArgsProduct({{0, 1}, {512}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LoraForward)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LoraBackward)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Matmul)->ArgsProduct({kTypes, {1, 128}})->Unit(benchmark::kMillisecond)->UseRealTime();
