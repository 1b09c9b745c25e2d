#include "engine/generate.h"

#include <algorithm>
#include <chrono>

namespace corral {

namespace {
double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

Expected<GenerateResult> generate(Engine& e, const GenerateRequest& req) {
  GenerateResult res;
  if (req.prompt.empty()) return make_error("empty prompt");
  if (int64_t(req.prompt.size()) >= e.ctx_size)
    return make_error("the prompt has " + std::to_string(req.prompt.size()) +
                      " tokens, which does not fit the context size " + std::to_string(e.ctx_size) +
                      " (raise --ctx-size)");
  // Reuse the cached prefix, but always evaluate at least the last prompt token for logits.
  size_t keep = 0;
  while (keep < req.cached.size() && keep + 1 < req.prompt.size() && req.cached[keep] == req.prompt[keep]) ++keep;
  std::vector<int32_t> todo(req.prompt.begin() + long(keep), req.prompt.end());
  std::vector<float> logits;
  auto t0 = std::chrono::steady_clock::now();
  CORRAL_RETURN_IF_ERROR(e.eval(req.seq, todo, int64_t(keep), false, &logits));
  res.prompt_seconds = since(t0);
  res.prompt_evaluated = int64_t(todo.size());
  res.sequence = req.prompt;

  std::vector<int32_t> stop_ids;
  std::unique_ptr<StreamDecoder> dec;
  if (e.tok) {
    stop_ids = e.tok->vocab().stop_ids();
    if (e.tok->vocab().bos >= 0) stop_ids.push_back(e.tok->vocab().bos);  // llama2.c stops there too
    dec = std::make_unique<StreamDecoder>(*e.tok, false, req.prompt.back());
  }
  Sampler sampler(req.sampling);
  std::vector<int32_t> history = req.prompt;
  const int64_t V = e.model->hp.n_vocab;
  int64_t pos = int64_t(req.prompt.size());  // where the sampled token goes
  res.finish = "length";
  t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < req.max_tokens; ++i) {
    const int32_t next = sampler.sample(logits.data() + logits.size() - size_t(V), V, history);
    if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) {
      res.finish = "stop";
      break;
    }
    res.tokens.push_back(next);
    history.push_back(next);
    std::string piece = dec ? dec->feed(next) : std::string();
    res.text += piece;
    bool stop_string = false;
    for (auto& s : req.stop_strings) {
      // Only the new text (and the few bytes before it a stop string could straddle) is searched.
      const size_t tail = piece.size() + s.size();
      const size_t from = res.text.size() > tail ? res.text.size() - tail : 0;
      if (!s.empty() && res.text.find(s, from) != std::string::npos) stop_string = true;
    }
    if (req.on_token && !req.on_token(next, piece)) {
      res.finish = "cancelled";
      break;
    }
    if (stop_string) {
      res.finish = "stop";
      break;
    }
    if (i + 1 == req.max_tokens) break;
    if (pos >= e.ctx_size) {
      res.finish = "context";
      break;
    }
    logits.clear();
    CORRAL_RETURN_IF_ERROR(e.eval(req.seq, {next}, pos, false, &logits));
    res.sequence.push_back(next);
    ++pos;
  }
  if (dec) {
    std::string rest = dec->flush();
    res.text += rest;
    if (req.on_token && !rest.empty()) req.on_token(-1, rest);
  }
  res.gen_seconds = since(t0);
  return res;
}

}  // namespace corral
