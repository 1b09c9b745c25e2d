#include "engine/sampler.h"

#include <algorithm>
#include <cmath>

namespace corral {

int32_t argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return int32_t(best);
}

int32_t Sampler::sample(float* logits, int64_t n, const std::vector<int32_t>& history) {
  // Penalties over the recent window (llama.cpp semantics).
  if (p_.repeat_penalty != 1.f || p_.frequency_penalty != 0.f || p_.presence_penalty != 0.f) {
    std::unordered_map<int32_t, int> counts;
    const size_t from = p_.penalty_last_n > 0 && history.size() > size_t(p_.penalty_last_n)
                            ? history.size() - size_t(p_.penalty_last_n)
                            : 0;
    for (size_t i = from; i < history.size(); ++i) counts[history[i]]++;
    for (auto [id, c] : counts) {
      if (id < 0 || id >= n) continue;
      float& l = logits[id];
      l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
      l -= float(c) * p_.frequency_penalty + p_.presence_penalty;
    }
  }
  if (p_.temperature <= 0.f) return argmax(logits, n);
  cand_.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) cand_[size_t(i)] = {logits[i], int32_t(i)};
  size_t k = size_t(n);
  if (p_.top_k > 0 && size_t(p_.top_k) < k) k = size_t(p_.top_k);
  std::partial_sort(cand_.begin(), cand_.begin() + long(k), cand_.end(),
                    [](auto& a, auto& b) { return a.first > b.first; });
  cand_.resize(k);
  const float mx = cand_[0].first;
  double sum = 0;
  for (auto& c : cand_) sum += (c.first = std::exp((c.first - mx) / p_.temperature));
  for (auto& c : cand_) c.first = float(c.first / sum);
  if (p_.min_p > 0.f) {
    const float cut = cand_[0].first * p_.min_p;
    size_t keep = 1;
    while (keep < cand_.size() && cand_[keep].first >= cut) ++keep;
    cand_.resize(keep);
  }
  if (p_.top_p < 1.f) {
    double cum = 0;
    size_t keep = 0;
    while (keep < cand_.size()) {
      cum += cand_[keep++].first;
      if (cum >= p_.top_p) break;
    }
    cand_.resize(std::max<size_t>(keep, 1));
  }
  double total = 0;
  for (auto& c : cand_) total += c.first;
  std::uniform_real_distribution<double> u(0.0, total);
  double r = u(rng_);
  for (auto& c : cand_) {
    r -= c.first;
    if (r <= 0) return c.second;
  }
  return cand_.back().second;
}

}  // namespace corral
