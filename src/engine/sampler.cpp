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
  // Weights exp((l - max) / T) for every token: O(n). Only the candidates a filter needs are
  // ever sorted (top-k by selection, top-p by a sorted prefix that grows until it covers top_p),
  // so sampling from a 128k vocabulary costs about one pass, not a full sort.
  float mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, logits[i]);
  cand_.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i)
    cand_[size_t(i)] = {std::exp((logits[i] - mx) / p_.temperature), int32_t(i)};
  auto by_weight = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t k = size_t(n);
  if (p_.top_k > 0 && size_t(p_.top_k) < k) {
    k = size_t(p_.top_k);
    std::nth_element(cand_.begin(), cand_.begin() + long(k - 1), cand_.end(), by_weight);
    cand_.resize(k);
  }
  double total = 0;  // of the top-k set: top-p's cumulative share is taken against it
  float best = 0;
  for (auto& c : cand_) total += c.first, best = std::max(best, c.first);
  if (p_.min_p > 0.f) {
    const float cut = best * p_.min_p;
    cand_.erase(std::remove_if(cand_.begin(), cand_.end(), [&](auto& c) { return c.first < cut; }),
                cand_.end());
  }
  if (p_.top_p < 1.f) {
    // The smallest set of the heaviest candidates whose share reaches top_p, by bisection with
    // nth_element (expected O(n); a flat distribution needs most of the vocabulary).
    const double target = double(p_.top_p) * total;
    size_t lo = 0, hi = cand_.size();
    double acc = 0;  // weight of the lo heaviest
    double all = 0;
    for (auto& c : cand_) all += c.first;
    if (all > target) {
      while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        std::nth_element(cand_.begin() + long(lo), cand_.begin() + long(mid),
                         cand_.begin() + long(hi), by_weight);
        double part = 0;
        for (size_t i = lo; i < mid; ++i) part += cand_[i].first;
        if (acc + part >= target) {
          hi = mid;
        } else {
          acc += part;
          lo = mid;
        }
      }
      cand_.resize(std::max<size_t>(hi, 1));
    }
  }
  double kept = 0;
  for (auto& c : cand_) kept += c.first;
  std::uniform_real_distribution<double> u(0.0, kept);
  double r = u(rng_);
  for (auto& c : cand_) {
    r -= c.first;
    if (r <= 0) return c.second;
  }
  return cand_.back().second;
}

}  // namespace corral
