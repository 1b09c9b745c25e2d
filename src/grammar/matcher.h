// Token-level matching of a compiled grammar: which vocabulary tokens may come next (a bit mask
// over the vocabulary), advancing by one token, rolling back.
//
// Runtime state is a set of stacks of DFA states (the calls in progress), interned as numbered
// configurations whose byte transitions are cached, so the trie walk that computes a mask is
// mostly table lookups. Inside a JSON string body (the usual hot spot) tokens made only of plain
// string characters are taken as whole precomputed slices by character count, and only the rest
// of the vocabulary (tokens with quotes, escapes, controls) is walked, with a small context-free
// lexer; the walk rejoins the grammar at the closing quote.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "grammar/compile.h"

namespace corral::grammar {

// A trie of token byte strings, nodes in depth-first order: node i's subtree is [i, end[i]).
struct TokenTrie {
  std::vector<uint8_t> byte;    // the byte that leads to the node (root: 0)
  std::vector<uint16_t> depth;  // root 0
  std::vector<int32_t> end;
  std::vector<int32_t> tok_begin;  // tokens ending at the node: toks[tok_begin[i], tok_begin[i + 1])
  std::vector<int32_t> toks;
  int32_t max_depth = 0;
};

// What the matcher knows of a vocabulary; built once per tokenizer and shared.
struct TokenIndex {
  int32_t n_vocab = 0;
  int32_t words = 0;                // mask words of 64 bits
  std::vector<std::string> bytes;   // per token; empty for tokens never allowed in a grammar
  std::vector<int32_t> stop_ids;    // end of turn: allowed exactly when the grammar is complete
  TokenTrie full;                   // every grammar token
  TokenTrie rest;                   // the tokens that are not plain
  std::vector<int32_t> plain_need;  // per token: characters it occupies in a string body, or -1
  int32_t max_need = 0;
  std::vector<uint64_t> plain_upto;  // [max_need + 1][words]: plain tokens needing <= n
  std::vector<uint64_t> plain_first;  // [128][words]: plain tokens whose first byte is b (ASCII)
  int32_t rest_child[256];            // rest's depth-1 node for each first byte, -1 none

  // Regex loops (a state every byte of an ASCII class C leads back to): the tokens made only of
  // C's bytes, and a trie of the others. Built on first use per class, shared by all grammars.
  struct ClassSlice {
    std::vector<uint64_t> in;
    TokenTrie rest;
  };
  const ClassSlice* class_slice(uint64_t lo, uint64_t hi) const;  // null past the cache's size
  std::vector<int32_t> sorted;  // grammar tokens in byte order
  mutable std::mutex class_mu;
  mutable std::map<std::pair<uint64_t, uint64_t>, std::unique_ptr<ClassSlice>> class_slices;

  // tokens[i]: the bytes of token i ("" to leave it out: control and special tokens).
  static std::shared_ptr<const TokenIndex> build(const std::vector<std::string>& tokens,
                                                 std::vector<int32_t> stop_ids);
};

// Configurations of one compiled grammar, shared by all its matchers (thread-safe).
class GrammarRuntime {
 public:
  GrammarRuntime(std::shared_ptr<const Compiled> g, std::shared_ptr<const TokenIndex> idx);
  const Compiled& grammar() const { return *g_; }
  const TokenIndex& index() const { return *idx_; }
  size_t configs() const;

 private:
  friend class Matcher;
  struct Node {
    int32_t state, parent, depth;
  };
  struct Config {
    std::vector<int32_t> nodes;  // stacks whose top state consumes bytes
    bool accept = false;         // the start rule can be complete here
    int8_t kind = -1;            // -1 not yet classified, 0 generic, 1 inside a string body, 2 regex loop
    uint64_t class_lo = 0, class_hi = 0;  // kind 2: the loop's ASCII bytes
    int32_t after_close = -1;    // kind 1: the configuration after the closing quote
    int32_t rmin = 0, rmax = 0;  // kind 1: characters still needed / allowed
  };

  int32_t initial();
  int32_t step(int32_t cfg, uint8_t b);  // -1: dead
  int32_t node(int32_t state, int32_t parent);
  int32_t intern(std::vector<int32_t> nodes, bool accept);
  void close(int32_t n, std::vector<int32_t>& out, bool& accept);
  void classify(int32_t cfg);
  void walk(const TokenTrie& t, int32_t first, int32_t end, int32_t cfg, uint64_t* mask);
  // Tokens of t's nodes [first, end) (their depth - base bytes are string contents from cfg).
  void walk_string(int32_t cfg, const TokenTrie& t, int32_t first, int32_t end, int32_t base, uint64_t* mask);
  void walk_generic(int32_t cfg, uint64_t* mask);
  void fill_mask(int32_t cfg, uint64_t* mask);

  std::shared_ptr<const Compiled> g_;
  std::shared_ptr<const TokenIndex> idx_;
  mutable std::mutex mu_;
  std::vector<Node> nodes_;
  std::unordered_map<uint64_t, int32_t> node_ids_;
  std::vector<Config> cfgs_;
  std::unordered_map<std::string, int32_t> cfg_ids_;
  std::vector<int32_t> trans_;  // [cfg][256]: -2 unknown, -1 dead
  int32_t initial_ = -2;
  // The JSON character rule as a byte table (context-free: strings are lexed with it).
  std::vector<int16_t> jt_;  // [state][256] -> state, -1 dead; state 0 is the start
  std::vector<char> jt_done_;
  int32_t jchar_start_ = -1;
  std::vector<int32_t> walk_stack_;
  std::vector<int16_t> str_state_;  // walk_string's per-depth json-char state and character count
  std::vector<int32_t> str_chars_;
  // Masks computed before, per configuration (a copy is a memcpy), within a memory budget.
  std::unordered_map<int32_t, std::vector<uint64_t>> mask_cache_;
  size_t mask_cache_bytes_ = 0;
  bool mask_cache_on_ = true;  // CORRAL_GRAMMAR_NO_MASK_CACHE=1 turns it off (to measure the walks)
};

class Matcher {
 public:
  explicit Matcher(std::shared_ptr<GrammarRuntime> rt);
  // Consumes one token; false (and no change) if the grammar does not allow it. A stop token is
  // allowed exactly when the grammar is complete, and ends the match.
  bool accept(int32_t token);
  // Bit i of mask (words of 64) set when token i may come next; mask has index().words words.
  void fill_mask(uint64_t* mask) const;
  bool allows(int32_t token) const;
  bool complete() const;  // end of turn allowed now
  bool finished() const { return finished_; }
  // Undoes the last n accepted tokens.
  void rollback(size_t n);
  size_t consumed() const { return history_.size() - 1; }
  const GrammarRuntime& runtime() const { return *rt_; }

 private:
  std::shared_ptr<GrammarRuntime> rt_;
  std::vector<int32_t> history_;  // configuration before each token and the current one
  bool finished_ = false;
};

}  // namespace corral::grammar
