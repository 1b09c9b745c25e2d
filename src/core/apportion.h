// Exact integer apportionment (money in micro-units, examples among members): the largest-
// remainder method, so the parts always add up to the whole.
#pragma once
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace corral {

// amount split by weights (all >= 0): floor(amount * w_i / sum w) each, then one unit each to the
// largest remainders, ties to the first. All zero when the weights are (or the amount is).
inline std::vector<int64_t> split_largest_remainder(int64_t amount, const std::vector<int64_t>& w) {
  std::vector<int64_t> out(w.size(), 0);
  __int128 total = 0;
  for (int64_t x : w) total += x;
  if (total <= 0 || amount == 0) return out;
  std::vector<std::pair<__int128, size_t>> rem;
  int64_t given = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const __int128 num = __int128(amount) * w[i];
    out[i] = int64_t(num / total);
    given += out[i];
    rem.push_back({num % total, i});
  }
  std::stable_sort(rem.begin(), rem.end(), [](auto& a, auto& b) { return a.first > b.first; });
  for (size_t k = 0; given < amount && k < rem.size(); ++k, ++given) ++out[rem[k].second];
  return out;
}

}  // namespace corral
