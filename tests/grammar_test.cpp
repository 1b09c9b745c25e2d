// The grammar engine: schema and GBNF errors that name what and where, hostile inputs bounded,
// and the token matcher's masks against a brute-force check of every token (which goes byte by
// byte through the grammar, without the trie, the string slices or the mask cache).
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "grammar/constraint.h"
#include "grammar/gbnf.h"
#include "grammar/json_schema.h"
#include "test_util.h"

namespace corral {
namespace {

using namespace grammar;
using test::fixture;

std::shared_ptr<const TokenIndex> llama3_index() {
  static std::shared_ptr<const TokenIndex> idx = [] {
    auto tok = load_tokenizer(fixture("tokenizers/llama3/tokenizer.json"));
    return token_index(**tok);
  }();
  return idx;
}

Expected<std::shared_ptr<const Compiled>> schema(const std::string& text) {
  ConstraintSpec s;
  s.text = text;
  return compile_spec(s);
}

std::string schema_error(const std::string& text) {
  auto c = schema(text);
  return c.is_ok() ? "" : c.message();
}

TEST(GrammarSchema, UnsupportedKeywordsAreNamedWithTheirPointer) {
  for (const char* k : {"patternProperties", "if", "not", "uniqueItems", "multipleOf", "contains",
                        "propertyNames", "dependentRequired", "unevaluatedProperties"}) {
    const std::string e =
        schema_error(std::string(R"({"type":"object","properties":{"a":{")") + k + R"(":{}}}})");
    EXPECT_NE(e.find(std::string("'") + k + "'"), std::string::npos) << e;
    EXPECT_NE(e.find("/properties/a/" + std::string(k)), std::string::npos) << e;
  }
  EXPECT_NE(schema_error(R"({"type":"string","format":"hostname"})").find("format 'hostname'"),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"$ref":"#/$defs/missing"})").find("does not resolve"),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"string","pattern":"(?=a)b"})").find("lookaround"),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"string","pattern":"(a)\\1"})").find("backreferences"),
            std::string::npos);
  EXPECT_NE(schema_error("{not json").find("not valid JSON"), std::string::npos);
  EXPECT_EQ(
      schema_error(R"({"type":"object","title":"t","description":"d","default":{},"examples":[]})"),
      "");
}

TEST(GrammarSchema, OneOfOverlapsItCannotTellApartAreNamed) {
  // Branches one value can match twice, where no type, const/enum or required property tells
  // them apart: an error naming the branches, never a silent anyOf. (The corpus checks the
  // accepted cases against python3-jsonschema, values matching two branches included.)
  const std::string e =
      schema_error(R"({"properties":{"n":{"oneOf":[{"type":"integer"},{"type":"number"}]}}})");
  EXPECT_NE(e.find("oneOf"), std::string::npos) << e;
  EXPECT_NE(e.find("branches 0 and 1"), std::string::npos) << e;
  EXPECT_NE(e.find("/properties/n/oneOf"), std::string::npos) << e;
  EXPECT_NE(schema_error(R"({"oneOf":[{"type":"object"},{"type":"object","required":["a"]}]})")
                .find("branches 0 and 1"),
            std::string::npos);
  EXPECT_EQ(schema_error(R"({"oneOf":[{"type":"string"},{"type":"integer"},{"enum":[true]}]})"),
            "");
  EXPECT_EQ(
      schema_error(
          R"({"type":"object","oneOf":[{"properties":{"k":{"const":1}},"required":["k"]},{"properties":{"k":{"const":2}},"required":["k"]}]})"),
      "");
}

TEST(GrammarSchema, HostileSchemasAreRejectedOrBounded) {
  const auto t0 = std::chrono::steady_clock::now();
  // A $ref cycle that consumes nothing is left recursion: refused.
  EXPECT_NE(
      schema_error(
          R"({"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"})")
          .find("left-recursive"),
      std::string::npos);
  EXPECT_NE(schema_error(R"({"$ref":"#"})").find("left-recursive"), std::string::npos);
  // Deep nesting of schemas.
  std::string deep = "{}";
  for (int i = 0; i < 1000; ++i) deep = R"({"type":"array","items":)" + deep + "}";
  EXPECT_NE(schema_error(deep).find("too deeply"), std::string::npos);
  // An exponential regex (the classic (a|a)*... and .*a.{n}) is cut off by the DFA state limit.
  EXPECT_NE(schema_error(R"({"type":"string","pattern":"a.{40}b"})").find("too complex"),
            std::string::npos);
  // A huge enum compiles (bounded), and a huge maxLength is refused.
  std::string e = R"({"enum":[)";
  for (int i = 0; i < 20000; ++i) e += (i ? "," : "") + std::to_string(i);
  EXPECT_EQ(schema_error(e + "]}"), "");
  EXPECT_NE(schema_error(R"({"type":"string","maxLength":100000000})").find("over"),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"type":"array","minItems":100000000})").find("over"),
            std::string::npos);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);
}

