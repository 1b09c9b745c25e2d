// Inference against the reference logits and greedy continuations in ../shared/fixtures/hf,
// the llama2.c reference output, and the same models after conversion to GGUF and quantization.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/generator.h"
#include "engine/sampler.h"
#include "format/convert.h"
#include "test_util.h"

using namespace corral;
using corral::test::fixture;
using corral::test::load_json;

namespace {

std::unique_ptr<Engine> open(const std::string& path, int64_t ctx = 256) {
  EngineOptions o;
  o.model_path = path;
  o.threads = 2;
  o.ctx_size = ctx;
  Logger quiet;
  quiet.level = LogLevel::kError;
  auto e = open_engine(o, quiet);
  EXPECT_TRUE(e.is_ok()) << e.message();
  return e.is_ok() ? std::move(e.value()) : nullptr;
}

// max|a-b| / max|b|
double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  double md = 0, mr = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    md = std::max(md, double(std::fabs(a[i] - b[i])));
    mr = std::max(mr, double(std::fabs(b[i])));
  }
  return md / mr;
}

struct RefResult {
  double rel = 0;
  bool greedy_equal = true;
  size_t greedy_agree = 0;  // leading tokens that agree
};

// Logits at every prompt position and greedy continuation (incremental decode) vs refs.json.
RefResult check_model(Engine& e, const std::string& dir, const std::string& prompt) {
  auto refs = load_json(dir + "/refs.json");
  auto& p = refs["prompts"][prompt];
  const auto ids = p["ids"].get<std::vector<int32_t>>();
  const auto ref = test::read_f32(dir + "/" + p["logits_file"].get<std::string>());
  e.kv->release(0);
  std::vector<float> logits;
  Status st = e.eval(0, ids, 0, true, &logits);
  EXPECT_TRUE(st.is_ok()) << st.message();
  EXPECT_EQ(logits.size(), ref.size());
  RefResult r;
  r.rel = rel_error(logits, ref);
  const auto want = p["greedy"].get<std::vector<int32_t>>();
  const int64_t V = e.model->hp.n_vocab;
  std::vector<float> last(logits.end() - V, logits.end());
  int64_t pos = int64_t(ids.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const int32_t next = argmax(last.data(), V);
    if (next != want[i]) {
      r.greedy_equal = false;
      break;
    }
    r.greedy_agree++;
    last.clear();
    if (i + 1 < want.size()) {
      EXPECT_TRUE(e.eval(0, {next}, pos++, false, &last).is_ok());
    }
  }
  return r;
}

const char* kModels[] = {"llama2_mha_f32", "llama31_gqa_f32", "llama32_tied_bf16",
                         "llama4_moe_f32"};

}  // namespace

class HfReference : public ::testing::TestWithParam<const char*> {};

TEST_P(HfReference, LogitsAndGreedyMatch) {
  const std::string dir = fixture(std::string("hf/") + GetParam());
  auto e = open(dir);
  ASSERT_TRUE(e);
  for (const char* prompt : {"long", "bos"}) {
    RefResult r = check_model(*e, dir, prompt);
    EXPECT_LE(r.rel, 1e-4) << prompt;
    EXPECT_TRUE(r.greedy_equal) << prompt << ": agreed on " << r.greedy_agree << " tokens";
  }
}

TEST_P(HfReference, SameAfterGgufConversion) {
  const std::string dir = fixture(std::string("hf/") + GetParam());
  const std::string out = test::tmp_path(std::string(GetParam()) + ".gguf");
  auto m = load_model(dir);
  ASSERT_TRUE(m.is_ok()) << m.message();
  ASSERT_TRUE(write_model_gguf(*m, out, {}).is_ok());
  auto e = open(out);
  ASSERT_TRUE(e);
  RefResult r = check_model(*e, dir, "long");
  EXPECT_LE(r.rel, 1e-4);
  EXPECT_TRUE(r.greedy_equal);
  std::remove(out.c_str());
}

// Quantized conversions. These tiny random models amplify weight noise about 7x (F16's
// 3e-4 rms weight error gives ~2e-3 on the logits), so the bounds are per-type noise levels
// times that gain; MoE routing flips add more. The ordering F16 < Q8_0 < Q4_0 must hold.
TEST_P(HfReference, QuantizedConversionsStayClose) {
  const std::string name = GetParam();
  const std::string dir = fixture("hf/" + name);
  const bool moe = name.find("llama4") != std::string::npos;
  auto m = load_model(dir);
  ASSERT_TRUE(m.is_ok());
  const std::pair<DType, double> types[] = {{DType::F16, 5e-3},
                                            {DType::Q8_0, moe ? 0.35 : 0.1},
                                            {DType::Q4_K, moe ? 0.35 : 0.2},
                                            {DType::Q4_0, 1.0}};
  std::map<DType, double> err;
  for (auto [t, bound] : types) {
    const std::string out = test::tmp_path(name + "_q.gguf");
    ConvertOptions co;
    co.type = t;
    ASSERT_TRUE(write_model_gguf(*m, out, co).is_ok());
    auto e = open(out);
    ASSERT_TRUE(e);
    RefResult r = check_model(*e, dir, "long");
    std::printf("[ quant    ] %-18s %-5s rel %.2e, greedy agrees on %zu tokens\n", name.c_str(),
                std::string(type_name(t)).c_str(), r.rel, r.greedy_agree);
    EXPECT_LE(r.rel, bound) << type_name(t);
    err[t] = r.rel;
    std::remove(out.c_str());
  }
  EXPECT_LT(err[DType::F16], err[DType::Q8_0]);
  EXPECT_LT(err[DType::Q8_0], err[DType::Q4_0]);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfReference, ::testing::ValuesIn(kModels));

