// Sampling filters against hand-computed distributions: top-k, top-p (the smallest heaviest set
// reaching p), min-p, and plain temperature sampling over a large vocabulary.
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

using namespace corral;

namespace {

std::map<int32_t, int> draw(SamplerParams p, const std::vector<float>& logits, int n) {
  Sampler s(p);
  std::map<int32_t, int> seen;
  for (int i = 0; i < n; ++i) {
    std::vector<float> l = logits;
    seen[s.sample(l.data(), int64_t(l.size()), {})]++;
  }
  return seen;
}

// Probabilities 0.4, 0.3, 0.2, 0.1 at temperature 1 (ids shuffled into a larger vocabulary).
std::vector<float> four_way(int64_t V) {
  std::vector<float> l(size_t(V), -1e9f);
  l[7] = std::log(0.4f), l[3] = std::log(0.3f), l[V - 1] = std::log(0.2f), l[100] = std::log(0.1f);
  return l;
}

TEST(Sampler, TopPKeepsTheSmallestHeaviestSet) {
  SamplerParams p;
  p.temperature = 1, p.top_k = 0, p.min_p = 0, p.top_p = 0.5f, p.seed = 1;
  auto seen = draw(p, four_way(1000), 4000);
  ASSERT_EQ(seen.size(), 2u);  // 0.4 < 0.5 <= 0.4 + 0.3
  EXPECT_NEAR(double(seen[7]) / 4000, 0.4 / 0.7, 0.03);
  EXPECT_NEAR(double(seen[3]) / 4000, 0.3 / 0.7, 0.03);
  p.top_p = 0.95f;  // 0.9 < 0.95: all four
  EXPECT_EQ(draw(p, four_way(1000), 4000).size(), 4u);
  p.top_p = 0.1f;
  EXPECT_EQ(draw(p, four_way(1000), 200), (std::map<int32_t, int>{{7, 200}}));
}

TEST(Sampler, TopKAndMinP) {
  SamplerParams p;
  p.temperature = 1, p.top_p = 1, p.min_p = 0, p.top_k = 3, p.seed = 2;
  auto seen = draw(p, four_way(500), 3000);
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen.count(100), 0u);
  EXPECT_NEAR(double(seen[499]) / 3000, 0.2 / 0.9, 0.03);  // id V-1
  p.top_k = 0, p.min_p = 0.6f;                             // keeps p >= 0.24: 0.4 and 0.3
  seen = draw(p, four_way(500), 3000);
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_NEAR(double(seen[7]) / 3000, 0.4 / 0.7, 0.03);
}

TEST(Sampler, PlainTemperatureOverAVocabulary) {
  SamplerParams p;
  p.temperature = 1, p.top_p = 1, p.min_p = 0, p.top_k = 0, p.seed = 3;
  auto seen = draw(p, four_way(32000), 4000);
  EXPECT_EQ(seen.size(), 4u);
  EXPECT_NEAR(double(seen[100]) / 4000, 0.1, 0.02);
  // Temperature 0.5 squares the odds: 16 : 9 : 4 : 1.
  p.temperature = 0.5f;
  seen = draw(p, four_way(32000), 6000);
  EXPECT_NEAR(double(seen[7]) / 6000, 16.0 / 30, 0.03);
  EXPECT_NEAR(double(seen[100]) / 6000, 1.0 / 30, 0.015);
}

}  // namespace
