// What a request constrains its output with (a JSON Schema, any JSON object, a GBNF grammar),
// compiled once and cached by its text (bounded LRU), and the vocabulary index a tokenizer
// gives the matcher.
#pragma once
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "grammar/matcher.h"
#include "tokenizer/tokenizer.h"

namespace corral::grammar {

struct ConstraintSpec {
  enum class Kind { kJsonSchema, kJsonObject, kGbnf, kGrammar };
  Kind kind = Kind::kJsonSchema;
  std::string text;  // schema JSON / GBNF source; kGrammar: the cache key of `grammar`
  std::string prefix, suffix;  // literal text around the value (tool-call formats)
  std::shared_ptr<const Grammar> grammar;  // kGrammar: an already built grammar
};

// Every ordinary token's bytes (control and special tokens left out), stop tokens as the end.
std::shared_ptr<const TokenIndex> token_index(const Tokenizer& tok);

// The spec's grammar, not yet compiled (to compose it with others).
Expected<Grammar> build_grammar(const ConstraintSpec& spec);
// Compiles a spec to a grammar (errors name the keyword and its JSON pointer, or line:column).
Expected<std::shared_ptr<const Compiled>> compile_spec(const ConstraintSpec& spec);

class GrammarCache {
 public:
  GrammarCache(std::shared_ptr<const TokenIndex> idx, size_t capacity = 64) : idx_(std::move(idx)), cap_(capacity) {}
  Expected<std::shared_ptr<GrammarRuntime>> get(const ConstraintSpec& spec);
  const std::shared_ptr<const TokenIndex>& index() const { return idx_; }

 private:
  std::shared_ptr<const TokenIndex> idx_;
  size_t cap_;
  std::mutex mu_;
  std::list<std::pair<std::string, std::shared_ptr<GrammarRuntime>>> lru_;
  std::unordered_map<std::string, decltype(lru_)::iterator> map_;
};

}  // namespace corral::grammar
