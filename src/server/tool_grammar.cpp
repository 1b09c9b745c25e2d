#include "server/tool_grammar.h"

#include <map>
#include <nlohmann/json.hpp>

#include "grammar/json_schema.h"

namespace corral {
namespace {

using grammar::ByteSet;
using grammar::Grammar;
using ojson = nlohmann::ordered_json;

ByteSet all_bytes() {
  ByteSet s;
  s.set();
  return s;
}

// Any bytes that contain none of `ps` (which all begin with one byte occurring nowhere else in
// them, so a failed partial match restarts only at that byte): (x | R F)* (R P)?, x a byte
// other than the head, R the head followed by partial matches each cut off by another head
// ("<", "<tool<", "<<"), F a partial match ended by a byte that neither continues it nor is the
// head, P an unfinished partial match.
int32_t without(Grammar& g, const std::vector<std::string>& ps) {
  const uint8_t head = uint8_t(ps[0][0]);
  std::map<std::string, ByteSet> next;  // proper prefixes after the head -> bytes continuing them
  for (const std::string& p : ps)
    for (size_t k = 1; k < p.size(); ++k) next[p.substr(1, k - 1)].set(uint8_t(p[k]));
  std::vector<int32_t> partial, fails;
  for (const auto& [pre, cont] : next) {
    partial.push_back(g.literal(pre));
    ByteSet c = all_bytes() & ~cont;
    c.reset(head);
    fails.push_back(g.seq({g.literal(pre), g.bytes(c)}));
  }
  const int32_t r = g.seq({g.byte(head), g.star(g.seq({g.alt(partial), g.byte(head)}))});
  ByteSet other = all_bytes();
  other.reset(head);
  const int32_t loop = g.star(g.alt({g.bytes(other), g.seq({r, g.alt(fails)})}));
  return g.seq({loop, g.opt(g.seq({r, g.alt(partial)}))});
}

int32_t space(Grammar& g) {  // what the parsers skip: spaces, tabs, newlines (bounded)
  ByteSet s;
  s.set(' '), s.set('\t'), s.set('\n'), s.set('\r');
  return g.repeat(g.bytes(s), 0, 8);
}

// Text the JSON / pythonic parsers do not take for a call: its first non-space byte is not
// { or [, and it never spells a call marker out.
int32_t free_text(Grammar& g, ToolFormat f) {
  ByteSet s, first = all_bytes();
  s.set(' '), s.set('\t'), s.set('\n'), s.set('\r');
  for (char c : {' ', '\t', '\n', '\r', '{', '['}) first.reset(uint8_t(c));
  const int32_t lead =
      g.alt({g.star(g.bytes(s)),
             g.seq({g.star(g.bytes(s)), g.bytes(first), g.star(g.bytes(all_bytes()))})});
  std::vector<std::string> markers = {"<|python_tag|>"};
  if (f == ToolFormat::kLlama4) markers.push_back("<|python_start|>");
  return g.intersect(lead, without(g, markers));
}

Expected<int32_t> json_call(Grammar& g, const ToolGrammarTool& t, const char* key, bool constrain) {
  ojson params = constrain ? ojson::parse(t.parameters, nullptr, false) : ojson{{"type", "object"}};
  if (params.is_discarded())
    return make_error("tool '" + t.name + "': parameters are not valid JSON");
  ojson call = {{"type", "object"},
                {"properties", {{"name", {{"const", t.name}}}, {key, params}}},
                {"required", {"name", key}},
                {"additionalProperties", false}};
  auto sub = grammar::schema_to_grammar(call);
  if (!sub.is_ok()) return make_error("tool '" + t.name + "': " + sub.message());
  return g.import(*sub);
}

// NAME(k=v, ...) with the schema's properties, or any keyword arguments.
Expected<int32_t> python_call(Grammar& g, const ToolGrammarTool& t, bool constrain) {
  if (!grammar::python_identifier(t.name))
    return make_error("tool '" + t.name +
                      "': the name is not a Python identifier (pythonic calls)");
  int32_t args;
  if (constrain) {
    ojson params = ojson::parse(t.parameters, nullptr, false);
    if (params.is_discarded())
      return make_error("tool '" + t.name + "': parameters are not valid JSON");
    auto sub = grammar::kwargs_grammar(params);
    if (!sub.is_ok()) return make_error("tool '" + t.name + "': " + sub.message());
    args = g.import(*sub);
  } else {
    grammar::SchemaOptions o;
    o.python = true;
    auto any = grammar::schema_to_grammar(ojson(true), o);
    if (!any.is_ok()) return any.error();
    ByteSet a, b;
    for (int c = 'a'; c <= 'z'; ++c) a.set(uint8_t(c)), a.set(uint8_t(c - 32));
    a.set('_');
    b = a;
    for (int c = '0'; c <= '9'; ++c) b.set(uint8_t(c));
    const int32_t v = g.import(*any);
    const int32_t kw = g.seq({g.bytes(a), g.repeat(g.bytes(b), 0, 63), g.byte('='), v});
    args = g.opt(g.seq({kw, g.star(g.seq({g.literal(","), space(g), kw}))}));
  }
  return g.seq({g.literal(t.name), g.byte('('), args, g.byte(')')});
}

}  // namespace

Expected<Grammar> tool_call_grammar(const ToolGrammarRequest& r) {
  Grammar g;
  const ToolFormat f = r.format;
  if (f != ToolFormat::kLlama3 && f != ToolFormat::kHermes && f != ToolFormat::kLlama4)
    return make_error(
        std::string("this model's tool-call format (") + tool_format_name(f) +
        ") cannot be constrained; constrained calls support the llama3, hermes and llama4 formats");
  if (r.tools.empty()) return make_error("no tools to call");
  // One call of any allowed tool; strict tools (and every tool of a forced call) with their
  // parameters' schema, the others with any arguments.
  std::vector<int32_t> calls;
  for (const auto& t : r.tools) {
    const bool constrain = r.forced || t.strict;
    Expected<int32_t> c =
        f == ToolFormat::kLlama4
            ? python_call(g, t, constrain)
            : json_call(g, t, f == ToolFormat::kHermes ? "arguments" : "parameters", constrain);
    if (!c.is_ok()) return c.error();
    calls.push_back(*c);
  }
  const int32_t call = g.alt(calls);
  const bool many = r.parallel && !r.forced;
  int32_t region;  // the calls, as the format's parser reads them
  if (f == ToolFormat::kHermes) {
    const int32_t one = g.seq({g.literal("<tool_call>\n"), call, g.literal("\n</tool_call>")});
    region = many ? g.seq({one, g.star(g.seq({space(g), one}))}) : one;
  } else if (f == ToolFormat::kLlama4) {
    region =
        g.seq({g.byte('['), call,
               many ? g.star(g.seq({g.literal(","), space(g), call})) : g.empty(), g.byte(']')});
  } else {
    region = many ? g.seq({call, g.star(g.seq({space(g), g.byte(';'), space(g), call}))}) : call;
  }
  region = g.seq({space(g), region, space(g)});
  int32_t body;
  if (r.forced) {
    body = region;
  } else {
    int32_t text;
    if (r.content)
      text = g.import(*r.content);
    else if (f == ToolFormat::kHermes)
      text = without(g, {"<tool_call>"});
    else
      text = free_text(g, f);
    // Hermes: text, then optionally calls (the parser takes what precedes <tool_call> as
    // content). The JSON and pythonic formats: a call only at the very start.
    body = f == ToolFormat::kHermes && !r.content ? g.seq({text, g.opt(region)})
                                                  : g.alt({text, region});
  }
  const int32_t root = g.new_rule("tool output");
  g.define(root, body);
  g.start = root;
  return g;
}

}  // namespace corral
