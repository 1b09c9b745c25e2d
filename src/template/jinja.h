// The Jinja engine's public face: parse once (syntax errors name the template and line), render
// many times with a context, inside the sandbox's limits. Semantics are jinja2's as transformers
// configures it for chat templates: ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
// loopcontrols, default Undefined, its own tojson, raise_exception and strftime_now.
#pragma once
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "template/value.h"

namespace corral::jinja {

struct Program;

// Limits against hostile templates from downloaded model files; each is a clear error.
struct RenderLimits {
  size_t max_output_bytes = size_t(32) << 20;  // the rendered text, and any one string or list
  uint64_t max_steps = 2'000'000;              // loop iterations and calls, all together
  int max_call_depth = 256;                    // macro and call nesting
};

struct Template {
  std::shared_ptr<Program> program;
  std::string name;
};

// Checks filter and test names as jinja2 does at compile time.
Expected<Template> parse(const std::string& source, const std::string& name);

struct RenderOptions {
  RenderLimits limits;
  std::time_t now = 0;  // strftime_now's clock (UTC); 0: the current time
};

// A template exception (raise_exception included) comes back as an Error whose message is
// "KIND: message", e.g. "TemplateError: Conversation roles must alternate".
Expected<std::string> render(const Template& t,
                             const std::vector<std::pair<std::string, Value>>& vars,
                             const RenderOptions& o = {});

// The message of a raise_exception(msg) call, when that is what failed.
bool is_raised(const Error& e, std::string* msg);

}  // namespace corral::jinja
