// The chat side of a generation request: the prompt as the model's template renders it, and the
// assistant message (content and tool calls) in the API's shape, whole or as stream deltas.
#include <random>

#include "server/chat_tools.h"
#include "template/tool_calls.h"
#include "tokenizer/tokenizer.h"

namespace corral {

Expected<std::vector<int32_t>> chat_prompt_ids(const ServedModel& m, ChatInput in, std::time_t now) {
  in.now = now;
  in.add_generation_prompt = true;
  return encode_chat(*m.engine->tok, m.chat, in);
}

std::string tool_call_id() {
  static const char* kAlnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = "call_";
  for (int k = 0; k < 24; ++k) id += kAlnum[rng() % 62];
  return id;
}

ChatToolState::ChatToolState(const ServedModel& m, const GenRequest& g)
    : active(!g.chat_input.tools.is_null() && g.tool_choice != "none" && m.chat.tools != ToolFormat::kNone),
      parallel(g.parallel_tool_calls),
      stream(m.chat.tools, tool_specs(g.chat_input.tools)) {}

nlohmann::json ChatToolState::message(const std::string& text, bool truncated, bool* has_calls) {
  nlohmann::json msg = {{"role", "assistant"}, {"content", text}};
  *has_calls = false;
  if (!active || truncated) return msg;
  ParsedOutput p = parse_tool_calls(stream.format(), text, stream.tools());
  if (p.calls.empty()) return msg;
  if (!parallel) p.calls.resize(1);
  nlohmann::json calls = nlohmann::json::array();
  for (auto& c : p.calls)
    calls.push_back({{"id", tool_call_id()},
                     {"type", "function"},
                     {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
  msg["content"] = p.content ? nlohmann::json(*p.content) : nlohmann::json(nullptr);
  msg["tool_calls"] = calls;
  *has_calls = true;
  return msg;
}

std::string ChatToolState::feed(const std::string& text) { return active ? stream.feed(text) : text; }

std::vector<nlohmann::json> ChatToolState::finish(bool truncated, bool* has_calls) {
  std::vector<nlohmann::json> deltas;
  *has_calls = false;
  if (!active) return deltas;
  ParsedOutput rest = stream.finish(truncated);
  if (rest.content && !rest.content->empty()) deltas.push_back({{"content", *rest.content}});
  if (!parallel && rest.calls.size() > 1) rest.calls.resize(1);
  for (size_t i = 0; i < rest.calls.size(); ++i) {
    const ToolCall& c = rest.calls[i];
    // The first delta of a call names it; its arguments follow in pieces (cut on a character
    // boundary) that concatenate to the whole.
    deltas.push_back({{"tool_calls",
                       nlohmann::json::array({{{"index", i},
                                               {"id", tool_call_id()},
                                               {"type", "function"},
                                               {"function", {{"name", c.name}, {"arguments", ""}}}}})}});
    size_t half = c.arguments.size() / 2;
    while (half > 0 && (static_cast<unsigned char>(c.arguments[half]) & 0xC0) == 0x80) --half;
    for (const std::string& piece : {c.arguments.substr(0, half), c.arguments.substr(half)})
      if (!piece.empty())
        deltas.push_back({{"tool_calls", nlohmann::json::array({{{"index", i}, {"function", {{"arguments", piece}}}}})}});
  }
  *has_calls = !rest.calls.empty();
  return deltas;
}

OutputConstraint output_constraint(const ServedModel& m, const GenRequest& g) {
  using ojson = nlohmann::ordered_json;
  using K = GenRequest::Constraint::Kind;
  OutputConstraint out;
  const bool forced = g.chat && (g.tool_choice == "required" || g.tool_choice == "function");
  if (forced) {
    const ToolFormat f = m.chat.tools;
    if (f != ToolFormat::kLlama3 && f != ToolFormat::kHermes) {
      out.error = ApiError{400,
                           std::string("'tool_choice' cannot force a call with this model's tool-call format (") +
                               tool_format_name(f) + "); forced calls support the llama3 and hermes formats.",
                           "invalid_request_error", "tool_choice", "unsupported_value"};
      return out;
    }
    // One call: {"name": N, "parameters"|"arguments": {...}}, N one of the allowed tools.
    ojson alts = ojson::array();
    for (auto& t : g.tool_schemas) {
      if (g.tool_choice == "function" && t.name != g.forced_tool) continue;
      ojson params = ojson::parse(t.parameters, nullptr, false);
      if (params.is_discarded()) params = ojson::object();
      const char* key = f == ToolFormat::kHermes ? "arguments" : "parameters";
      ojson call = {{"type", "object"},
                    {"properties", {{"name", {{"const", t.name}}}, {key, params}}},
                    {"required", {"name", key}},
                    {"additionalProperties", false}};
      alts.push_back(call);
    }
    grammar::ConstraintSpec spec;
    spec.kind = grammar::ConstraintSpec::Kind::kJsonSchema;
    spec.text = (alts.size() == 1 ? alts[0] : ojson{{"anyOf", alts}}).dump();
    if (f == ToolFormat::kHermes) spec.prefix = "<tool_call>\n", spec.suffix = "\n</tool_call>";
    out.spec = std::move(spec);
    return out;
  }
  if (g.constraint.kind == K::kNone) return out;
  grammar::ConstraintSpec spec;
  spec.text = g.constraint.text;
  spec.kind = g.constraint.kind == K::kJsonObject   ? grammar::ConstraintSpec::Kind::kJsonObject
              : g.constraint.kind == K::kJsonSchema ? grammar::ConstraintSpec::Kind::kJsonSchema
                                                    : grammar::ConstraintSpec::Kind::kGbnf;
  out.spec = std::move(spec);
  return out;
}

}  // namespace corral
