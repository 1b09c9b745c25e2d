// Paged KV cache: K and V rows in fixed-size blocks from one pool per layer; each sequence
// owns a table of block ids, so sequences grow and free memory independently.
#pragma once
#include <cstdint>
#include <map>
#include <vector>

#include "model/batch.h"

namespace corral {

struct KvCacheConfig {
  int64_t n_layer = 0;
  int64_t row = 0;           // n_head_kv * head_dim
  int64_t block_size = 16;   // positions per block
  int64_t n_blocks = 0;      // pool size
  DType type = DType::F16;   // F16 or F32
};

class PagedKvCache : public KvStore {
 public:
  explicit PagedKvCache(const KvCacheConfig& cfg);
  DType type() const override { return cfg_.type; }
  int64_t block_size() const override { return cfg_.block_size; }
  bool reserve(int32_t seq, int64_t n_pos) override;
  const std::vector<int32_t>& blocks(int32_t seq) const override;
  uint8_t* k_block(int64_t l, int32_t b) override { return k_[size_t(l)].data() + size_t(b) * block_bytes_; }
  uint8_t* v_block(int64_t l, int32_t b) override { return v_[size_t(l)].data() + size_t(b) * block_bytes_; }

  void release(int32_t seq);
  int64_t free_blocks() const { return int64_t(free_.size()); }
  size_t bytes() const { return block_bytes_ * size_t(cfg_.n_blocks) * size_t(cfg_.n_layer) * 2; }

 private:
  KvCacheConfig cfg_;
  size_t block_bytes_;
  std::vector<std::vector<uint8_t>> k_, v_;  // [layer] -> n_blocks * block_bytes
  std::vector<int32_t> free_;
  std::map<int32_t, std::vector<int32_t>> tables_;
};

}  // namespace corral
