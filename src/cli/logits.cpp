// corral logits -m MODEL --prompt-ids 1,2,3 --out FILE.f32: logits at every prompt position,
// little-endian f32, row-major [T, V].
#include <cstdio>

#include "cli/engine_flags.h"

namespace corral::cli {

namespace {

struct LogitsArgs {
  EngineFlags ef;
  std::string ids, out;
};

Status run_logits(LogitsArgs& a) {
  CORRAL_ASSIGN_OR_RETURN(auto ids, parse_id_list(a.ids, "--prompt-ids"));
  if (ids.empty()) return make_error("--prompt-ids: no ids given");
  Logger log;
  if (a.ef.opts.ctx_size <= 0) a.ef.opts.ctx_size = int64_t(ids.size());
  CORRAL_ASSIGN_OR_RETURN(auto e, open_from_flags(a.ef, log));
  for (int32_t id : ids)
    if (id >= e->model->hp.n_vocab)
      return make_error("--prompt-ids: token id " + std::to_string(id) + " is outside the vocabulary (" +
                        std::to_string(e->model->hp.n_vocab) + " tokens)");
  std::vector<float> logits;
  CORRAL_RETURN_IF_ERROR(e->eval(0, ids, 0, true, &logits));
  FILE* f = std::fopen((a.out + ".tmp").c_str(), "wb");
  if (!f) return make_error(a.out + ": cannot open for writing");
  const bool ok = std::fwrite(logits.data(), 4, logits.size(), f) == logits.size();
  if (std::fclose(f) != 0 || !ok || std::rename((a.out + ".tmp").c_str(), a.out.c_str()) != 0) {
    std::remove((a.out + ".tmp").c_str());
    return make_error(a.out + ": write failed");
  }
  std::fprintf(stderr, "wrote %zu x %lld logits to %s\n", ids.size(), (long long)e->model->hp.n_vocab,
               a.out.c_str());
  return Status::ok();
}

}  // namespace

Action add_logits(CLI::App& app) {
  auto* sub = app.add_subcommand("logits", "Write the logits at every prompt position");
  auto a = std::make_shared<LogitsArgs>();
  add_engine_flags(sub, a->ef);
  add_lora_flag(sub, a->ef);
  sub->add_option("--prompt-ids", a->ids, "token ids: 1,2,3")->required();
  sub->add_option("--out", a->out, "output file (f32, [T, V])")->required();
  return [a] { return run_logits(*a); };
}

}  // namespace corral::cli
