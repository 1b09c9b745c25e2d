// corral bench -m MODEL [-p 512] [-n 128] [-t THREADS] [-r REPS] [--json], like llama-bench:
// pp = prompt tokens per second (one batch), tg = generated tokens per second (one at a time),
// each as mean ± stddev over the repetitions, plus load time and peak RSS.
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "backend/cpu/kernels.h"
#include "cli/engine_flags.h"

namespace corral::cli {

namespace {

struct BenchArgs {
  EngineFlags ef;
  int64_t p = 512, n = 128, reps = 5;
  bool json = false;
};

struct Stat {
  double mean = 0, sd = 0;
};

Stat stats(const std::vector<double>& v) {
  Stat s;
  for (double x : v) s.mean += x;
  s.mean /= double(v.size());
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / double(v.size() - 1)) : 0;
  return s;
}

double peak_rss_mib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

Status run_bench(BenchArgs& a) {
  if (a.p < 0 || a.n < 0 || a.reps < 1) return make_error("bench: -p, -n must be >= 0 and -r >= 1");
  if (a.ef.opts.ctx_size <= 0) a.ef.opts.ctx_size = std::max<int64_t>(a.p, a.n) + 16;
  Logger log;
  CORRAL_ASSIGN_OR_RETURN(auto e, open_from_flags(a.ef, log));
  const int64_t V = e->model->hp.n_vocab;
  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> tokd(0, int32_t(V - 1));
  std::vector<double> pp, tg;
  std::vector<float> logits;
  // One warm-up pass (page-in of the mmapped weights, thread start-up).
  {
    std::vector<int32_t> w(size_t(std::min<int64_t>(a.p > 0 ? a.p : 1, 16)));
    for (auto& t : w) t = tokd(rng);
    CORRAL_RETURN_IF_ERROR(e->eval(0, w, 0, false, &logits));
    e->kv->release(0);
  }
  for (int64_t r = 0; r < a.reps; ++r) {
    if (a.p > 0) {
      std::vector<int32_t> ids(static_cast<size_t>(a.p));
      for (auto& t : ids) t = tokd(rng);
      logits.clear();
      const auto t0 = std::chrono::steady_clock::now();
      CORRAL_RETURN_IF_ERROR(e->eval(0, ids, 0, false, &logits));
      pp.push_back(double(a.p) / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      e->kv->release(0);
    }
    if (a.n > 0) {
      int32_t tok = tokd(rng);
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < a.n; ++i) {
        logits.clear();
        CORRAL_RETURN_IF_ERROR(e->eval(0, {tok}, i, false, &logits));
        tok = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      }
      tg.push_back(double(a.n) / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      e->kv->release(0);
    }
  }
  const Stat sp = pp.empty() ? Stat{} : stats(pp), st = tg.empty() ? Stat{} : stats(tg);
  size_t weight_bytes = 0;
  for (auto& t : e->model->file.tensors) weight_bytes += t.nbytes;
  if (a.json) {
    nlohmann::json j = {{"model", a.ef.opts.model_path}, {"threads", e->ctx->pool->size()},
                        {"isa", kernels_isa_name()},
                        {"n_prompt", a.p}, {"n_gen", a.n}, {"reps", a.reps},
                        {"pp_tok_s", sp.mean}, {"pp_tok_s_sd", sp.sd}, {"tg_tok_s", st.mean}, {"tg_tok_s_sd", st.sd},
                        {"load_s", e->load_seconds}, {"peak_rss_mib", peak_rss_mib()},
                        {"model_bytes", weight_bytes}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("| model | size | threads | isa | test | t/s |\n|---|---|---|---|---|---|\n");
    const std::string name = e->model->file.meta.get_str("general.name").value_or(a.ef.opts.model_path);
    if (a.p > 0)
      std::printf("| %s | %.2f GiB | %d | %s | pp%lld | %.2f ± %.2f |\n", name.c_str(), double(weight_bytes) / (1 << 30),
                  e->ctx->pool->size(), kernels_isa_name(), (long long)a.p, sp.mean, sp.sd);
    if (a.n > 0)
      std::printf("| %s | %.2f GiB | %d | %s | tg%lld | %.2f ± %.2f |\n", name.c_str(), double(weight_bytes) / (1 << 30),
                  e->ctx->pool->size(), kernels_isa_name(), (long long)a.n, st.mean, st.sd);
    std::printf("load %.3f s, peak RSS %.1f MiB\n", e->load_seconds, peak_rss_mib());
  }
  return Status::ok();
}

}  // namespace

Action add_bench(CLI::App& app) {
  auto* sub = app.add_subcommand("bench", "Measure prompt (pp) and generation (tg) speed");
  auto a = std::make_shared<BenchArgs>();
  add_engine_flags(sub, a->ef);
  sub->add_option("-p,--n-prompt", a->p, "prompt tokens (default 512)");
  sub->add_option("-n,--n-gen", a->n, "generated tokens (default 128)");
  sub->add_option("-r,--reps", a->reps, "repetitions (default 5)");
  sub->add_flag("--json", a->json, "JSON output");
  return [a] { return run_bench(*a); };
}

}  // namespace corral::cli
