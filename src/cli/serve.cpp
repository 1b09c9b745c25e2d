// corral serve: loads each model, starts its scheduler and serves the OpenAI API until SIGINT or
// SIGTERM, then drains (running requests get up to 10 s) and exits 0.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cli/commands.h"
#include "engine/generator.h"
#include "hosting/keys.h"
#include "hosting/ledger.h"
#include "hosting/license.h"
#include "hosting/statement.h"
#include "server/http_server.h"

namespace corral::cli {

namespace {

struct ServeArgs {
  std::vector<std::string> models;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::vector<std::string> api_keys;
  std::string api_key_file;
  int64_t parallel = 16, ctx_size = 0, kv_memory = 0, max_queue = 256;
  std::string max_body = "8MiB";
  int64_t step_tokens = 256;
  int threads = 0;
  int timeout = 30;
  std::string log_format = "text";
  std::string chat_template, now;
  std::string ledger, instance, admin_key_file, ledger_sync = "full";
  std::vector<std::string> licenses;  // FAMILY (every model) or ID=FAMILY
  std::string host_name;
  std::vector<std::string> loras;  // NAME=ADAPTER.gguf[@BASE_ID]
  std::string lora_dir;
  std::string pooling, embedding_attention;  // overrides of the models' own embedding spec
  bool embedding_only = false;
};

int g_signal_pipe[2] = {-1, -1};
void on_signal(int) {
  const char c = 1;
  if (write(g_signal_pipe[1], &c, 1) < 0) {
  }
}

// "8MiB", "512K", "1048576" -> bytes.
Expected<size_t> parse_size(const std::string& s, const std::string& flag) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  std::string unit = end ? end : "";
  double mul = 1;
  if (unit == "" || unit == "B")
    mul = 1;
  else if (unit == "K" || unit == "KiB" || unit == "k")
    mul = 1024;
  else if (unit == "M" || unit == "MiB" || unit == "m")
    mul = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB")
    mul = 1024.0 * 1024 * 1024;
  else
    return make_error(flag + ": '" + s + "' is not a size (e.g. 8MiB, 512K, 1048576)");
  if (errno != 0 || !(v * mul >= 1) || v * mul > 1e12)
    return make_error(flag + ": '" + s + "' is out of range");
  return size_t(v * mul);
}

std::string stem(const std::string& path) {
  std::string b =
      path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  const size_t dot = b.find_last_of('.');
  return dot == std::string::npos || dot == 0 ? b : b.substr(0, dot);
}

Expected<std::unique_ptr<ServedModel>> load(const ServeArgs& a, const std::string& spec,
                                            const Logger& log) {
  auto m = std::make_unique<ServedModel>();
  std::string id;
  m->path = spec;
  // ID=PATH, unless the whole spec names a file (a path may hold '='); the id may hold '/'
  // (hub-style names such as meta-llama/Llama-3.2-1B-Instruct).
  const size_t eq = spec.find('=');
  std::error_code ec;
  if (eq != std::string::npos && eq > 0 && !std::filesystem::exists(spec, ec)) {
    id = spec.substr(0, eq);
    m->path = spec.substr(eq + 1);
  }
  EngineOptions eo;
  eo.model_path = m->path;
  eo.threads = a.threads;
  // Embeddings only: nothing is kept between requests, so the pool holds one context's worth.
  eo.n_seq = a.embedding_only ? 1 : a.parallel;
  eo.kv_mib = a.kv_memory;
  eo.ctx_size = a.ctx_size;
  eo.ctx_cap = 8192;  // default context: the model's own, at most 8192
  CORRAL_ASSIGN_OR_RETURN(m->engine, open_engine(eo, log));
  const Metadata& md = m->engine->model->file.meta;
  if (id.empty()) id = md.get_str("general.name").value_or("");
  if (id.empty()) id = stem(m->path);
  m->id = id;
  // The license: --license ID=FAMILY or FAMILY, else the file's general.license (or an HF
  // folder's README front matter).
  std::string declared;
  for (const auto& l : a.licenses) {
    const size_t e = l.find('=');
    if (e == std::string::npos)
      declared = l;
    else if (l.substr(0, e) == id)
      declared = l.substr(e + 1);
  }
  if (!declared.empty() && !find_license(declared))
    return make_error("--license: unknown family '" + declared + "'");
  m->license = !declared.empty() ? declared : md.get_str("general.license").value_or("");
  if (m->license.empty()) m->license = hf_folder_license(m->path);
  m->lic = model_license(
      m->license, declared.empty() ? md.get_str("general.license.name").value_or("") : "",
      declared.empty() ? md.get_str("general.license.link").value_or("") : "", md.arch());
  if (m->engine->tok) {
    auto cf = load_chat_format(m->engine->tok->vocab(), a.chat_template);
    if (!cf) return make_error(m->path + ": " + cf.message());
    m->chat = std::move(*cf);
    m->has_chat = true;
  }
  CORRAL_ASSIGN_OR_RETURN(m->embedding, embedding_spec_from_metadata(md));
  CORRAL_RETURN_IF_ERROR(override_embedding_spec(&m->embedding, a.pooling, "--pooling",
                                                 a.embedding_attention, "--embedding-attention"));
  m->embedding_only = a.embedding_only;
  SchedulerOptions so;
  so.parallel = a.parallel;
  so.max_queue = a.max_queue;
  so.step_tokens = std::max<int64_t>(a.step_tokens, a.parallel);
  if (const char* t = std::getenv("CORRAL_TRACE_STEPS")) so.trace_path = t;  // diagnostics
  m->sched = std::make_unique<Scheduler>(*m->engine, so);
  return m;
}

Status serve(ServeArgs& a) {
  if (a.models.empty()) return make_error("serve: give at least one -m MODEL");
  if (a.parallel < 1 || a.parallel > 1024) return make_error("--parallel: must be 1..1024");
  if (a.max_queue < 1) return make_error("--max-queue: must be at least 1");
  if (a.ctx_size < 0 || a.kv_memory < 0)
    return make_error("--ctx-size / --kv-memory: must be positive");
  if (a.log_format != "text" && a.log_format != "json")
    return make_error("--log-format: '" + a.log_format + "' (choose text or json)");
  if (a.port < 0 || a.port > 65535) return make_error("--port: must be 0..65535");
  ServerOptions so;
  so.host = a.host;
  so.port = a.port;
  so.log_json = a.log_format == "json";
  so.host_name = a.host_name.empty() ? default_host_name() : a.host_name;
  so.lora_dir = a.lora_dir;
  {
    std::string now = a.now;
    if (now.empty())
      if (const char* e = std::getenv("CORRAL_NOW")) now = e;
    CORRAL_ASSIGN_OR_RETURN(so.now, parse_now(now));
  }
  if (a.timeout < 1) return make_error("--timeout: must be at least 1 second");
  so.read_timeout_s = so.idle_timeout_s = a.timeout;
  CORRAL_ASSIGN_OR_RETURN(so.max_body, parse_size(a.max_body, "--max-body"));
  so.api_keys = a.api_keys;
  if (!a.api_key_file.empty()) {
    std::ifstream f(a.api_key_file);
    if (!f) return make_error(a.api_key_file + ": cannot read the API key file");
    for (std::string line; std::getline(f, line);) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (!line.empty() && line[0] != '#') so.api_keys.push_back(line);
    }
    if (so.api_keys.empty()) return make_error(a.api_key_file + ": holds no API key");
  }
  for (auto& k : so.api_keys)
    if (k.empty()) return make_error("--api-key: an empty key is not allowed");
  Logger log;
  // The ledger: --ledger, else $CORRAL_LEDGER, else sqlite:corral-ledger.db. Until it has a
  // tenant (and without --api-key) the server is open; from then on keys are required.
  if (a.ledger.empty()) a.ledger = default_ledger_dsn();
  {
    if (a.ledger_sync != "full" && a.ledger_sync != "normal")
      return make_error("--ledger-sync: '" + a.ledger_sync + "' is not full or normal");
    CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger, a.ledger_sync == "full" ? LedgerSync::kFull : LedgerSync::kNormal));
    so.ledger = std::move(l);
  }
  if (!a.admin_key_file.empty()) {
    std::ifstream f(a.admin_key_file);
    if (!f) return make_error(a.admin_key_file + ": cannot read the admin key file");
    std::getline(f, so.admin_key);
    while (!so.admin_key.empty() && (so.admin_key.back() == '\r' || so.admin_key.back() == ' '))
      so.admin_key.pop_back();
    if (so.admin_key.size() < 16)
      return make_error(a.admin_key_file + ": the admin key must have at least 16 characters");
  }
  HttpServer server({}, so, log);
  CORRAL_ASSIGN_OR_RETURN(int port, server.bind());
  so.instance = a.instance.empty() ? a.host + ":" + std::to_string(port) : a.instance;
  server.set_instance(so.instance);
  if (so.ledger) {
    // Rows this instance left open when it died (kill -9, power loss) are closed now.
    const int64_t now = now_ms();
    CORRAL_ASSIGN_OR_RETURN(int64_t n, so.ledger->interrupt_open(so.instance, now + 1, now));
    log.info(
        "ledger " + a.ledger + ": instance " + so.instance +
        (n ? ", " + std::to_string(n) + " request(s) left open by an earlier run marked interrupted"
           : ""));
  }
  // Listening from the start: /health answers 503 until every model is loaded.
  log.info("listening on http://" + a.host + ":" + std::to_string(port) + " (--parallel " +
           std::to_string(a.parallel) + ", --max-queue " + std::to_string(a.max_queue) + ")");
  std::fflush(stderr);
  signal(SIGPIPE, SIG_IGN);
  std::thread http([&] { server.run(); });
  auto fail = [&](Status st) {
    server.stop_now();
    http.join();
    return st;
  };
  for (auto& spec : a.models) {
    auto loaded = load(a, spec, log);
    if (!loaded.is_ok()) return fail(make_error(loaded.message()));
    auto m = std::move(loaded.value());
    for (auto& o : server.models())
      if (o->id == m->id)
        return fail(
            make_error("-m " + spec + ": model id '" + m->id + "' is used twice (use ID=PATH)"));
    const double kv_mib = double(m->engine->kv->bytes()) / (1 << 20);
    char buf[512];
    std::snprintf(
        buf, sizeof buf,
        "model %s: %s (%s, ctx %lld per sequence, KV pool %lld blocks of %lld = %.1f MiB, "
        "%d threads)",
        m->id.c_str(), m->path.c_str(), m->engine->model->hp.arch.c_str(),
        (long long)m->engine->ctx_size, (long long)m->engine->kv->total_blocks(),
        (long long)m->engine->kv->block_size(), kv_mib, m->engine->ctx->pool->size());
    log.info(buf);
    if (m->has_chat)
      log.info("model " + m->id + ": chat template " + m->chat.origin + ", tool calls " +
               tool_format_name(m->chat.tools));
    if (const LicenseTerms* t = find_license(m->lic.family))
      log.info("model " + m->id + ": license " + m->lic.family + " (" + m->lic.name + ")" +
               (m->lic.multimodal ? ", multimodal" : "") +
               (t->attribution.empty() ? "" : ", attribution \"" + t->attribution + "\""));
    if (auto w = naming_warning(m->lic, m->id)) log.info("warning: model " + m->id + ": " + *w);
    server.add_model(std::move(m));
  }
  for (const auto& spec : a.loras) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0)
      return fail(make_error("--lora " + spec + ": expected NAME=ADAPTER.gguf or NAME=ADAPTER.gguf@BASE_ID"));
    std::string path = spec.substr(eq + 1), base;
    const size_t at = path.rfind('@');
    std::error_code ec;
    if (at != std::string::npos && !std::filesystem::exists(path, ec)) base = path.substr(at + 1), path = path.substr(0, at);
    Status st = server.add_adapter(spec.substr(0, eq), path, base);
    if (!st.is_ok()) return fail(make_error("--lora " + spec + ": " + st.message()));
    log.info("adapter " + spec.substr(0, eq) + ": " + path);
  }
  // --license ID=FAMILY must name a served model (a typo would leave the model unlicensed).
  for (const auto& l : a.licenses) {
    const size_t e = l.find('=');
    if (e == std::string::npos) continue;
    bool found = false;
    for (auto& m : server.models()) found |= m->id == l.substr(0, e);
    if (!found)
      return fail(
          make_error("--license " + l + ": no model is served as '" + l.substr(0, e) + "'"));
  }
  if (so.api_keys.empty()) {
    auto any = so.ledger->has_tenants();
    if (any.is_ok() && !*any)
      log.info(
          "warning: no API key given and no tenant in the ledger: the server is open to anyone who "
          "can reach it (until a tenant is added)");
  }
  if (pipe(g_signal_pipe) != 0) return fail(make_error("serve: pipe() failed"));
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  server.set_ready(true);
  log.info("ready");
  std::fflush(stderr);
  char c = 0;
  while (read(g_signal_pipe[0], &c, 1) < 0 && errno == EINTR) {
  }
  server.shutdown();
  http.join();
  log.info("stopped");
  return Status::ok();
}

}  // namespace

