#include "server/http_server.h"

#include "server/chat_tools.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <ctime>
#include <thread>

#include "hosting/hosting_json.h"
#include "hosting/keys.h"

namespace corral {

using json = nlohmann::json;

namespace {

// One detached thread per connection (an idle keep-alive connection holds only its own thread);
// shutdown waits for them up to a deadline.
class ThreadPerConnection : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override {
    active_++;
    std::thread([this, fn = std::move(fn)] {
      fn();
      std::lock_guard<std::mutex> lk(mu_);
      active_--;
      cv_.notify_all();
    }).detach();
  }
  void shutdown() override {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, std::chrono::seconds(3), [&] { return active_.load() == 0; });
  }

 private:
  std::atomic<int64_t> active_{0};
  std::mutex mu_;
  std::condition_variable cv_;
};

std::string status_type(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "invalid_request_error";
    case 429:
      return "rate_limit_exceeded";
    case 503:
      return "service_unavailable";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

}  // namespace

HttpServer::HttpServer(std::vector<std::unique_ptr<ServedModel>> models, const ServerOptions& o,
                       const Logger& log)
    : models_(std::move(models)), o_(o), log_(log), svr_(std::make_unique<httplib::Server>()) {
  if (o_.ledger) checkpoints_ = std::make_shared<CheckpointBatcher>(o_.ledger);
  routes();
}

HttpServer::~HttpServer() = default;

void HttpServer::reply_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  if (e.status == 429 || e.status == 503)
    res.set_header("Retry-After", std::to_string(e.retry_after_s > 0 ? e.retry_after_s : 1));
  res.set_content(dump(e.body()), "application/json");
}

thread_local AuthCtx t_auth;
AuthCtx& current_auth() {
  return t_auth;
}

bool HttpServer::ledger_has_tenants() {
  std::lock_guard<std::mutex> lk(tenants_mu_);
  const double now = steady_seconds();
  if (tenants_checked_ < 0 || now - tenants_checked_ > 1.0) {
    auto h = o_.ledger->has_tenants();
    tenants_ = !h.is_ok() || *h;  // a ledger error keeps keys required
    tenants_checked_ = now;
  }
  return tenants_;
}

std::optional<ApiError> HttpServer::authenticate(const httplib::Request& req, AuthCtx* out) {
  *out = AuthCtx{};
  const bool admin_route = req.path.rfind("/admin/", 0) == 0;
  // Open server: no static key, and no ledger or one without tenants yet.
  if (!admin_route && o_.api_keys.empty() && (!o_.ledger || !ledger_has_tenants()))
    return std::nullopt;
  auto unauthorized = [](const std::string& msg) {
    return ApiError{401, msg, "invalid_request_error", "", "invalid_api_key"};
  };
  const std::string h = req.get_header_value("Authorization");
  if (h.size() < 7 || strncasecmp(h.c_str(), "Bearer ", 7) != 0)
    return unauthorized("Missing API key: send 'Authorization: Bearer KEY'.");
  std::string key = h.substr(7);
  while (!key.empty() && key.front() == ' ') key.erase(key.begin());
  while (!key.empty() && key.back() == ' ') key.pop_back();
  if (key.empty() || key.size() > 512) return unauthorized("Invalid API key.");
  if (admin_route) {
    if (!o_.admin_key.empty() && constant_time_equal(key, o_.admin_key)) {
      out->admin = true;
      return std::nullopt;
    }
  } else {
    bool ok = false;
    for (auto& k : o_.api_keys) ok |= constant_time_equal(key, k);
    if (ok) return std::nullopt;
  }
  if (!o_.ledger) return unauthorized("Invalid API key.");
  auto found = o_.ledger->find_key(sha256_hex(key));
  if (!found.is_ok())
    return ApiError{503, "The ledger is unavailable: " + found.message(), "service_unavailable", "",
                    "ledger_unavailable"};
  if (!found->has_value()) return unauthorized("Invalid API key.");
  const auto& [k, t] = **found;
  if (k.revoked_ms) return unauthorized("This API key has been revoked.");
  if (k.expires_ms && k.expires_ms <= now_ms()) return unauthorized("This API key has expired.");
  if (admin_route)
    return ApiError{403, "The admin API needs the admin key; tenant keys are not allowed.",
                    "permission_error", "", "admin_only"};
  if (t.suspended)
    return ApiError{403, "The tenant '" + t.name + "' is suspended.", "permission_error", "",
                    "tenant_suspended"};
  out->metered = true;
  out->tenant = t.name;
  out->mau = t.mau;
  out->country = t.country;
  out->key_id = k.key_id;
  out->models = k.models;
  return std::nullopt;
}

