#include "grammar/matcher.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <numeric>

#include "core/env.h"

namespace corral::grammar {
namespace {

constexpr int32_t kMaxStackDepth = 2048;  // nesting beyond this is not expanded (bounded memory)
constexpr size_t kMaxConfigNodes = 4096;  // stacks in one configuration at most

// Characters a token occupies in a JSON string body when it is made of plain characters only
// (raw UTF-8 other than '"', '\\' and controls, maybe ending inside a character); -1 otherwise.
// The same language as the json-char rule's raw branch in compile.cpp.
int32_t plain_chars(const std::string& s) {
  int32_t chars = 0;
  for (size_t i = 0; i < s.size();) {
    const uint8_t c = uint8_t(s[i]);
    if (c < 0x20 || c == '"' || c == '\\') return -1;
    if (c < 0x80) {
      ++chars, ++i;
      continue;
    }
    int len = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) len = 3;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    else return -1;
    for (int j = 1; j < len; ++j) {
      if (i + size_t(j) >= s.size()) return chars + 1;  // a valid prefix of one more character
      const uint8_t x = uint8_t(s[i + size_t(j)]);
      if (x < (j == 1 ? lo : 0x80) || x > (j == 1 ? hi : 0xBF)) return -1;
    }
    ++chars, i += size_t(len);
  }
  return chars;
}

void build_trie(TokenTrie& t, const std::vector<std::string>& bytes, const std::vector<int32_t>& ids) {
  t = {};
  t.byte.push_back(0);
  t.depth.push_back(0);
  t.end.push_back(0);
  std::vector<std::pair<int32_t, int32_t>> node_tok;  // (node, token), in node order
  std::vector<int32_t> path = {0};
  const std::string* prev = nullptr;
  for (int32_t id : ids) {
    const std::string& s = bytes[size_t(id)];
    size_t lcp = 0;
    if (prev)
      while (lcp < s.size() && lcp < prev->size() && (*prev)[lcp] == s[lcp]) ++lcp;
    while (path.size() > lcp + 1) {
      t.end[size_t(path.back())] = int32_t(t.byte.size());
      path.pop_back();
    }
    for (size_t j = lcp; j < s.size(); ++j) {
      path.push_back(int32_t(t.byte.size()));
      t.byte.push_back(uint8_t(s[j]));
      t.depth.push_back(uint16_t(j + 1));
      t.end.push_back(0);
    }
    node_tok.push_back({path.back(), id});
    t.max_depth = std::max<int32_t>(t.max_depth, int32_t(s.size()));
    prev = &s;
  }
  while (!path.empty()) {
    t.end[size_t(path.back())] = int32_t(t.byte.size());
    path.pop_back();
  }
  t.tok_begin.assign(t.byte.size() + 1, 0);
  for (auto& [n, id] : node_tok) t.tok_begin[size_t(n) + 1]++;
  for (size_t i = 1; i < t.tok_begin.size(); ++i) t.tok_begin[i] += t.tok_begin[i - 1];
  t.toks.resize(node_tok.size());
  for (size_t i = 0; i < node_tok.size(); ++i) t.toks[i] = node_tok[i].second;  // already in node order
}

inline void set_bit(uint64_t* m, int32_t i) { m[i >> 6] |= uint64_t(1) << (i & 63); }

}  // namespace