Action add_serve(CLI::App& app) {
  auto* sub = app.add_subcommand("serve", "Serve models over an OpenAI-compatible HTTP API");
  auto a = std::make_shared<ServeArgs>();
  sub->add_option("-m,--model", a->models, "model file (PATH or ID=PATH); repeat for several")
      ->required();
  sub->add_option("--lora", a->loras, "serve a LoRA adapter as model NAME: NAME=ADAPTER.gguf[@BASE_ID] (repeatable)");
  sub->add_option("--lora-dir", a->lora_dir, "folder the admin API may load adapters from (POST /admin/v1/adapters)");
  sub->add_option("--host", a->host, "address to listen on (default 127.0.0.1)");
  sub->add_option("--port", a->port, "port (default 8080; 0 = any free port)");
  sub->add_option("--api-key", a->api_keys, "require this bearer key on /v1/* (repeatable)");
  sub->add_option("--api-key-file", a->api_key_file, "file with one API key per line");
  sub->add_option("--parallel", a->parallel, "sequences in one batch at most (default 16)");
  sub->add_option("--ctx-size,-c", a->ctx_size,
                  "context per sequence (default: the model's, at most 8192)");
  sub->add_option("--kv-memory", a->kv_memory,
                  "KV pool in MiB (default: --parallel sequences at --ctx-size)");
  sub->add_option("-t,--threads", a->threads, "threads (default: physical cores)");
  sub->add_option("--max-queue", a->max_queue, "waiting requests at most before 429 (default 256)");
  sub->add_option("--max-body", a->max_body,
                  "largest request body: bytes, or with K/M/KiB/MiB (default 8MiB)");
  sub->add_option("--step-tokens", a->step_tokens,
                  "tokens per forward step (decode + prompt chunks; default 256)");
  sub->add_option("--log-format", a->log_format, "text or json (default text)");
  sub->add_option(
      "--timeout", a->timeout,
      "seconds a connection may stall mid-request or idle between requests (default 30)");
  sub->add_option("--ledger", a->ledger,
                  "tenants, keys and metering: sqlite:PATH or postgresql://... (default "
                  "$CORRAL_LEDGER, else sqlite:corral-ledger.db)");
  sub->add_option("--ledger-sync", a->ledger_sync,
                  "full (default: a committed record survives power loss; SQLite fsyncs each commit, "
                  "PostgreSQL synchronous_commit=on) or normal (survives kill -9 and crashes of the "
                  "server, may lose the last commits on power loss)");
  sub->add_option("--instance", a->instance,
                  "this server's name in the ledger (default HOST:PORT)");
  sub->add_option("--admin-key-file", a->admin_key_file, "file with the admin key for /admin/v1/*");
  sub->add_option("--license", a->licenses,
                  "license family of the models (FAMILY, or ID=FAMILY for one; default: the "
                  "file's general.license)");
  sub->add_option("--host-name", a->host_name,
                  "the host named on statements (default $CORRAL_HOST_NAME, else the machine's)");
  sub->add_option("--chat-template", a->chat_template,
                  "a Jinja FILE, a NAME the model ships (tokenizer.chat_template.NAME), or the "
                  "built-in llama2/llama3/llama4 (default: the model's own)");
  sub->add_option("--pooling", a->pooling,
                  "embeddings: last, mean or cls (default: the model's own, else last)");
  sub->add_option("--embedding-attention", a->embedding_attention,
                  "embeddings: causal or bidirectional (default: the model's own, else causal)");
  sub->add_flag("--embedding-only", a->embedding_only,
                "serve the models for /v1/embeddings only: a KV pool of one context, nothing "
                "cached between requests, generation routes refused");
  sub->add_option("--now", a->now,
                  "the date templates see through strftime_now, YYYY-MM-DD (default $CORRAL_NOW, "
                  "else today, UTC)");
  return [a] { return serve(*a); };
}

}  // namespace corral::cli
