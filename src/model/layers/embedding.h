// Token embedding: each token's row of the table (any weight type), and its backward, the
// scatter-add of the rows' output gradients into the rows of the tokens that used them (the
// table's gradient is zero elsewhere, so only the used rows are kept).
#pragma once
#include <cstdint>
#include <map>
#include <vector>

#include "ops/transposed.h"

namespace corral {

// out: [T, E], row t = table row tokens[t].
inline void embedding_forward(const TensorView& table, const int32_t* tokens, int64_t T, int64_t E,
                              float* out) {
  for (int64_t t = 0; t < T; ++t) weight_row_f32(table, tokens[t], out + t * E);
}

// d loss / d table for the rows used: rows[id] += dx[t] for every t with tokens[t] == id, in
// token order. dx: [T, E].
inline void embedding_backward(const int32_t* tokens, int64_t T, const float* dx, int64_t E,
                               std::map<int32_t, std::vector<float>>* rows) {
  for (int64_t t = 0; t < T; ++t) {
    std::vector<float>& r = (*rows)[tokens[t]];
    if (r.empty()) r.assign(size_t(E), 0.f);
    for (int64_t i = 0; i < E; ++i) r[size_t(i)] += dx[t * E + i];
  }
}

}  // namespace corral
