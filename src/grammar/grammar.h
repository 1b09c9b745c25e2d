// The grammar IR every front end (JSON Schema, GBNF, regex) builds: a context-free grammar over
// bytes, as expression trees in one pool. compile.h turns it into one DFA per rule (with calls
// between rules), which the token matcher (matcher.h) runs.
#pragma once
#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace corral::grammar {

using ByteSet = std::bitset<256>;

struct Expr {
  enum class Kind : uint8_t {
    kEmpty,
    kBytes,       // one byte of `bytes`
    kSeq,         // kids in order
    kAlt,         // any one kid
    kRepeat,      // kids[0], min..max times (max -1: unbounded)
    kRef,         // rule `rule`
    kStringBody,  // JSON string contents (no quotes) of min..max characters (max -1: unbounded)
    kIntersect,   // what both kids[0] and kids[1] match (both regular: no rules inside)
  };
  Kind kind = Kind::kEmpty;
  ByteSet bytes;
  std::vector<int32_t> kids;
  int32_t min = 0, max = -1;
  int32_t rule = -1;
};

struct Rule {
  std::string name;
  int32_t expr = -1;  // -1: declared, not yet defined
};

// Sizes past which a grammar is refused (hostile schemas, huge repetitions).
struct GrammarLimits {
  int64_t max_exprs = 2'000'000;
  int64_t max_nfa_states = 2'000'000;
  int64_t max_dfa_states = 400'000;
  int64_t max_rule_dfa_states = 50'000;  // one rule (an unanchored regex can blow up)
  int64_t max_string_length = 1 << 17;   // maxLength / counted string bodies
};

struct Grammar {
  std::vector<Expr> exprs;
  std::vector<Rule> rules;
  int32_t start = -1;  // rule id

  int32_t add(Expr e);
  int32_t empty();
  int32_t bytes(const ByteSet& s);
  int32_t byte(uint8_t c);
  int32_t byte_range(uint8_t lo, uint8_t hi);
  int32_t literal(std::string_view s);
  int32_t seq(std::vector<int32_t> kids);
  int32_t alt(std::vector<int32_t> kids);
  int32_t repeat(int32_t e, int32_t min, int32_t max);
  int32_t opt(int32_t e) { return repeat(e, 0, 1); }
  int32_t star(int32_t e) { return repeat(e, 0, -1); }
  int32_t ref(int32_t rule);
  int32_t string_body(int32_t min, int32_t max);
  int32_t intersect(int32_t a, int32_t b);
  // JSON string contents of min..max characters as a regular expression (for intersections).
  int32_t json_chars(int32_t min, int32_t max);
  int32_t new_rule(std::string name);  // defined later with define()
  void define(int32_t rule, int32_t expr) { rules[size_t(rule)].expr = expr; }
  int32_t find_rule(std::string_view name) const;  // -1: none
  // Copies `other`'s rules and expressions in (renumbered); returns a reference to its start.
  int32_t import(const Grammar& other);
};

// UTF-8 encodings of the code points lo..hi (surrogates D800-DFFF left out), as one expression.
int32_t utf8_range(Grammar& g, uint32_t lo, uint32_t hi);
// Code point ranges [lo, hi] (sorted, disjoint) as one expression; empty set: an empty kAlt.
int32_t utf8_set(Grammar& g, const std::vector<std::pair<uint32_t, uint32_t>>& ranges);
// The character c as json.dumps(ensure_ascii=False) writes it inside a string.
std::string json_escape_char(uint32_t c);
// A whole string, quoted, as json.dumps(ensure_ascii=False) writes it.
std::string json_quote(std::string_view utf8);
void append_utf8(std::string& out, uint32_t c);

}  // namespace corral::grammar
