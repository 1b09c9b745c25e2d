// POST /v1/chat/completions and /v1/completions: validate, render and encode the prompt, check
// it against the context, submit one sequence per choice, then answer as one JSON body or as
// SSE chunks while the scheduler releases text.
#include <httplib.h>

#include <algorithm>
#include <random>

#include "hosting/checkpoints.h"
#include "hosting/keys.h"
#include "server/chat_tools.h"
#include "server/generation.h"
#include "server/http_server.h"

namespace corral {

using json = nlohmann::json;

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s = prefix;
  for (int i = 0; i < 24; ++i) s += hex[rng() % 16];
  return s;
}

namespace {

json bytes_of(const std::string& s) {
  json a = json::array();
  for (unsigned char c : s) a.push_back(int(c));
  return a;
}

// Chat logprobs: {"content": [{token, logprob, bytes, top_logprobs}]}.
json chat_logprobs(const Tokenizer* tok, const std::vector<TokenLogprob>& lps) {
  json content = json::array();
  for (auto& lp : lps) {
    const std::string t = tok ? tok->token_bytes(lp.id, true) : std::to_string(lp.id);
    json top = json::array();
    for (auto& [id, l] : lp.top) {
      const std::string tt = tok ? tok->token_bytes(id, true) : std::to_string(id);
      top.push_back({{"token", tt}, {"logprob", l}, {"bytes", bytes_of(tt)}});
    }
    content.push_back(
        {{"token", t}, {"logprob", lp.logprob}, {"bytes", bytes_of(t)}, {"top_logprobs", top}});
  }
  return json{{"content", content}};
}

// Legacy completion logprobs: parallel lists; text_offset counts from `offset`.
json legacy_logprobs(const Tokenizer* tok, const std::vector<TokenLogprob>& lps, size_t offset,
                     bool first_is_null) {
  json tokens = json::array(), lp = json::array(), top = json::array(), off = json::array();
  for (size_t i = 0; i < lps.size(); ++i) {
    const std::string t = tok ? tok->token_bytes(lps[i].id, true) : std::to_string(lps[i].id);
    tokens.push_back(t);
    off.push_back(offset);
    offset += t.size();
    if (first_is_null && i == 0) {
      lp.push_back(nullptr);
      top.push_back(nullptr);
      continue;
    }
    lp.push_back(lps[i].logprob);
    json alt = json::object();
    for (auto& [id, l] : lps[i].top) alt[tok ? tok->token_bytes(id, true) : std::to_string(id)] = l;
    top.push_back(alt);
  }
  return json{
      {"tokens", tokens}, {"token_logprobs", lp}, {"top_logprobs", top}, {"text_offset", off}};
}

}  // namespace