std::shared_ptr<const TokenIndex> TokenIndex::build(const std::vector<std::string>& tokens,
                                                    std::vector<int32_t> stop_ids) {
  auto x = std::make_shared<TokenIndex>();
  x->n_vocab = int32_t(tokens.size());
  x->words = (x->n_vocab + 63) / 64;
  x->bytes = tokens;
  x->stop_ids = std::move(stop_ids);
  for (int32_t s : x->stop_ids) x->bytes[size_t(s)].clear();
  std::vector<int32_t> ids, rest;
  for (int32_t i = 0; i < x->n_vocab; ++i)
    if (!x->bytes[size_t(i)].empty()) ids.push_back(i);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return x->bytes[size_t(a)] < x->bytes[size_t(b)]; });
  x->plain_need.assign(size_t(x->n_vocab), -1);
  for (int32_t i : ids) {
    const int32_t n = plain_chars(x->bytes[size_t(i)]);
    x->plain_need[size_t(i)] = n;
    x->max_need = std::max(x->max_need, n);
    if (n < 0) rest.push_back(i);
  }
  build_trie(x->full, x->bytes, ids);
  x->sorted = ids;
  build_trie(x->rest, x->bytes, rest);
  const size_t W = size_t(x->words);
  x->plain_upto.assign(size_t(x->max_need + 1) * W, 0);
  for (int32_t i : ids)
    if (x->plain_need[size_t(i)] >= 0) set_bit(x->plain_upto.data() + size_t(x->plain_need[size_t(i)]) * W, i);
  x->plain_first.assign(128 * W, 0);
  for (int32_t i : ids) {
    const uint8_t b = uint8_t(x->bytes[size_t(i)][0]);
    if (x->plain_need[size_t(i)] >= 0 && b < 128) set_bit(x->plain_first.data() + b * W, i);
  }
  for (int b = 0; b < 256; ++b) x->rest_child[b] = -1;
  for (int32_t i = 1; i < int32_t(x->rest.byte.size()); i = x->rest.end[size_t(i)]) x->rest_child[x->rest.byte[size_t(i)]] = i;
  for (int32_t n = 1; n <= x->max_need; ++n)
    for (size_t w = 0; w < W; ++w) x->plain_upto[size_t(n) * W + w] |= x->plain_upto[size_t(n - 1) * W + w];
  return x;
}

const TokenIndex::ClassSlice* TokenIndex::class_slice(uint64_t lo, uint64_t hi) const {
  constexpr size_t kMaxClasses = 256;
  std::lock_guard<std::mutex> lk(class_mu);
  auto it = class_slices.find({lo, hi});
  if (it != class_slices.end()) return it->second.get();
  if (class_slices.size() >= kMaxClasses) return nullptr;
  auto cs = std::make_unique<ClassSlice>();
  cs->in.assign(size_t(words), 0);
  std::vector<int32_t> rest_ids;
  for (int32_t id : sorted) {
    bool inside = true;
    for (char ch : bytes[size_t(id)]) {
      const uint8_t b = uint8_t(ch);
      if (b >= 128 || !(((b < 64 ? lo : hi) >> (b & 63)) & 1)) {
        inside = false;
        break;
      }
    }
    if (inside) set_bit(cs->in.data(), id);
    else rest_ids.push_back(id);
  }
  build_trie(cs->rest, bytes, rest_ids);
  return class_slices.emplace(std::make_pair(lo, hi), std::move(cs)).first->second.get();
}

GrammarRuntime::GrammarRuntime(std::shared_ptr<const Compiled> g, std::shared_ptr<const TokenIndex> idx)
    : g_(std::move(g)), idx_(std::move(idx)) {
  if (g_->jchar_rule >= 0) {
    jchar_start_ = g_->rule_start[size_t(g_->jchar_rule)];
    std::unordered_map<int32_t, int16_t> local = {{jchar_start_, 0}};
    std::vector<int32_t> order = {jchar_start_};
    for (size_t i = 0; i < order.size(); ++i)
      for (auto& e : g_->states[size_t(order[i])].edges)
        if (local.emplace(e.to, int16_t(order.size())).second) order.push_back(e.to);
    jt_.assign(order.size() * 256, -1);
    jt_done_.assign(order.size(), 0);
    for (size_t i = 0; i < order.size(); ++i) {
      const State& s = g_->states[size_t(order[i])];
      jt_done_[i] = s.accept;
      for (auto& e : s.edges)
        for (int b = e.lo; b <= e.hi; ++b) jt_[i * 256 + size_t(b)] = local[e.to];
    }
  }
  walk_stack_.resize(size_t(std::max(idx_->full.max_depth, idx_->rest.max_depth) + 2));
  mask_cache_on_ = !env_flag("CORRAL_GRAMMAR_NO_MASK_CACHE");
}

