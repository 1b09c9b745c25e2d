// Pieces of the forward pass every Llama architecture shares: batch validation, embedding
// lookup, per-row norms and the output head.
#pragma once
#include <vector>

#include "model/layers/attention.h"
#include "model/model.h"

namespace corral {

// Checks ids and positions and reserves KV blocks; x gets the embeddings [T][n_embd].
Status forward_begin(const Model& m, KvStore& kv, const std::vector<BatchToken>& batch,
                     std::vector<float>& x);
// out[t] = rms_norm(x[t]) * w for every row.
void norm_rows(const float* x, const std::vector<float>& w, int64_t T, int64_t n, float eps, float* out);
// Sizes the per-batch buffers for T tokens.
void prepare_scratch(const HParams& hp, int64_t T, ForwardScratch& s);
// s.h = norm(x); s.q, s.k, s.v = projections of s.h.
void project_qkv(Context& ctx, const LayerWeights& w, const HParams& hp, int64_t T, ForwardScratch& s);
// Stores s.k/s.v in the cache, attends with s.q, and adds Wo * attention to s.x.
void attend_and_add(Context& ctx, KvStore& kv, const AttnParams& ap, const LayerWeights& w,
                    const std::vector<BatchToken>& batch, int64_t n_embd, ForwardScratch& s);
// s.h = ffn_norm(x) (the caller then runs its FFN from s.h into s.o); then x += s.o.
void add_ffn_output(int64_t T, int64_t n_embd, ForwardScratch& s);

// Final norm + output head for rows flagged `logits`, appended as [n_rows][n_vocab].
void forward_head(const Model& m, Context& ctx, const std::vector<BatchToken>& batch,
                  const std::vector<float>& x, ForwardScratch& s, std::vector<float>* logits);

}  // namespace corral
