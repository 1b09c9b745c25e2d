// A Grammar compiled for matching: one DFA per rule over bytes, whose states may also call other
// rules (a recursive transition network). JSON string bodies become counted chains that the
// matcher recognises, so it can take whole slices of the vocabulary at once inside strings.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "grammar/grammar.h"

namespace corral::grammar {

struct ByteEdge {
  uint8_t lo, hi;  // inclusive
  int32_t to;      // state id
};

struct CallEdge {
  int32_t rule;
  int32_t to;  // state to continue in once the rule is done
};

struct State {
  std::vector<ByteEdge> edges;  // sorted, disjoint
  std::vector<CallEdge> calls;
  bool accept = false;
  int32_t body = -1;  // string-body chains: which body, and the characters before this state
  int32_t count = 0;
};

struct StringBody {
  int32_t min = 0, max = -1;  // characters; max -1: unbounded
  int32_t rule = -1;
};

struct Compiled {
  std::vector<State> states;
  std::vector<int32_t> rule_start;  // per rule, its DFA's start state
  std::vector<std::string> rule_names;
  int32_t start_rule = 0;
  int32_t jchar_rule = -1;  // one JSON string character (raw or escaped); -1: no strings
  std::vector<StringBody> bodies;
  int32_t next(int32_t state, uint8_t b) const;  // -1: no edge
};

// Errors name the rule ("rule 'x' is left-recursive", "pattern too complex ...").
Expected<std::shared_ptr<const Compiled>> compile(Grammar g, const GrammarLimits& limits = {});

}  // namespace corral::grammar
