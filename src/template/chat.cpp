// Choosing a model's chat template and rendering a conversation with it.
#include "template/chat.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace corral {

using ojson = nlohmann::ordered_json;

const char* tool_format_name(ToolFormat f) {
  switch (f) {
    case ToolFormat::kLlama3: return "llama3";
    case ToolFormat::kLlama4: return "llama4";
    case ToolFormat::kHermes: return "hermes";
    default: return "none";
  }
}

Expected<ToolFormat> tool_format_by_name(const std::string& n) {
  if (n == "llama3") return ToolFormat::kLlama3;
  if (n == "llama4") return ToolFormat::kLlama4;
  if (n == "hermes") return ToolFormat::kHermes;
  if (n == "none") return ToolFormat::kNone;
  return make_error("--format: unknown tool-call format '" + n + "' (llama3, llama4, hermes)");
}

namespace {

bool has(const std::string& s, const char* x) { return s.find(x) != std::string::npos; }

ToolFormat detect_tools(const std::string& tpl, const Vocab* v, ChatTemplate builtin, bool jinja) {
  if (jinja) {
    if (has(tpl, "<tool_call>")) return ToolFormat::kHermes;
    if (has(tpl, "<|python_start|>") || has(tpl, "<|header_start|>")) return ToolFormat::kLlama4;
    if (has(tpl, "<|python_tag|>") || has(tpl, "<|start_header_id|>") || has(tpl, "ipython"))
      return ToolFormat::kLlama3;
  }
  if (v && v->token_to_id.count("<|python_start|>")) return ToolFormat::kLlama4;
  if (v && v->token_to_id.count("<|python_tag|>")) return ToolFormat::kLlama3;
  if (jinja) return ToolFormat::kNone;  // a template of its own that shows no known format
  if (builtin == ChatTemplate::kLlama4) return ToolFormat::kLlama4;
  if (builtin == ChatTemplate::kLlama3) return ToolFormat::kLlama3;
  return ToolFormat::kNone;
}

std::string token_text(const Vocab& v, int32_t id) { return id >= 0 && id < v.n_tokens() ? v.tokens[size_t(id)] : ""; }

bool is_file(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Expected<std::string> read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return make_error(p + ": cannot read the chat template file");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Expected<ChatFormat> from_jinja(const std::string& text, const std::string& origin, const Vocab* v,
                                const std::string& bos, const std::string& eos) {
  auto t = jinja::parse(text, origin);
  if (!t) return make_error("chat template " + t.message());
  ChatFormat f;
  f.jinja = std::move(*t);
  f.origin = origin;
  f.bos_token = bos;
  f.eos_token = eos;
  f.builtin = chat_template_detect(text).value_or(ChatTemplate::kLlama3);
  f.tools = detect_tools(text, v, f.builtin, true);
  return f;
}

}  // namespace

Expected<ChatFormat> chat_format_from_text(const std::string& text, const std::string& origin,
                                           const std::string& bos, const std::string& eos) {
  return from_jinja(text, origin, nullptr, bos, eos);
}

Expected<ChatFormat> load_chat_format(const Vocab& v, const std::string& flag) {
  const std::string bos = token_text(v, v.bos), eos = token_text(v, v.eos);
  if (flag.empty() && !v.chat_template.empty())
    return from_jinja(v.chat_template,
                      v.chat_template_source.empty() ? "tokenizer.chat_template (the model file's own)"
                                                    : v.chat_template_source + " (the model's own)",
                      &v, bos, eos);
  if (!flag.empty() && is_file(flag)) {
    CORRAL_ASSIGN_OR_RETURN(std::string text, read_file(flag));
    // A chat_template.json / tokenizer_config.json holds it under "chat_template".
    if (flag.size() > 5 && flag.compare(flag.size() - 5, 5, ".json") == 0) {
      ojson j = ojson::parse(text, nullptr, false);
      if (j.is_object() && j.contains("chat_template")) {
        const ojson& ct = j["chat_template"];
        if (ct.is_string()) return from_jinja(ct.get<std::string>(), flag, &v, bos, eos);
        if (ct.is_array())
          for (auto& t : ct)
            if (t.is_object() && t.value("name", "") == "default" && t.contains("template") && t["template"].is_string())
              return from_jinja(t["template"].get<std::string>(), flag, &v, bos, eos);
      }
      return make_error(flag + ": no \"chat_template\" string in this JSON file");
    }
    return from_jinja(text, flag, &v, bos, eos);
  }
  if (flag == "default" && !v.chat_template.empty())
    return from_jinja(v.chat_template, "tokenizer.chat_template", &v, bos, eos);
  for (auto& [name, text] : v.named_chat_templates)
    if (name == flag) return from_jinja(text, "tokenizer.chat_template." + name, &v, bos, eos);
  ChatFormat f;
  f.bos_token = bos;
  f.eos_token = eos;
  if (!flag.empty()) {
    auto b = chat_template_by_name(flag);
    if (!b) {
      std::string names;
      for (auto& [name, text] : v.named_chat_templates) names += ", " + name;
      return make_error("--chat-template '" + flag +
                        "' is neither a file, a template the model ships" +
                        (names.empty() ? std::string("") : " (default" + names + ")") +
                        ", nor llama2/llama3/llama4");
    }
    f.builtin = *b;
    f.origin = std::string("built-in ") + (f.builtin == ChatTemplate::kLlama2   ? "llama2"
                                           : f.builtin == ChatTemplate::kLlama4 ? "llama4"
                                                                                : "llama3");
  } else {
    CORRAL_ASSIGN_OR_RETURN(f.builtin, choose_chat_template(v, ""));
    f.origin = std::string("built-in ") +
               (f.builtin == ChatTemplate::kLlama2 ? "llama2" : f.builtin == ChatTemplate::kLlama4 ? "llama4" : "llama3") +
               " (the model ships no chat template)";
  }
  f.tools = detect_tools("", &v, f.builtin, false);
  return f;
}

ojson prepare_messages(const ojson& messages) {
  ojson out = messages;
  if (!out.is_array()) return out;
  for (auto& m : out) {
    if (!m.is_object() || !m.contains("tool_calls") || !m["tool_calls"].is_array()) continue;
    for (auto& tc : m["tool_calls"]) {
      if (!tc.is_object() || !tc.contains("function") || !tc["function"].is_object()) continue;
      ojson& fn = tc["function"];
      if (fn.contains("arguments") && fn["arguments"].is_string()) {
        ojson parsed = ojson::parse(fn["arguments"].get<std::string>(), nullptr, false);
        if (!parsed.is_discarded() && parsed.is_object()) fn["arguments"] = parsed;
      }
    }
  }
  return out;
}

namespace {

std::string content_text(const ojson& c) {
  if (c.is_string()) return c.get<std::string>();
  std::string s;
  if (c.is_array())
    for (auto& p : c)
      if (p.is_object() && p.contains("text") && p["text"].is_string()) s += p["text"].get<std::string>();
  return s;
}

// The built-in renderings know roles and text; tool calls are written as Llama 3.1's JSON.
std::vector<ChatMessage> plain_messages(const ojson& msgs, ChatTemplate t) {
  std::vector<ChatMessage> out;
  for (auto& m : msgs) {
    ChatMessage cm;
    cm.role = m.value("role", "user");
    if (cm.role == "tool" && t != ChatTemplate::kLlama2) cm.role = "ipython";
    if (m.contains("content")) cm.content = content_text(m["content"]);
    if (cm.content.empty() && m.contains("tool_calls") && m["tool_calls"].is_array())
      for (auto& tc : m["tool_calls"]) {
        if (!tc.contains("function")) continue;
        ojson call = {{"name", tc["function"].value("name", "")},
                      {"parameters", tc["function"].value("arguments", ojson::object())}};
        cm.content += (cm.content.empty() ? "" : "; ") + call.dump();
      }
    out.push_back(std::move(cm));
  }
  return out;
}

}  // namespace

Expected<std::string> render_chat(const ChatFormat& f, const ChatInput& in) {
  ojson msgs = prepare_messages(in.messages);
  if (!f.jinja)
    return chat_render(f.builtin, plain_messages(msgs, f.builtin), in.add_generation_prompt, f.bos_token);
  using jinja::Value;
  std::vector<std::pair<std::string, Value>> vars;
  try {
    vars.emplace_back("messages", jinja::from_json(msgs));
    vars.emplace_back("tools", in.tools.is_null() ? Value::none() : jinja::from_json(in.tools));
    vars.emplace_back("documents", Value::none());  // transformers passes documents=None too
    vars.emplace_back("add_generation_prompt", Value::boolean(in.add_generation_prompt));
    vars.emplace_back("bos_token", Value::str(f.bos_token));
    vars.emplace_back("eos_token", Value::str(f.eos_token));
    for (auto& [k, v] : in.vars) vars.emplace_back(k, jinja::from_json(v));
  } catch (const jinja::TemplateError& e) {
    return make_error(e.kind + ": " + e.what());
  }
  jinja::RenderOptions o;
  o.now = in.now;
  return jinja::render(*f.jinja, vars, o);
}

Expected<std::vector<int32_t>> encode_chat(const Tokenizer& tok, const ChatFormat& f, const ChatInput& in) {
  auto text = render_chat(f, in);
  if (!text) {
    std::string raised;
    if (jinja::is_raised(text.error(), &raised)) return make_error(raised);
    return make_error("the chat template (" + f.origin + ") failed: " + text.message());
  }
  EncodeOptions eo;
  eo.parse_special = true;
  std::vector<int32_t> ids = tok.encode(*text, eo);
  const Vocab& v = tok.vocab();
  if (v.add_bos && v.bos >= 0 && (ids.empty() || ids[0] != v.bos)) ids.insert(ids.begin(), v.bos);
  return ids;
}

ChatInput chat_input_of(const std::vector<ChatMessage>& msgs) {
  ChatInput in;
  for (auto& m : msgs) in.messages.push_back({{"role", m.role}, {"content", m.content}});
  return in;
}

Expected<std::time_t> parse_now(const std::string& s) {
  if (s.empty()) return std::time_t(0);
  std::tm tm{};
  int y, m, d;
  char tail;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || m < 1 || m > 12 || d < 1 || d > 31)
    return make_error("--now: expected YYYY-MM-DD, got '" + s + "'");
  tm.tm_year = y - 1900;
  tm.tm_mon = m - 1;
  tm.tm_mday = d;
  return timegm(&tm);
}

}  // namespace corral
