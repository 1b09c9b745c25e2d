// Tokenizers against the reference ids in ../shared/fixtures (HF tokenizers, sentencepiece,
// llama.cpp's own test vectors), plus round trips, chat templates and streaming decode.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "template/builtin_chat.h"

using namespace corral;
using corral::test::fixture;
using corral::test::load_json;

namespace {

const Tokenizer& tok(const std::string& path) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& t = cache[path];
  if (!t) {
    auto r = load_tokenizer(path);
    EXPECT_TRUE(r.is_ok()) << r.message();
    t = std::move(r.value());
  }
  return *t;
}

// HF `tokenizers` always splits out added special tokens (even with add_special_tokens=False);
// sentencepiece never does. parse_special reproduces each reference's behaviour.
void check_cases(const std::string& tokenizer, const std::string& cases, bool parse_special) {
  const Tokenizer& t = tok(fixture(tokenizer));
  auto j = load_json(fixture(cases));
  int n = 0;
  for (auto& c : j["cases"]) {
    const std::string text = c["text"];
    EncodeOptions eo;
    eo.parse_special = parse_special;
    const auto ids = t.encode(text, eo);
    const std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(ids, want) << "text: '" << text << "'";
    EXPECT_EQ(t.decode(ids), text) << "round trip of '" << text << "'";
    ++n;
  }
  EXPECT_GT(n, 10);
}

}  // namespace

TEST(Tokenizer, Llama3CasesMatchHF) {
  check_cases("tokenizers/llama3/tokenizer.json", "tokenizers/llama3/cases.json", true);
}

TEST(Tokenizer, Llama2CasesMatchSentencePiece) {
  check_cases("tokenizers/llama2/tokenizer.model", "tokenizers/llama2/cases.json", false);
}

TEST(Tokenizer, LlamaCppSpmVocabVectors) {
  const Tokenizer& t = tok(fixture("llamacpp-vocab/ggml-vocab-llama-spm.gguf"));
  std::ifstream fi(fixture("llamacpp-vocab/ggml-vocab-llama-spm.gguf.inp"));
  std::string inp((std::istreambuf_iterator<char>(fi)), {});
  std::ifstream fo(fixture("llamacpp-vocab/ggml-vocab-llama-spm.gguf.out"));
  std::vector<std::string> texts;
  const std::string sep = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0;;) {
    size_t e = inp.find(sep, pos);
    if (e == std::string::npos) break;
    texts.push_back(inp.substr(pos, e - pos));
    pos = e + sep.size();
  }
  std::string line;
  size_t k = 0;
  while (std::getline(fo, line) && k < texts.size()) {
    std::vector<int32_t> want;
    std::istringstream ss(line);
    for (int32_t x; ss >> x;) want.push_back(x);
    EXPECT_EQ(t.encode(texts[k]), want) << "case " << k << ": '" << texts[k] << "'";
    ++k;
  }
  EXPECT_EQ(k, texts.size());
  EXPECT_GT(k, 20u);
}

TEST(Tokenizer, Llama3ChatTemplateMatchesReference) {
  const Tokenizer& t = tok(fixture("tokenizers/llama3/tokenizer.json"));
  auto j = load_json(fixture("tokenizers/llama3/chat_cases.json"));
  auto detected = chat_template_detect(t.vocab().chat_template);
  ASSERT_TRUE(detected.has_value());
  EXPECT_EQ(*detected, ChatTemplate::kLlama3);
  for (auto& c : j["cases"]) {
    std::vector<ChatMessage> msgs;
    for (auto& m : c["messages"]) msgs.push_back({m["role"], m["content"]});
    const std::string text =
        chat_render(*detected, msgs, c["add_generation_prompt"], "<|begin_of_text|>");
    EXPECT_EQ(text, c["text"].get<std::string>());
    EncodeOptions eo;
    eo.parse_special = true;
    EXPECT_EQ(t.encode(text, eo), c["ids"].get<std::vector<int32_t>>());
  }
}

