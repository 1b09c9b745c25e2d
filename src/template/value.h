// The values a Jinja template computes with, modelled on the Python objects jinja2 sees:
// None, bool, int, float, str, list/tuple, dict (insertion-ordered, string keys), callables and
// jinja2's default Undefined. str() / repr() / json.dumps() are reproduced byte for byte, since
// chat templates print them into prompts.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace corral::jinja {

// Raised inside the engine (jinja2's TemplateError and its kinds); turned into an Error value
// at the API boundary. `kind` is the Python exception's class name, for messages.
struct TemplateError : std::runtime_error {
  std::string kind;
  TemplateError(std::string k, const std::string& m) : std::runtime_error(m), kind(std::move(k)) {}
};
[[noreturn]] void fail(const std::string& kind, const std::string& msg);

struct Value;
struct Args;
using Function = std::function<Value(Args&)>;

struct ListData {
  std::vector<Value> items;
  bool tuple = false;      // repr as (a, b)
  int depth = 1;           // nesting, bounded (deep chains would overflow the stack when freed)
  bool generator = false;  // what jinja2's select/map/... return: lazy, no len(), no JSON
};
// Dict keys are strings; other keys (Python allows any hashable) are stored encoded by dict_key()
// and decoded by key_value(), so string-keyed lookups stay plain.
std::string dict_key(const Value& k);
Value key_value(const std::string& k);

struct DictData {
  std::vector<std::pair<std::string, Value>> items;  // Python dicts keep insertion order
  bool ns = false;                                   // a namespace(): attributes may be set
  int depth = 1;
  Value* find(const std::string& k);
  const Value* find(const std::string& k) const;
  void set(const std::string& k, Value v);
};
struct FuncData {
  std::string name;
  Function fn;
};

struct Value {
  enum class Kind : uint8_t { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kFunc };
  Kind kind = Kind::kUndefined;
  bool b = false;  // kBool; kString: a Markup (|safe, |e); kUndefined: s is a SecurityError
  int64_t i = 0;
  double f = 0;
  std::string s;  // kString; kUndefined: the name that was looked up, for the error message
  std::shared_ptr<ListData> list;
  std::shared_ptr<DictData> dict;
  std::shared_ptr<FuncData> func;

  static Value undefined(std::string what = "") {
    Value v;
    v.s = std::move(what);
    return v;
  }
  static Value none() { return make(Kind::kNone); }
  static Value boolean(bool x) {
    Value v = make(Kind::kBool);
    v.b = x;
    return v;
  }
  static Value integer(int64_t x) {
    Value v = make(Kind::kInt);
    v.i = x;
    return v;
  }
  static Value real(double x) {
    Value v = make(Kind::kFloat);
    v.f = x;
    return v;
  }
  static Value str(std::string x) {
    Value v = make(Kind::kString);
    v.s = std::move(x);
    return v;
  }
  static Value new_list(std::vector<Value> items = {}, bool tuple = false);
  static Value generator(std::vector<Value> items);
  static Value markup(std::string x) {
    Value v = str(std::move(x));
    v.b = true;
    return v;
  }
  static Value new_dict();
  static Value function(std::string name, Function fn);

  bool is_undefined() const { return kind == Kind::kUndefined; }
  bool is_none() const { return kind == Kind::kNone; }
  bool is_string() const { return kind == Kind::kString; }
  bool is_list() const { return kind == Kind::kList; }
  bool is_dict() const { return kind == Kind::kDict; }
  bool is_number() const { return kind == Kind::kInt || kind == Kind::kFloat || kind == Kind::kBool; }
  bool is_func() const { return kind == Kind::kFunc; }
  double as_double() const { return kind == Kind::kFloat ? f : double(kind == Kind::kBool ? b : i); }

 private:
  static Value make(Kind k) {
    Value v;
    v.kind = k;
    return v;
  }
};

struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // The positional argument n or the keyword `name`, else `def`.
  Value get(size_t n, const char* name, Value def = Value::undefined()) const;
  bool has(size_t n, const char* name) const;
};

// Python semantics.
bool truthy(const Value& v);
std::string to_str(const Value& v);   // str(v); Undefined prints as ""
std::string to_repr(const Value& v);  // repr(v)
std::string float_repr(double d);     // Python's shortest round-trip repr
bool equal(const Value& a, const Value& b);
int compare(const Value& a, const Value& b);  // <0, 0, >0; TypeError when not orderable
std::string type_name(const Value& v);        // Python's class name, for messages
size_t length(const Value& v);                // len(); TypeError when it has none
std::vector<Value> iterate(const Value& v);   // iter(): str chars, list items, dict keys

struct JsonOptions {
  int indent = -1;  // -1: None
  std::string item_sep = ", ", key_sep = ": ";
  bool sort_keys = false, ensure_ascii = false;
};
std::string to_json(const Value& v, const JsonOptions& o);  // json.dumps

// JSON to values (nesting over 512 raises TemplateError); ordered_json keeps the keys' order, as Python's json.loads does.
Value from_json(const nlohmann::ordered_json& j);
Value from_json(const nlohmann::json& j);

// UTF-8 helpers for str semantics (indexing and len count code points).
std::vector<std::string> utf8_chars(const std::string& s);
void append_utf8(uint32_t cp, std::string* out);  // one code point, encoded

// Containers nested deeper than this are refused (RecursionError).
constexpr int kMaxNesting = 512;
int nesting(const Value& v);

}  // namespace corral::jinja
