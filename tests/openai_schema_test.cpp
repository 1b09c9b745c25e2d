// Request-body validation on its own (the server answers these with 400 before anything runs),
// including inputs the fuzzer found.
#include <gtest/gtest.h>

#include "server/openai.h"

using namespace corral;
using nlohmann::json;

namespace {

std::optional<ApiError> parse(const std::string& body, bool chat, GenRequest* g) {
  json j;
  if (auto e = parse_json_body(body, &j)) return e;
  return parse_gen_request(j, chat, g);
}

TEST(OpenAiSchema, IntegersBeyond64BitsAreRejectedNotCast) {
  GenRequest g;
  // Found by openai_request_fuzz: a double out of int64 range used to be cast (UB).
  auto e =
      parse(R"({"messages":[{"role":"user","content":"x"}],"max_tokens":47222222222122222222})",
            true, &g);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400);
  EXPECT_EQ(e->param, "max_tokens");
  for (const char* v : {"1e300", "-1e300", "18446744073709551615", "9.3e18", "2.5"}) {
    GenRequest h;
    auto f = parse(std::string(R"({"prompt":"x","seed":)") + v + "}", false, &h);
    ASSERT_TRUE(f) << v;
    EXPECT_EQ(f->param, "seed") << v;
  }
  GenRequest ok;
  EXPECT_FALSE(
      parse(R"({"prompt":"x","max_tokens":12.0,"seed":-9000000000000000000})", false, &ok));
  EXPECT_EQ(ok.max_tokens.value(), 12);
  EXPECT_EQ(ok.seed.value(), -9000000000000000000LL);
}

TEST(OpenAiSchema, FieldsAndTheirErrors) {
  GenRequest g;
  EXPECT_FALSE(parse(
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"stop":"x","n":2,"logprobs":true,"top_logprobs":3,"stream":true,"stream_options":{"include_usage":true}})",
      true, &g));
  EXPECT_EQ(g.messages.size(), 2u);
  EXPECT_EQ(g.messages[1].content, "ab");
  EXPECT_EQ(g.stop, std::vector<std::string>{"x"});
  EXPECT_TRUE(g.include_usage);
  struct Case {
    const char* body;
    bool chat;
    const char* param;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"messages":[]})", true, "messages"},
           {R"({"messages":[{"role":"user"}]})", true, "messages[0].content"},
           {R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", true,
            "messages[0].content[0].type"},
           {R"({"prompt":"x","top_logprobs":2})", false, ""},
           {R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})", true,
            "top_logprobs"},
           {R"({"prompt":"x","stream_options":{"include_usage":true}})", false, "stream_options"},
           {R"({"prompt":"x","temperature":3})", false, "temperature"},
           {R"({"prompt":"x","stop":[""]})", false, "stop"},
           {R"({"prompt":[]})", false, "prompt"},
           {R"({"prompt":[[1,2],"a"]})", false, "prompt"},
           {R"({"prompt":"x","n":17})", false, "n"}}) {
    GenRequest h;
    auto e = parse(c.body, c.chat, &h);
    if (std::string(c.param).empty()) {  // unknown fields are ignored for completions
      EXPECT_FALSE(e) << c.body;
      continue;
    }
    ASSERT_TRUE(e) << c.body;
    EXPECT_EQ(e->status, 400) << c.body;
    EXPECT_EQ(e->param, c.param) << c.body;
  }
  GenRequest h;
  auto bad = parse("{\"prompt\": ", false, &h);
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->code, "invalid_json");
  EXPECT_TRUE(bad->body()["error"].contains("param"));
}

}  // namespace
