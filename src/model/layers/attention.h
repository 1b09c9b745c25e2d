// Attention over the paged KV cache: causal, grouped-query, optionally restricted to the
// query's chunk (Llama 4 chunked local attention).
#pragma once
#include <cstdint>
#include <vector>

#include "core/context.h"
#include "model/batch.h"

namespace corral {

struct AttnParams {
  int64_t layer = 0;
  int64_t n_head = 0, n_head_kv = 0, head_dim = 0;
  float scale = 1.f;
  int64_t chunk = 0;  // 0: attend to all earlier positions
};

// Writes this batch's k, v rows ([T][n_head_kv*hd], f32) into the cache.
void kv_store(KvStore& kv, const AttnParams& p, const std::vector<BatchToken>& batch,
              const float* k, const float* v);

// q: [T][n_head*hd]; out: [T][n_head*hd].
void attention(Context& ctx, KvStore& kv, const AttnParams& p, const std::vector<BatchToken>& batch,
               const float* q, float* out, ForwardScratch& scratch);

}  // namespace corral
