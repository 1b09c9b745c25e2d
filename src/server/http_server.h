// `corral serve`'s HTTP side: the OpenAI-compatible routes over cpp-httplib (one thread per
// connection, so idle keep-alive connections never block a busy one), API keys, SSE streaming,
// Prometheus metrics and graceful shutdown. Models are reached only through their Scheduler.
#pragma once
#include <atomic>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "core/logger.h"
#include "engine/scheduler.h"
#include "hosting/checkpoints.h"
#include "hosting/ledger.h"
#include "hosting/license.h"
#include "server/metrics.h"
#include "grammar/constraint.h"
#include "server/openai.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace corral {

struct Meter;
struct Generation;
struct ResponseStore;

struct ServedModel {
  std::string id;
  std::string path;
  std::string license;  // general.license (or --license), or empty
  ModelLicense lic;     // its Llama license family, if any
  std::shared_ptr<Engine> engine;      // a LoRA adapter's entry shares its base's
  std::shared_ptr<Scheduler> sched;
  ChatFormat chat;  // its chat template (own Jinja or the built-in fallback) and tool format
  bool has_chat = false;
  std::shared_ptr<grammar::GrammarCache> grammars;  // compiled output constraints (made on first use)
  // A LoRA adapter served as its own model id over a base (--lora, the admin API).
  std::string parent;                          // the base's id ("" for a base)
  ServedModel* base = nullptr;
  std::shared_ptr<const LoraAdapter> adapter;
  int32_t adapter_space = 0;                   // its prefix-cache blocks' own namespace
  std::atomic<bool> removed{false};            // DELETEd: no longer found (kept for running requests)
  // A consortium's custom version: until it is made public only its members' tenants find it
  // (everyone else gets 404 model_not_found, as for a model that does not exist).
  std::string consortium;
  bool members_only = false;
  std::vector<std::string> member_tenants;  // under HttpServer::models_mu_
  EmbeddingSpec embedding;      // /v1/embeddings: pooling, attention, normalisation
  bool embedding_only = false;  // --embedding-only: generation routes refuse it
};


struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::vector<std::string> api_keys;  // empty: open
  size_t max_body = size_t(8) << 20;
  bool log_json = false;
  int read_timeout_s = 30;
  int idle_timeout_s = 30;
  int drain_seconds = 10;            // on SIGINT/SIGTERM: how long running requests may finish
  std::shared_ptr<Ledger> ledger;    // null: no tenants, nothing metered
  std::string instance;              // this server's name in the ledger
  std::string admin_key;             // empty: no admin API
  std::string host_name = "corral";  // the host named on statements
  std::string lora_dir;              // the admin API loads adapters only from under it
  std::time_t now = 0;               // strftime_now's date in templates (--now); 0: the clock
};

// Who a request is from, as the pre-routing check found it (one per connection thread).
struct AuthCtx {
  bool metered = false, admin = false;
  std::string tenant, key_id;
  int64_t mau = 0;
  std::string country;
  std::vector<std::string> models;  // empty: any
};

// The caller of the request being handled on this thread (set before routing).
AuthCtx& current_auth();
// The web pages and their assets (no key needed; their API calls carry one).
bool is_page_path(const std::string& path);

class HttpServer {
 public:
  HttpServer(std::vector<std::unique_ptr<ServedModel>> models, const ServerOptions& o,
             const Logger& log);
  ~HttpServer();
  // Binds; returns the port (the one chosen when port is 0).
  Expected<int> bind();
  // Serves until shutdown() (from another thread or a signal); then drains and returns.
  void run();
  void shutdown();
  // Models are added after bind() while /health says 503; then set_ready() opens /v1/*.
  void add_model(std::unique_ptr<ServedModel> m) {
    std::lock_guard<std::mutex> lk(models_mu_);
    models_.push_back(std::move(m));
  }
  // Serves a LoRA adapter as model `id` over base `base_id` ("" with one base); errors name why.
  Status add_adapter(const std::string& id, const std::string& path, const std::string& base_id);
  const std::vector<std::unique_ptr<ServedModel>>& models() const { return models_; }
  void set_ready(bool r) { ready_ = r; }
  void set_instance(const std::string& name) { o_.instance = name; }
  void stop_now();  // stops listening at once (start-up failed)

  // Used by the request handlers.
  struct Ctx;

 private:
  void routes();
  void log_request(const httplib::Request& req, int status, const std::string& extra);
  ServedModel* find_model(const std::string& id);
  void handle_generate(const httplib::Request& req, httplib::Response& res, bool chat);
  void handle_embeddings(const httplib::Request& req, httplib::Response& res);
  void handle_responses(const httplib::Request& req, httplib::Response& res);
  void handle_response_get(const httplib::Request& req, httplib::Response& res, bool del);
  // Shared by the generating routes (generation.h): the license terms for this caller, the
  // ledger's admission (key's models, quotas; the Meter armed), and a chat or completion
  // request validated, admitted and submitted.
  std::optional<ApiError> license_check(ServedModel& m, const std::string& model_id,
                                        httplib::Response& res);
  std::optional<ApiError> admit_usage(ServedModel& m, const std::string& model_id,
                                      const std::string& id, int64_t prompt_tokens,
                                      int64_t reserved_tokens, httplib::Response& res, Meter& meter);
  std::optional<ApiError> start_generation(const std::string& body_text, const nlohmann::json& body,
                                           bool chat, const char* id_prefix, httplib::Response& res,
                                           Generation& gen);
  void handle_models(const httplib::Request& req, httplib::Response& res);
  void handle_tokenize(const httplib::Request& req, httplib::Response& res, bool detok);
  void handle_usage(const httplib::Request& req, httplib::Response& res);
  void admin_routes();
  void page_routes();
  std::optional<ApiError> authenticate(const httplib::Request& req, AuthCtx* out);
  std::string render_metrics();
  void reply_error(httplib::Response& res, const ApiError& e);

  std::vector<std::unique_ptr<ServedModel>> models_;
  std::mutex models_mu_;  // models_ grows (and entries are marked removed) while serving
  int32_t next_space_ = 1;
  std::vector<ServedModel*> model_list();  // the live entries, under the lock
  ServerOptions o_;
  Logger log_;
  std::unique_ptr<httplib::Server> svr_;
  ServerMetrics metrics_;
  std::atomic<bool> ready_{false}, stopping_{false};
  std::atomic<int64_t> streams_{0};
  int listen_fd_ = -1;
  // Whether the ledger has tenants (keys are then required), re-read at most once a second.
  bool ledger_has_tenants();
  std::mutex tenants_mu_;
  std::mutex grammar_mu_;
  std::shared_ptr<CheckpointBatcher> checkpoints_;  // with a ledger: streaming progress, group-committed
  std::shared_ptr<CheckpointBatcher> checkpoints() const { return checkpoints_; }
  std::shared_ptr<grammar::GrammarCache> grammar_cache(ServedModel& m);
  std::shared_ptr<ResponseStore> responses_;
  // Consortium models from the ledger's journal, served and restricted (re-read at most once a
  // second, before routing, so a model made public or replaced is seen at once).
  void sync_consortium_models();
  bool visible(const ServedModel& m) const;  // under models_mu_
  std::mutex consortium_mu_;
  double consortium_checked_ = -1;
  std::set<std::string> consortium_failed_;  // model ids whose adapter could not be served (logged once)  // /v1/responses kept for previous_response_id
  double tenants_checked_ = -1;
  bool tenants_ = false;
};

}  // namespace corral
