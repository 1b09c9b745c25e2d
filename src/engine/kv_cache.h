// Paged KV cache: K and V rows in fixed-size blocks from one pool per layer; each sequence
// owns a table of block ids, so sequences grow and free memory independently.
// Prefix caching: a full block is keyed by its tokens and the block before it (so by every token
// up to its end); a new sequence whose prompt starts with cached blocks shares them (refcounted,
// never written again) and blocks only the cache holds are evicted least-recently-used.
#pragma once
#include <cstdint>
#include <list>
#include <map>
#include <unordered_map>
#include <vector>

#include "core/zero_pages.h"
#include "model/batch.h"

namespace corral {

struct KvCacheConfig {
  int64_t n_layer = 0;
  int64_t row = 0;          // n_head_kv * head_dim
  int64_t block_size = 16;  // positions per block
  int64_t n_blocks = 0;     // pool size
  DType type = DType::F16;  // F16 or F32
};

class PagedKvCache : public KvStore {
 public:
  explicit PagedKvCache(const KvCacheConfig& cfg);
  DType type() const override { return cfg_.type; }
  int64_t block_size() const override { return cfg_.block_size; }
  bool reserve(int32_t seq, int64_t n_pos) override;
  const std::vector<int32_t>& blocks(int32_t seq) const override;
  uint8_t* k_block(int64_t l, int32_t b) override {
    return k_[size_t(l)].data() + size_t(b) * block_bytes_;
  }
  uint8_t* v_block(int64_t l, int32_t b) override {
    return v_[size_t(l)].data() + size_t(b) * block_bytes_;
  }

  void release(int32_t seq);
  // Blocks a reservation can take now: free ones plus cached ones nobody uses.
  int64_t free_blocks() const { return int64_t(free_.size() + lru_.size()); }
  int64_t total_blocks() const { return cfg_.n_blocks; }
  int64_t cached_blocks() const { return int64_t(cache_.size()); }
  size_t bytes() const { return block_bytes_ * size_t(cfg_.n_blocks) * size_t(cfg_.n_layer) * 2; }

  // Attaches the longest run of cached blocks that starts `tokens` to seq (which must hold no
  // blocks), covering at most max_tokens positions; returns the positions covered. `space`
  // keeps computations apart that differ for the same tokens (0: the base; a LoRA adapter's
  // own number otherwise).
  int64_t attach_prefix(int32_t seq, const std::vector<int32_t>& tokens, int64_t max_tokens,
                        int32_t space = 0);
  // Offers seq's full blocks holding tokens[0 .. n) (already computed) to the cache.
  void publish(int32_t seq, const std::vector<int32_t>& tokens, int64_t n, int32_t space = 0);

 private:
  struct Cached {
    uint64_t key;
    int32_t parent;               // block before it, -1 - space for the first ...
    uint32_t parent_gen;          // ... while it still holds what it held then
    std::vector<int32_t> tokens;  // the block's tokens, compared on lookup (no false hits)
    std::list<int32_t>::iterator lru;
    bool in_lru = false;
  };
  int32_t take_block();  // -1 when nothing is free or evictable
  void unref(int32_t b);
  int32_t lookup(int32_t parent, const int32_t* toks) const;

  KvCacheConfig cfg_;
  size_t block_bytes_;
  std::vector<ZeroPages> k_, v_;  // [layer] -> n_blocks * block_bytes, faulted in on first use
  std::vector<int32_t> free_;
  std::vector<int32_t> refs_;  // per block: sequences using it, plus one while cached
  std::vector<uint32_t> gen_;  // per block: bumped whenever it is taken for new contents
  std::map<int32_t, std::vector<int32_t>> tables_;
  std::unordered_multimap<uint64_t, int32_t> index_;  // key -> cached block
  std::unordered_map<int32_t, Cached> cache_;         // cached block -> its entry
  std::list<int32_t> lru_;  // cached blocks only the cache holds, least recently used first
};

}  // namespace corral
