#include "engine/kv_cache.h"

#include <algorithm>

namespace corral {

namespace {
uint64_t block_key(int32_t parent, const int32_t* toks, int64_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ uint64_t(uint32_t(parent));
  for (int64_t i = 0; i < n; ++i) {
    h ^= uint64_t(uint32_t(toks[i])) + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h *= 0xBF58476D1CE4E5B9ull;
  }
  return h;
}
}  // namespace

PagedKvCache::PagedKvCache(const KvCacheConfig& cfg) : cfg_(cfg) {
  block_bytes_ = size_t(cfg.block_size) * size_t(cfg.row) * (cfg.type == DType::F16 ? 2 : 4);
  for (int64_t l = 0; l < cfg.n_layer; ++l) {
    k_.emplace_back(block_bytes_ * size_t(cfg.n_blocks));
    v_.emplace_back(block_bytes_ * size_t(cfg.n_blocks));
  }
  for (int64_t b = cfg.n_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
  refs_.assign(size_t(cfg.n_blocks), 0);
  gen_.assign(size_t(cfg.n_blocks), 0);
}

int32_t PagedKvCache::take_block() {
  if (free_.empty() && !lru_.empty()) {  // evict the least recently used cached block
    const int32_t b = lru_.front();
    lru_.pop_front();
    auto it = cache_.find(b);
    auto range = index_.equal_range(it->second.key);
    for (auto i = range.first; i != range.second; ++i)
      if (i->second == b) {
        index_.erase(i);
        break;
      }
    cache_.erase(it);
    refs_[size_t(b)] = 0;
    free_.push_back(b);
  }
  if (free_.empty()) return -1;
  const int32_t b = free_.back();
  free_.pop_back();
  refs_[size_t(b)] = 1;
  ++gen_[size_t(b)];
  return b;
}

bool PagedKvCache::reserve(int32_t seq, int64_t n_pos) {
  auto& t = tables_[seq];
  const int64_t need = (n_pos + cfg_.block_size - 1) / cfg_.block_size;
  if (need - int64_t(t.size()) > free_blocks()) return false;
  while (int64_t(t.size()) < need) t.push_back(take_block());
  return true;
}

const std::vector<int32_t>& PagedKvCache::blocks(int32_t seq) const {
  static const std::vector<int32_t> none;
  auto it = tables_.find(seq);
  return it == tables_.end() ? none : it->second;
}

void PagedKvCache::unref(int32_t b) {
  int32_t& r = refs_[size_t(b)];
  if (--r > 0) {
    auto it = cache_.find(b);
    if (r == 1 && it != cache_.end() && !it->second.in_lru) {  // only the cache holds it now
      it->second.lru = lru_.insert(lru_.end(), b);
      it->second.in_lru = true;
    }
    return;
  }
  free_.push_back(b);
}

void PagedKvCache::release(int32_t seq) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  for (int32_t b : it->second) unref(b);
  tables_.erase(it);
}

int32_t PagedKvCache::lookup(int32_t parent, const int32_t* toks) const {
  const uint64_t key = block_key(parent, toks, cfg_.block_size);
  auto range = index_.equal_range(key);
  for (auto i = range.first; i != range.second; ++i) {
    const Cached& c = cache_.at(i->second);
    const uint32_t pg = parent < 0 ? 0 : gen_[size_t(parent)];
    if (c.parent == parent && c.parent_gen == pg &&
        std::equal(c.tokens.begin(), c.tokens.end(), toks))
      return i->second;
  }
  return -1;
}

int64_t PagedKvCache::attach_prefix(int32_t seq, const std::vector<int32_t>& tokens,
                                    int64_t max_tokens, int32_t space) {
  auto& t = tables_[seq];
  if (!t.empty()) return 0;
  const int64_t bs = cfg_.block_size;
  int32_t parent = -1 - space;
  for (int64_t n = bs; n <= std::min<int64_t>(max_tokens, int64_t(tokens.size())); n += bs) {
    const int32_t b = lookup(parent, tokens.data() + (n - bs));
    if (b < 0) break;
    Cached& c = cache_.at(b);
    if (c.in_lru) {
      lru_.erase(c.lru);
      c.in_lru = false;
    }
    ++refs_[size_t(b)];
    t.push_back(b);
    parent = b;
  }
  return int64_t(t.size()) * bs;
}

void PagedKvCache::publish(int32_t seq, const std::vector<int32_t>& tokens, int64_t n, int32_t space) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  const int64_t bs = cfg_.block_size;
  const int64_t full = std::min<int64_t>(n, int64_t(tokens.size())) / bs;
  int32_t parent = -1 - space;
  for (int64_t i = 0; i < full && i < int64_t(it->second.size()); ++i) {
    const int32_t b = it->second[size_t(i)];
    const int32_t* toks = tokens.data() + i * bs;
    if (!cache_.count(b)) {
      if (lookup(parent, toks) >= 0) return;  // the same prefix is cached in other blocks
      Cached c;
      c.key = block_key(parent, toks, bs);
      c.parent = parent;
      c.parent_gen = parent < 0 ? 0 : gen_[size_t(parent)];
      c.tokens.assign(toks, toks + bs);
      index_.emplace(c.key, b);
      cache_.emplace(b, std::move(c));
      ++refs_[size_t(b)];
    }
    parent = b;
  }
}

}  // namespace corral
