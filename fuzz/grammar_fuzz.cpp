// libFuzzer target: hostile JSON Schemas, GBNF grammars and regex patterns (as requests may send)
// through the front ends, the compiler (small limits) and the matcher over a small vocabulary:
// every input must compile or fail with an error value, and the matcher must stay consistent
// (each token the mask allows is accepted) within bounds.
#include <cstddef>
#include <cstdint>
#include <string>

#include "grammar/compile.h"
#include "grammar/gbnf.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/regex.h"

using namespace corral::grammar;

static std::shared_ptr<const TokenIndex> vocab() {
  static auto idx = [] {
    std::vector<std::string> t;
    for (int b = 0; b < 256; ++b) t.push_back(std::string(1, char(b)));
    for (const char* s : {"{\"", "\":", "\",", "\"}", "true", "null", "12", "ab", " \"", "\\n", "\\u00", "é", "日本", "\xe6\x97",
                          "\": \"", "]}", "[{", "-1", ".5", "e+", "abc\"", "x\"}"})
      t.push_back(s);
    t.push_back("");  // a stop token
    return TokenIndex::build(t, {int32_t(t.size() - 1)});
  }();
  return idx;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string src(reinterpret_cast<const char*>(data), size);
  GrammarLimits lim;
  lim.max_exprs = 200000;
  lim.max_nfa_states = 200000;
  lim.max_dfa_states = 20000;
  lim.max_rule_dfa_states = 5000;
  lim.max_string_length = 2000;
  corral::Expected<Grammar> g = corral::make_error("none");
  if (!src.empty() && (src[0] == '{' || src[0] == '[' || src[0] == 't' || src[0] == 'f')) {
    auto j = nlohmann::ordered_json::parse(src, nullptr, false);
    if (j.is_discarded()) return 0;
    // The same schema as a pythonic call's keyword arguments (Llama 4 tool calls), when the
    // first byte says so.
    g = (size & 1) ? kwargs_grammar(j) : schema_to_grammar(j);
  } else if (src.find("::=") != std::string::npos) {
    g = parse_gbnf(src);
  } else {
    Grammar r;
    auto e = pattern_to_grammar(r, src);
    if (!e.is_ok()) return 0;
    r.start = r.new_rule("root");
    r.define(r.start, r.seq({r.byte('"'), *e, r.byte('"')}));
    g = std::move(r);
  }
  if (!g.is_ok()) return 0;
  if (int64_t(g->exprs.size()) > lim.max_exprs) return 0;
  auto c = compile(std::move(*g), lim);
  if (!c.is_ok()) return 0;
  auto rt = std::make_shared<GrammarRuntime>(*c, vocab());
  Matcher m(rt);
  std::vector<uint64_t> mask(size_t(vocab()->words));
  for (int step = 0; step < 24 && !m.finished(); ++step) {
    m.fill_mask(mask.data());
    int32_t pick = -1;
    for (int32_t t = 0; t < vocab()->n_vocab && pick < 0; ++t)
      if ((mask[size_t(t) >> 6] >> (t & 63)) & 1) pick = t;
    if (pick < 0) break;
    if (!m.accept(pick)) __builtin_trap();  // the mask allowed it
    if (step == 10) m.rollback(3);
  }
  return 0;
}