TEST(Cli, RunGreedyIdsMatchReference) {
  for (const char* name : {"llama31_gqa_f32", "llama4_moe_f32"}) {
    const std::string dir = fixture(std::string("hf/") + name);
    auto refs = load_json(dir + "/refs.json");
    auto& p = refs["prompts"]["long"];
    std::string ids;
    for (auto& x : p["ids"]) ids += (ids.empty() ? "" : ",") + std::to_string(x.get<int>());
    auto r = test::run_corral("run -m " + dir + " --prompt-ids " + ids + " -n " +
                              std::to_string(p["greedy"].size()) + " --temp 0 --print-ids");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out), p["greedy"]) << name;
  }
}

TEST(Cli, LogitsFileMatchesReference) {
  const std::string dir = fixture("hf/llama2_mha_f32");
  auto refs = load_json(dir + "/refs.json");
  auto& p = refs["prompts"]["long"];
  std::string ids;
  for (auto& x : p["ids"]) ids += (ids.empty() ? "" : ",") + std::to_string(x.get<int>());
  const std::string out = test::tmp_path("logits.f32");
  auto r = test::run_corral("logits -m " + dir + " --prompt-ids " + ids + " --out " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_LE(rel_error(test::read_f32(out), test::read_f32(dir + "/logits_long.f32")), 1e-4);
  std::remove(out.c_str());
}

// llama2.c's run.c at temperature 0: BOS + prompt, `steps` positions in all, the prompt echoed.
TEST(Cli, Llama2cReproducesReferenceProgram) {
  const std::string bin = fixture("llama2c/aidreams260K.bin"), tok = fixture("llama2c/tok512.bin");
  auto cases = load_json(fixture("llama2c/expected.json"));
  for (auto& c : cases["cases"]) {
    const std::string prompt = c["prompt"];
    auto t = test::run_corral("tokenize --tokenizer " + tok + " --bos --json", prompt);
    ASSERT_EQ(t.status, 0);
    const size_t n_prompt = nlohmann::json::parse(t.out).size();
    const int n = c["steps"].get<int>() - int(n_prompt) + 1;
    auto r = test::run_corral("run -m " + bin + " --tokenizer " + tok + " -n " + std::to_string(n) +
                                  " --temp 0 -f /dev/stdin",
                              prompt);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(prompt + r.out, c["expected_stdout"].get<std::string>())
        << "prompt '" << prompt << "'";
  }
}

TEST(Cli, BadInputGivesOneErrorLine) {
  const std::string dir = fixture("hf/llama2_mha_f32");
  struct Case {
    std::string args;
    const char* why;
  } cases[] = {
      {"run -m " + dir + " --prompt-ids 1,2,3 -n 0", "-n 0"},
      {"run -m " + dir + " --prompt-ids 1,99999", "id outside vocab"},
      {"run -m " + dir + " -p hello", "no tokenizer"},
      {"run -m " + dir + " --prompt-ids " +
           [] {
             std::string s = "1";
             for (int i = 0; i < 300; ++i) s += ",5";
             return s;
           }(),
       "prompt longer than context"},
      {"run -m " + dir + " --prompt-ids 1 --bogus-flag", "unknown flag"},
      {"logits -m " + dir + " --prompt-ids 1,x,3 --out /dev/null", "bad id list"},
  };
  for (auto& c : cases) {
    auto r = test::run_corral(c.args);
    EXPECT_EQ(r.status, 1) << c.why;
    EXPECT_EQ(r.err.rfind("error:", 0), 0u) << c.why << ": " << r.err;
  }
}

TEST(Cli, ChatKeepsHistoryResetsAndQuits) {
  const std::string bin = fixture("llama2c/aidreams260K.bin"), tok = fixture("llama2c/tok512.bin");
  auto r = test::run_corral("chat -m " + bin + " --tokenizer " + tok + " -n 8 --seed 3",
                            "Hello there\nAnd again\n/reset\nOnce more\n/quit\n");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("(history cleared)"), std::string::npos);
  // Three answers, each ending its line, and a prompt before every input line.
  EXPECT_GE(std::count(r.out.begin(), r.out.end(), '>'), 5);
  r = test::run_corral("chat -m " + fixture("hf/llama2_mha_f32"));
  EXPECT_EQ(r.status, 1);  // no tokenizer
  EXPECT_EQ(r.err.rfind("error:", 0), 0u);
}