size_t GrammarRuntime::configs() const {
  std::lock_guard<std::mutex> lk(mu_);
  return cfgs_.size();
}

int32_t GrammarRuntime::node(int32_t state, int32_t parent) {
  const uint64_t key = (uint64_t(uint32_t(state)) << 32) | uint32_t(parent + 1);
  auto [it, fresh] = node_ids_.emplace(key, int32_t(nodes_.size()));
  if (fresh) nodes_.push_back({state, parent, parent < 0 ? 1 : nodes_[size_t(parent)].depth + 1});
  return it->second;
}

void GrammarRuntime::close(int32_t n0, std::vector<int32_t>& out, bool& accept) {
  std::vector<int32_t> stack = {n0};
  while (!stack.empty() && out.size() < kMaxConfigNodes) {
    const int32_t x = stack.back();
    stack.pop_back();
    if (std::find(out.begin(), out.end(), ~x) != out.end() || std::find(out.begin(), out.end(), x) != out.end()) continue;
    const Node nd = nodes_[size_t(x)];
    const State& st = g_->states[size_t(nd.state)];
    // Visited nodes without byte edges are kept as ~x and dropped at the end.
    out.push_back(st.edges.empty() ? ~x : x);
    if (nd.depth < kMaxStackDepth)
      for (const CallEdge& c : st.calls) {
        const int32_t ret = node(c.to, nd.parent);
        stack.push_back(node(g_->rule_start[size_t(c.rule)], ret));
      }
    if (st.accept) {
      if (nd.parent < 0)
        accept = true;
      else
        stack.push_back(nd.parent);
    }
  }
}

int32_t GrammarRuntime::intern(std::vector<int32_t> nodes, bool accept) {
  nodes.erase(std::remove_if(nodes.begin(), nodes.end(), [](int32_t x) { return x < 0; }), nodes.end());
  std::sort(nodes.begin(), nodes.end());
  nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
  if (nodes.empty() && !accept) return -1;
  std::string key(nodes.size() * 4 + 1, '\0');
  std::memcpy(key.data(), nodes.data(), nodes.size() * 4);
  key.back() = accept ? 1 : 0;
  auto [it, fresh] = cfg_ids_.emplace(std::move(key), int32_t(cfgs_.size()));
  if (fresh) {
    Config c;
    c.nodes = std::move(nodes);
    c.accept = accept;
    cfgs_.push_back(std::move(c));
    trans_.resize(trans_.size() + 256, -2);
  }
  return it->second;
}

int32_t GrammarRuntime::initial() {
  if (initial_ == -2) {
    std::vector<int32_t> out;
    bool acc = false;
    close(node(g_->rule_start[size_t(g_->start_rule)], -1), out, acc);
    initial_ = intern(std::move(out), acc);
  }
  return initial_;
}

int32_t GrammarRuntime::step(int32_t cfg, uint8_t b) {
  const size_t slot = size_t(cfg) * 256 + b;
  if (trans_[slot] != -2) return trans_[slot];
  std::vector<int32_t> out;
  bool acc = false;
  const std::vector<int32_t> from = cfgs_[size_t(cfg)].nodes;
  for (int32_t n : from) {
    const int32_t to = g_->next(nodes_[size_t(n)].state, b);
    if (to >= 0) close(node(to, nodes_[size_t(n)].parent), out, acc);
  }
  const int32_t r = intern(std::move(out), acc);
  trans_[slot] = r;
  return r;
}