ServedModel* HttpServer::find_model(const std::string& id) {
  std::lock_guard<std::mutex> lk(models_mu_);
  if (id.empty()) return models_.empty() ? nullptr : models_.front().get();
  for (auto& m : models_)
    if (m->id == id && !m->removed) return visible(*m) ? m.get() : nullptr;
  return nullptr;
}

std::vector<ServedModel*> HttpServer::model_list() {
  std::lock_guard<std::mutex> lk(models_mu_);
  std::vector<ServedModel*> out;
  for (auto& m : models_)
    if (!m->removed) out.push_back(m.get());
  return out;
}

Status HttpServer::add_adapter(const std::string& id, const std::string& path, const std::string& base_id) {
  if (id.empty()) return make_error("an adapter needs a model id");
  ServedModel* base = nullptr;
  {
    std::lock_guard<std::mutex> lk(models_mu_);
    int bases = 0;
    for (auto& m : models_) {
      if (m->removed) continue;
      if (m->id == id) return make_error("model id '" + id + "' is already served");
      if (m->parent.empty()) {
        ++bases;
        if (base_id.empty() ? bases == 1 : m->id == base_id) base = m.get();
      }
    }
    if (base_id.empty() && bases > 1)
      return make_error("adapter '" + id + "': several base models are served; name one (NAME=ADAPTER@BASE_ID, or \"base\")");
  }
  if (!base) return make_error("adapter '" + id + "': no base model '" + base_id + "' is served");
  CORRAL_ASSIGN_OR_RETURN(auto ad, load_adapter_for(*base->engine->model, path));
  auto m = std::make_unique<ServedModel>();
  m->id = id;
  m->path = path;
  m->license = base->license;
  m->lic = base->lic;
  m->engine = base->engine;
  m->sched = base->sched;
  m->chat = base->chat;
  m->has_chat = base->has_chat;
  m->embedding = base->embedding;
  m->embedding_only = base->embedding_only;
  m->parent = base->id;
  m->base = base;
  m->adapter = std::move(ad);
  std::lock_guard<std::mutex> lk(models_mu_);
  for (auto& o : models_)
    if (o->id == id && !o->removed) return make_error("model id '" + id + "' is already served");
  m->adapter_space = next_space_++;
  models_.push_back(std::move(m));
  return Status::ok();
}