json usage_json(const std::vector<Choice>& chs, int64_t n) {
  int64_t prompt = 0, cached = 0, completion = 0;
  for (size_t i = 0; i < chs.size(); ++i) {
    completion += chs[i].h->completion_tokens;
    if (i % size_t(n) == 0) prompt += chs[i].h->prompt_tokens, cached += chs[i].h->cached_tokens;
  }
  return json{{"prompt_tokens", prompt},
              {"completion_tokens", completion},
              {"total_tokens", prompt + completion},
              {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

int64_t Meter::generated(const std::vector<Choice>& chs) {
  int64_t g = 0;
  for (auto& c : chs) g += c.h->generated.load();
  return g;
}

Status Meter::record(int64_t tokens) {
  if (!ledger) return Status::ok();
  {
    std::lock_guard<std::mutex> lk(mu);
    if (settled || tokens <= recorded) return Status::ok();
  }
  CORRAL_RETURN_IF_ERROR(batcher->record(rec.request_id, tokens));
  std::lock_guard<std::mutex> lk(mu);
  recorded = std::max(recorded, tokens);
  return Status::ok();
}

Status Meter::settle(const std::vector<Choice>& chs, int64_t n, const std::string& status) {
  if (!ledger) return Status::ok();
  std::lock_guard<std::mutex> lk(mu);
  if (settled) return Status::ok();
  settled = true;
  rec.prompt_tokens = rec.cached_tokens = 0;
  for (size_t i = 0; i < chs.size(); i += size_t(n))
    rec.prompt_tokens += chs[i].h->prompt_tokens, rec.cached_tokens += chs[i].h->cached_tokens;
  rec.completion_tokens = generated(chs);
  rec.ended_ms = now_ms();
  rec.status = status;
  rec.finish_reason = chs.empty()                    ? ""
                      : chs[0].h->finish == "length" ? "length"
                      : status == "completed"        ? "stop"
                                                     : status;
  return ledger->settle(rec);
}

void set_ratelimit_headers(httplib::Response& res, const AdmitResult& r) {
  if (r.limit_requests >= 0) {
    res.set_header("x-ratelimit-limit-requests", std::to_string(r.limit_requests));
    res.set_header("x-ratelimit-remaining-requests", std::to_string(r.remaining_requests));
  }
  if (r.limit_tokens >= 0) {
    res.set_header("x-ratelimit-limit-tokens", std::to_string(r.limit_tokens));
    res.set_header("x-ratelimit-remaining-tokens", std::to_string(r.remaining_tokens));
  }
}

void reply_metered(httplib::Response& res, std::string text, std::shared_ptr<Meter> meter,
                   const std::vector<Choice>& choices, int64_t n) {
  auto body = std::make_shared<std::string>(std::move(text));
  auto chs = std::make_shared<std::vector<Choice>>(choices);
  res.set_content_provider(
      body->size(), "application/json",
      [body, meter, chs, n](size_t off, size_t len, httplib::DataSink& sink) {
        const size_t end = std::min(body->size(), off + len);
        if (!sink.write(body->data() + off, end - off)) return false;
        if (end == body->size()) (void)meter->settle(*chs, n, "completed");
        return true;
      },
      [meter, chs, n](bool) { (void)meter->settle(*chs, n, "cancelled"); });
}

std::shared_ptr<grammar::GrammarCache> HttpServer::grammar_cache(ServedModel& m) {
  std::lock_guard<std::mutex> lk(grammar_mu_);
  if (m.base) return grammar_cache(*m.base);  // an adapter: its base's tokenizer and cache
  if (!m.grammars) m.grammars = std::make_shared<grammar::GrammarCache>(grammar::token_index(*m.engine->tok));
  return m.grammars;
}

std::optional<ApiError> HttpServer::license_check(ServedModel& m, const std::string& model_id,
                                                 httplib::Response& res) {
  if (!m.lic.family.empty()) res.set_header("X-Model-License", m.lic.family);
  // The license terms, for a tenant's request: the MAU clause (until a grant) and the EU
  // exclusion from multimodal models. Refusals are recorded for the licensor's statement.
  const AuthCtx& au = current_auth();
  if (!au.metered || m.lic.family.empty()) return std::nullopt;
  LicenseGateInput in;
  in.tenant_mau = au.mau, in.tenant_country = au.country;
  const LicenseTerms* t = find_license(m.lic.family);
  if (t && t->mau_limit > 0 && au.mau > t->mau_limit) {
    auto gs = o_.ledger->list_grants(au.tenant);
    if (!gs.is_ok())
      return ApiError{503, "The ledger is unavailable: " + gs.message(), "service_unavailable", "",
                      "ledger_unavailable"};
    for (auto& gr : *gs) in.has_grant |= gr.family == m.lic.family;
  }
  if (auto refusal = license_gate(m.lic, in)) {
    (void)o_.ledger->add_license_event({now_ms(), "refusal", au.tenant, model_id, m.lic.family,
                                        refusal->code, refusal->message});
    metrics_.license_refusals++;
    return ApiError{403, refusal->message, "permission_error", "model", refusal->code};
  }
  return std::nullopt;
}

std::optional<ApiError> HttpServer::admit_usage(ServedModel& m, const std::string& model_id,
                                                const std::string& id, int64_t prompt_tokens,
                                                int64_t reserved_tokens, httplib::Response& res,
                                                Meter& meter) {
  const AuthCtx auth = current_auth();
  if (!auth.metered) return std::nullopt;
  if (!auth.models.empty() &&
      std::find(auth.models.begin(), auth.models.end(), model_id) == auth.models.end())
    return ApiError{403, "This API key may not use the model '" + model_id + "'.",
                    "permission_error", "model", "model_not_allowed"};
  Admission ad;
  ad.request_id = id, ad.tenant = auth.tenant, ad.key_id = auth.key_id, ad.model = model_id;
  ad.instance = o_.instance;
  ad.family = m.lic.family.empty() ? "none" : m.lic.family;
  ad.started_ms = now_ms();
  ad.prompt_tokens = prompt_tokens;
  ad.reserved_tokens = reserved_tokens;
  auto r = o_.ledger->admit(ad, month_start_ms(ad.started_ms));
  if (!r.is_ok())
    return ApiError{503, "The ledger is unavailable: " + r.message(), "service_unavailable", "",
                    "ledger_unavailable"};
  set_ratelimit_headers(res, *r);
  if (!r->ok) {
    ApiError err{429, r->message,
                 r->code == "insufficient_quota" ? "insufficient_quota" : "rate_limit_exceeded", "",
                 r->code};
    err.retry_after_s = int(std::max<int64_t>(r->retry_after_s, 1));
    return err;
  }
  meter.ledger = o_.ledger;
  meter.batcher = checkpoints();
  meter.rec.request_id = id, meter.rec.tenant = auth.tenant, meter.rec.key_id = auth.key_id;
  meter.rec.family = ad.family;
  meter.rec.model = model_id, meter.rec.instance = o_.instance;
  meter.rec.started_ms = ad.started_ms;
  return std::nullopt;
}

std::optional<ApiError> HttpServer::start_generation(const std::string& body_text, const json& body,
                                                     bool chat, const char* id_prefix,
                                                     httplib::Response& res, Generation& gen) {
  GenRequest& g = gen.g;
  if (auto e = parse_gen_request(body, chat, &g)) return e;
  if (chat)
    if (auto e = chat_template_input(body_text, &g)) return e;
  if (auto e = parse_constraint(body_text, &g)) return e;
  ServedModel* m = gen.m = find_model(g.model);
  if (!m)
    return ApiError{404, "The model '" + g.model + "' does not exist.", "invalid_request_error",
                    "model", "model_not_found"};
  const std::string model_id = gen.model_id = g.model.empty() ? m->id : g.model;
  if (m->embedding_only)
    return ApiError{400, "The model '" + model_id + "' is served for embeddings only (--embedding-only).",
                    "invalid_request_error", "model", "model_not_supported"};
  if (auto e = license_check(*m, model_id, res)) return e;
  Engine& e = *m->engine;
  const Tokenizer* tok = gen.tok = e.tok.get();
  const int64_t V = e.model->hp.n_vocab;

  // Prompts as ids.
  auto& prompts = gen.prompts;
  auto& prompt_texts = gen.prompt_texts;
  if (chat || !g.prompts.empty()) {
    if (!tok)
      return ApiError{400, "The model has no tokenizer; send 'prompt' as token ids.",
                      "invalid_request_error", "prompt", ""};
    const Vocab& v = tok->vocab();
    if (chat) {
      auto ids = chat_prompt_ids(*m, g.chat_input, o_.now);
      if (!ids)
        return ApiError{400, ids.message(), "invalid_request_error", "messages", "template_error"};
      prompts.push_back(std::move(*ids));
    } else {
      for (auto& p : g.prompts) {
        EncodeOptions eo;
        eo.add_bos = v.add_bos;
        prompts.push_back(tok->encode(p, eo));
        prompt_texts.push_back(p);
      }
    }
  } else {
    for (auto& ids : g.prompt_ids) {
      for (int32_t id : ids)
        if (id >= V)
          return ApiError{400,
                          "'prompt' holds token id " + std::to_string(id) +
                              ", outside the vocabulary (" + std::to_string(V) + " tokens).",
                          "invalid_request_error", "prompt", "invalid_value"};
      prompts.push_back(ids);
      std::string t;
      if (tok)
        for (int32_t id : ids) t += tok->token_bytes(id, false);
      prompt_texts.push_back(t);
    }
  }
  // Structured output: compiled (or found in the model's cache) before anything is sent, so a
  // schema or grammar error is a plain 400.
  std::shared_ptr<grammar::GrammarRuntime> constraint;
  if (OutputConstraint oc = output_constraint(*m, g); oc.error) {
    return *oc.error;
  } else if (oc.spec) {
    if (!tok)
      return ApiError{400, "The model has no tokenizer, which structured output needs.",
                      "invalid_request_error", g.constraint.param, ""};
    auto rt = grammar_cache(*m)->get(*oc.spec);
    if (!rt.is_ok()) {
      const std::string param = oc.param.empty() ? "response_format" : oc.param;
      return ApiError{400, "Invalid " + param + ": " + rt.message(), "invalid_request_error", param,
                      "invalid_schema"};
    }
    constraint = *rt;
  }
  const char* pparam = chat ? "messages" : "prompt";
  for (auto& p : prompts) {
    if (p.empty())
      return ApiError{400, "The prompt is empty.", "invalid_request_error", pparam, "invalid_value"};
    if (int64_t(p.size()) >= e.ctx_size)
      return ApiError{400,
                      "This model's maximum context length is " + std::to_string(e.ctx_size) +
                          " tokens, but the prompt has " + std::to_string(p.size()) +
                          " tokens (at least one more is needed for the answer).",
                      "invalid_request_error", pparam, "context_length_exceeded"};
  }

  gen.id = random_id(id_prefix);
  // Metering: the tenant's limits are checked and the open row written before anything runs.
  int64_t prompt_tokens = 0, reserved = 0;
  for (auto& p : prompts) {
    const int64_t room = e.ctx_size - int64_t(p.size());
    prompt_tokens += int64_t(p.size());
    reserved += int64_t(p.size()) + g.n * (g.max_tokens ? std::min(*g.max_tokens, room) : room);
  }
  if (auto err = admit_usage(*m, model_id, gen.id, prompt_tokens, reserved, res, *gen.meter))
    return err;

  // One sequence per (prompt, choice).
  auto& choices = gen.choices;
  const uint64_t seed = g.seed ? uint64_t(*g.seed) : std::random_device{}() * 0x9E3779B97F4A7C15ull;
  for (size_t pi = 0; pi < prompts.size(); ++pi)
    for (int64_t c = 0; c < g.n; ++c) {
      SeqRequest sr;
      sr.prompt = prompts[pi];
      const int64_t room = e.ctx_size - int64_t(sr.prompt.size());
      sr.max_tokens = g.max_tokens ? std::min(*g.max_tokens, room) : room;
      sr.sampling.temperature = float(g.temperature);
      sr.sampling.top_k = int32_t(std::min<int64_t>(g.top_k, INT32_MAX));
      sr.sampling.top_p = float(g.top_p);
      sr.sampling.min_p = float(g.min_p);
      sr.sampling.repeat_penalty = float(g.repetition_penalty);
      sr.sampling.frequency_penalty = float(g.frequency_penalty);
      sr.sampling.presence_penalty = float(g.presence_penalty);
      sr.sampling.seed = seed + uint64_t(pi * size_t(g.n) + size_t(c));
      sr.stop_strings = g.stop;
      sr.ignore_eos = g.ignore_eos;
      sr.top_logprobs = g.logprobs ? int32_t(g.top_logprobs) : -1;
      sr.prompt_logprobs = !chat && g.echo && g.logprobs && c == 0;
      auto tools = chat ? std::make_shared<ChatToolState>(*m, g) : nullptr;
      sr.render_special = tools && tools->active;  // the call markers must reach the parser
      sr.grammar = constraint;
      sr.adapter = m->adapter;
      sr.adapter_space = m->adapter_space;
      auto h = m->sched->submit(std::move(sr));
      if (!h) {
        for (auto& ch : choices) ch.h->cancel = true;
        (void)gen.meter->settle(choices, g.n, "error");
        return ApiError{429,
                        "The server is busy: " + std::to_string(m->sched->active()) +
                            " requests are queued or running (--max-queue). Retry shortly.",
                        "rate_limit_exceeded", "", "queue_full"};
      }
      choices.push_back({h, pi, {}, {}, false, false, 0, tools});
    }
  return std::nullopt;
}

void HttpServer::handle_generate(const httplib::Request& req, httplib::Response& res, bool chat) {
  const std::string route = chat ? "/v1/chat/completions" : "/v1/completions";
  const double t_arrival = steady_seconds();
  auto fail = [&](const ApiError& e) {
    reply_error(res, e);
    metrics_.count(route, e.status);
    log_request(req, e.status, e.message);
  };
  json body;
  if (auto e = parse_json_body(req.body, &body)) return fail(*e);
  Generation gen;
  if (auto e = start_generation(req.body, body, chat, chat ? "chatcmpl-" : "cmpl-", res, gen))
    return fail(*e);
  const GenRequest& g = gen.g;
  const std::string& id = gen.id;
  const std::string& model_id = gen.model_id;
  const Tokenizer* tok = gen.tok;
  const auto& prompts = gen.prompts;
  const auto& prompt_texts = gen.prompt_texts;
  std::vector<Choice>& choices = gen.choices;
  std::shared_ptr<Meter> meter = gen.meter;
  auto fail_metered = [&](const std::vector<Choice>& chs, const ApiError& err) {
    (void)meter->settle(chs, g.n, "error");
    fail(err);
  };

  const int64_t created = int64_t(std::time(nullptr));
  auto usage_of = [n = g.n](const std::vector<Choice>& chs) { return usage_json(chs, n); };
  auto finish_reason = [](const SeqHandle& h) { return h.finish == "length" ? "length" : "stop"; };
  auto observe = [this](const SeqHandle& h) {
    if (h.first_token > 0) metrics_.ttft.observe(h.first_token - h.submitted);
    if (h.completion_tokens > 1 && h.first_token > 0)
      metrics_.itl.observe((steady_seconds() - h.first_token) / double(h.completion_tokens - 1));
  };
  auto summary = [&](const char* how) {
    const json u = usage_of(choices);
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "model=%s %s prompt=%lld cached=%lld completion=%lld finish=%s time=%.3fs",
                  model_id.c_str(), how, (long long)u["prompt_tokens"].get<int64_t>(),
                  (long long)u["prompt_tokens_details"]["cached_tokens"].get<int64_t>(),
                  (long long)u["completion_tokens"].get<int64_t>(), choices[0].h->finish.c_str(),
                  steady_seconds() - t_arrival);
    return std::string(buf);
  };

  if (!g.stream) {
    for (auto& ch : choices) {
      for (;;) {
        {
          std::unique_lock<std::mutex> lk(ch.h->mu);
          if (ch.h->cv.wait_for(lk, std::chrono::milliseconds(250), [&] { return ch.h->done; }))
            break;
        }
      }
    }
    for (auto& ch : choices)
      if (ch.h->finish == "error" || ch.h->finish == "cancelled")
        return fail_metered(
            choices,
            ApiError{500,
                     "Generation failed: " + (ch.h->error.empty() ? ch.h->finish : ch.h->error),
                     "server_error", "", "internal_error"});
    json arr = json::array();
    for (size_t i = 0; i < choices.size(); ++i) {
      Choice& ch = choices[i];
      ch.h->take(&ch.text, &ch.lps, 0);
      observe(*ch.h);
      json c = {{"index", i}, {"finish_reason", finish_reason(*ch.h)}};
      if (chat) {
        bool calls = false;
        c["message"] = ch.tools->message(ch.text, ch.h->finish == "length", &calls);
        if (calls) c["finish_reason"] = "tool_calls";
        c["logprobs"] = g.logprobs ? chat_logprobs(tok, ch.lps) : json(nullptr);
      } else {
        const bool echo = g.echo;
        const std::string& pt = prompt_texts[ch.prompt];
        c["text"] = echo ? pt + ch.text : ch.text;
        if (g.logprobs) {
          std::vector<TokenLogprob> all;
          if (echo) {
            // The prompt's first token has no logprob; the others come from the prompt pass.
            const Choice& first = choices[ch.prompt * size_t(g.n)];
            all.push_back({prompts[ch.prompt][0], 0, {}});
            all.insert(all.end(), first.h->prompt_lps.begin(), first.h->prompt_lps.end());
          }
          all.insert(all.end(), ch.lps.begin(), ch.lps.end());
          c["logprobs"] = legacy_logprobs(tok, all, 0, echo);
        } else {
          c["logprobs"] = nullptr;
        }
      }
      arr.push_back(c);
    }
    json out = {{"id", id},           {"object", chat ? "chat.completion" : "text_completion"},
                {"created", created}, {"model", model_id},
                {"choices", arr},     {"usage", usage_of(choices)}};
    // Its tokens are committed before the client gets a byte of the answer; the record is
    // completed once the whole body is written (a kill -9 in between leaves it interrupted, billed
    // in full; one during generation leaves it with no tokens: the client got nothing).
    if (Status st = meter->record(Meter::generated(choices)); !st.is_ok())
      return fail(ApiError{503, "The ledger is unavailable: " + st.message(), "service_unavailable",
                           "", "ledger_unavailable"});
    reply_metered(res, dump(out), meter, choices, g.n);
    metrics_.count(route, 200);
    log_request(req, 200, summary("json"));
    return;
  }

  // Streaming: SSE chunks until every choice is done, then usage (if asked) and [DONE].
  auto state = std::make_shared<std::vector<Choice>>(std::move(choices));
  streams_++;
  metrics_.count(route, 200);
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, state, g, chat, id, created, model_id, tok, prompt_texts, usage_of, finish_reason,
       observe, meter](size_t, httplib::DataSink& sink) mutable {
        auto send = [&](const json& j) {
          const std::string s = "data: " + dump(j) + "\n\n";
          return sink.write(s.data(), s.size());
        };
        auto chunk = [&](size_t index, json delta_or_text, json lp, json fin) {
          json c = {{"index", index}, {"logprobs", lp}, {"finish_reason", fin}};
          if (chat)
            c["delta"] = delta_or_text;
          else
            c["text"] = delta_or_text;
          json j = {{"id", id},
                    {"object", chat ? "chat.completion.chunk" : "text_completion"},
                    {"created", created},
                    {"model", model_id},
                    {"choices", json::array({c})}};
          if (g.include_usage) j["usage"] = nullptr;
          return j;
        };
        std::vector<Choice>& chs = *state;
        bool all_done = true;
        for (size_t i = 0; i < chs.size(); ++i) {
          Choice& ch = chs[i];
          if (ch.finished) continue;
          if (chat && !ch.role_sent) {
            json role = {{"role", "assistant"}, {"content", ""}};
            if (ch.tools->active) role["content"] = nullptr;  // it may turn out to be only calls
            if (!send(chunk(i, role, nullptr, nullptr))) return false;
            ch.role_sent = true;
          }
          if (!chat && g.echo && !ch.role_sent) {
            if (!send(chunk(i, prompt_texts[ch.prompt], nullptr, nullptr))) return false;
            ch.role_sent = true;
          }
          // One chunk per token, its tokens committed to the ledger before it is written.
          std::string text;
          std::vector<TokenLogprob> lps;
          const SeqHandle::Take got = ch.h->take_piece(&text, &lps);
          if (got == SeqHandle::Take::kNone) {
            all_done = false;
            continue;
          }
          if (got == SeqHandle::Take::kPiece) ++ch.sent_tokens;
          int64_t covered = 0;
          for (auto& c : chs) covered += c.sent_tokens;
          if (got == SeqHandle::Take::kTail) covered = Meter::generated(chs);
          if (Status st = meter->record(covered); !st.is_ok()) {
            send(ApiError{503, "The ledger is unavailable: " + st.message(), "service_unavailable", "",
                          "ledger_unavailable"}
                     .body());
            return false;
          }
          if (chat) text = ch.tools->feed(text);  // what may be a tool call is held back
          if (got == SeqHandle::Take::kPiece || !text.empty() || !lps.empty()) {
            json lp = nullptr;
            if (g.logprobs)
              lp = chat ? chat_logprobs(tok, lps) : legacy_logprobs(tok, lps, 0, false);
            if (!send(chunk(i, chat ? json{{"content", text}} : json(text), lp, nullptr)))
              return false;
          }
          if (got == SeqHandle::Take::kPiece) {
            all_done = false;  // more may have arrived: look again before finishing
            continue;
          }
          observe(*ch.h);
          if (ch.h->finish == "error") {
            json err = ApiError{500, "Generation failed: " + ch.h->error, "server_error", "",
                                "internal_error"}
                           .body();
            send(err);
          }
          json fin = finish_reason(*ch.h);
          if (chat && ch.tools->active) {
            bool calls = false;
            for (auto& d : ch.tools->finish(ch.h->finish == "length", &calls))
              if (!send(chunk(i, d, nullptr, nullptr))) return false;
            if (calls) fin = "tool_calls";
          }
          if (!send(chunk(i, chat ? json::object() : json(""), nullptr, fin))) return false;
          ch.finished = true;
        }
        if (!all_done) {
          // Wait for the first unfinished choice to release something (bounded, so the others
          // and a vanished client are looked at again).
          for (auto& ch : chs)
            if (!ch.finished) {
              std::unique_lock<std::mutex> lk(ch.h->mu);
              ch.h->cv.wait_for(lk, std::chrono::milliseconds(50), [&] { return ch.h->has_piece_or_done(); });
              break;
            }
          return true;
        }
        bool failed = false;
        for (auto& ch : chs) failed |= ch.h->finish == "error";
        if (Status st = meter->settle(chs, g.n, failed ? "error" : "completed"); !st.is_ok()) {
          send(ApiError{503, "The ledger is unavailable: " + st.message(), "service_unavailable",
                        "", "ledger_unavailable"}
                   .body());
          return false;  // no [DONE]: the answer is not complete without its record
        }
        if (g.include_usage) {
          json u = {{"id", id},
                    {"object", chat ? "chat.completion.chunk" : "text_completion"},
                    {"created", created},
                    {"model", model_id},
                    {"choices", json::array()},
                    {"usage", usage_of(chs)}};
          if (!send(u)) return false;
        }
        const std::string fin = "data: [DONE]\n\n";
        sink.write(fin.data(), fin.size());
        sink.done();
        return true;
      },
      [this, state, req_path = req.path, req_method = req.method, model_id, meter,
       n = g.n](bool ok) {
        // Client gone (or finished): anything still running is cancelled and its blocks freed.
        int64_t gen = 0;
        std::string fin;
        for (auto& ch : *state) {
          if (!ch.h->done) ch.h->cancel = true;
          gen += ch.h->completion_tokens;
          fin = ch.h->cancel ? "cancelled" : ch.h->finish;
        }
        // The client went away: billed for what was generated until then.
        if (!ok) {
          for (auto& ch : *state) {
            std::unique_lock<std::mutex> lk(ch.h->mu);
            ch.h->cv.wait_for(lk, std::chrono::seconds(5), [&] { return ch.h->done; });
          }
          (void)meter->settle(*state, n, "cancelled");
        }
        httplib::Request r;
        r.method = req_method;
        r.path = req_path;
        log_request(r, 200,
                    "model=" + model_id + " stream completion=" + std::to_string(gen) +
                        " finish=" + (ok ? fin : std::string("cancelled (client gone)")));
        streams_--;
      });
}

}  // namespace corral
