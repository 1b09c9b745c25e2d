// The chat side of a generation request: the prompt as the model's template renders it, and the
// assistant message (content and tool calls) in the API's shape, whole or as stream deltas.
#include "server/chat_tools.h"

#include <random>

#include "server/tool_grammar.h"
#include "template/tool_calls.h"
#include "tokenizer/tokenizer.h"

namespace corral {

Expected<std::vector<int32_t>> chat_prompt_ids(const ServedModel& m, ChatInput in,
                                               std::time_t now) {
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
    : active(!g.chat_input.tools.is_null() && g.tool_choice != "none" &&
             m.chat.tools != ToolFormat::kNone),
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

std::string ChatToolState::feed(const std::string& text) {
  return active ? stream.feed(text) : text;
}

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
    deltas.push_back(
        {{"tool_calls",
          nlohmann::json::array({{{"index", i},
                                  {"id", tool_call_id()},
                                  {"type", "function"},
                                  {"function", {{"name", c.name}, {"arguments", ""}}}}})}});
    size_t half = c.arguments.size() / 2;
    while (half > 0 && (static_cast<unsigned char>(c.arguments[half]) & 0xC0) == 0x80) --half;
    for (const std::string& piece : {c.arguments.substr(0, half), c.arguments.substr(half)})
      if (!piece.empty())
        deltas.push_back(
            {{"tool_calls",
              nlohmann::json::array({{{"index", i}, {"function", {{"arguments", piece}}}}})}});
  }
  *has_calls = !rest.calls.empty();
  return deltas;
}

OutputConstraint output_constraint(const ServedModel& m, const GenRequest& g) {
  using K = GenRequest::Constraint::Kind;
  OutputConstraint out;
  std::optional<grammar::ConstraintSpec> content;
  if (g.constraint.kind != K::kNone) {
    grammar::ConstraintSpec spec;
    spec.text = g.constraint.text;
    spec.kind = g.constraint.kind == K::kJsonObject   ? grammar::ConstraintSpec::Kind::kJsonObject
                : g.constraint.kind == K::kJsonSchema ? grammar::ConstraintSpec::Kind::kJsonSchema
                                                      : grammar::ConstraintSpec::Kind::kGbnf;
    content = std::move(spec);
  }
  const bool forced = g.chat && (g.tool_choice == "required" || g.tool_choice == "function");
  bool strict = false;
  for (auto& t : g.tool_schemas) strict = strict || t.strict;
  const bool strict_auto =
      g.chat && g.tool_choice == "auto" && strict && m.chat.tools != ToolFormat::kNone;
  out.param = forced ? "tool_choice" : strict_auto ? "tools" : g.constraint.param;
  if (!forced && !strict_auto) {
    out.spec = std::move(content);
    return out;
  }
  // Calls in the model's own format: forced, or under "auto" free text (or the response_format
  // value) or a call, strict tools' arguments held to their schemas.
  ToolGrammarRequest r;
  r.format = m.chat.tools;
  r.forced = forced;
  r.parallel = g.parallel_tool_calls;
  std::string key = std::string(tool_format_name(r.format)) + (forced ? "|forced|" : "|auto|") +
                    (r.parallel ? "parallel|" : "single|");
  for (auto& t : g.tool_schemas) {
    if (g.tool_choice == "function" && t.name != g.forced_tool) continue;
    r.tools.push_back({t.name, t.parameters, t.strict});
    key += t.name + '\0' + (t.strict ? "s" : "-") + t.parameters + '\0';
  }
  auto bad = [&](const std::string& msg, const char* param) {
    out.error = ApiError{400, msg, "invalid_request_error", param,
                         forced ? "unsupported_value" : "invalid_value"};
    return out;
  };
  if (!forced && content) {
    auto cg = grammar::build_grammar(*content);
    if (!cg.is_ok())
      return bad(cg.message(), g.constraint.param == "grammar" ? "grammar" : "response_format");
    r.content = std::make_shared<const grammar::Grammar>(std::move(*cg));
    key += "content|" + std::to_string(int(content->kind)) + '\0' + content->text;
  }
  auto tg = tool_call_grammar(r);
  if (!tg.is_ok()) return bad(tg.message(), forced ? "tool_choice" : "tools");
  grammar::ConstraintSpec spec;
  spec.kind = grammar::ConstraintSpec::Kind::kGrammar;
  spec.text = std::move(key);
  spec.grammar = std::make_shared<const grammar::Grammar>(std::move(*tg));
  out.spec = std::move(spec);
  return out;
}

}  // namespace corral
