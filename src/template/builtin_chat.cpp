#include "template/builtin_chat.h"

#include "tokenizer/vocab.h"

namespace corral {

namespace {

// Jinja's |trim: strips leading and trailing whitespace.
std::string trim(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::string render_llama2(const std::vector<ChatMessage>& msgs, const std::string& bos) {
  // <s>[INST] <<SYS>>\n{sys}\n<</SYS>>\n\n{user} [/INST] {answer} </s><s>[INST] {user} [/INST]
  std::string out, system;
  size_t i = 0;
  if (!msgs.empty() && msgs[0].role == "system") system = trim(msgs[0].content), i = 1;
  bool first_user = true;
  for (; i < msgs.size(); ++i) {
    const auto& m = msgs[i];
    if (m.role == "user") {
      out += bos + "[INST] ";
      if (first_user && !system.empty()) out += "<<SYS>>\n" + system + "\n<</SYS>>\n\n";
      out += trim(m.content) + " [/INST]";
      first_user = false;
    } else if (m.role == "assistant") {
      out += " " + trim(m.content) + " </s>";
    }
  }
  return out;
}

std::string render_llama3(const std::vector<ChatMessage>& msgs, bool gen, const std::string& bos) {
  std::string out = bos;
  for (auto& m : msgs)
    out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
  if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

std::string render_llama4(const std::vector<ChatMessage>& msgs, bool gen, const std::string& bos) {
  std::string out = bos;
  for (auto& m : msgs)
    out += "<|header_start|>" + m.role + "<|header_end|>\n\n" + trim(m.content) + "<|eot|>";
  if (gen) out += "<|header_start|>assistant<|header_end|>\n\n";
  return out;
}

}  // namespace

Expected<ChatTemplate> chat_template_by_name(const std::string& name) {
  if (name == "llama2" || name == "llama-2") return ChatTemplate::kLlama2;
  if (name.rfind("llama3", 0) == 0 || name.rfind("llama-3", 0) == 0) return ChatTemplate::kLlama3;
  if (name == "llama4" || name == "llama-4") return ChatTemplate::kLlama4;
  return make_error("--chat-template: unknown template '" + name + "' (llama2, llama3, llama4)");
}

Expected<ChatTemplate> choose_chat_template(const Vocab& v, const std::string& name) {
  if (!name.empty()) return chat_template_by_name(name);
  if (auto d = chat_template_detect(v.chat_template)) return *d;
  if (v.kind == VocabKind::kSpm) return ChatTemplate::kLlama2;
  return v.token_to_id.count("<|header_start|>") ? ChatTemplate::kLlama4 : ChatTemplate::kLlama3;
}

std::optional<ChatTemplate> chat_template_detect(const std::string& j) {
  if (j.find("<|header_start|>") != std::string::npos) return ChatTemplate::kLlama4;
  if (j.find("<|start_header_id|>") != std::string::npos) return ChatTemplate::kLlama3;
  if (j.find("[INST]") != std::string::npos) return ChatTemplate::kLlama2;
  return std::nullopt;
}

std::string chat_render(ChatTemplate t, const std::vector<ChatMessage>& msgs, bool gen,
                        const std::string& bos) {
  switch (t) {
    case ChatTemplate::kLlama2: return render_llama2(msgs, bos);
    case ChatTemplate::kLlama3: return render_llama3(msgs, gen, bos);
    case ChatTemplate::kLlama4: return render_llama4(msgs, gen, bos);
  }
  return "";
}

}  // namespace corral
