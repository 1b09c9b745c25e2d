// libFuzzer target: hostile chat templates (as a downloaded model file may carry) through the
// lexer, parser and evaluator, rendered over a fixed conversation with small sandbox limits:
// every input must parse or fail with an error value, and render or fail, within bounds.
#include <cstddef>
#include <cstdint>
#include <string>

#include "template/jinja.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace corral::jinja;
  const std::string src(reinterpret_cast<const char*>(data), size);
  auto t = parse(src, "fuzz.jinja");
  if (!t) return 0;
  auto conv = nlohmann::ordered_json::parse(
      R"({"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "Grüße 🦙"},
          {"role": "assistant", "content": null, "tool_calls": [{"type": "function",
           "function": {"name": "f", "arguments": {"a": [1, 2.5, true, null]}}}]},
          {"role": "tool", "content": "{\"ok\": 1}"}],
          "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]})");
  std::vector<std::pair<std::string, Value>> vars = {
      {"messages", from_json(conv["messages"])}, {"tools", from_json(conv["tools"])},
      {"add_generation_prompt", Value::boolean(true)}, {"bos_token", Value::str("<s>")}};
  RenderOptions o;
  o.limits.max_output_bytes = 1 << 20;
  o.limits.max_steps = 100000;
  o.limits.max_call_depth = 64;
  o.now = 1700000000;
  auto out = render(*t, vars, o);
  if (out) (void)out->size();
  return 0;
}