TEST(GrammarGbnf, ErrorsNameLineAndColumn) {
  auto e = parse_gbnf("root ::= \"a\" b\nb ::= ( \"x\" @");
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.message().find("line 2"), std::string::npos) << e.message();
  EXPECT_NE(parse_gbnf("root ::= x").message().find("'x' is used but never defined"),
            std::string::npos);
  EXPECT_NE(parse_gbnf("root ::= <[123]>").message().find("token references"), std::string::npos);
  EXPECT_NE(parse_gbnf("x ::= \"a\"").message().find("no 'root'"), std::string::npos);
  auto lr = parse_gbnf("root ::= root \"a\" | \"b\"");
  ASSERT_TRUE(lr.is_ok());
  EXPECT_NE(compile(*lr).message().find("left-recursive"), std::string::npos);
}

// Every token's mask bit against walking its bytes through the grammar one at a time.
void expect_masks_exact(const std::shared_ptr<const Compiled>& c, const std::string& text) {
  auto idx = llama3_index();
  auto tok = load_tokenizer(fixture("tokenizers/llama3/tokenizer.json"));
  auto rt = std::make_shared<GrammarRuntime>(c, idx);
  Matcher m(rt);
  std::vector<uint64_t> mask(size_t(idx->words));
  const auto ids = (*tok)->encode(text);
  for (size_t k = 0; k <= ids.size(); ++k) {
    m.fill_mask(mask.data());
    int64_t diff = 0, allowed = 0;
    for (int32_t t = 0; t < idx->n_vocab; ++t) {
      const bool bit = (mask[size_t(t) >> 6] >> (t & 63)) & 1;
      allowed += bit;
      diff += bit != m.allows(t);
    }
    ASSERT_EQ(diff, 0) << "at token " << k << " of " << text;
    if (k == ids.size()) {
      EXPECT_TRUE(m.complete());
      break;
    }
    ASSERT_TRUE(m.accept(ids[k])) << "token " << k;
    EXPECT_GT(allowed, 0);
  }
}

TEST(GrammarMatcher, MasksEqualTokenByTokenChecks) {
  auto c1 = schema(
      R"({"type":"object","properties":{"name":{"type":"string","maxLength":6},"id":{"type":"string","minLength":3},
     "n":{"type":"integer","minimum":-5,"maximum":120},"tags":{"type":"array","items":{"enum":["a","b\"c"]}}},"required":["name"]})");
  ASSERT_TRUE(c1.is_ok()) << c1.message();
  expect_masks_exact(
      *c1,
      R"({"name": "Zoë", "id": "a\"\nb", "n": 42, "tags": ["b\"c"], "extra": {"k": [1.5, null]}})");
  auto c2 = schema(R"({"type":"string","pattern":"^[a-z]+-[0-9]{2}$"})");
  ASSERT_TRUE(c2.is_ok());
  expect_masks_exact(*c2, R"("abc-12")");
  // A pattern with lengths: the product of both automata.
  auto c3 = schema(
      R"({"type":"array","items":{"type":"string","pattern":"^[a-z ]+$","minLength":2,"maxLength":9}})");
  ASSERT_TRUE(c3.is_ok()) << c3.message();
  expect_masks_exact(*c3, R"(["ab", "llama hut", "zz"])");
  auto tok = load_tokenizer(fixture("tokenizers/llama3/tokenizer.json"));
  for (const char* bad : {R"(["a"])", R"(["abcdefghij"])", R"(["aB"])"}) {
    Matcher m(std::make_shared<GrammarRuntime>(*c3, llama3_index()));
    bool ok = true;
    for (int32_t t : (*tok)->encode(bad)) ok = ok && m.accept(t);
    EXPECT_FALSE(ok && m.complete()) << bad;
  }
}