TEST(Tokenizer, SpecialTokensOnlyWhenAsked) {
  const Tokenizer& t = tok(fixture("tokenizers/llama3/tokenizer.json"));
  EncodeOptions eo;
  eo.parse_special = true;
  EXPECT_EQ(t.encode("<|eot_id|>", eo), std::vector<int32_t>{128009});
  auto plain = t.encode("<|eot_id|>");
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(t.decode(plain), "<|eot_id|>");
}

TEST(Tokenizer, Llama2cTokenizerBin) {
  const Tokenizer& t = tok(fixture("llama2c/tok512.bin"));
  auto ids = t.encode("Once upon a time");
  EXPECT_FALSE(ids.empty());
  EXPECT_EQ(t.decode(ids), "Once upon a time");
}

TEST(Tokenizer, InvalidUtf8IsKeptAsBytes) {
  const std::string bad = std::string("ab\xff\xfe") + "c\xc3" + "d\xe2\x82";
  for (const char* p : {"tokenizers/llama3/tokenizer.json", "tokenizers/llama2/tokenizer.model"}) {
    const Tokenizer& t = tok(fixture(p));
    auto ids = t.encode(bad);
    EXPECT_EQ(t.decode(ids), bad) << p;
  }
}

TEST(Tokenizer, LongRepeatedInputIsFast) {
  const std::string big(1 << 20, 'a');
  std::string word;
  for (int i = 0; i < (1 << 20) / 8; ++i) word += "abcdefgh";
  for (const char* p : {"tokenizers/llama3/tokenizer.json", "tokenizers/llama2/tokenizer.model"}) {
    const Tokenizer& t = tok(fixture(p));
    for (const std::string* s : std::vector<const std::string*>{&big, &word}) {
      auto t0 = std::chrono::steady_clock::now();
      auto ids = t.encode(*s);
      const double sec =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      EXPECT_EQ(t.decode(ids), *s);
      // A quadratic merge loop takes minutes here; linearithmic takes well under a second.
      EXPECT_LT(sec, 20.0) << p;
    }
  }
}

TEST(Tokenizer, StreamDecoderHoldsPartialCharacters) {
  const Tokenizer& t = tok(fixture("tokenizers/llama3/tokenizer.json"));
  const std::string text = "héllo 世界 🦙 done";
  auto ids = t.encode(text);
  StreamDecoder d(t);
  std::string out;
  for (int32_t id : ids) {
    std::string piece = d.feed(id);
    EXPECT_EQ(utf8_complete_prefix(piece), piece.size());
    out += piece;
  }
  out += d.flush();
  EXPECT_EQ(out, text);
}

TEST(Tokenizer, Utf8CompletePrefix) {
  EXPECT_EQ(utf8_complete_prefix("ab"), 2u);
  EXPECT_EQ(utf8_complete_prefix("a\xe4\xb8"), 1u);
  EXPECT_EQ(utf8_complete_prefix("a\xe4\xb8\x96"), 4u);
  EXPECT_EQ(utf8_complete_prefix("\xf0\x9f\xa6"), 0u);
}

TEST(Tokenizer, CliEncodeDecode) {
  auto r = test::run_corral("tokenize --tokenizer " + fixture("tokenizers/llama3/tokenizer.json") +
                            " --text 'Hello world' --bos --json");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "[128000, 9906, 1917]\n");
  r = test::run_corral(
      "tokenize --tokenizer " + fixture("tokenizers/llama3/tokenizer.json") + " --json",
      "Hello world");
  EXPECT_EQ(r.out, "[9906, 1917]\n");
  r = test::run_corral("tokenize --decode --tokenizer " +
                       fixture("tokenizers/llama3/tokenizer.json") + " --ids 9906,1917");
  EXPECT_EQ(r.out, "Hello world");
  r = test::run_corral("tokenize --decode --tokenizer " +
                       fixture("tokenizers/llama3/tokenizer.json") + " --ids 999999");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err.rfind("error:", 0), 0u);
}
