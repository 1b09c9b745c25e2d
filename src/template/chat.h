// A model's chat format: its own Jinja template (from the GGUF, the HF folder, or
// --chat-template FILE|NAME), the context transformers builds for it, and the tool-call format
// detected from the template and vocabulary. The built-in llama2/llama3/llama4 renderings are
// only the fallback for a model that ships no template.
#pragma once
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "template/jinja.h"
#include "template/builtin_chat.h"

namespace corral {

struct Vocab;

enum class ToolFormat { kNone, kLlama3, kLlama4, kHermes };
const char* tool_format_name(ToolFormat f);
Expected<ToolFormat> tool_format_by_name(const std::string& name);

struct ChatFormat {
  std::optional<jinja::Template> jinja;  // absent: the built-in rendering below
  ChatTemplate builtin = ChatTemplate::kLlama3;
  std::string origin;  // where it came from, for `corral info` and logs
  std::string bos_token, eos_token;
  ToolFormat tools = ToolFormat::kNone;
};

// `flag`: empty (the model's own), a file path, a named template the model ships
// (tokenizer.chat_template.NAME), or llama2/llama3/llama4 (the built-in renderings). A template
// that fails to parse is an error naming its origin and line.
Expected<ChatFormat> load_chat_format(const Vocab& v, const std::string& flag);
// A template from text (corral template render --template FILE).
Expected<ChatFormat> chat_format_from_text(const std::string& text, const std::string& origin,
                                           const std::string& bos, const std::string& eos);

struct ChatInput {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools;  // null: none
  std::vector<std::pair<std::string, nlohmann::ordered_json>> vars;  // chat_template_kwargs
  bool add_generation_prompt = true;
  std::time_t now = 0;  // strftime_now's clock; 0: now
};

struct ChatRenderError {
  std::string message;
  bool raised = false;  // the template's own raise_exception
};

// The prompt text (special tokens written out; encode with parse_special and no added BOS).
Expected<std::string> render_chat(const ChatFormat& f, const ChatInput& in);

// The prompt ids: rendered, special tokens parsed, and BOS exactly once (the template's own, else
// the tokenizer's when the vocabulary adds one). A raise_exception comes back as its message
// alone; other failures name the template.
class Tokenizer;
Expected<std::vector<int32_t>> encode_chat(const Tokenizer& tok, const ChatFormat& f, const ChatInput& in);
// A conversation of plain (role, content) turns as template input.
ChatInput chat_input_of(const std::vector<ChatMessage>& msgs);

// The OpenAI messages made ready for a template: JSON-string tool-call arguments parsed into
// objects (so that tojson does not encode them twice).
nlohmann::ordered_json prepare_messages(const nlohmann::ordered_json& messages);

// "YYYY-MM-DD" (--now, CORRAL_NOW) to a UTC time at midnight; 0 for an empty string.
Expected<std::time_t> parse_now(const std::string& s);

}  // namespace corral
