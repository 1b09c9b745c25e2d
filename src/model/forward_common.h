// Pieces of the forward pass every Llama architecture shares: batch validation, embedding
// lookup, per-row norms and the output head.
#pragma once
#include <vector>

#include "model/model.h"

namespace corral {

// Checks ids and positions and reserves KV blocks; x gets the embeddings [T][n_embd].
Status forward_begin(const Model& m, KvStore& kv, const std::vector<BatchToken>& batch,
                     std::vector<float>& x);
// out[t] = rms_norm(x[t]) * w for every row.
void norm_rows(const float* x, const std::vector<float>& w, int64_t T, int64_t n, float eps, float* out);
// Final norm + output head for rows flagged `logits`, appended as [n_rows][n_vocab].
void forward_head(const Model& m, Context& ctx, const std::vector<BatchToken>& batch,
                  const std::vector<float>& x, ForwardScratch& s, std::vector<float>* logits);

}  // namespace corral
