// corral chat -m MODEL: interactive terminal chat with the model's chat template. History is
// kept (the KV cache keeps the conversation's prefix, so each turn only evaluates new text);
// /reset clears it, /quit leaves; Ctrl-C stops the current answer, not the program.
#include <csignal>
#include <cstdio>
#include <iostream>

#include "cli/engine_flags.h"
#include "engine/generate.h"
#include "template/chat.h"

namespace corral::cli {

namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void on_sigint(int) { g_interrupted = 1; }

struct ChatArgs {
  EngineFlags ef;
  std::string system, chat_template;
  int64_t n = 1024;
  SamplerParams sp;
  int64_t seed = -1;
};

Status run_chat(ChatArgs& a) {
  Logger log;
  CORRAL_ASSIGN_OR_RETURN(auto e, open_from_flags(a.ef, log));
  if (!e->tok) return make_error(a.ef.opts.model_path + ": the model has no tokenizer; pass --tokenizer PATH");
  const Vocab& v = e->tok->vocab();
  CORRAL_ASSIGN_OR_RETURN(ChatFormat cf, load_chat_format(v, a.chat_template));
  const char* now = std::getenv("CORRAL_NOW");
  CORRAL_ASSIGN_OR_RETURN(std::time_t now_t, parse_now(now ? now : ""));
  if (a.seed >= 0) a.sp.seed = uint64_t(a.seed);
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sa.sa_flags = SA_RESTART;  // a Ctrl-C at the prompt must not end the read
  sigaction(SIGINT, &sa, nullptr);
  std::vector<ChatMessage> history;
  if (!a.system.empty()) history.push_back({"system", a.system});
  std::vector<int32_t> cached;
  std::fprintf(stderr, "chat with %s (%lld ctx). /reset clears the history, /quit leaves, Ctrl-C stops an answer.\n",
               e->model->hp.arch.c_str(), (long long)e->ctx_size);
  std::string line;
  for (;;) {
    std::fprintf(stdout, "> ");
    std::fflush(stdout);
    g_interrupted = 0;
    if (!std::getline(std::cin, line)) break;
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      history.erase(std::remove_if(history.begin(), history.end(), [](auto& m) { return m.role != "system"; }),
                    history.end());
      std::fprintf(stdout, "(history cleared)\n");
      continue;
    }
    if (line.empty()) continue;
    history.push_back({"user", line});
    GenerateRequest req;
    ChatInput in = chat_input_of(history);
    in.now = now_t;
    auto ids = encode_chat(*e->tok, cf, in);
    if (!ids) {
      std::fprintf(stderr, "error: %s\n", ids.message().c_str());
      history.pop_back();
      continue;
    }
    req.prompt = std::move(*ids);
    req.cached = cached;
    req.max_tokens = a.n;
    req.sampling = a.sp;
    req.on_token = [](int32_t, const std::string& text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      return !g_interrupted;
    };
    auto r = generate(*e, req);
    if (!r.is_ok()) {
      std::fprintf(stderr, "error: %s\n", r.message().c_str());
      history.pop_back();
      continue;
    }
    cached = r->sequence;
    std::fprintf(stdout, "%s\n", r->finish == "cancelled" ? " [stopped]" : "");
    history.push_back({"assistant", r->text});
  }
  std::fprintf(stdout, "\n");
  return Status::ok();
}

}  // namespace

Action add_chat(CLI::App& app) {
  auto* sub = app.add_subcommand("chat", "Interactive chat with the model's chat template");
  auto a = std::make_shared<ChatArgs>();
  add_engine_flags(sub, a->ef);
  add_lora_flag(sub, a->ef);
  sub->add_option("--system", a->system, "system message");
  sub->add_option("--chat-template", a->chat_template, "a Jinja FILE, a NAME the model ships, or llama2/llama3/llama4 (default: the model's own)");
  sub->add_option("-n,--n-predict", a->n, "most tokens per answer (default 1024)");
  sub->add_option("--temp", a->sp.temperature, "temperature (default 0.8)");
  sub->add_option("--top-k", a->sp.top_k, "top-k");
  sub->add_option("--top-p", a->sp.top_p, "top-p");
  sub->add_option("--min-p", a->sp.min_p, "min-p");
  sub->add_option("--seed", a->seed, "random seed");
  return [a] { return run_chat(*a); };
}

}  // namespace corral::cli
