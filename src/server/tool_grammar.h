// The grammar a chat's output is held to when its tool calls are constrained: a forced call
// (tool_choice "required" or a named function), or, under tool_choice "auto", free text or a
// call where tools are `strict`. Calls are written in the model's own format (llama3 JSON,
// hermes <tool_call> tags, Llama 4 pythonic) so that the format's parser reads them back; text
// that the parser would take for the start of a call is only allowed as a valid call.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "grammar/grammar.h"
#include "template/tool_calls.h"

namespace corral {

struct ToolGrammarTool {
  std::string name;
  std::string parameters;  // JSON Schema text, keys in the order sent ("{}": any object)
  bool strict = false;
};

struct ToolGrammarRequest {
  ToolFormat format = ToolFormat::kNone;
  std::vector<ToolGrammarTool> tools;  // the callable ones (a named function: only it)
  bool forced = false;                 // a call must come (else free text or a call)
  bool parallel = true;                // several calls allowed (auto mode)
  // Auto mode: what the text must be when it is not a call (response_format); absent: any
  // text that does not begin a call.
  std::shared_ptr<const grammar::Grammar> content;
};

// Errors name the tool and the schema keyword (with its JSON pointer).
Expected<grammar::Grammar> tool_call_grammar(const ToolGrammarRequest& r);

}  // namespace corral
