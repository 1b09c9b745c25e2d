// Memory read bandwidth with 1 thread and with all threads: each thread sums its own slice of
// a buffer far larger than the caches (AVX2 loads when available). The tg limit of a model is
// bandwidth / bytes of weights read per token.
#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

__attribute__((target("avx2"))) static double sum_avx2(const float* p, size_t n) {
  __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    // Software prefetch ahead, as the decode kernels do: the measured figure is the best read
    // rate a streaming kernel gets here, the honest denominator for "fraction of bandwidth".
    _mm_prefetch(reinterpret_cast<const char*>(p + i) + 3072, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(p + i) + 3072 + 64, _MM_HINT_T0);
    a = _mm256_add_ps(a, _mm256_load_ps(p + i));
    b = _mm256_add_ps(b, _mm256_load_ps(p + i + 8));
    c = _mm256_add_ps(c, _mm256_load_ps(p + i + 16));
    d = _mm256_add_ps(d, _mm256_load_ps(p + i + 24));
  }
  float t[8];
  _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

static double measure(const float* buf, size_t n, int threads, int reps) {
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    std::vector<std::thread> ts;
    std::atomic<double> sink{0};
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        const size_t per = n / size_t(threads) / 32 * 32;
        sink = sink + sum_avx2(buf + size_t(t) * per, per);
      });
    for (auto& t : ts) t.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(n) * 4 / s / 1e9);
  }
  return best;
}

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? size_t(std::atoi(argv[1])) : 1024;
  const int all = int(std::thread::hardware_concurrency());
  const size_t n = mib * (1 << 20) / 4;
  float* buf = static_cast<float*>(std::aligned_alloc(64, n * 4));
  for (size_t i = 0; i < n; ++i) buf[i] = float(i & 1023);
  std::printf("buffer %zu MiB\n", mib);
  std::printf("read bandwidth, 1 thread:  %.1f GB/s\n", measure(buf, n, 1, 5));
  std::printf("read bandwidth, %d threads: %.1f GB/s\n", all, measure(buf, n, all, 5));
  std::free(buf);
}
