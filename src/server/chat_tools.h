// The chat side of a generation request: the prompt as the model's template renders it, and the
// assistant message with its tool calls, whole or as stream deltas.
#pragma once
#include <ctime>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "grammar/constraint.h"
#include "server/http_server.h"
#include "template/tool_calls.h"

namespace corral {

// A chat's prompt ids: rendered with the model's template, special tokens parsed, and BOS
// exactly once (the template's own, else the tokenizer's when the vocabulary adds one).
// A raise_exception comes back as its own message; other template failures name the template.
Expected<std::vector<int32_t>> chat_prompt_ids(const ServedModel& m, ChatInput in, std::time_t now);

std::string tool_call_id();

// What the output must match, if anything: response_format / grammar, or a forced tool call
// (tool_choice "required" or a named function) in the model's own tool-call format with each
// tool's parameters schema, or, under tool_choice "auto" with `strict` tools, free text or a
// call (see tool_grammar.h). An error is a 400 naming the parameter.
struct OutputConstraint {
  std::optional<grammar::ConstraintSpec> spec;
  std::optional<ApiError> error;
  std::string param;  // the request field the constraint comes from (for compile errors)
};
OutputConstraint output_constraint(const ServedModel& m, const GenRequest& g);  // "call_" + 24 letters and digits

// Tool calling for one choice: active when the request has tools, tool_choice is not "none"
// and the model has a tool-call format.
struct ChatToolState {
  ChatToolState(const ServedModel& m, const GenRequest& g);
  bool active;
  bool parallel;
  ToolCallStream stream;

  // Non-streamed: the message for the whole text (`truncated`: max_tokens cut it).
  nlohmann::json message(const std::string& text, bool truncated, bool* has_calls);
  // Streamed: the content that can go out now, then at the end the remaining deltas.
  std::string feed(const std::string& text);
  std::vector<nlohmann::json> finish(bool truncated, bool* has_calls);
};

}  // namespace corral