void GrammarRuntime::classify(int32_t ci) {
  if (cfgs_[size_t(ci)].kind >= 0) return;
  int8_t kind = 0;
  int32_t J = -1;
  for (int32_t n : cfgs_[size_t(ci)].nodes)
    if (nodes_[size_t(n)].state == jchar_start_ && nodes_[size_t(n)].parent >= 0 &&
        g_->states[size_t(nodes_[size_t(nodes_[size_t(n)].parent)].state)].body >= 0) {
      J = J < 0 ? n : -2;
    }
  int32_t rmin = 0, rmax = 0, after = -1;
  if (J >= 0) {
    const Node& p = nodes_[size_t(nodes_[size_t(J)].parent)];
    const int32_t X = p.parent;
    bool ok = X >= 0, x_in = false;
    for (int32_t n : cfgs_[size_t(ci)].nodes) {
      if (n == J) continue;
      if (n == X) x_in = true;
      else ok = false;
    }
    if (ok) {
      const State& ps = g_->states[size_t(p.state)];
      const StringBody& body = g_->bodies[size_t(ps.body)];
      const int32_t k = ps.count - 1;  // characters before the one J starts
      rmin = x_in ? 0 : std::max(0, body.min - k);
      rmax = body.max < 0 ? INT32_MAX : body.max - k;
      const int32_t to = g_->next(nodes_[size_t(X)].state, '"');
      if (to >= 0) {
        std::vector<int32_t> out;
        bool acc = false;
        close(node(to, nodes_[size_t(X)].parent), out, acc);
        after = intern(std::move(out), acc);
      }
      kind = 1;
    }
  }
  if (kind == 0 && cfgs_[size_t(ci)].nodes.size() == 1) {
    // One stack, in a state that a class of ASCII bytes loops on: a regex like [a-z0-9-]*.
    const int32_t st = nodes_[size_t(cfgs_[size_t(ci)].nodes[0])].state;
    uint64_t lo = 0, hi = 0;
    int n = 0;
    for (const ByteEdge& e : g_->states[size_t(st)].edges)
      if (e.to == st)
        for (int b = e.lo; b <= e.hi && b < 128; ++b) (b < 64 ? lo : hi) |= uint64_t(1) << (b & 63), ++n;
    if (n >= 8) {
      Config& c = cfgs_[size_t(ci)];
      c.kind = 2, c.class_lo = lo, c.class_hi = hi;
      return;
    }
  }
  Config& c = cfgs_[size_t(ci)];
  c.kind = kind;
  c.rmin = rmin, c.rmax = rmax, c.after_close = after;
}

void GrammarRuntime::walk(const TokenTrie& t, int32_t first, int32_t end, int32_t cfg, uint64_t* mask) {
  if (first >= end) return;
  const int32_t base = t.depth[size_t(first)] - 1;
  int32_t* st = walk_stack_.data();
  st[0] = cfg;
  for (int32_t i = first; i < end;) {
    const int32_t d = t.depth[size_t(i)] - base;
    const size_t slot = size_t(st[d - 1]) * 256 + t.byte[size_t(i)];
    int32_t c = trans_[slot];
    if (c == -2) c = step(st[d - 1], t.byte[size_t(i)]);
    if (c < 0) {
      i = t.end[size_t(i)];
      continue;
    }
    st[d] = c;
    for (int32_t k = t.tok_begin[size_t(i)]; k < t.tok_begin[size_t(i) + 1]; ++k) set_bit(mask, t.toks[size_t(k)]);
    ++i;
  }
}