void HttpServer::log_request(const httplib::Request& req, int status, const std::string& extra) {
  char ts[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  if (o_.log_json) {
    json j = {{"time", ts},
              {"method", req.method},
              {"path", req.path},
              {"status", status},
              {"remote", req.remote_addr}};
    if (!extra.empty()) j["detail"] = extra;
    log_.info(dump(j));
  } else {
    log_.info(std::string(ts) + " " + req.method + " " + req.path + " " + std::to_string(status) +
              (extra.empty() ? "" : " " + extra));
  }
}

void HttpServer::routes() {
  httplib::Server& s = *svr_;
  s.new_task_queue = [] { return new ThreadPerConnection(); };
  s.set_read_timeout(o_.read_timeout_s, 0);
  s.set_write_timeout(o_.read_timeout_s, 0);
  s.set_keep_alive_timeout(o_.idle_timeout_s);
  s.set_keep_alive_max_count(100000);
  s.set_payload_max_length(o_.max_body);
  s.set_tcp_nodelay(true);
  s.set_socket_options([this](int fd) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    listen_fd_ = fd;
  });
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    t_auth = AuthCtx{};
    if (req.path == "/health" || (req.method == "GET" && is_page_path(req.path)))
      return httplib::Server::HandlerResponse::Unhandled;
    if (auto e = authenticate(req, &t_auth)) {
      reply_error(res, *e);
      if (e->status == 401) res.set_header("WWW-Authenticate", "Bearer");
      metrics_.count(req.path, e->status);
      log_request(req, e->status,
                  "refused: " + e->code + (o_.ledger ? " (" + e->message + ")" : ""));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (ready_ && o_.ledger) sync_consortium_models();
    if (!ready_) {
      reply_error(res, ApiError{503, "The models are still loading; retry shortly.",
                                "service_unavailable", "", "loading"});
      return httplib::Server::HandlerResponse::Handled;
    }
    if (stopping_ && req.method == "POST") {
      reply_error(res, ApiError{503, "The server is shutting down.", "service_unavailable", "",
                                "shutting_down"});
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Everything >= 400 without a body of its own (unknown route, oversize body, bad request
  // line) still gets an OpenAI error object.
  s.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    // Handlers log their own errors; this logs what httplib itself refused (no body yet).
    if (res.body.empty()) {
      metrics_.count(res.status == 404 ? "unknown" : req.path, res.status);
      log_request(req, res.status, "");
      ApiError e;
      e.status = res.status;
      e.type = status_type(res.status);
      if (res.status == 404) {
        e.message = "Unknown route: " + req.method + " " + req.path;
        e.code = "not_found";
      } else if (res.status == 413) {
        e.message = "The request body is larger than the limit of " + std::to_string(o_.max_body) +
                    " bytes (--max-body).";
        e.code = "request_too_large";
      } else if (res.status == 405) {
        e.message = "Method " + req.method + " is not allowed on " + req.path;
      } else {
        e.message = "Bad request (HTTP status " + std::to_string(res.status) + ").";
      }
      reply_error(res, e);
    }
  });
  s.set_exception_handler(
      [this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& ex) {
          what = ex.what();
        } catch (...) {
        }
        reply_error(res,
                    ApiError{500, "Internal error: " + what, "server_error", "", "internal_error"});
      });
  s.Get("/health", [this](const httplib::Request& req, httplib::Response& res) {
    const bool ok = ready_ && !stopping_;
    res.status = ok ? 200 : 503;
    res.set_content(json{{"status", ok ? "ok" : (stopping_ ? "shutting down" : "loading")}}.dump(),
                    "application/json");
    metrics_.count("/health", res.status);
  });
  s.Get("/v1/models",
        [this](const httplib::Request& req, httplib::Response& res) { handle_models(req, res); });
  s.Get(R"(/v1/models/(.+))",
        [this](const httplib::Request& req, httplib::Response& res) { handle_models(req, res); });
  s.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generate(req, res, true);
  });
  s.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generate(req, res, false);
  });
  s.Post("/v1/embeddings", [this](const httplib::Request& req, httplib::Response& res) {
    handle_embeddings(req, res);
  });
  s.Post("/v1/responses", [this](const httplib::Request& req, httplib::Response& res) {
    handle_responses(req, res);
  });
  s.Get(R"(/v1/responses/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    handle_response_get(req, res, false);
  });
  s.Delete(R"(/v1/responses/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    handle_response_get(req, res, true);
  });
  s.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    handle_tokenize(req, res, false);
  });
  s.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    handle_tokenize(req, res, true);
  });
  s.Get("/v1/usage",
        [this](const httplib::Request& req, httplib::Response& res) { handle_usage(req, res); });
  admin_routes();
  page_routes();
  s.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
    res.set_content(render_metrics(), "text/plain; version=0.0.4");
    metrics_.count("/metrics", 200);
  });
}

void HttpServer::handle_models(const httplib::Request& req, httplib::Response& res) {
  auto entry = [&](const ServedModel& m) {
    const LicenseTerms* t = find_license(m.lic.family);  // the attribution and notice it asks for
    const auto text = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
    return json{{"id", m.id},
                {"object", "model"},
                {"created", 0},
                {"owned_by", "corral"},
                {"max_model_len", m.engine->ctx_size},
                {"parent", m.parent.empty() ? json(nullptr) : json(m.parent)},
                {"license", m.license.empty() ? json(nullptr) : json(m.license)},
                {"family", m.lic.family.empty() ? json(nullptr) : json(m.lic.family)},
                {"license_name", m.lic.name.empty() ? json(nullptr) : json(m.lic.name)},
                {"license_link", m.lic.link.empty() ? json(nullptr) : json(m.lic.link)},
                {"attribution", t ? text(t->attribution) : json(nullptr)},
                {"license_notice", t ? text(t->notice) : json(nullptr)},
                {"multimodal", m.lic.multimodal}};
  };
  if (req.matches.size() > 1) {
    ServedModel* m = find_model(req.matches[1]);
    if (!m || req.matches[1].str().empty()) {
      reply_error(res, ApiError{404, "The model '" + req.matches[1].str() + "' does not exist.",
                                "invalid_request_error", "model", "model_not_found"});
    } else {
      res.set_content(dump(entry(*m)), "application/json");
    }
  } else {
    json data = json::array();
    for (ServedModel* m : model_list()) {
      std::lock_guard<std::mutex> lk(models_mu_);
      if (!visible(*m)) continue;
      data.push_back(entry(*m));
    }
    res.set_content(dump(json{{"object", "list"}, {"data", data}}), "application/json");
  }
  metrics_.count("/v1/models", res.status);
}

