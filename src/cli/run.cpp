// corral run: generate from a prompt, streaming text to stdout (or ids with --print-ids).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/engine_flags.h"
#include "engine/generate.h"
#include "template/chat.h"

namespace corral::cli {

namespace {

struct RunArgs {
  EngineFlags ef;
  std::string prompt, file, prompt_ids, system, chat_template;
  std::vector<std::string> stops;
  int64_t n = 256;
  SamplerParams sp;
  int64_t seed = -1;
  bool print_ids = false, chat = false;
  CLI::Option *prompt_opt = nullptr, *file_opt = nullptr, *ids_opt = nullptr;
};


Expected<std::vector<int32_t>> prompt_tokens(RunArgs& a, Engine& e) {
  const int given = int(a.prompt_opt->count() > 0) + int(a.file_opt->count() > 0) + int(a.ids_opt->count() > 0);
  if (given != 1) return make_error("run: give exactly one of -p PROMPT, -f FILE or --prompt-ids");
  if (a.ids_opt->count()) {
    CORRAL_ASSIGN_OR_RETURN(auto ids, parse_id_list(a.prompt_ids, "--prompt-ids"));
    if (ids.empty()) return make_error("--prompt-ids: no ids given");
    for (int32_t id : ids)
      if (id >= e.model->hp.n_vocab)
        return make_error("--prompt-ids: token id " + std::to_string(id) +
                          " is outside the vocabulary (" + std::to_string(e.model->hp.n_vocab) + " tokens)");
    return ids;
  }
  std::string text = a.prompt;
  if (a.file_opt->count()) {
    std::ifstream f(a.file, std::ios::binary);
    if (!f) return make_error(a.file + ": cannot open prompt file");
    std::stringstream ss;
    ss << f.rdbuf();
    text = ss.str();
  }
  if (!e.tok)
    return make_error(e.model->file.path + ": the model has no tokenizer; pass --tokenizer PATH or use --prompt-ids");
  const Vocab& v = e.tok->vocab();
  if (a.chat) {
    CORRAL_ASSIGN_OR_RETURN(ChatFormat cf, load_chat_format(v, a.chat_template));
    std::vector<ChatMessage> msgs;
    if (!a.system.empty()) msgs.push_back({"system", a.system});
    msgs.push_back({"user", text});
    ChatInput in = chat_input_of(msgs);
    const char* now = std::getenv("CORRAL_NOW");
    CORRAL_ASSIGN_OR_RETURN(in.now, parse_now(now ? now : ""));
    return encode_chat(*e.tok, cf, in);
  }
  EncodeOptions eo;
  eo.add_bos = v.add_bos;
  auto ids = e.tok->encode(text, eo);
  if (ids.empty()) return make_error("run: the prompt is empty and the model adds no BOS");
  return ids;
}

Status run(RunArgs& a) {
  if (a.n <= 0) return make_error("-n: must be at least 1 (got " + std::to_string(a.n) + ")");
  if (a.seed >= 0) a.sp.seed = uint64_t(a.seed);
  Logger log;
  CORRAL_ASSIGN_OR_RETURN(auto e, open_from_flags(a.ef, log));
  CORRAL_ASSIGN_OR_RETURN(std::vector<int32_t> ids, prompt_tokens(a, *e));
  if (int64_t(ids.size()) >= e->ctx_size)
    return make_error("the prompt has " + std::to_string(ids.size()) +
                      " tokens, which does not fit the context size " + std::to_string(e->ctx_size) +
                      " (raise --ctx-size)");
  std::fprintf(stderr, "load: %.3f s (%s, %lld threads)\n", e->load_seconds, e->model->hp.arch.c_str(),
               (long long)e->ctx->pool->size());
  GenerateRequest req;
  req.prompt = ids;
  req.max_tokens = a.n;
  req.sampling = a.sp;
  req.stop_strings = a.stops;
  if (!a.print_ids)
    req.on_token = [](int32_t, const std::string& text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  CORRAL_ASSIGN_OR_RETURN(GenerateResult r, generate(*e, req));
  if (a.print_ids) {
    std::string out = "[";
    for (size_t i = 0; i < r.tokens.size(); ++i) out += (i ? ", " : "") + std::to_string(r.tokens[i]);
    std::printf("%s]\n", out.c_str());
  } else {
    std::printf("\n");
  }
  std::fflush(stdout);
  std::fprintf(stderr, "prompt: %zu tokens in %.3f s (%.1f tok/s)\n", ids.size(), r.prompt_seconds,
               double(ids.size()) / std::max(r.prompt_seconds, 1e-9));
  std::fprintf(stderr, "generation: %zu tokens in %.3f s (%.1f tok/s)\n", r.tokens.size(), r.gen_seconds,
               double(r.tokens.size()) / std::max(r.gen_seconds, 1e-9));
  return Status::ok();
}

}  // namespace

Action add_run(CLI::App& app) {
  auto* sub = app.add_subcommand("run", "Generate text from a prompt");
  auto a = std::make_shared<RunArgs>();
  add_engine_flags(sub, a->ef);
  add_lora_flag(sub, a->ef);
  a->prompt_opt = sub->add_option("-p,--prompt", a->prompt, "prompt text");
  a->file_opt = sub->add_option("-f,--file", a->file, "read the prompt from a file");
  a->ids_opt = sub->add_option("--prompt-ids", a->prompt_ids, "prompt as token ids: 1,2,3 (used as given)");
  sub->add_option("-n,--n-predict", a->n, "tokens to generate (default 256)");
  sub->add_option("--temp", a->sp.temperature, "temperature (0 = greedy; default 0.8)");
  sub->add_option("--top-k", a->sp.top_k, "top-k (0 = off; default 40)");
  sub->add_option("--top-p", a->sp.top_p, "top-p (1 = off; default 0.95)");
  sub->add_option("--min-p", a->sp.min_p, "min-p (0 = off; default 0.05)");
  sub->add_option("--repeat-penalty", a->sp.repeat_penalty, "repetition penalty (1 = off)");
  sub->add_option("--frequency-penalty", a->sp.frequency_penalty, "frequency penalty");
  sub->add_option("--presence-penalty", a->sp.presence_penalty, "presence penalty");
  sub->add_option("--seed", a->seed, "random seed");
  sub->add_option("--stop", a->stops, "stop when this text is generated (repeatable)");
  sub->add_flag("--print-ids", a->print_ids, "print only the generated ids as a JSON array");
  sub->add_flag("--chat", a->chat, "wrap the prompt in the model's chat template");
  sub->add_option("--system", a->system, "system message for --chat");
  sub->add_option("--chat-template", a->chat_template, "a Jinja FILE, a NAME the model ships, or llama2/llama3/llama4 (default: the model's own)");
  return [a] { return run(*a); };
}

}  // namespace corral::cli
