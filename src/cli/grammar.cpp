// corral grammar bench DIR --tokenizer MODEL_OR_TOKENIZER [--json] [--threads N]
//   MaskBench's method over DIR/*.json ({"schema": ..., "tests": [{"data", "valid"}]}): compile
//   each schema (timed), then walk each test's json.dumps text token by token, computing the
//   full mask before each token (timed).
// corral grammar check (--schema FILE | --gbnf FILE | --json-object) [--tokenizer T --text FILE]
//   Compiles (errors name the keyword and JSON pointer, or line:column); with --text, says
//   whether the grammar accepts the text token by token.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>
#include <unistd.h>

#include "cli/commands.h"
#include "core/mapped_file.h"
#include "grammar/constraint.h"
#include "template/value.h"

namespace corral::cli {
namespace {

using ojson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

struct GrammarArgs {
  std::string dir, tokenizer, schema, gbnf, text;
  bool json = false, json_object = false;
  int threads = 1;
};

double us_since(Clock::time_point t) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

struct TestResult {
  bool valid = false, accepted = false;
  int64_t tokens = 0;
  std::vector<double> mask_us;
};

struct FileResult {
  std::string id, compile_error;
  double compile_us = 0;
  std::vector<TestResult> tests;
  bool passing = false;
};

// Walks one text: mask before each token, then the end of turn.
TestResult walk(const std::shared_ptr<grammar::GrammarRuntime>& rt, const std::vector<int32_t>& ids, bool valid) {
  TestResult r;
  r.valid = valid;
  r.tokens = int64_t(ids.size());
  grammar::Matcher m(rt);
  std::vector<uint64_t> mask(size_t(rt->index().words));
  auto bit = [&](int32_t t) { return (mask[size_t(t) >> 6] >> (t & 63)) & 1; };
  for (int32_t t : ids) {
    const auto t0 = Clock::now();
    m.fill_mask(mask.data());
    r.mask_us.push_back(us_since(t0));
    if (!bit(t) || !m.accept(t)) return r;
  }
  const auto t0 = Clock::now();
  m.fill_mask(mask.data());
  r.mask_us.push_back(us_since(t0));
  bool eot = false;
  for (int32_t s : rt->index().stop_ids) eot = eot || bit(s);
  r.accepted = eot;
  return r;
}

FileResult bench_file(const std::filesystem::path& p, const Tokenizer& tok, const std::shared_ptr<const grammar::TokenIndex>& idx) {
  FileResult fr;
  fr.id = p.filename().string();
  auto text = read_text_file(p.string());
  ojson doc = text.is_ok() ? ojson::parse(*text, nullptr, false) : ojson();
  if (!doc.is_object() || !doc.contains("schema") || !doc.contains("tests") || !doc["tests"].is_array()) {
    fr.compile_error = "not a {\"schema\", \"tests\"} file";
    return fr;
  }
  const auto t0 = Clock::now();
  grammar::ConstraintSpec spec;
  spec.text = doc["schema"].dump();
  auto c = grammar::compile_spec(spec);
  std::shared_ptr<grammar::GrammarRuntime> rt;
  if (c.is_ok()) rt = std::make_shared<grammar::GrammarRuntime>(*c, idx);
  fr.compile_us = us_since(t0);
  if (!c.is_ok()) fr.compile_error = c.message();
  bool all_right = c.is_ok();
  for (auto& t : doc["tests"]) {
    const bool valid = t.value("valid", false);
    if (!rt) {
      TestResult r;
      r.valid = valid;
      fr.tests.push_back(r);
      continue;
    }
    std::string s;
    try {
      s = jinja::to_json(jinja::from_json(t.contains("data") ? t["data"] : ojson()), jinja::JsonOptions{});
    } catch (...) {
      s = t["data"].dump();
    }
    TestResult r = walk(rt, tok.encode(s, EncodeOptions{}), valid);
    all_right = all_right && r.accepted == valid;
    fr.tests.push_back(std::move(r));
  }
  fr.passing = all_right;
  return fr;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, size_t(q * double(v.size() - 1) + 0.5));
  return v[i];
}

Status run_bench(const GrammarArgs& a) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(a.dir, ec))
    if (e.path().extension() == ".json") files.push_back(e.path());
  if (ec) return make_error("grammar bench: cannot list '" + a.dir + "': " + ec.message());
  std::sort(files.begin(), files.end());
  if (files.empty()) return make_error("grammar bench: no .json files in '" + a.dir + "'");
  auto tok = load_tokenizer(a.tokenizer);
  if (!tok.is_ok()) return make_error("--tokenizer: " + tok.message());
  auto idx = grammar::token_index(**tok);
  std::vector<FileResult> results(files.size());
  std::atomic<size_t> next{0}, done{0};
  auto worker = [&] {
    for (size_t i; (i = next++) < files.size();) {
      results[i] = bench_file(files[i], **tok, idx);
      const size_t d = ++done;
      if (!a.json || isatty(2)) std::fprintf(stderr, "\r[%zu/%zu] %s", d, files.size(), files[i].filename().c_str());
    }
  };
  std::vector<std::thread> th;
  for (int t = 1; t < std::max(1, a.threads); ++t) th.emplace_back(worker);
  worker();
  for (auto& t : th) t.join();
  std::fprintf(stderr, "\n");
  int64_t passing = 0, invalid_accepted = 0, valid_rejected = 0, errors = 0;
  std::vector<double> masks, compiles;
  for (auto& r : results) {
    if (!r.compile_error.empty()) ++errors;
    else compiles.push_back(r.compile_us);
    passing += r.passing;
    for (auto& t : r.tests) {
      if (r.compile_error.empty()) {
        if (t.accepted && !t.valid) ++invalid_accepted;
        if (!t.accepted && t.valid) ++valid_rejected;
      }
      masks.insert(masks.end(), t.mask_us.begin(), t.mask_us.end());
    }
    if (a.json) {
      ojson o = {{"id", r.id}};
      if (r.compile_error.empty()) o["compile_us"] = r.compile_us;
      else o["compile_error"] = r.compile_error;
      ojson tests = ojson::array();
      for (auto& t : r.tests)
        tests.push_back({{"valid", t.valid}, {"accepted", t.accepted}, {"tokens", t.tokens}, {"mask_us", t.mask_us}});
      o["tests"] = tests;
      std::cout << o.dump() << "\n";
    }
  }
  double mean = 0;
  for (double m : masks) mean += m;
  mean = masks.empty() ? 0 : mean / double(masks.size());
  ojson s = {{"schemas", int64_t(results.size())}, {"schemas_passing", passing}, {"invalid_accepted", invalid_accepted},
             {"valid_rejected", valid_rejected}, {"compile_errors", errors}, {"masks", int64_t(masks.size())},
             {"mask_us_p50", percentile(masks, 0.5)}, {"mask_us_p99", percentile(masks, 0.99)},
             {"mask_us_mean", mean}, {"compile_us_p50", percentile(compiles, 0.5)}};
  if (a.json) {
    std::cout << s.dump() << "\n";
  } else {
    std::printf("schemas %lld, passing %lld (%.1f%%), compile errors %lld\n", (long long)results.size(),
                (long long)passing, 100.0 * double(passing) / double(results.size()), (long long)errors);
    std::printf("invalid accepted %lld, valid rejected %lld\n", (long long)invalid_accepted, (long long)valid_rejected);
    std::printf("mask: p50 %.1f us, p99 %.1f us, mean %.1f us over %zu masks; compile p50 %.1f us\n",
                percentile(masks, 0.5), percentile(masks, 0.99), mean, masks.size(), percentile(compiles, 0.5));
  }
  return Status::ok();
}

