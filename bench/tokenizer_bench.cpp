// Tokenizer throughput: 1 MB of mixed English, code and multilingual text through the Llama 3
// tokenizer (and the Llama 2 SentencePiece one), one core. Target: >= 10 MB/s for Llama 3.
#include <benchmark/benchmark.h>

#include <random>
#include <string>

#include "tokenizer/tokenizer.h"

using namespace corral;

namespace {

std::string mixed_text(size_t bytes) {
  const char* english[] = {"the", "model", "serves", "tokens", "quickly", "and", "hosts", "every", "customer",
                           "with", "metering,", "licensing", "rules.", "However", "It's", "we'll", "don't"};
  const char* code[] = {"for (int i = 0; i < n; ++i) {", "  sum += x[i] * w[i];", "}", "def f(x):",
                        "    return x ** 2  # square", "std::vector<float> v(1024);", "if (a != b) return -1;"};
  const char* multi[] = {"Привет мир", "こんにちは世界", "你好，世界", "مرحبا بالعالم", "Γειά σου Κόσμε",
                         "héllo wörld", "안녕하세요", "🦙 emoji ✨", "1234567 89.5%"};
  std::mt19937 g(7);
  std::string s;
  while (s.size() < bytes) {
    const int kind = int(g() % 10);
    if (kind < 6) {
      for (int i = 0; i < 12; ++i) s += std::string(english[g() % 17]) + " ";
      s += "\n";
    } else if (kind < 8) {
      s += std::string(code[g() % 7]) + "\n";
    } else {
      s += std::string(multi[g() % 9]) + " ";
    }
  }
  s.resize(bytes);
  return s;
}

void run(benchmark::State& st, const char* path) {
  auto t = load_tokenizer(std::string(CORRAL_BENCH_FIXTURES) + "/" + path);
  if (!t.is_ok()) {
    st.SkipWithError(t.message().c_str());
    return;
  }
  const std::string text = mixed_text(1 << 20);
  size_t n_tokens = 0;
  for (auto _ : st) {
    auto ids = (*t)->encode(text);
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(text.size()));
  st.counters["tokens"] = double(n_tokens);
}

}  // namespace

static void BM_TokenizeLlama3_1MB(benchmark::State& st) { run(st, "tokenizers/llama3/tokenizer.json"); }
static void BM_TokenizeLlama2_1MB(benchmark::State& st) { run(st, "tokenizers/llama2/tokenizer.model"); }
BENCHMARK(BM_TokenizeLlama3_1MB)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TokenizeLlama2_1MB)->Unit(benchmark::kMillisecond);
