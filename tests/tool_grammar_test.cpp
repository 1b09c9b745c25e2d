// Constrained tool calls (server/tool_grammar.h) in each format: random token walks through
// the grammar over the Llama 3 vocabulary, each finished text read back by the format's own
// parser (template/tool_calls.h, written independently of the grammar). Every call it finds
// names a request tool, with arguments checked here against the tool's schema by hand; text that
// begins a call is always a call the parser takes (never content that looks like a broken call);
// the forced mode always yields exactly one call.
#include "server/tool_grammar.h"

#include <gtest/gtest.h>

#include <random>

#include "grammar/constraint.h"
#include "grammar/json_schema.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace corral {
namespace {

using ojson = nlohmann::ordered_json;

const char* kWeather =
    R"({"type":"object","properties":{"city":{"type":"string","maxLength":6},"unit":{"enum":["c","f"]},)"
    R"("days":{"type":"integer","minimum":1,"maximum":7}},"required":["city","unit"],"additionalProperties":false})";
const char* kFlag =
    R"({"type":"object","properties":{"on":{"type":"boolean"},"note":{"type":["string","null"],"maxLength":3}},)"
    R"("required":["on"],"additionalProperties":false})";

// The two schemas above, checked by hand (an oracle independent of the grammar compiler).
bool args_valid(const std::string& name, const std::string& args) {
  ojson a = ojson::parse(args, nullptr, false);
  if (!a.is_object()) return false;
  auto utf8_len = [](const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
  };
  if (name == "get_weather") {
    for (auto& [k, v] : a.items())
      if (k != "city" && k != "unit" && k != "days") return false;
    if (!a.contains("city") || !a["city"].is_string() || utf8_len(a["city"].get<std::string>()) > 6)
      return false;
    if (!a.contains("unit") || !(a["unit"] == "c" || a["unit"] == "f")) return false;
    if (a.contains("days") && !(a["days"].is_number_integer() && a["days"] >= 1 && a["days"] <= 7))
      return false;
    return true;
  }
  if (name == "set_flag") {
    for (auto& [k, v] : a.items())
      if (k != "on" && k != "note") return false;
    if (!a.contains("on") || !a["on"].is_boolean()) return false;
    if (a.contains("note") && !a["note"].is_null() &&
        !(a["note"].is_string() && utf8_len(a["note"].get<std::string>()) <= 3))
      return false;
    return true;
  }
  return false;
}

struct Fixture {
  std::unique_ptr<Tokenizer> tok;
  std::shared_ptr<const grammar::TokenIndex> idx;
};
const Fixture& fx() {
  static Fixture f = [] {
    Fixture x;
    auto t = load_tokenizer(test::fixture("tokenizers/llama3/tokenizer.json"));
    x.tok = std::move(*t);
    x.idx = grammar::token_index(*x.tok);
    return x;
  }();
  return f;
}

struct Walk {
  std::string text;
  bool finished = false;
};

// A random walk: tokens drawn uniformly from the mask (short ones preferred, the end of turn
// taken early once allowed), after the tokens of `lead` if given.
Walk walk(grammar::Matcher& m, std::mt19937& rng, const std::string& lead, int max_tokens) {
  const auto& f = fx();
  Walk w;
  for (int32_t t : f.tok->encode(lead)) {
    if (!m.accept(t)) return w;
    w.text += f.idx->bytes[size_t(t)];
  }
  std::vector<uint64_t> mask(size_t(f.idx->words));
  for (int k = 0; k < max_tokens; ++k) {
    m.fill_mask(mask.data());
    std::vector<int32_t> allowed, short_ones;
    bool stop = false;
    for (int32_t t = 0; t < f.idx->n_vocab; ++t)
      if ((mask[size_t(t) >> 6] >> (t & 63)) & 1) {
        if (std::find(f.idx->stop_ids.begin(), f.idx->stop_ids.end(), t) != f.idx->stop_ids.end()) {
          stop = true;
          continue;
        }
        allowed.push_back(t);
        if (f.idx->bytes[size_t(t)].size() <= 2) short_ones.push_back(t);
      }
    if (stop && (allowed.empty() || rng() % 4 == 0)) {
      w.finished = true;
      return w;
    }
    if (allowed.empty()) return w;
    const auto& from = !short_ones.empty() && rng() % 4 ? short_ones : allowed;
    const int32_t t = from[rng() % from.size()];
    EXPECT_TRUE(m.accept(t));
    w.text += f.idx->bytes[size_t(t)];
  }
  return w;
}

std::vector<ToolSpec> specs() {
  return {{"get_weather", {"city", "unit"}}, {"set_flag", {"on"}}};
}

// Where the parser would see a call begin (as tool_calls.cpp's call_start does).
bool begins_call(ToolFormat f, const std::string& t) {
  if (f == ToolFormat::kHermes) return t.find("<tool_call>") != std::string::npos;
  size_t b = t.find_first_not_of(" \t\r\n");
  return (b != std::string::npos && (t[b] == '{' || t[b] == '[')) ||
         t.find("<|python_tag|>") != std::string::npos ||
         (f == ToolFormat::kLlama4 && t.find("<|python_start|>") != std::string::npos);
}

void run_format(ToolFormat f, const char* call_lead) {
  ToolGrammarRequest r;
  r.format = f;
  r.tools = {{"get_weather", kWeather, true}, {"set_flag", kFlag, true}};
  for (bool forced : {true, false}) {
    r.forced = forced;
    for (bool parallel : {false, true}) {
      r.parallel = parallel;
      auto g = tool_call_grammar(r);
      ASSERT_TRUE(g.is_ok()) << g.message();
      grammar::ConstraintSpec spec;
      spec.kind = grammar::ConstraintSpec::Kind::kGrammar;
      spec.grammar = std::make_shared<const grammar::Grammar>(std::move(*g));
      auto c = grammar::compile_spec(spec);
      ASSERT_TRUE(c.is_ok()) << c.message();
      auto rt = std::make_shared<grammar::GrammarRuntime>(*c, fx().idx);
      std::mt19937 rng(uint32_t(int(f) * 100 + forced * 10 + parallel));
      int calls_seen = 0, texts_seen = 0, finished = 0, several = 0;
      for (int i = 0; i < 60; ++i) {
        grammar::Matcher m(rt);
        const std::string lead = forced || i % 2 ? "" : call_lead;
        Walk w = walk(m, rng, lead, 200);
        if (!w.finished) continue;
        ++finished;
        ParsedOutput p = parse_tool_calls(f, w.text, specs());
        if (begins_call(f, w.text))
          EXPECT_FALSE(p.calls.empty()) << "a call the parser refuses: " << w.text;
        if (forced) EXPECT_EQ(p.calls.size(), 1u) << w.text;
        if (!parallel) EXPECT_LE(p.calls.size(), 1u) << w.text;
        several += p.calls.size() > 1;
        for (auto& call : p.calls)
          EXPECT_TRUE(args_valid(call.name, call.arguments)) << call.name << " " << call.arguments;
        if (p.calls.empty()) {
          EXPECT_EQ(p.content.value_or(""), w.text);
          ++texts_seen;
        } else {
          ++calls_seen;
        }
      }
      EXPECT_GE(finished, 30) << tool_format_name(f) << " forced " << forced;
      EXPECT_GE(calls_seen, forced ? finished : 5) << tool_format_name(f);
      if (!forced) EXPECT_GE(texts_seen, 5) << tool_format_name(f);
      (void)several;
    }
  }
}

TEST(ToolGrammar, Llama3JsonCallsOrTextThatIsNoCall) {
  run_format(ToolFormat::kLlama3, "{\"name\": \"");
}
TEST(ToolGrammar, HermesTaggedCallsAfterTextWithoutTags) {
  run_format(ToolFormat::kHermes, "<tool_call>\n");
}
TEST(ToolGrammar, Llama4PythonicCalls) {
  run_format(ToolFormat::kLlama4, "[");
}

TEST(ToolGrammar, ErrorsNameTheToolAndKeyword) {
  ToolGrammarRequest r;
  r.format = ToolFormat::kLlama4;
  r.forced = true;
  r.tools = {{"bad-name", "{}", true}};
  EXPECT_NE(tool_call_grammar(r).message().find("not a Python identifier"), std::string::npos);
  r.tools = {{"t", R"({"type":"object","properties":{"a b":{"type":"string"}}})", true}};
  EXPECT_NE(tool_call_grammar(r).message().find("'a b'"), std::string::npos);
  r.format = ToolFormat::kLlama3;
  r.tools = {
      {"t", R"({"type":"object","properties":{"a":{"type":"string","uniqueItems":true}}})", true}};
  const std::string e = tool_call_grammar(r).message();
  EXPECT_NE(e.find("tool 't'"), std::string::npos) << e;
  EXPECT_NE(e.find("uniqueItems"), std::string::npos) << e;
  r.format = ToolFormat::kNone;
  EXPECT_NE(tool_call_grammar(r).message().find("cannot be constrained"), std::string::npos);
}

}  // namespace
}  // namespace corral
