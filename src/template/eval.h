// Internals shared by the evaluator (eval.cpp) and the built-in filters, tests, methods and
// globals (builtins.cpp, methods.cpp). Not for use outside src/template/.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "template/jinja.h"
#include "template/value.h"

namespace corral::jinja {

struct Frame {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Frame> parent;
  Value* find(const std::string& n) {
    for (Frame* f = this; f; f = f->parent.get())
      for (auto& [k, v] : f->vars)
        if (k == n) return &v;
    return nullptr;
  }
  void set(const std::string& n, Value v) {
    for (auto& [k, x] : vars)
      if (k == n) {
        x = std::move(v);
        return;
      }
    vars.emplace_back(n, std::move(v));
  }
};

struct Env {
  RenderOptions opt;
  // Every namespace() made: emptied when the render ends, since one may hold itself.
  std::vector<std::shared_ptr<DictData>> namespaces;
  uint64_t steps = 0;
  int depth = 0;
  void step() {
    if (++steps > opt.limits.max_steps)
      fail("TemplateLimitError", "template exceeded " + std::to_string(opt.limits.max_steps) +
                                " loop iterations and calls (a hostile or runaway template)");
  }
  void check_size(size_t n) const {
    if (n > opt.limits.max_output_bytes)
      fail("TemplateLimitError", "template output exceeded " + std::to_string(opt.limits.max_output_bytes) +
                                " bytes");
  }
  Value call(const Value& f, Args& a);
};

// environment.getattr / getitem as jinja2's sandbox does them (missing -> Undefined).
Value get_attr(Env& env, const Value& obj, const std::string& name);
Value get_item(Env& env, const Value& obj, const Value& key);
// An Undefined that raises when used: the sandbox's refusal of a mutating method.
Value unsafe_undefined(const Value& obj, const std::string& attr);
// Raises jinja2's UndefinedError for an operation on `v` when it is Undefined.
void check_defined(const Value& v);

bool has_filter(const std::string& name);
bool has_test(const std::string& name);
Value apply_filter(Env& env, const std::string& name, const Value& v, Args& a);
bool apply_test(Env& env, const std::string& name, const Value& v, Args& a);
// A str/dict/list method bound to obj, or nullopt-like Undefined when there is none.
Value bound_method(Env& env, const Value& obj, const std::string& name, bool* found);
std::vector<std::pair<std::string, Value>> make_globals(Env& env);

// Python helpers used by several builtins.
std::string py_strip(const std::string& s, const Value& chars, bool left, bool right);
std::string py_format(Env& env, const std::string& fmt, Args& a);    // str.format
std::string py_percent(const std::string& fmt, const Value& args);   // str % args
std::string py_lower(const std::string& s);
std::string html_escape(const std::string& s);  // markupsafe.escape
std::string py_upper(const std::string& s);

}  // namespace corral::jinja