void HttpServer::handle_tokenize(const httplib::Request& req, httplib::Response& res, bool detok) {
  const std::string route = detok ? "/detokenize" : "/tokenize";
  json b;
  auto fail = [&](const ApiError& e) {
    reply_error(res, e);
    metrics_.count(route, e.status);
    log_request(req, e.status, e.message);
  };
  if (auto e = parse_json_body(req.body, &b)) return fail(*e);
  std::string model;
  if (b.contains("model") && !b["model"].is_null()) {
    if (!b["model"].is_string())
      return fail(ApiError{400, "'model' must be a string.", "invalid_request_error", "model",
                           "invalid_type"});
    model = b["model"];
  }
  ServedModel* m = find_model(model);
  if (!m)
    return fail(ApiError{404, "The model '" + model + "' does not exist.", "invalid_request_error",
                         "model", "model_not_found"});
  if (!m->engine->tok)
    return fail(ApiError{400, "The model has no tokenizer.", "invalid_request_error", "", ""});
  const Tokenizer& tok = *m->engine->tok;
  json out;
  if (detok) {
    const json* ids = b.contains("tokens") ? &b["tokens"] : nullptr;
    if (!ids || !ids->is_array())
      return fail(ApiError{400, "'tokens' must be a list of token ids.", "invalid_request_error",
                           "tokens", "invalid_type"});
    std::vector<int32_t> v;
    for (auto& x : *ids) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 ||
          x.get<int64_t>() >= tok.vocab().n_tokens())
        return fail(
            ApiError{400, "'tokens' holds " + x.dump() + ", which is not a token id of this model.",
                     "invalid_request_error", "tokens", "invalid_value"});
      v.push_back(int32_t(x.get<int64_t>()));
    }
    std::string text;
    for (int32_t id : v) text += tok.token_bytes(id, true);
    out = {{"prompt", text}, {"content", text}};
  } else if (b.contains("messages")) {
    // A chat as /v1/chat/completions would render it (template and generation prompt): lets a
    // client see whether a conversation still fits before sending it.
    json chat_body = {{"messages", b["messages"]}};
    if (b.contains("tools")) chat_body["tools"] = b["tools"];
    if (b.contains("chat_template_kwargs")) chat_body["chat_template_kwargs"] = b["chat_template_kwargs"];
    GenRequest g;
    if (auto e = parse_gen_request(chat_body, true, &g)) return fail(*e);
    if (auto e = chat_template_input(req.body, &g)) return fail(*e);
    auto ids = chat_prompt_ids(*m, g.chat_input, o_.now);
    if (!ids)
      return fail(ApiError{400, ids.message(), "invalid_request_error", "messages", "template_error"});
    out = {{"tokens", *ids}, {"count", ids->size()}, {"max_model_len", m->engine->ctx_size}};
  } else {
    const char* key = b.contains("prompt") ? "prompt" : "content";
    if (!b.contains(key) || !b[key].is_string())
      return fail(ApiError{400, "'prompt' (or 'content') must be a string.",
                           "invalid_request_error", "prompt", "invalid_type"});
    bool add_special = true;
    for (const char* k : {"add_special_tokens", "add_special"})
      if (b.contains(k)) {
        if (!b[k].is_boolean())
          return fail(ApiError{400, std::string("'") + k + "' must be a boolean.",
                               "invalid_request_error", k, "invalid_type"});
        add_special = b[k];
      }
    EncodeOptions eo;
    eo.add_bos = add_special && tok.vocab().add_bos;
    eo.parse_special = true;
    auto ids = tok.encode(b[key].get<std::string>(), eo);
    out = {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", m->engine->ctx_size}};
  }
  res.set_content(dump(out), "application/json");
  metrics_.count(route, 200);
  log_request(req, 200, "");
}

