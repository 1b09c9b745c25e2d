// corral bench-serve: a load generator over the OpenAI API. Streams /v1/completions from
// --concurrency clients at once (prompts of exactly --prompt-tokens ids, each one different so
// no prefix is shared; ignore_eos so every answer has --max-tokens tokens) and reports aggregate
// generated tok/s, requests/s, time to first token and inter-token latency.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "cli/commands.h"

namespace corral::cli {

namespace {

using json = nlohmann::json;

struct BenchServeArgs {
  std::string url;
  int64_t concurrency = 16, requests = 64, prompt_tokens = 128, max_tokens = 64;
  std::string api_key, model;
  bool json_out = false;
};

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double idx = p / 100.0 * double(v.size() - 1);
  const size_t lo = size_t(idx), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - double(lo));
}

struct Split {
  std::string host;
  int port = 80;
};

Expected<Split> split_url(const std::string& url) {
  std::string u = url;
  if (u.rfind("http://", 0) == 0)
    u = u.substr(7);
  else if (u.find("://") != std::string::npos)
    return make_error(url + ": only http:// URLs are supported");
  while (!u.empty() && u.back() == '/') u.pop_back();
  if (u.size() >= 3 && u.compare(u.size() - 3, 3, "/v1") == 0) u.resize(u.size() - 3);
  if (u.find('/') != std::string::npos)
    return make_error(url + ": give the server's base URL (http://HOST:PORT)");
  Split s;
  const size_t c = u.rfind(':');
  s.host = c == std::string::npos ? u : u.substr(0, c);
  if (c != std::string::npos) s.port = std::atoi(u.c_str() + c + 1);
  if (s.host.empty() || s.port <= 0 || s.port > 65535)
    return make_error(url + ": cannot read host and port");
  return s;
}

