// POST /v1/embeddings: inputs validated and encoded (EOS appended where the model asks), the
// request admitted to the ledger at the input rate, one embedding sequence per input through the
// model's scheduler (batched with everything else, each result independent of the batch), then
// pooled vectors truncated to `dimensions` and normalised, as floats or base64.
#include <httplib.h>
#include <sodium.h>

#include <cstring>

#include "engine/embed.h"
#include "server/api_requests.h"
#include "server/generation.h"
#include "server/http_server.h"

namespace corral {

using json = nlohmann::json;

namespace {

std::optional<ApiError> bad(const std::string& msg, const std::string& param,
                            const std::string& code = "invalid_value") {
  return ApiError{400, msg, "invalid_request_error", param, code};
}

std::string base64_of(const std::vector<float>& v) {
  std::string bytes(v.size() * 4, '\0');
  for (size_t i = 0; i < v.size(); ++i) {  // little-endian f32, as OpenAI sends them
    uint32_t u;
    std::memcpy(&u, &v[i], 4);
    for (int k = 0; k < 4; ++k) bytes[i * 4 + size_t(k)] = char((u >> (8 * k)) & 0xff);
  }
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

}  // namespace

void HttpServer::handle_embeddings(const httplib::Request& req, httplib::Response& res) {
  const std::string route = "/v1/embeddings";
  const double t_arrival = steady_seconds();
  auto fail = [&](const ApiError& e) {
    reply_error(res, e);
    metrics_.count(route, e.status);
    log_request(req, e.status, e.message);
  };
  json body;
  if (auto e = parse_json_body(req.body, &body)) return fail(*e);
  EmbedRequest r;
  if (auto e = parse_embed_request(body, &r)) return fail(*e);
  ServedModel* m = find_model(r.model);
  if (!m)
    return fail(ApiError{404, "The model '" + r.model + "' does not exist.",
                         "invalid_request_error", "model", "model_not_found"});
  const std::string model_id = r.model.empty() ? m->id : r.model;
  if (auto e = license_check(*m, model_id, res)) return fail(*e);
  Engine& e = *m->engine;
  const int64_t V = e.model->hp.n_vocab, E = e.model->hp.n_embd;
  if (r.dimensions > E)
    return fail(*bad("'dimensions' is " + std::to_string(r.dimensions) +
                         ", more than this model's " + std::to_string(E) + ".",
                     "dimensions"));
  std::vector<std::vector<int32_t>> inputs;
  if (!r.texts.empty()) {
    if (!e.tok)
      return fail(*bad("The model has no tokenizer; send 'input' as token ids.", "input"));
    for (auto& t : r.texts) inputs.push_back(encode_for_embedding(*e.tok, t));
  } else {
    for (size_t i = 0; i < r.ids.size(); ++i)
      for (size_t k = 0; k < r.ids[i].size(); ++k)
        if (r.ids[i][k] >= V)
          return fail(*bad(
              "'input" +
                  (r.ids.size() > 1 || body["input"][0].is_array() ? "[" + std::to_string(i) + "]"
                                                                   : std::string()) +
                  "[" + std::to_string(k) + "]' is token id " + std::to_string(r.ids[i][k]) +
                  ", outside the vocabulary (" + std::to_string(V) + " tokens).",
              "input"));
    inputs = r.ids;
  }
  const int64_t keep = r.truncate == -1 ? e.ctx_size : r.truncate;
  if (keep > e.ctx_size)
    return fail(*bad("'truncate_prompt_tokens' is " + std::to_string(keep) +
                         ", more than this model's maximum context length of " +
                         std::to_string(e.ctx_size) + " tokens.",
                     "truncate_prompt_tokens"));
  int64_t total = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto& in = inputs[i];
    if (keep > 0 && int64_t(in.size()) > keep) in.erase(in.begin(), in.end() - keep);  // the last k
    if (int64_t(in.size()) > e.ctx_size)
      return fail(ApiError{400,
                           "Input " + std::to_string(i) + " has " + std::to_string(in.size()) +
                               " tokens, more than this model's maximum context length of " +
                               std::to_string(e.ctx_size) +
                               " tokens; shorten it or set 'truncate_prompt_tokens'.",
                           "invalid_request_error", "input", "context_length_exceeded"});
    total += int64_t(in.size());
  }

  Generation gen;
  gen.m = m, gen.model_id = model_id, gen.id = random_id("embd-");
  if (auto err = admit_usage(*m, model_id, gen.id, total, total, res, *gen.meter))
    return fail(*err);
  for (size_t i = 0; i < inputs.size(); ++i) {
    SeqRequest sr;
    sr.prompt = inputs[i];
    sr.max_tokens = 0;
    sr.embed = true;
    sr.embedding = m->embedding;
    sr.adapter = m->adapter;
    sr.adapter_space = m->adapter_space;
    auto h = m->sched->submit(std::move(sr));
    if (!h) {
      for (auto& ch : gen.choices) ch.h->cancel = true;
      (void)gen.meter->settle(gen.choices, 1, "error");
      return fail(ApiError{429,
                           "The server is busy: " + std::to_string(m->sched->active()) +
                               " requests are queued or running (--max-queue). Retry shortly.",
                           "rate_limit_exceeded", "", "queue_full"});
    }
    gen.choices.push_back({h, i, {}, {}, false, false, 0, nullptr});
  }
  for (auto& ch : gen.choices) {
    std::unique_lock<std::mutex> lk(ch.h->mu);
    ch.h->cv.wait(lk, [&] { return ch.h->done; });
  }
  json data = json::array();
  for (size_t i = 0; i < gen.choices.size(); ++i) {
    SeqHandle& h = *gen.choices[i].h;
    if (h.finish != "stop" || h.embedding.empty()) {
      (void)gen.meter->settle(gen.choices, 1, "error");
      return fail(ApiError{500, "Embedding failed: " + (h.error.empty() ? h.finish : h.error),
                           "server_error", "", "internal_error"});
    }
    std::vector<float> v = h.embedding;
    finalize_embedding(v, r.dimensions, m->embedding.normalize);
    json item = {{"object", "embedding"}, {"index", i}};
    if (r.base64)
      item["embedding"] = base64_of(v);
    else
      item["embedding"] = v;
    data.push_back(std::move(item));
  }
  json out = {{"object", "list"},
              {"data", std::move(data)},
              {"model", model_id},
              {"usage", {{"prompt_tokens", total}, {"total_tokens", total}}}};
  reply_metered(res, dump(out), gen.meter, gen.choices, 1);
  metrics_.count(route, 200);
  char buf[160];
  std::snprintf(buf, sizeof buf, "model=%s embeddings=%zu prompt=%lld time=%.3fs", model_id.c_str(),
                inputs.size(), (long long)total, steady_seconds() - t_arrival);
  log_request(req, 200, buf);
}

}  // namespace corral
