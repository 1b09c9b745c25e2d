// The chat-template layer: the Jinja engine's sandbox limits, where templates come from, BOS
// exactly once, the fixture's reference renderings (made by HF), and the tool-call parsers on
// recorded outputs, whole and streamed token by token at every split point. The byte-for-byte
// comparison with Python's jinja2 is tests/template/compare.py (CTest: template_jinja2).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "template/chat.h"
#include "template/jinja.h"
#include "template/tool_calls.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace corral {
namespace {

using test::fixture;
using test::load_json;
using ojson = nlohmann::ordered_json;

Expected<std::string> render_src(const std::string& src, const std::string& conv = R"({"messages": []})",
                                 jinja::RenderLimits limits = {}) {
  auto t = jinja::parse(src, "t.jinja");
  if (!t) return t.error();
  ojson c = ojson::parse(conv);
  std::vector<std::pair<std::string, jinja::Value>> vars;
  for (auto it = c.begin(); it != c.end(); ++it) vars.emplace_back(it.key(), jinja::from_json(it.value()));
  jinja::RenderOptions o;
  o.limits = limits;
  return jinja::render(*t, vars, o);
}

TEST(Jinja, RendersWithJinja2Semantics) {
  // A few facts checked by hand against jinja2 (the broad comparison is compare.py).
  EXPECT_EQ(*render_src("{{ 7 // 2 }} {{ -7 % 3 }} {{ 1 / 2 }} {{ 3.0 }} {{ 1e-05 }} {{ [1, 'a', none] }}"),
            "3 2 0.5 3.0 1e-05 [1, 'a', None]");
  EXPECT_EQ(*render_src("  {% if true %}\n  x\n  {% endif %}\n"), "  x\n");
  EXPECT_EQ(*render_src("{% set n = 0 %}{% for i in [1, 2] %}{% set n = n + i %}{% endfor %}{{ n }}"), "0");
  EXPECT_EQ(*render_src("{{ {'a': 'é'}|tojson }} {{ 'x'|tojson(indent=2) }}"), "{\"a\": \"é\"} \"x\"");
  EXPECT_EQ(*render_src("{{ 3 + 4 * 2 - 1 }} {{ 2 ** 62 }} {{ [1, 2]|sum }}"), "10 4611686018427387904 3");
  // Past 64 bits (Python would go on with a big integer): an error, never undefined behaviour.
  for (const char* src : {"{{ 3 ** 70 }}", "{{ 9223372036854775807 + 1 }}", "{{ -9223372036854775807 - 2 }}",
                          "{{ 4611686018427387904 * 2 }}", "{{ [9223372036854775807, 1]|sum }}"}) {
    auto r = render_src(src);
    ASSERT_FALSE(r) << src;
    EXPECT_NE(r.message().find("OverflowError"), std::string::npos) << src << ": " << r.message();
  }
}

TEST(Jinja, SyntaxErrorNamesTheLine) {
  auto t = jinja::parse("line one\n{% if x %}\nno end", "model.jinja");
  ASSERT_FALSE(t);
  EXPECT_NE(t.message().find("model.jinja:"), std::string::npos) << t.message();
  EXPECT_NE(t.message().find("endif"), std::string::npos) << t.message();
  auto u = jinja::parse("a\nb\n{{ x | }}", "m.jinja");
  ASSERT_FALSE(u);
  EXPECT_NE(u.message().find("m.jinja:3:"), std::string::npos) << u.message();
}

TEST(Jinja, RaiseExceptionIsItsMessage) {
  auto r = render_src("{{ raise_exception('roles must alternate') }}");
  ASSERT_FALSE(r);
  std::string msg;
  ASSERT_TRUE(jinja::is_raised(r.error(), &msg));
  EXPECT_EQ(msg, "roles must alternate");
  auto u = render_src("{{ messages[0].content.x.y }}", R"({"messages": []})");
  ASSERT_FALSE(u);
  EXPECT_FALSE(jinja::is_raised(u.error(), nullptr));
}

// Hostile templates end with a clean error, quickly.
TEST(Jinja, HostileTemplatesAreBounded) {
  struct Case {
    const char* src;
    const char* want;
  } cases[] = {
      {"{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "nested deeper"},
      {"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "loop iterations"},
      {"{% for i in range(1000000000) %}{% endfor %}", "range()"},
      {"{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "output exceeded"},
      {"{{ 'x' * 100000000000 }}", "output exceeded"},
      {"{% set ns = namespace(x=1) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}", "nesting"},
      {"{% set ns = namespace() %}{% set ns.me = ns %}{{ ns|tojson }}", "not JSON serializable"},
      {"{{ [].append(1) }}", "unsafe"},
      {"{{ ''.__class__ }}{{ ''.__class__.__mro__() }}", "unsafe"},
  };
  jinja::RenderLimits lim;
  lim.max_steps = 1'000'000;
  for (auto& c : cases) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = render_src(c.src, R"({"messages": []})", lim);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_FALSE(r) << c.src;
    EXPECT_NE(r.message().find(c.want), std::string::npos) << c.src << " -> " << r.message();
    EXPECT_LT(s, 10.0) << c.src;
  }
  // Deep nesting in the template text itself is a parse error, not a stack overflow.
  std::string deep = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_FALSE(jinja::parse(deep, "deep.jinja"));
  std::string ifs;
  for (int k = 0; k < 3000; ++k) ifs += "{% if true %}";
  EXPECT_FALSE(jinja::parse(ifs, "ifs.jinja"));
}

// The fixture's conversations rendered by HF with the Llama 3 template: text and ids.
TEST(ChatTemplate, Llama3FixtureRenderingsMatchHf) {
  auto tok = load_tokenizer(fixture("tokenizers/llama3/tokenizer.json"));
  ASSERT_TRUE(tok) << tok.message();
  auto cf = load_chat_format((*tok)->vocab(), "");
  ASSERT_TRUE(cf) << cf.message();
  ASSERT_TRUE(cf->jinja.has_value()) << "the model's own template is used, not a built-in";
  auto j = load_json(fixture("tokenizers/llama3/chat_cases.json"));
  ASSERT_GT(j["cases"].size(), 0u);
  for (auto& c : j["cases"]) {
    ChatInput in;
    in.messages = ojson::parse(c["messages"].dump());
    in.add_generation_prompt = c["add_generation_prompt"];
    auto text = render_chat(*cf, in);
    ASSERT_TRUE(text) << text.message();
    EXPECT_EQ(*text, c["text"].get<std::string>());
    auto ids = encode_chat(**tok, *cf, in);
    ASSERT_TRUE(ids);
    EXPECT_EQ(*ids, c["ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(std::count(ids->begin(), ids->end(), 128000), 1) << "exactly one BOS";
  }
}

TEST(ChatTemplate, BosExactlyOnce) {
  auto tok = load_tokenizer(fixture("tokenizers/llama3/tokenizer.json"));
  ASSERT_TRUE(tok);
  ChatInput in;
  in.messages = ojson::parse(R"([{"role": "user", "content": "Hi"}])");
  for (const char* src : {"{{ bos_token }}{{ messages[0].content }}", "{{ messages[0].content }}",
                          "{{ bos_token }}{{ bos_token }}{{ messages[0].content }}"}) {
    auto cf = chat_format_from_text(src, "t.jinja", "<|begin_of_text|>", "<|eot_id|>");
    ASSERT_TRUE(cf);
    auto ids = encode_chat(**tok, *cf, in);
    ASSERT_TRUE(ids);
    ASSERT_FALSE(ids->empty());
    EXPECT_EQ((*ids)[0], 128000) << src;
    // A template that writes BOS twice gets what it wrote (as HF would); one that writes none
    // gets the tokenizer's one.
    EXPECT_EQ(std::count(ids->begin(), ids->end(), 128000), std::string(src).find("}}{{ bos_token") != std::string::npos ? 2 : 1) << src;
  }
}

// HF folders: tokenizer_config.json (a string or a list of named templates), chat_template.jinja
// and chat_template.json beside it; a named one by --chat-template NAME; a file by path.
TEST(ChatTemplate, SourcesAndOverrides) {
  namespace fs = std::filesystem;
  const fs::path dir = test::tmp_path("tpl_dir");
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(fixture("tokenizers/llama3/tokenizer.json"), dir / "tokenizer.json");
  auto cfg = load_json(fixture("tokenizers/llama3/tokenizer_config.json"));
  cfg["chat_template"] = nlohmann::json::array(
      {{{"name", "default"}, {"template", "DEFAULT{{ messages|length }}"}},
       {{"name", "tool_use"}, {"template", "TOOLS{{ tools|length }}"}}});
  std::ofstream(dir / "tokenizer_config.json") << cfg.dump();
  ChatInput in;
  in.messages = ojson::parse(R"([{"role": "user", "content": "Hi"}])");
  in.tools = ojson::parse(R"([{"type": "function", "function": {"name": "f"}}])");
  auto render_with = [&](const std::string& flag) -> std::string {
    auto tok = load_tokenizer(dir.string());
    if (!tok) return "load error: " + tok.message();
    auto cf = load_chat_format((*tok)->vocab(), flag);
    if (!cf) return "error: " + cf.message();
    auto t = render_chat(*cf, in);
    return t ? *t : "render error: " + t.message();
  };
  EXPECT_EQ(render_with(""), "DEFAULT1");
  EXPECT_EQ(render_with("tool_use"), "TOOLS1");
  EXPECT_EQ(render_with("llama3").rfind("<|begin_of_text|><|start_header_id|>user", 0), 0u);
  EXPECT_NE(render_with("nope").find("tool_use"), std::string::npos) << "the error lists what the model ships";
  std::ofstream(dir / "chat_template.json") << R"({"chat_template": "JSON{{ messages[0].content }}"})";
  EXPECT_EQ(render_with(""), "JSONHi");
  std::ofstream(dir / "chat_template.jinja") << "JINJA{{ messages[0].role }}\n";
  EXPECT_EQ(render_with(""), "JINJAuser");
  const fs::path file = dir / "mine.jinja";
  std::ofstream(file) << "FILE{% if add_generation_prompt %}+{% endif %}";
  EXPECT_EQ(render_with(file.string()), "FILE+");
  std::ofstream(file) << "ok\n{% for %}";
  std::string err = render_with(file.string());
  EXPECT_NE(err.find("mine.jinja:2"), std::string::npos) << err;
  fs::remove_all(dir);
}

TEST(ChatTemplate, ArgumentsStringsAreParsedBeforeRendering) {
  ojson msgs = ojson::parse(R"([{"role": "assistant", "tool_calls": [
      {"type": "function", "function": {"name": "f", "arguments": "{\"b\": 1, \"a\": [2]}"}},
      {"type": "function", "function": {"name": "g", "arguments": "not json"}}]}])");
  ojson p = prepare_messages(msgs);
  EXPECT_TRUE(p[0]["tool_calls"][0]["function"]["arguments"].is_object());
  EXPECT_EQ(p[0]["tool_calls"][0]["function"]["arguments"].dump(), R"({"b":1,"a":[2]})");  // order kept
  EXPECT_EQ(p[0]["tool_calls"][1]["function"]["arguments"], "not json");
}

// ---- tool calls ----

struct Recorded {
  std::string name, text;
  ToolFormat format;
  nlohmann::json content, calls;
};

std::vector<Recorded> recorded_outputs() {
  const std::string dir = std::string(CORRAL_SOURCE_DIR) + "/tests/template/outputs/";
  auto exp = load_json(dir + "expected.json");
  std::vector<Recorded> out;
  for (auto it = exp.begin(); it != exp.end(); ++it) {
    std::ifstream f(dir + it.key() + ".txt", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    out.push_back({it.key(), text, *tool_format_by_name(it.value()["format"]), it.value()["content"],
                   it.value()["tool_calls"]});
  }
  return out;
}

std::vector<ToolSpec> recorded_tools() {
  const std::string dir = std::string(CORRAL_SOURCE_DIR) + "/tests/template/outputs/";
  std::ifstream f(dir + "tools.json");
  return tool_specs(ojson::parse(f));
}

nlohmann::json calls_json(const std::vector<ToolCall>& calls) {
  nlohmann::json a = nlohmann::json::array();
  for (auto& c : calls) a.push_back({{"name", c.name}, {"arguments", c.arguments}});
  return a;
}

TEST(ToolCalls, RecordedOutputsParse) {
  auto cases = recorded_outputs();
  ASSERT_GT(cases.size(), 30u);
  for (auto& c : cases) {
    ParsedOutput p = parse_tool_calls(c.format, c.text, recorded_tools());
    EXPECT_EQ(p.content ? nlohmann::json(*p.content) : nlohmann::json(nullptr), c.content) << c.name;
    EXPECT_EQ(calls_json(p.calls), c.calls) << c.name;
    // The arguments are JSON objects as text.
    for (auto& call : p.calls) EXPECT_TRUE(nlohmann::json::parse(call.arguments).is_object()) << c.name;
  }
}

// Streamed: every split into two pieces, and the Llama 3 tokenizer's own pieces fed one by one
// (special tokens written out): the deltas concatenate to the non-streamed message, and no call
// text ever leaks into content.
TEST(ToolCalls, StreamedEqualsWholeAtEverySplit) {
  auto tools = recorded_tools();
  auto tok = load_tokenizer(fixture("tokenizers/llama3/tokenizer.json"));
  ASSERT_TRUE(tok);
  for (auto& c : recorded_outputs()) {
    ParsedOutput whole = parse_tool_calls(c.format, c.text, tools);
    auto check = [&](const std::vector<std::string>& pieces, const std::string& how) {
      ToolCallStream s(c.format, tools);
      std::string content;
      for (auto& p : pieces) {
        content += s.feed(p);
        if (!whole.calls.empty()) {
          EXPECT_EQ(whole.content.value_or("").rfind(content, 0), 0u)
              << c.name << " " << how << ": content released is not a prefix: " << content;
        }
      }
      ParsedOutput rest = s.finish(false);
      if (rest.content) content += *rest.content;
      EXPECT_EQ(content, whole.content.value_or("")) << c.name << " " << how;
      EXPECT_EQ(calls_json(rest.calls), calls_json(whole.calls)) << c.name << " " << how;
    };
    for (size_t k = 0; k <= c.text.size(); ++k) check({c.text.substr(0, k), c.text.substr(k)}, "split " + std::to_string(k));
    EncodeOptions eo;
    eo.parse_special = true;
    StreamDecoder dec(**tok, true);
    std::vector<std::string> pieces;
    for (int32_t id : (*tok)->encode(c.text, eo)) pieces.push_back(dec.feed(id));
    pieces.push_back(dec.flush());
    std::string joined;
    for (auto& p : pieces) joined += p;
    ASSERT_EQ(joined, c.text) << c.name << ": the tokenizer round trip";
    check(pieces, "token by token");
  }
}

// The CLI as scripts call it: each of --format, --template and -m, and one JSON line out.
TEST(ToolCalls, CliPrintsTheAssistantMessage) {
  const std::string dir = std::string(CORRAL_SOURCE_DIR) + "/tests/template/outputs/";
  const std::string tpl = test::tmp_path("tc.jinja");
  std::ofstream(tpl) << "{{ '<|start_header_id|>' }}{{ '<|python_tag|>' }}";
  for (const std::string src : {std::string("--format llama3"), "--template " + tpl,
                                "-m " + fixture("tokenizers/llama3/tokenizer.json")}) {
    auto r = test::run_corral("template tool-calls " + src + " --tools " + dir + "tools.json --text " + dir +
                              "l31_semicolons.txt");
    ASSERT_EQ(r.status, 0) << src << ": " << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_TRUE(j["content"].is_null()) << src;
    ASSERT_EQ(j["tool_calls"].size(), 2u) << src;
    EXPECT_EQ(j["tool_calls"][0]["type"], "function");
    EXPECT_EQ(j["tool_calls"][0]["function"]["name"], "get_weather");
    EXPECT_EQ(j["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Rome\"}");
    EXPECT_EQ(j["tool_calls"][1]["function"]["name"], "get_time");
  }
  auto plain = test::run_corral("template tool-calls --format hermes --tools " + dir + "tools.json --text " + dir +
                                "plain_text.txt");
  ASSERT_EQ(plain.status, 0);
  EXPECT_EQ(nlohmann::json::parse(plain.out)["content"], "The weather in Rome is sunny.");
  auto bad = test::run_corral("template tool-calls --format nope --text " + dir + "plain_text.txt");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("error: --format"), std::string::npos) << bad.err;
}

TEST(ToolCalls, TruncatedOutputIsNeverACall) {
  auto tools = recorded_tools();
  ToolCallStream s(ToolFormat::kLlama3, tools);
  const std::string text = R"({"name": "get_weather", "parameters": {"city": "Rome"}})";
  EXPECT_EQ(s.feed(text), "");
  ParsedOutput p = s.finish(true);  // max_tokens stopped it
  EXPECT_TRUE(p.calls.empty());
  EXPECT_EQ(p.content.value_or(""), text);
}

// Llama 3.1's built-in tool calls end with <|eom_id|>, Llama 4's with <|eom|>: each ends the turn.
TEST(ToolCalls, EndOfMessageEndsTheTurn) {
  // The fixture is Llama 3.0's tokenizer (128008 is still reserved there): Llama 3.1's and 4's
  // special tokens by name.
  Vocab v;
  for (const char* t : {"<|begin_of_text|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>", "<|eom|>", "<|eot|>"}) {
    v.token_to_id.emplace(t, v.n_tokens());
    v.tokens.push_back(t);
  }
  auto stops = v.stop_ids();
  for (const char* t : {"<|eot_id|>", "<|eom_id|>", "<|eom|>", "<|eot|>"})
    EXPECT_NE(std::find(stops.begin(), stops.end(), v.token_to_id.at(t)), stops.end()) << t;
  EXPECT_EQ(std::find(stops.begin(), stops.end(), v.token_to_id.at("<|python_tag|>")), stops.end());
}

TEST(ToolCalls, FormatDetectedFromTemplate) {
  auto f = [](const std::string& src) {
    auto cf = chat_format_from_text(src, "t", "", "");
    return cf ? cf->tools : ToolFormat::kNone;
  };
  EXPECT_EQ(f("{{ '<|start_header_id|>ipython<|end_header_id|>' }}"), ToolFormat::kLlama3);
  EXPECT_EQ(f("{{ '<|python_tag|>' }}"), ToolFormat::kLlama3);
  EXPECT_EQ(f("{{ '<|header_start|>' }}{{ '<|python_start|>' }}"), ToolFormat::kLlama4);
  EXPECT_EQ(f("{{ '<|im_start|>' }}<tool_call>"), ToolFormat::kHermes);
  EXPECT_EQ(f("plain"), ToolFormat::kNone);
}

}  // namespace
}  // namespace corral
