// Turning logits into the next token: penalties, then greedy or temperature sampling with
// top-k / top-p / min-p, from a seeded generator so runs are reproducible.
#pragma once
#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

namespace corral {

struct SamplerParams {
  float temperature = 0.8f;  // 0 = greedy
  int32_t top_k = 40;        // 0 = off
  float top_p = 0.95f;       // 1 = off
  float min_p = 0.05f;       // 0 = off
  float repeat_penalty = 1.0f;
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  int32_t penalty_last_n = 64;
  uint64_t seed = 0xC0FFEE;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}
  // logits: [n_vocab], modified in place by penalties. `history`: ids seen so far.
  int32_t sample(float* logits, int64_t n_vocab, const std::vector<int32_t>& history);

 private:
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;
};

int32_t argmax(const float* logits, int64_t n);

}  // namespace corral