Status bench_serve(BenchServeArgs& a) {
  if (a.concurrency < 1 || a.requests < 1 || a.prompt_tokens < 1 || a.max_tokens < 1)
    return make_error(
        "bench-serve: --concurrency, --requests, --prompt-tokens and --max-tokens must be >= 1");
  CORRAL_ASSIGN_OR_RETURN(Split where, split_url(a.url));
  httplib::Headers hdr;
  if (!a.api_key.empty()) hdr.emplace("Authorization", "Bearer " + a.api_key);
  httplib::Client probe(where.host, where.port);
  probe.set_read_timeout(60, 0);
  auto models = probe.Get("/v1/models", hdr);
  if (!models || models->status != 200)
    return make_error(a.url + ": GET /v1/models failed (" +
                      (models ? "status " + std::to_string(models->status) + ": " + models->body
                              : httplib::to_string(models.error())) +
                      ")");
  json mj = json::parse(models->body, nullptr, false);
  if (a.model.empty()) {
    if (mj.is_discarded() || !mj.contains("data") || mj["data"].empty())
      return make_error(a.url + ": /v1/models lists no model");
    a.model = mj["data"][0]["id"];
  }
  // Prompts of exactly prompt_tokens ids: tokenize a long text once (server's own tokenizer),
  // then give every request a different rotation of it.
  std::string text;
  const char* words[] = {"the",   "river",   "quiet", "engine", "of",    "morning",
                         "light", "carries", "a",     "small",  "boat",  "past",
                         "green", "hills",   "and",   "old",    "stone", "bridges"};
  std::mt19937 rng(1234);
  for (int i = 0; i < int(a.prompt_tokens) * 2 + 64; ++i)
    text += std::string(words[rng() % 18]) + " ";
  // --model a,b,c: request r goes to model r mod 3 (e.g. several LoRA adapters over one base).
  std::vector<std::string> model_ids;
  for (size_t p0 = 0; p0 <= a.model.size();) {
    size_t q = a.model.find(',', p0);
    if (q == std::string::npos) q = a.model.size();
    if (q > p0) model_ids.push_back(a.model.substr(p0, q - p0));
    p0 = q + 1;
  }
  if (model_ids.empty()) return make_error("--model: no model id");
  std::vector<int64_t> ids;
  auto tk = probe.Post("/tokenize", hdr,
                       json{{"model", model_ids[0]}, {"prompt", text}, {"content", text}}.dump(),
                       "application/json");
  if (tk && tk->status == 200) {
    json t = json::parse(tk->body, nullptr, false);
    if (!t.is_discarded() && t.contains("tokens")) ids = t["tokens"].get<std::vector<int64_t>>();
  }
  if (int64_t(ids.size()) < a.prompt_tokens + 1)
    return make_error(a.url + ": POST /tokenize did not give enough tokens to build prompts");
  std::atomic<int64_t> next{0};
  std::mutex mu;
  std::vector<double> ttft, itl, latency;
  int64_t gen_tokens = 0, failed = 0;
  std::string first_error;
  const double t0 = now();
  auto worker = [&] {
    httplib::Client cli(where.host, where.port);
    cli.set_read_timeout(600, 0);
    cli.set_keep_alive(false);  // a fresh connection per request: no stale keep-alive reads
    for (int64_t r; (r = next.fetch_add(1)) < a.requests;) {
      std::vector<int64_t> p;
      const size_t off = size_t(r * 7) % (ids.size() - size_t(a.prompt_tokens));
      for (size_t i = p.size(); i < size_t(a.prompt_tokens); ++i)
        p.push_back(ids[(off + i) % ids.size()]);
      p[p.size() - 1] = ids[size_t(r) % ids.size()];  // every prompt differs somewhere
      json body = {
          {"model", model_ids[size_t(r) % model_ids.size()]},  {"prompt", p},    {"max_tokens", a.max_tokens},
          {"temperature", 0},  {"stream", true}, {"stream_options", {{"include_usage", true}}},
          {"ignore_eos", true}};
      const double start = now();
      double first = 0, last = 0;
      int64_t chunks = 0, usage_tokens = -1;
      bool done = false;
      std::vector<double> gaps;
      std::string buf;
      httplib::Request req;
      req.method = "POST";
      req.path = "/v1/completions";
      req.headers = hdr;
      req.set_header("Content-Type", "application/json");
      req.body = body.dump();
      req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
        buf.append(d, n);
        for (size_t e; (e = buf.find("\n\n")) != std::string::npos;) {
          std::string ev = buf.substr(0, e);
          buf.erase(0, e + 2);
          if (ev.rfind("data: ", 0) != 0) continue;
          ev = ev.substr(6);
          if (ev == "[DONE]") {
            done = true;
            continue;
          }
          json j = json::parse(ev, nullptr, false);
          if (j.is_discarded()) continue;
          if (j.contains("usage") && j["usage"].is_object())
            usage_tokens = j["usage"]["completion_tokens"];
          if (j.contains("choices") && !j["choices"].empty() && j["choices"][0].contains("text") &&
              !j["choices"][0]["text"].get<std::string>().empty()) {
            const double t = now();
            if (chunks == 0)
              first = t;
            else
              gaps.push_back(t - last);
            last = t;
            ++chunks;
          }
        }
        return true;
      };
      auto rr = cli.send(req);
      std::lock_guard<std::mutex> lk(mu);
      const bool had_usage = usage_tokens >= 0;
      if (!had_usage) usage_tokens = chunks;  // servers that send no usage chunk
      // A stream that ends properly is a success even if no chunk carried text (a random model
      // may emit only tokens whose bytes never complete a character); its usage counts.
      if (!rr || rr->status != 200 || (chunks == 0 && !(done && had_usage))) {
        ++failed;
        if (first_error.empty())
          first_error = !rr ? httplib::to_string(rr.error())
                        : rr->status != 200
                            ? "status " + std::to_string(rr->status) + ": " + rr->body
                            : "the stream ended with no text and no usage";
        continue;
      }
      gen_tokens += usage_tokens;
      if (first > 0) ttft.push_back(first - start);
      itl.insert(itl.end(), gaps.begin(), gaps.end());
      latency.push_back(now() - start);
    }
  };
  std::vector<std::thread> ts;
  for (int64_t i = 0; i < a.concurrency; ++i) ts.emplace_back(worker);
  for (auto& t : ts) t.join();
  const double wall = now() - t0;
  const int64_t ok = a.requests - failed;
  json out = {{"url", a.url},
              {"model", a.model},
              {"concurrency", a.concurrency},
              {"requests", a.requests},
              {"failed", failed},
              {"prompt_tokens", a.prompt_tokens},
              {"max_tokens", a.max_tokens},
              {"seconds", wall},
              {"generated_tokens", gen_tokens},
              {"generated_tok_s", double(gen_tokens) / wall},
              {"requests_s", double(ok) / wall},
              {"ttft_p50_s", pct(ttft, 50)},
              {"ttft_p99_s", pct(ttft, 99)},
              {"itl_p50_s", pct(itl, 50)},
              {"itl_p99_s", pct(itl, 99)},
              {"latency_p50_s", pct(latency, 50)}};
  if (a.json_out) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf(
        "bench-serve %s  model %s  concurrency %lld  requests %lld (failed %lld)  prompt %lld  "
        "max_tokens %lld\n",
        a.url.c_str(), a.model.c_str(), (long long)a.concurrency, (long long)a.requests,
        (long long)failed, (long long)a.prompt_tokens, (long long)a.max_tokens);
    std::printf("  generated: %lld tokens in %.2f s = %.2f tok/s; %.3f requests/s\n",
                (long long)gen_tokens, wall, double(gen_tokens) / wall, double(ok) / wall);
    std::printf("  time to first token: p50 %.3f s  p99 %.3f s\n", pct(ttft, 50), pct(ttft, 99));
    std::printf("  inter-token latency: p50 %.4f s  p99 %.4f s\n", pct(itl, 50), pct(itl, 99));
  }
  if (failed > 0)
    return make_error("bench-serve: " + std::to_string(failed) +
                      " requests failed; first: " + first_error);
  return Status::ok();
}

}  // namespace

Action add_bench_serve(CLI::App& app) {
  auto* sub = app.add_subcommand("bench-serve",
                                 "Load-test an OpenAI-compatible server (streaming completions)");
  auto a = std::make_shared<BenchServeArgs>();
  sub->add_option("url", a->url, "server base URL, e.g. http://127.0.0.1:8080")->required();
  sub->add_option("--concurrency", a->concurrency, "clients at once (default 16)");
  sub->add_option("--requests", a->requests, "requests in all (default 64)");
  sub->add_option("--prompt-tokens", a->prompt_tokens, "prompt length in tokens (default 128)");
  sub->add_option("--max-tokens", a->max_tokens, "tokens per answer (default 64)");
  sub->add_option("--api-key", a->api_key, "bearer key");
  sub->add_option("--model", a->model, "model id, or ids separated by commas taken in turn (default: the first listed)");
  sub->add_flag("--json", a->json_out, "one JSON object instead of the table");
  return [a] { return bench_serve(*a); };
}

}  // namespace corral::cli