Status run_check(const GrammarArgs& a) {
  grammar::ConstraintSpec spec;
  const int given = int(!a.schema.empty()) + int(!a.gbnf.empty()) + int(a.json_object);
  if (given != 1) return make_error("give exactly one of --schema FILE, --gbnf FILE or --json-object");
  if (!a.schema.empty() || !a.gbnf.empty()) {
    auto t = read_text_file(a.schema.empty() ? a.gbnf : a.schema);
    if (!t.is_ok()) return make_error((a.schema.empty() ? "--gbnf: " : "--schema: ") + t.message());
    spec.text = *t;
    spec.kind = a.schema.empty() ? grammar::ConstraintSpec::Kind::kGbnf : grammar::ConstraintSpec::Kind::kJsonSchema;
  } else {
    spec.kind = grammar::ConstraintSpec::Kind::kJsonObject;
  }
  auto c = grammar::compile_spec(spec);
  if (!c.is_ok()) return make_error(c.message());
  ojson out = {{"ok", true}, {"rules", int64_t((*c)->rule_start.size())}, {"states", int64_t((*c)->states.size())}};
  if (!a.text.empty()) {
    if (a.tokenizer.empty()) return make_error("--text needs --tokenizer");
    auto tok = load_tokenizer(a.tokenizer);
    if (!tok.is_ok()) return make_error("--tokenizer: " + tok.message());
    auto text = read_text_file(a.text);
    if (!text.is_ok()) return make_error("--text: " + text.message());
    auto rt = std::make_shared<grammar::GrammarRuntime>(*c, grammar::token_index(**tok));
    const auto ids = (*tok)->encode(*text, EncodeOptions{});
    grammar::Matcher m(rt);
    int64_t at = -1;
    for (size_t i = 0; i < ids.size() && at < 0; ++i)
      if (!m.accept(ids[i])) at = int64_t(i);
    out["tokens"] = int64_t(ids.size());
    out["accepted"] = at < 0 && m.complete();
    if (at >= 0) out["rejected_at_token"] = at;
    else if (!m.complete()) out["incomplete"] = true;
  }
  std::cout << out.dump() << "\n";
  return Status::ok();
}

}  // namespace

Action add_grammar(CLI::App& app) {
  auto* sub = app.add_subcommand("grammar", "Structured output: check grammars and schemas, benchmark token masks");
  sub->require_subcommand(1);
  auto a = std::make_shared<GrammarArgs>();
  auto action = std::make_shared<Action>();
  auto* bench = sub->add_subcommand("bench", "MaskBench's method over DIR/*.json: compile and mask times, accuracy");
  bench->add_option("dir", a->dir, "a folder of {\"schema\", \"tests\"} files")->required();
  bench->add_option("--tokenizer", a->tokenizer, "GGUF, HF folder or tokenizer.json")->required();
  bench->add_flag("--json", a->json, "one JSON line per file, then a summary line");
  bench->add_option("--threads", a->threads, "files benchmarked in parallel (timings are per thread)")->default_val(1);
  bench->callback([a, action] { *action = [a] { return run_bench(*a); }; });
  auto* check = sub->add_subcommand("check", "Compile a schema or grammar; with --text, match a text against it");
  check->add_option("--schema", a->schema, "a JSON Schema file");
  check->add_option("--gbnf", a->gbnf, "a GBNF grammar file (llama.cpp syntax)");
  check->add_flag("--json-object", a->json_object, "any JSON object");
  check->add_option("--tokenizer", a->tokenizer, "GGUF, HF folder or tokenizer.json (for --text)");
  check->add_option("--text", a->text, "a file whose text is matched token by token");
  check->callback([a, action] { *action = [a] { return run_check(*a); }; });
  return [action] { return (*action)(); };
}

}  // namespace corral::cli