std::string HttpServer::render_metrics() {
  std::string s;
  s += "# HELP corral_license_refusals_total Requests refused by the models' license terms.\n"
       "# TYPE corral_license_refusals_total counter\ncorral_license_refusals_total " +
       std::to_string(metrics_.license_refusals.load()) + "\n";
  s += "# HELP corral_requests_total Requests by route and status.\n# TYPE corral_requests_total "
       "counter\n";
  {
    std::lock_guard<std::mutex> lk(metrics_.mu);
    for (auto& [k, n] : metrics_.requests)
      s += "corral_requests_total{route=\"" + k.first + "\",status=\"" + std::to_string(k.second) +
           "\"} " + std::to_string(n) + "\n";
  }
  struct G {
    const char* name;
    const char* help;
    const char* type;
    std::function<int64_t(const SchedulerStats&)> f;
  };
  const G gauges[] = {
      {"corral_prompt_tokens_total", "Prompt tokens computed.", "counter",
       [](auto& st) { return st.prompt_tokens.load(); }},
      {"corral_cached_prompt_tokens_total", "Prompt tokens taken from the prefix cache.", "counter",
       [](auto& st) { return st.cached_tokens.load(); }},
      {"corral_generated_tokens_total", "Tokens generated.", "counter",
       [](auto& st) { return st.generated_tokens.load(); }},
      {"corral_preemptions_total", "Sequences preempted when the KV pool ran out.", "counter",
       [](auto& st) { return st.preemptions.load(); }},
      {"corral_queue_length", "Requests waiting to run.", "gauge",
       [](auto& st) { return st.waiting.load(); }},
      {"corral_running_sequences", "Sequences in the running batch.", "gauge",
       [](auto& st) { return st.running.load(); }},
      {"corral_kv_blocks_used", "KV blocks in use (cached ones nobody uses count as free).",
       "gauge", [](auto& st) { return st.kv_used.load(); }},
      {"corral_kv_blocks_total", "KV blocks in the pool.", "gauge",
       [](auto& st) { return st.kv_total.load(); }},
      {"corral_batch_size", "Tokens in the last forward pass.", "gauge",
       [](auto& st) { return st.last_batch.load(); }},
  };
  for (auto& g : gauges) {
    s +=
        std::string("# HELP ") + g.name + " " + g.help + "\n# TYPE " + g.name + " " + g.type + "\n";
    for (ServedModel* m : model_list())
      if (m->parent.empty())  // an adapter shares its base's scheduler
        s += std::string(g.name) + "{model=\"" + m->id + "\"} " +
             std::to_string(g.f(m->sched->stats())) + "\n";
  }
  s += metrics_.ttft.render("corral_time_to_first_token_seconds",
                            "Time from arrival to the first generated token.");
  s += metrics_.itl.render("corral_inter_token_latency_seconds",
                           "Mean time between generated tokens, per request.");
  return s;
}

Expected<int> HttpServer::bind() {
  const int port = o_.port == 0 ? svr_->bind_to_any_port(o_.host)
                                : (svr_->bind_to_port(o_.host, o_.port) ? o_.port : -1);
  if (port < 0)
    return make_error("cannot listen on " + o_.host + ":" + std::to_string(o_.port) +
                      " (address in use, or not an address of this machine)");
  // cpp-httplib listens with a backlog of 5; a burst of hundreds of connections needs more.
  if (listen_fd_ >= 0) ::listen(listen_fd_, 4096);
  return port;
}

void HttpServer::stop_now() {
  stopping_ = true;
  // cpp-httplib's stop() acts only once listening has begun. run() was started on its thread
  // just before; wait for it (bounded), else a failure right after start-up (a model that does
  // not load) would leave the caller joining a listener that never stops.
  for (int i = 0; i < 5000 && !svr_->is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  svr_->stop();
}

void HttpServer::run() {
  svr_->listen_after_bind();
}

void HttpServer::shutdown() {
  if (stopping_.exchange(true)) return;
  log_.info("shutting down: no new requests; waiting up to " + std::to_string(o_.drain_seconds) +
            " s for running ones");
  const auto t0 = std::chrono::steady_clock::now();
  auto busy = [&] {
    int64_t n = 0;
    for (ServedModel* m : model_list())
      if (m->parent.empty()) n += m->sched->active();
    return n;
  };
  while (busy() > 0 &&
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(o_.drain_seconds))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (busy() > 0) {
    log_.info("cancelling " + std::to_string(busy()) + " requests still running");
    for (ServedModel* m : model_list()) m->sched->cancel_all();
  }
  // Let streams write their last bytes before the listener goes.
  const auto t1 = std::chrono::steady_clock::now();
  while (streams_.load() > 0 && std::chrono::steady_clock::now() - t1 < std::chrono::seconds(2))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  svr_->stop();
}

}  // namespace corral