// Number bounds (fractional, exclusive, both signs) against comparing the parsed value, on many
// decimal strings, token by token through the Llama 3 tokenizer.
TEST(GrammarSchema, NumberBoundsAreExact) {
  auto tok = load_tokenizer(fixture("tokenizers/llama3/tokenizer.json"));
  struct Case {
    const char* schema;
    double lo, hi;
    bool lo_ex, hi_ex;
  } cases[] = {
      {R"({"type":"number","minimum":-2.5,"exclusiveMaximum":3.75})", -2.5, 3.75, false, true},
      {R"({"type":"number","exclusiveMinimum":0.05,"maximum":0.5})", 0.05, 0.5, true, false},
      {R"({"type":"number","minimum":-10.125,"maximum":-1.5})", -10.125, -1.5, false, false},
      {R"({"type":"number","exclusiveMinimum":1.25,"exclusiveMaximum":1.5})", 1.25, 1.5, true,
       true},
      {R"({"type":"number","minimum":0,"maximum":1})", 0, 1, false, false},
  };
  std::mt19937 rng(7);
  for (const Case& c : cases) {
    auto comp = schema(c.schema);
    ASSERT_TRUE(comp.is_ok()) << comp.message();
    auto rt = std::make_shared<GrammarRuntime>(*comp, llama3_index());
    std::vector<std::string> xs = {"0",       "1",          "-1",        "0.5",      "0.50",
                                   "0.05",    "0.050",      "0.0500001", "0.04999",  "1.25",
                                   "1.250",   "1.2500001",  "1.5",       "1.49999",  "-2.5",
                                   "-2.50",   "-2.5000001", "-2.4999",   "3.75",     "3.7499",
                                   "3.75001", "-10.125",    "-10.1250",  "-10.1251", "-1.5",
                                   "-1.4999", "-1.50001",   "1.0",       "0.0"};
    for (int k = 0; k < 300; ++k) {
      std::string x = (rng() % 3 == 0 ? "-" : "") + std::to_string(rng() % 12);
      if (rng() % 4) {
        x += ".";
        for (int d = 1 + int(rng() % 5); d > 0; --d) x += char('0' + rng() % 10);
      }
      xs.push_back(x);
    }
    for (const std::string& x : xs) {
      const double v = std::stod(x);
      const bool want = (c.lo_ex ? v > c.lo : v >= c.lo) && (c.hi_ex ? v < c.hi : v <= c.hi) &&
                        x != "-0" && x.rfind("-0.0", 0) != 0 && !(x[0] == '-' && v == 0);
      Matcher m(rt);
      bool ok = true;
      for (int32_t t : (*tok)->encode(x)) ok = ok && m.accept(t);
      EXPECT_EQ(ok && m.complete(), want) << c.schema << " on " << x;
    }
  }
}

TEST(GrammarMatcher, RollbackRestoresTheState) {
  auto c = schema(
      R"({"type":"object","properties":{"a":{"type":"boolean"}},"required":["a"],"additionalProperties":false})");
  ASSERT_TRUE(c.is_ok());
  auto idx = llama3_index();
  auto tok = load_tokenizer(fixture("tokenizers/llama3/tokenizer.json"));
  Matcher m(std::make_shared<GrammarRuntime>(*c, idx));
  const auto ids = (*tok)->encode(R"({"a": true})");
  std::vector<uint64_t> before(size_t(idx->words)), after(size_t(idx->words));
  ASSERT_TRUE(m.accept(ids[0]));
  m.fill_mask(before.data());
  for (size_t k = 1; k < ids.size(); ++k) ASSERT_TRUE(m.accept(ids[k]));
  EXPECT_TRUE(m.complete());
  ASSERT_TRUE(m.accept(idx->stop_ids[0]));
  EXPECT_TRUE(m.finished());
  m.rollback(ids.size());  // the stop token and all but the first
  EXPECT_FALSE(m.finished());
  EXPECT_EQ(m.consumed(), 1u);
  m.fill_mask(after.data());
  EXPECT_EQ(before, after);
  EXPECT_FALSE(m.accept(ids[0]));  // '{' again is not allowed after '{'
}

TEST(GrammarMatcher, PlainTokensAreExactlyTheStringCharacterTokens) {
  // The slices' classification against the compiled json-char rule, token by token.
  auto c = schema(R"({"type":"string"})");
  ASSERT_TRUE(c.is_ok());
  const Compiled& g = **c;
  auto idx = llama3_index();
  const int32_t start = g.rule_start[size_t(g.jchar_rule)];
  int64_t plain = 0;
  for (int32_t t = 0; t < idx->n_vocab; ++t) {
    const std::string& b = idx->bytes[size_t(t)];
    if (b.empty()) continue;
    int32_t s = start, chars = 0;
    bool ok = true;
    for (char ch : b) {
      if (ch == '\\' || ch == '"') ok = false;
      if (!ok) break;
      s = g.next(s, uint8_t(ch));
      if (s < 0) {
        ok = false;
        break;
      }
      if (g.states[size_t(s)].accept) s = start, ++chars;
    }
    const int32_t want = ok ? chars + (s != start ? 1 : 0) : -1;
    ASSERT_EQ(idx->plain_need[size_t(t)], want) << "token " << t;
    plain += want >= 0;
  }
  EXPECT_GT(plain, 100000);  // most of the Llama 3 vocabulary
}

}  // namespace
}  // namespace corral
