#include "engine/kv_cache.h"

namespace corral {

PagedKvCache::PagedKvCache(const KvCacheConfig& cfg) : cfg_(cfg) {
  block_bytes_ = size_t(cfg.block_size) * size_t(cfg.row) * (cfg.type == DType::F16 ? 2 : 4);
  k_.resize(size_t(cfg.n_layer));
  v_.resize(size_t(cfg.n_layer));
  for (auto& k : k_) k.resize(block_bytes_ * size_t(cfg.n_blocks));
  for (auto& v : v_) v.resize(block_bytes_ * size_t(cfg.n_blocks));
  for (int64_t b = cfg.n_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

bool PagedKvCache::reserve(int32_t seq, int64_t n_pos) {
  auto& t = tables_[seq];
  const int64_t need = (n_pos + cfg_.block_size - 1) / cfg_.block_size;
  if (need - int64_t(t.size()) > int64_t(free_.size())) return false;
  while (int64_t(t.size()) < need) {
    t.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

const std::vector<int32_t>& PagedKvCache::blocks(int32_t seq) const {
  static const std::vector<int32_t> none;
  auto it = tables_.find(seq);
  return it == tables_.end() ? none : it->second;
}

void PagedKvCache::release(int32_t seq) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  for (int32_t b : it->second) free_.push_back(b);
  tables_.erase(it);
}

}  // namespace corral
