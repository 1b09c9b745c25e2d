// OpenAI request schemas: validation of chat and legacy completion bodies into one plain
// GenRequest, and the error object every failure is answered with. Pure functions: no HTTP, no
// engine, so they are tested (and fuzzed) on their own.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "template/builtin_chat.h"
#include "template/chat.h"

namespace corral {

// JSON text for a response or log line; invalid UTF-8 in model output becomes U+FFFD instead
// of throwing.
inline std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Model output made valid UTF-8 the way dump() renders it (each invalid sequence becomes
// U+FFFD), for text that is kept and sent again later: a stored response, a conversation.
inline std::string valid_utf8(const std::string& s) {
  return nlohmann::json::parse(dump(nlohmann::json(s))).get<std::string>();
}

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty: null
  std::string code;   // empty: null
  int retry_after_s = 0;  // 429/503: the Retry-After header (0: 1 second)
  nlohmann::json body() const;
};

// Everything a generation request asks for, validated.
struct GenRequest {
  bool chat = false;
  std::string model;                             // empty: the server's only / first model
  std::vector<ChatMessage> messages;             // chat
  // Chat, as the template sees it (keys in the order sent): messages with content parts joined
  // into strings, `tools` (null: none) and chat_template_kwargs. Set by chat_template_input().
  ChatInput chat_input;
  std::string tool_choice = "auto";  // auto, none, required, or "function" (forced_tool names it)
  std::string forced_tool;
  bool parallel_tool_calls = true;
  // Structured output (response_format / grammar), parsed with the keys' order kept.
  struct Constraint {
    enum class Kind { kNone, kJsonObject, kJsonSchema, kGbnf } kind = Kind::kNone;
    std::string text;   // the schema (JSON text, keys in the order sent) or the GBNF source
    std::string param;  // where it came from, for errors: response_format or grammar
  } constraint;
  // Each tool's name, its parameters schema as JSON text (keys in order; "{}" when absent) and
  // strict flag, for forced calls.
  struct ToolSchema {
    std::string name, parameters;
    bool strict = false;
  };
  std::vector<ToolSchema> tool_schemas;
  std::vector<std::string> prompts;              // completions, text prompts ...
  std::vector<std::vector<int32_t>> prompt_ids;  // ... or id prompts
  std::optional<int64_t> max_tokens;             // absent: the rest of the context
  double temperature = 1.0, top_p = 1.0, min_p = 0.0;
  int64_t top_k = 0;
  double frequency_penalty = 0, presence_penalty = 0, repetition_penalty = 1.0;
  std::optional<int64_t> seed;
  std::vector<std::string> stop;
  int64_t n = 1;
  bool logprobs = false;
  int64_t top_logprobs = 0;  // chat: alternatives; completions: the legacy integer logprobs
  bool echo = false;
  bool stream = false, include_usage = false;
  bool ignore_eos = false;
  std::string user;
};

// nullopt on success; an ApiError naming the offending field otherwise.
std::optional<ApiError> parse_gen_request(const nlohmann::json& body, bool chat, GenRequest* out);

// The chat's template input from the raw body (parsed again with its keys' order kept, as
// Python's json.loads keeps them: tools and arguments are printed by the template).
std::optional<ApiError> chat_template_input(const std::string& body_text, GenRequest* g);

// response_format, grammar and the tools' schemas from the raw body (keys' order kept: properties
// are generated in the schema's order).
std::optional<ApiError> parse_constraint(const std::string& body_text, GenRequest* g);

// Parses a request body; a 400 error when it is not a JSON object.
std::optional<ApiError> parse_json_body(const std::string& text, nlohmann::json* out);

}  // namespace corral
