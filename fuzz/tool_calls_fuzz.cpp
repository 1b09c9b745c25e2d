// libFuzzer target: model output through every tool-call parser, whole and streamed in two
// pieces; the streamed content and calls must add up to the non-streamed message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "template/tool_calls.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace corral;
  if (size < 1) return 0;
  const size_t split = data[0] % (size);
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::vector<ToolSpec> tools = {{"get_weather", {"city"}}, {"f", {}}, {"brave_search", {}}};
  for (ToolFormat f : {ToolFormat::kLlama3, ToolFormat::kLlama4, ToolFormat::kHermes}) {
    ParsedOutput whole = parse_tool_calls(f, text, tools);
    ToolCallStream s(f, tools);
    std::string content = s.feed(text.substr(0, std::min(split, text.size())));
    content += s.feed(text.substr(std::min(split, text.size())));
    ParsedOutput rest = s.finish(false);
    if (rest.content) content += *rest.content;
    if (content != whole.content.value_or("") || rest.calls.size() != whole.calls.size()) std::abort();
    for (size_t i = 0; i < whole.calls.size(); ++i)
      if (rest.calls[i].name != whole.calls[i].name || rest.calls[i].arguments != whole.calls[i].arguments)
        std::abort();
  }
  return 0;
}