void GrammarRuntime::walk_string(int32_t ci, const TokenTrie& t, int32_t first, int32_t end, int32_t base,
                                 uint64_t* mask) {
  const Config c = cfgs_[size_t(ci)];
  // Per depth: the json-char state (0: between characters) and the characters completed.
  if (str_state_.size() < size_t(t.max_depth + 2)) str_state_.resize(size_t(t.max_depth + 2)), str_chars_.resize(size_t(t.max_depth + 2));
  std::vector<int16_t>& js = str_state_;
  std::vector<int32_t>& nc = str_chars_;
  js[0] = 0, nc[0] = 0;
  for (int32_t i = first; i < end;) {
    const int32_t d = t.depth[size_t(i)] - base;
    const uint8_t b = t.byte[size_t(i)];
    const int16_t s = js[size_t(d - 1)];
    const int32_t cnt = nc[size_t(d - 1)];
    if (s == 0 && b == '"') {
      if (cnt >= c.rmin && cnt <= c.rmax && c.after_close >= 0) {
        for (int32_t k = t.tok_begin[size_t(i)]; k < t.tok_begin[size_t(i) + 1]; ++k) set_bit(mask, t.toks[size_t(k)]);
        walk(t, i + 1, t.end[size_t(i)], c.after_close, mask);
      }
      i = t.end[size_t(i)];
      continue;
    }
    const int16_t ns = jt_[size_t(s) * 256 + b];
    if (ns < 0) {
      i = t.end[size_t(i)];
      continue;
    }
    const bool done = jt_done_[size_t(ns)];
    js[size_t(d)] = done ? 0 : ns;
    nc[size_t(d)] = cnt + (done ? 1 : 0);
    if (nc[size_t(d)] + (done ? 0 : 1) > c.rmax) {
      i = t.end[size_t(i)];
      continue;
    }
    for (int32_t k = t.tok_begin[size_t(i)]; k < t.tok_begin[size_t(i) + 1]; ++k) set_bit(mask, t.toks[size_t(k)]);
    ++i;
  }
}

// The full trie's first level one byte at a time: where the byte starts string contents (an
// additional property's name, a string value's opening quote), the subtree is taken as string
// contents (plain tokens as a slice, the rest lexed); elsewhere the grammar walks it.
void GrammarRuntime::walk_generic(int32_t cfg, uint64_t* mask) {
  const TokenTrie& t = idx_->full;
  const size_t W = size_t(idx_->words);
  const int32_t n = int32_t(t.byte.size());
  for (int32_t i = 1; i < n; i = t.end[size_t(i)]) {
    const uint8_t b = t.byte[size_t(i)];
    const int32_t c1 = step(cfg, b);
    if (c1 < 0) continue;
    for (int32_t k = t.tok_begin[size_t(i)]; k < t.tok_begin[size_t(i) + 1]; ++k) set_bit(mask, t.toks[size_t(k)]);
    classify(c1);
    const Config& c = cfgs_[size_t(c1)];
    if (c.kind != 1) {
      walk(t, i + 1, t.end[size_t(i)], c1, mask);
      continue;
    }
    if (b < 128 && b >= 0x20 && b != '"' && b != '\\') {  // plain tokens starting with b
      const int32_t need = c.rmax >= idx_->max_need ? idx_->max_need : c.rmax + 1;
      const uint64_t* pf = idx_->plain_first.data() + size_t(b) * W;
      const uint64_t* pu = idx_->plain_upto.data() + size_t(need) * W;
      for (size_t w = 0; w < W; ++w) mask[w] |= pf[w] & pu[w];
    }
    const int32_t r = idx_->rest_child[b];
    if (r >= 0) walk_string(c1, idx_->rest, r + 1, idx_->rest.end[size_t(r)], 1, mask);
  }
}

