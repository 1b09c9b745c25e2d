#include "grammar/constraint.h"

#include "grammar/gbnf.h"
#include "grammar/json_schema.h"

namespace corral::grammar {

std::shared_ptr<const TokenIndex> token_index(const Tokenizer& tok) {
  const Vocab& v = tok.vocab();
  std::vector<std::string> bytes(size_t(v.n_tokens()));
  std::vector<char> special(size_t(v.n_tokens()), 0);
  for (int32_t s : v.special_ids) special[size_t(s)] = 1;
  for (int32_t i = 0; i < v.n_tokens(); ++i)
    if (!v.is_control(i) && !special[size_t(i)]) bytes[size_t(i)] = tok.token_bytes(i, false);
  std::vector<int32_t> stops;
  for (int32_t s : v.stop_ids())
    if (s >= 0 && s < v.n_tokens()) stops.push_back(s);
  return TokenIndex::build(bytes, std::move(stops));
}

namespace {

// Wraps the value grammar in literal text before and after it.
Grammar framed(Grammar g, const std::string& prefix, const std::string& suffix) {
  if (prefix.empty() && suffix.empty()) return g;
  const int32_t inner = g.start;
  const int32_t r = g.new_rule("framed");
  g.define(r, g.seq({prefix.empty() ? g.empty() : g.literal(prefix), g.ref(inner),
                     suffix.empty() ? g.empty() : g.literal(suffix)}));
  g.start = r;
  return g;
}

}  // namespace

Expected<Grammar> build_grammar(const ConstraintSpec& spec) {
  Grammar g;
  switch (spec.kind) {
    case ConstraintSpec::Kind::kJsonSchema: {
      nlohmann::ordered_json j = nlohmann::ordered_json::parse(spec.text, nullptr, false);
      if (j.is_discarded()) return make_error("the JSON schema is not valid JSON");
      auto r = schema_to_grammar(j);
      if (!r.is_ok()) return r.error();
      g = std::move(*r);
      break;
    }
    case ConstraintSpec::Kind::kJsonObject:
      g = json_object_grammar();
      break;
    case ConstraintSpec::Kind::kGbnf: {
      auto r = parse_gbnf(spec.text);
      if (!r.is_ok()) return r.error();
      g = std::move(*r);
      break;
    }
    case ConstraintSpec::Kind::kGrammar:
      if (!spec.grammar) return make_error("no grammar given");
      g = *spec.grammar;
      break;
  }
  return framed(std::move(g), spec.prefix, spec.suffix);
}

Expected<std::shared_ptr<const Compiled>> compile_spec(const ConstraintSpec& spec) {
  auto g = build_grammar(spec);
  if (!g.is_ok()) return g.error();
  return compile(std::move(*g));
}

Expected<std::shared_ptr<GrammarRuntime>> GrammarCache::get(const ConstraintSpec& spec) {
  const std::string key =
      std::to_string(int(spec.kind)) + '\0' + spec.prefix + '\0' + spec.suffix + '\0' + spec.text;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (auto it = map_.find(key); it != map_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
  }
  auto c = compile_spec(spec);  // outside the lock: compiling can take a while
  if (!c.is_ok()) return c.error();
  auto rt = std::make_shared<GrammarRuntime>(*c, idx_);
  std::lock_guard<std::mutex> lk(mu_);
  if (auto it = map_.find(key); it != map_.end()) return it->second->second;
  lru_.emplace_front(key, rt);
  map_[key] = lru_.begin();
  while (lru_.size() > cap_) {
    map_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return rt;
}

}  // namespace corral::grammar
