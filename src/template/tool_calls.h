// Tool calls in model output, per format: Llama 3.1/3.3 JSON calls (with or without
// <|python_tag|>, several separated by ';'), Llama 3.1 built-in tools (NAME.call(k="v")),
// Llama 3.2/3.3/4 pythonic lists ([f(a=1), g(b="x")], Llama 4 optionally inside
// <|python_start|>...<|python_end|>) and Hermes <tool_call>{...}</tool_call>. A call counts only
// for a tool the request names, with its required arguments; anything else stays content,
// verbatim. The streaming parser releases content as soon as it cannot be part of a call and
// the calls when the output is complete, so its deltas add up to the non-streamed message.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "template/chat.h"

namespace corral {

struct ToolSpec {
  std::string name;
  std::vector<std::string> required;
};
// From the request's `tools` ([{type: "function", function: {name, parameters}}]).
std::vector<ToolSpec> tool_specs(const nlohmann::ordered_json& tools);

struct ToolCall {
  std::string name;
  std::string arguments;  // a JSON object as text
};

struct ParsedOutput {
  std::optional<std::string> content;  // null when the message is only calls
  std::vector<ToolCall> calls;
};

// `text` as detokenized with special tokens written out.
ParsedOutput parse_tool_calls(ToolFormat f, const std::string& text, const std::vector<ToolSpec>& tools);

// Deltas for a stream: content now, calls at the end.
class ToolCallStream {
 public:
  ToolCallStream(ToolFormat f, std::vector<ToolSpec> tools) : f_(f), tools_(std::move(tools)) {}
  // Content that can be released now (possibly empty).
  std::string feed(const std::string& delta);
  // The output is complete: the rest of the content and the calls. `truncated`: max_tokens cut it
  // (a call cut short is content then, never a call).
  ParsedOutput finish(bool truncated);
  const std::string& text() const { return text_; }
  ToolFormat format() const { return f_; }
  const std::vector<ToolSpec>& tools() const { return tools_; }

 private:
  ToolFormat f_;
  std::vector<ToolSpec> tools_;
  std::string text_;
  size_t released_ = 0;  // bytes of text_ released as content
  size_t scanned_ = 0;   // no marker starts before this offset (each delta is searched once)
  bool holding_ = false;  // a call may have started: hold everything from here
};

}  // namespace corral