void GrammarRuntime::fill_mask(int32_t cfg, uint64_t* mask) {
  const size_t W = size_t(idx_->words);
  std::fill(mask, mask + W, 0);
  if (cfg < 0) return;
  if (auto it = mask_cache_.find(cfg); it != mask_cache_.end()) {
    std::memcpy(mask, it->second.data(), W * 8);
    return;
  }
  classify(cfg);
  const Config& c = cfgs_[size_t(cfg)];
  if (c.kind == 1) {
    const int32_t n = std::min(c.rmax, idx_->max_need);
    if (n > 0) {
      const uint64_t* src = idx_->plain_upto.data() + size_t(n) * W;
      for (size_t w = 0; w < W; ++w) mask[w] |= src[w];
    }
    walk_string(cfg, idx_->rest, 1, int32_t(idx_->rest.byte.size()), 0, mask);
  } else if (const TokenIndex::ClassSlice* cs = c.kind == 2 ? idx_->class_slice(c.class_lo, c.class_hi) : nullptr) {
    // Tokens of the class stay in the loop state: all allowed; the others are walked.
    for (size_t w = 0; w < W; ++w) mask[w] |= cs->in[w];
    if (walk_stack_.size() < size_t(cs->rest.max_depth + 2)) walk_stack_.resize(size_t(cs->rest.max_depth + 2));
    walk(cs->rest, 1, int32_t(cs->rest.byte.size()), cfg, mask);
  } else {
    walk_generic(cfg, mask);
  }
  if (cfgs_[size_t(cfg)].accept)
    for (int32_t s : idx_->stop_ids) set_bit(mask, s);
  constexpr size_t kMaskCacheBytes = size_t(64) << 20;
  if (mask_cache_on_ && mask_cache_bytes_ + W * 8 <= kMaskCacheBytes) {
    mask_cache_.emplace(cfg, std::vector<uint64_t>(mask, mask + W));
    mask_cache_bytes_ += W * 8;
  }
}

Matcher::Matcher(std::shared_ptr<GrammarRuntime> rt) : rt_(std::move(rt)) {
  std::lock_guard<std::mutex> lk(rt_->mu_);
  history_.push_back(rt_->initial());
}

bool Matcher::allows(int32_t token) const {
  if (finished_ || token < 0 || token >= rt_->idx_->n_vocab) return false;
  std::lock_guard<std::mutex> lk(rt_->mu_);
  int32_t c = history_.back();
  if (c < 0) return false;
  const auto& stops = rt_->idx_->stop_ids;
  if (std::find(stops.begin(), stops.end(), token) != stops.end()) return rt_->cfgs_[size_t(c)].accept;
  const std::string& b = rt_->idx_->bytes[size_t(token)];
  if (b.empty()) return false;
  for (char x : b)
    if ((c = rt_->step(c, uint8_t(x))) < 0) return false;
  return true;
}

bool Matcher::accept(int32_t token) {
  if (finished_ || token < 0 || token >= rt_->idx_->n_vocab) return false;
  std::lock_guard<std::mutex> lk(rt_->mu_);
  int32_t c = history_.back();
  if (c < 0) return false;
  const auto& stops = rt_->idx_->stop_ids;
  if (std::find(stops.begin(), stops.end(), token) != stops.end()) {
    if (!rt_->cfgs_[size_t(c)].accept) return false;
    history_.push_back(c);
    finished_ = true;
    return true;
  }
  const std::string& b = rt_->idx_->bytes[size_t(token)];
  if (b.empty()) return false;
  for (char x : b)
    if ((c = rt_->step(c, uint8_t(x))) < 0) return false;
  history_.push_back(c);
  return true;
}

void Matcher::fill_mask(uint64_t* mask) const {
  std::lock_guard<std::mutex> lk(rt_->mu_);
  if (finished_) {
    std::fill(mask, mask + rt_->idx_->words, 0);
    return;
  }
  rt_->fill_mask(history_.back(), mask);
}

bool Matcher::complete() const {
  std::lock_guard<std::mutex> lk(rt_->mu_);
  const int32_t c = history_.back();
  return c >= 0 && rt_->cfgs_[size_t(c)].accept;
}

void Matcher::rollback(size_t n) {
  n = std::min(n, history_.size() - 1);
  if (n > 0) finished_ = false;
  history_.resize(history_.size() - n);
}

}  // namespace corral::grammar
