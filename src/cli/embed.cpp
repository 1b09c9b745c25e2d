// corral embed -m MODEL (--text TEXT | --ids 1,2,3 | --file INPUTS.jsonl) [--pooling P]
// [--attention A] [--no-normalize] [--dimensions N] [--json]: embeddings through the same
// scheduler as `corral serve`, so they are bitwise what /v1/embeddings returns.
#include "engine/embed.h"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/engine_flags.h"
#include "engine/scheduler.h"

namespace corral::cli {

namespace {

using json = nlohmann::json;

struct EmbedArgs {
  EngineFlags ef;
  std::vector<std::string> texts;
  std::vector<std::string> ids;
  std::string file, pooling, attention;
  bool no_normalize = false, as_json = false;
  int64_t dimensions = 0;
};

// INPUTS.jsonl: one input per line, a JSON string (text), a list of token ids, or an object
// with "text" or "ids". Errors name the line.
Status read_inputs(const std::string& path, std::vector<std::string>* texts,
                   std::vector<std::vector<int32_t>>* ids) {
  std::ifstream f(path);
  if (!f) return make_error(path + ": cannot open");
  std::string line;
  for (int64_t n = 1; std::getline(f, line); ++n) {
    const std::string where = path + ":" + std::to_string(n);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) return make_error(where + ": not valid JSON");
    if (j.is_object()) {
      if (j.contains("text"))
        j = j["text"];
      else if (j.contains("ids"))
        j = j["ids"];
      else
        return make_error(where + ": an object needs \"text\" or \"ids\"");
    }
    if (j.is_string()) {
      if (!ids->empty()) return make_error(where + ": text after token-id inputs (use one kind)");
      texts->push_back(j);
    } else if (j.is_array() && !j.empty()) {
      if (!texts->empty())
        return make_error(where + ": token ids after text inputs (use one kind)");
      std::vector<int32_t> v;
      for (auto& x : j) {
        if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
          return make_error(where + ": token ids must be integers >= 0");
        v.push_back(x.get<int32_t>());
      }
      ids->push_back(std::move(v));
    } else {
      return make_error(where + ": expected a string, a non-empty list of token ids or an object");
    }
  }
  return Status::ok();
}

Status run_embed(EmbedArgs& a) {
  std::vector<std::string> texts = a.texts;
  std::vector<std::vector<int32_t>> ids;
  for (auto& s : a.ids) {
    CORRAL_ASSIGN_OR_RETURN(auto v, parse_id_list(s, "--ids"));
    if (v.empty()) return make_error("--ids: no ids given");
    ids.push_back(std::move(v));
  }
  if (!a.file.empty()) CORRAL_RETURN_IF_ERROR(read_inputs(a.file, &texts, &ids));
  if (texts.empty() && ids.empty()) return make_error("embed: give --text, --ids or --file");
  if (!texts.empty() && !ids.empty()) return make_error("embed: give text or token ids, not both");
  Logger log;
  a.ef.opts.n_seq = 4;
  CORRAL_ASSIGN_OR_RETURN(auto e, open_from_flags(a.ef, log));
  CORRAL_ASSIGN_OR_RETURN(EmbeddingSpec spec, embedding_spec_from_metadata(e->model->file.meta));
  CORRAL_RETURN_IF_ERROR(
      override_embedding_spec(&spec, a.pooling, "--pooling", a.attention, "--attention"));
  if (a.no_normalize) spec.normalize = false;
  const int64_t V = e->model->hp.n_vocab, E = e->model->hp.n_embd;
  if (a.dimensions < 0 || a.dimensions > E)
    return make_error("--dimensions: must be 1.." + std::to_string(E));
  if (!texts.empty()) {
    if (!e->tok)
      return make_error(a.ef.opts.model_path + ": the model has no tokenizer; use --ids");
    for (auto& t : texts) {
      if (t.empty()) return make_error("embed: input " + std::to_string(ids.size()) + " is empty");
      ids.push_back(encode_for_embedding(*e->tok, t));
    }
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (int64_t(ids[i].size()) > e->ctx_size)
      return make_error("input " + std::to_string(i) + " has " + std::to_string(ids[i].size()) +
                        " tokens, more than the context (" + std::to_string(e->ctx_size) +
                        "; raise --ctx-size)");
    for (int32_t id : ids[i])
      if (id >= V)
        return make_error("input " + std::to_string(i) + ": token id " + std::to_string(id) +
                          " is outside the vocabulary (" + std::to_string(V) + " tokens)");
  }
  SchedulerOptions so;
  so.max_queue = int64_t(ids.size()) + 1;
  Scheduler sched(*e, so);
  std::vector<std::shared_ptr<SeqHandle>> hs;
  int64_t total = 0;
  for (auto& x : ids) {
    SeqRequest r;
    r.prompt = x;
    r.embed = true;
    r.embedding = spec;
    r.adapter = e->adapter;
    total += int64_t(x.size());
    hs.push_back(sched.submit(std::move(r)));
  }
  json data = json::array();
  for (size_t i = 0; i < hs.size(); ++i) {
    SeqHandle& h = *hs[i];
    {
      std::unique_lock<std::mutex> lk(h.mu);
      h.cv.wait(lk, [&] { return h.done; });
    }
    if (h.finish != "stop" || h.embedding.empty())
      return make_error("input " + std::to_string(i) + ": " +
                        (h.error.empty() ? h.finish : h.error));
    std::vector<float> v = h.embedding;
    finalize_embedding(v, a.dimensions, spec.normalize);
    if (a.as_json)
      data.push_back({{"index", i}, {"embedding", v}});
    else
      std::printf("%s\n", json(v).dump().c_str());
  }
  if (a.as_json)
    std::printf("%s\n",
                json{{"data", data}, {"usage", {{"prompt_tokens", total}, {"total_tokens", total}}}}
                    .dump()
                    .c_str());
  std::fprintf(stderr, "%zu embeddings of %lld values (pooling %s, %s attention%s), %lld tokens\n",
               hs.size(), (long long)(a.dimensions > 0 ? a.dimensions : E),
               pooling_name(spec.pooling), spec.causal ? "causal" : "bidirectional",
               spec.normalize ? ", L2-normalised" : "", (long long)total);
  return Status::ok();
}

}  // namespace

Action add_embed(CLI::App& app) {
  auto* sub = app.add_subcommand("embed", "Embeddings of texts or token ids (as /v1/embeddings)");
  auto a = std::make_shared<EmbedArgs>();
  add_engine_flags(sub, a->ef);
  add_lora_flag(sub, a->ef);
  sub->add_option("--text", a->texts, "an input text (repeatable)");
  sub->add_option("--ids", a->ids, "an input as token ids: 1,2,3 (repeatable)");
  sub->add_option("--file", a->file,
                  "inputs, one per line (JSONL: a string, a list of ids, or {\"text\"|\"ids\"})");
  sub->add_option("--pooling", a->pooling, "last, mean or cls (default: the model's, else last)");
  sub->add_option("--attention", a->attention,
                  "causal or bidirectional (default: the model's, else causal)");
  sub->add_flag("--no-normalize", a->no_normalize, "do not L2-normalise");
  sub->add_option("--dimensions", a->dimensions, "keep the first N values (then normalised)");
  sub->add_flag("--json", a->as_json, "print {\"data\": [{\"index\", \"embedding\"}], \"usage\"}");
  return [a] { return run_embed(*a); };
}

}  // namespace corral::cli
