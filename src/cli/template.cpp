// corral template render (-m MODEL | --template FILE [--bos-token S] [--eos-token S])
//   --input CONV.json [--no-generation-prompt] [--now YYYY-MM-DD] [--chat-template FILE|NAME]
// corral template tool-calls (-m MODEL | --template FILE | --format llama3|llama4|hermes)
//   --tools TOOLS.json --text FILE
// For scripts and checks: the exact prompt a conversation renders to, and the assistant message
// a model output parses into.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "template/chat.h"
#include "template/tool_calls.h"
#include "tokenizer/tokenizer.h"

namespace corral::cli {

namespace {

using ojson = nlohmann::ordered_json;

struct TemplateArgs {
  std::string model, tpl, bos, eos, input, now, chat_template, format, tools, text;
  bool no_gen = false;
};

Expected<std::string> slurp(const std::string& path, const char* flag) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(std::string(flag) + ": cannot read '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Expected<ChatFormat> format_of(const TemplateArgs& a) {
  if (!a.model.empty() == !a.tpl.empty())
    return make_error("give exactly one of -m MODEL or --template FILE");
  if (!a.tpl.empty()) {
    CORRAL_ASSIGN_OR_RETURN(std::string text, slurp(a.tpl, "--template"));
    return chat_format_from_text(text, a.tpl, a.bos, a.eos);
  }
  CORRAL_ASSIGN_OR_RETURN(auto tok, load_tokenizer(a.model));
  return load_chat_format(tok->vocab(), a.chat_template);
}

Status run_render(const TemplateArgs& a) {
  CORRAL_ASSIGN_OR_RETURN(ChatFormat f, format_of(a));
  CORRAL_ASSIGN_OR_RETURN(std::string text, slurp(a.input, "--input"));
  ojson conv = ojson::parse(text, nullptr, false);
  if (conv.is_discarded() || !conv.is_object()) return make_error(a.input + ": not a JSON object");
  if (!conv.contains("messages") || !conv["messages"].is_array())
    return make_error(a.input + ": \"messages\" must be an array");
  ChatInput in;
  in.messages = conv["messages"];
  if (conv.contains("tools")) in.tools = conv["tools"];
  for (auto it = conv.begin(); it != conv.end(); ++it)
    if (it.key() != "messages" && it.key() != "tools") in.vars.emplace_back(it.key(), it.value());
  in.add_generation_prompt = !a.no_gen;
  std::string now = a.now;
  if (now.empty())
    if (const char* e = std::getenv("CORRAL_NOW")) now = e;
  CORRAL_ASSIGN_OR_RETURN(in.now, parse_now(now));
  auto out = render_chat(f, in);
  if (!out) {  // one error line: a template's message may hold newlines
    std::string m = out.message();
    for (size_t p = 0; (p = m.find('\n', p)) != std::string::npos; p += 2) m.replace(p, 1, "\\n");
    return make_error(m);
  }
  std::fwrite(out->data(), 1, out->size(), stdout);
  std::fflush(stdout);
  return Status::ok();
}

Status run_tool_calls(const TemplateArgs& a) {
  ToolFormat fmt;
  if (!a.format.empty()) {
    if (!a.model.empty() || !a.tpl.empty()) return make_error("give one of -m, --template or --format");
    CORRAL_ASSIGN_OR_RETURN(fmt, tool_format_by_name(a.format));
  } else {
    CORRAL_ASSIGN_OR_RETURN(ChatFormat f, format_of(a));
    fmt = f.tools;
  }
  ojson tools = ojson::array();
  if (!a.tools.empty()) {
    CORRAL_ASSIGN_OR_RETURN(std::string t, slurp(a.tools, "--tools"));
    tools = ojson::parse(t, nullptr, false);
    if (tools.is_object() && tools.contains("tools")) tools = tools["tools"];
    if (!tools.is_array()) return make_error(a.tools + ": not a JSON array of tools");
  }
  CORRAL_ASSIGN_OR_RETURN(std::string text, slurp(a.text, "--text"));
  ParsedOutput p = parse_tool_calls(fmt, text, tool_specs(tools));
  ojson msg = ojson::object();
  msg["content"] = p.content ? ojson(*p.content) : ojson(nullptr);
  ojson calls = ojson::array();
  for (size_t i = 0; i < p.calls.size(); ++i)
    calls.push_back({{"id", "call_" + std::to_string(i)},
                     {"type", "function"},
                     {"function", {{"name", p.calls[i].name}, {"arguments", p.calls[i].arguments}}}});
  msg["tool_calls"] = calls;
  std::cout << msg.dump(-1, ' ', false, ojson::error_handler_t::replace) << "\n" << std::flush;
  return Status::ok();
}

}  // namespace

Action add_template(CLI::App& app) {
  auto* sub = app.add_subcommand("template", "Chat templates: render a conversation, parse tool calls");
  sub->require_subcommand(1);
  auto a = std::make_shared<TemplateArgs>();
  auto action = std::make_shared<Action>();
  auto* render = sub->add_subcommand("render", "Print the prompt a conversation renders to (exactly)");
  render->add_option("-m,--model", a->model, "GGUF or HF folder: its own template");
  render->add_option("--template", a->tpl, "a Jinja template file");
  render->add_option("--chat-template", a->chat_template, "with -m: FILE, a NAME the model ships, or llama2/3/4");
  render->add_option("--bos-token", a->bos, "bos_token for --template");
  render->add_option("--eos-token", a->eos, "eos_token for --template");
  render->add_option("--input", a->input, "CONV.json: {\"messages\": [...], \"tools\": [...], other variables}")
      ->required();
  render->add_flag("--no-generation-prompt", a->no_gen, "add_generation_prompt = false");
  render->add_option("--now", a->now, "strftime_now's date, YYYY-MM-DD (default: CORRAL_NOW, else today, UTC)");
  render->callback([a, action] { *action = [a] { return run_render(*a); }; });
  auto* tc = sub->add_subcommand("tool-calls", "Parse a model output into the OpenAI assistant message");
  tc->add_option("-m,--model", a->model, "GGUF or HF folder: the format detected for it");
  tc->add_option("--template", a->tpl, "a Jinja template file: the format detected for it");
  tc->add_option("--format", a->format, "llama3, llama4 or hermes");
  tc->add_option("--tools", a->tools, "TOOLS.json: the request's tools array");
  tc->add_option("--text", a->text, "the model output (special tokens written out)")->required();
  tc->callback([a, action] { *action = [a] { return run_tool_calls(*a); }; });
  return [action] { return (*action)(); };
}

}  // namespace corral::cli
