// What a forward pass consumes: a batch of (sequence, position, token) entries — one
// sequence's whole prompt and many sequences' decode steps alike — and the paged KV store.
#pragma once
#include <cstdint>
#include <vector>

#include "core/types.h"
#include "ops/matmul.h"

namespace corral {

struct BatchToken {
  int32_t seq = 0;
  int32_t pos = 0;
  int32_t token = 0;
  bool logits = false;  // produce logits for this entry
  int32_t adapter = -1;  // index into ForwardScratch::adapters (-1: the base alone)
  bool hidden = false;   // its final-norm hidden state goes to ForwardScratch::hidden (embeddings)
  // Which positions of its sequence the token attends to: 0 is causal ([0, pos]); n > 0 is
  // [0, n), every token of an input seeing all of it (bidirectional embedding models; the whole
  // input is then in this batch, so its keys are all stored before any query reads them).
  int32_t span = 0;
};

// K and V rows live in fixed-size blocks; each sequence has a table of block ids. The engine
// owns the storage (engine/kv_cache); the forward pass only needs this view of it.
class KvStore {
 public:
  virtual ~KvStore() = default;
  virtual DType type() const = 0;       // F16 or F32
  virtual int64_t block_size() const = 0;  // positions per block
  // Makes sure positions [0, n_pos) of seq have blocks; fails when the cache is full.
  virtual bool reserve(int32_t seq, int64_t n_pos) = 0;
  virtual const std::vector<int32_t>& blocks(int32_t seq) const = 0;
  // Start of block `b` for layer `l`: [block_size][n_head_kv * head_dim] elements.
  virtual uint8_t* k_block(int64_t l, int32_t b) = 0;
  virtual uint8_t* v_block(int64_t l, int32_t b) = 0;
};

// Buffers reused across forward calls.
struct LoraAdapter;

struct ForwardScratch {
  // The LoRA adapters this batch's tokens name (BatchToken::adapter), set by the caller, each
  // prepared for serving (LoraAdapter::prepare_for_serving).
  std::vector<const LoraAdapter*> adapters;
  std::vector<float> x, h, q, k, v, att, o, g, u, moe;
  std::vector<float> att_scores;  // per thread
  // Output: [tokens flagged hidden][n_embd], the final norm's output (the last hidden state
  // HF returns), in batch order; cleared by every forward.
  std::vector<float> hidden;
  MatmulScratch mm;
};

}  // namespace corral
