// jinja2's built-in filters and tests, transformers' tojson, and the globals a chat template
// may call (range, dict, namespace, joiner, cycler, raise_exception, strftime_now).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>

#include "template/eval.h"

namespace corral::jinja {

namespace {

const char* kFilters[] = {"trim", "upper", "lower", "capitalize", "title", "length", "count", "first", "last",
                          "join", "default", "d", "replace", "list", "items", "dictsort", "selectattr",
                          "rejectattr", "select", "reject", "map", "unique", "reverse", "sort", "string",
                          "int", "float", "abs", "round", "indent", "safe", "tojson", "e", "escape",
                          "min", "max", "sum", "attr", "format", "wordcount", "center", "batch",
                          "striptags", "truncate", "forceescape", "pprint", "urlencode", "groupby"};
const char* kTests[] = {"defined", "undefined", "none", "string", "number", "integer", "float", "mapping",
                        "iterable", "sequence", "boolean", "true", "false", "equalto", "eq", "==", "ne",
                        "!=", "in", "odd", "even", "divisibleby", "lower", "upper", "sameas", "callable",
                        "gt", "greaterthan", ">", "ge", ">=", "lt", "lessthan", "<", "le", "<=",
                        "escaped", "filter", "test"};

// environment.getitem over a dotted attribute path, as make_attrgetter does.
Value attr_path(Env& env, const Value& item, const Value& attribute) {
  if (!attribute.is_string()) return get_item(env, item, attribute);
  Value v = item;
  size_t start = 0;
  const std::string& a = attribute.s;
  while (true) {
    size_t dot = a.find('.', start);
    std::string part = a.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && part.size() < 18 &&
                  std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    v = get_item(env, v, digits ? Value::integer(std::stoll(part)) : Value::str(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

Value sort_key(const Value& v, bool case_sensitive) {
  if (v.is_string() && !case_sensitive) return Value::str(py_lower(v.s));
  return v;
}

}  // namespace

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

Value to_int(const Value& v, const Value& def) {
  if (v.kind == Value::Kind::kInt) return v;
  if (v.kind == Value::Kind::kBool) return Value::integer(v.b);
  if (v.kind == Value::Kind::kFloat) return std::isfinite(v.f) ? Value::integer(int64_t(v.f)) : def;
  if (v.is_string()) {
    std::string s = py_strip(v.s, Value::none(), true, true);
    try {
      size_t used = 0;
      long long x = std::stoll(s, &used, 10);
      if (used == s.size()) return Value::integer(x);
      double d = std::stod(s, &used);
      if (used == s.size() && std::isfinite(d)) return Value::integer(int64_t(d));
    } catch (...) {
    }
  }
  return def;
}

Value to_float(const Value& v, const Value& def) {
  if (v.is_number()) return Value::real(v.as_double());
  if (v.is_string()) {
    try {
      size_t used = 0;
      std::string s = py_strip(v.s, Value::none(), true, true);
      double d = std::stod(s, &used);
      if (used == s.size()) return Value::real(d);
    } catch (...) {
    }
  }
  return def;
}

Value do_tojson(const Value& v, Args& a) {
  JsonOptions o;
  Value ind = a.get(0, "indent", Value::none());
  if (ind.kind == Value::Kind::kInt) o.indent = int(std::clamp<int64_t>(ind.i, 0, 64));
  Value seps = a.get(2, "separators", Value::none());
  if (o.indent >= 0) o.item_sep = ",";
  if (seps.is_list() && seps.list->items.size() == 2) {
    o.item_sep = to_str(seps.list->items[0]);
    o.key_sep = to_str(seps.list->items[1]);
  }
  o.ensure_ascii = truthy(a.get(1, "ensure_ascii", Value::boolean(false)));
  o.sort_keys = truthy(a.get(3, "sort_keys", Value::boolean(false)));
  return Value::str(to_json(v, o));
}

std::string indent(const std::string& text, const Value& width, bool first, bool blank) {
  std::string ind = width.is_string() ? width.s : std::string(size_t(std::max<int64_t>(0, width.i)), ' ');
  std::string s = text + "\n";
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t k = 0; k < s.size(); ++k)
    if (s[k] == '\n' || s[k] == '\r') {
      lines.push_back(s.substr(start, k - start));
      if (s[k] == '\r' && k + 1 < s.size() && s[k + 1] == '\n') ++k;
      start = k + 1;
    }
  std::string rv;
  if (blank) {
    for (size_t k = 0; k < lines.size(); ++k) rv += (k ? "\n" + ind : "") + lines[k];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t k = 1; k < lines.size(); ++k) rv += "\n" + (lines[k].empty() ? "" : ind) + lines[k];
  }
  return first ? ind + rv : rv;
}

std::vector<Value> select(Env& env, const Value& seq, Args& a, bool by_attr, bool keep) {
  std::vector<Value> out;
  if (!truthy(seq)) return out;  // jinja2 iterates only a truthy sequence (None selects nothing)
  size_t at = by_attr ? 1 : 0;
  Value attribute = by_attr ? a.get(0, "attribute") : Value::none();
  bool has_test = a.pos.size() > at;
  std::string test = has_test ? to_str(a.pos[at]) : "";
  Args targs;
  for (size_t k = at + 1; k < a.pos.size(); ++k) targs.pos.push_back(a.pos[k]);
  for (auto& x : iterate(seq)) {
    env.step();
    Value v = by_attr ? attr_path(env, x, attribute) : x;
    bool ok = has_test ? apply_test(env, test, v, targs) : truthy(v);
    if (ok == keep) out.push_back(x);
  }
  return out;
}

std::string strftime_utc(std::time_t now, const std::string& fmt) {
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::string out(fmt.size() * 8 + 64, '\0');
  size_t n = std::strftime(out.data(), out.size(), fmt.c_str(), &tm);
  out.resize(n);
  return out;
}

}  // namespace

bool has_filter(const std::string& name) {
  for (const char* f : kFilters)
    if (name == f) return true;
  return false;
}
bool has_test(const std::string& name) {
  for (const char* t : kTests)
    if (name == t) return true;
  return false;
}

Value apply_filter(Env& env, const std::string& n, const Value& v, Args& a) {
  env.step();
  if (n == "default" || n == "d") {
    bool boolean = truthy(a.get(1, "boolean", Value::boolean(false)));
    if (v.is_undefined() || (boolean && !truthy(v))) return a.get(0, "default_value", Value::str(""));
    return v;
  }
  if (n == "safe") return v.is_string() && v.b ? v : Value::markup(to_str(v));
  if (n == "tojson") return do_tojson(v, a);
  if (n == "length" || n == "count") return Value::integer(int64_t(length(v)));
  if (n == "string") return Value::str(to_str(v));
  if (n == "list") return Value::new_list(iterate(v));
  if (n == "int") return to_int(v, a.get(0, "default", Value::integer(0)));
  if (n == "float") return to_float(v, a.get(0, "default", Value::real(0)));
  if (n == "items") {
    if (v.is_undefined()) return Value::generator({});
    if (!v.is_dict()) fail("TypeError", "Can only get item pairs from a mapping.");
    std::vector<Value> items;
    for (auto& [k, x] : v.dict->items) items.push_back(Value::new_list({key_value(k), x}, true));
    return Value::generator(std::move(items));
  }
  if (n == "first" || n == "last") {
    if (n == "last" && v.is_list() && v.list->generator) fail("TypeError", "'generator' object is not reversible");
    std::vector<Value> items = iterate(v);
    if (items.empty()) return Value::undefined(std::string("No ") + (n == "first" ? "first" : "last") + " item, sequence was empty.");
    return n == "first" ? items.front() : items.back();
  }
  if (n == "trim") return Value::str(py_strip(to_str(v), a.get(0, "chars", Value::none()), true, true));
  if (n == "upper") return Value::str(py_upper(to_str(v)));
  if (n == "lower") return Value::str(py_lower(to_str(v)));
  if (n == "capitalize") {
    Args none;
    bool found;
    Value m = bound_method(env, Value::str(to_str(v)), "capitalize", &found);
    return env.call(m, none);
  }
  if (n == "title") {  // jinja's do_title: words begin after [-\s({[<]
    std::string s = to_str(v), out;
    auto chars = utf8_chars(s);
    bool word_start = true;
    for (auto& c : chars) {
      bool delim = c == "-" || c == "(" || c == "{" || c == "[" || c == "<" || c == " " || c == "\t" ||
                   c == "\n" || c == "\r" || c == "\f" || c == "\v";
      if (delim) {
        out += c;
        word_start = true;
      } else {
        out += word_start ? py_upper(c) : py_lower(c);
        word_start = false;
      }
    }
    return Value::str(out);
  }
  if (n == "replace") {
    Value s = Value::str(to_str(v));
    bool found;
    Value m = bound_method(env, s, "replace", &found);
    Args ra;
    ra.pos = {Value::str(to_str(a.get(0, "old"))), Value::str(to_str(a.get(1, "new")))};
    Value c = a.get(2, "count", Value::none());
    if (!c.is_none()) ra.pos.push_back(c);
    return env.call(m, ra);
  }
  if (n == "join") {
    Value attribute = a.get(1, "attribute", Value::none());
    std::string sep = to_str(a.get(0, "d", Value::str(""))), out;
    bool first = true;
    for (auto& x : iterate(v)) {
      if (!first) out += sep;
      out += to_str(attribute.is_none() ? x : attr_path(env, x, attribute));
      first = false;
      env.check_size(out.size());
    }
    return Value::str(out);
  }
  if (n == "dictsort") {
    if (!v.is_dict()) fail("FilterArgumentError", "You can only sort by either \"key\" or \"value\"");
    bool cs = truthy(a.get(0, "case_sensitive", Value::boolean(false)));
    std::string by = to_str(a.get(1, "by", Value::str("key")));
    bool rev = truthy(a.get(2, "reverse", Value::boolean(false)));
    std::vector<Value> items;
    for (auto& [k, x] : v.dict->items) items.push_back(Value::new_list({key_value(k), x}, true));
    size_t pos = by == "value" ? 1 : 0;
    std::stable_sort(items.begin(), items.end(), [&](const Value& p, const Value& q) {
      int c = compare(sort_key(p.list->items[pos], cs), sort_key(q.list->items[pos], cs));
      return rev ? c > 0 : c < 0;
    });
    return Value::new_list(std::move(items));
  }
  if (n == "selectattr" || n == "rejectattr") return Value::generator(select(env, v, a, true, n == "selectattr"));
  if (n == "select" || n == "reject") return Value::generator(select(env, v, a, false, n == "select"));
  if (n == "map") {
    std::vector<Value> out;
    if (!truthy(v)) return Value::generator({});
    if (a.has(99, "attribute")) {
      Value attribute = a.get(99, "attribute");
      Value def = a.get(99, "default");
      for (auto& x : iterate(v)) {
        Value r = attr_path(env, x, attribute);
        out.push_back(r.is_undefined() && !def.is_undefined() ? def : r);
      }
    } else {
      if (a.pos.empty()) fail("FilterArgumentError", "map requires a filter argument");
      std::string f = to_str(a.pos[0]);
      if (!has_filter(f)) fail("TemplateRuntimeError", "No filter named '" + f + "'.");
      Args fa;
      fa.pos.assign(a.pos.begin() + 1, a.pos.end());
      fa.kw = a.kw;
      for (auto& x : iterate(v)) out.push_back(apply_filter(env, f, x, fa));
    }
    return Value::generator(std::move(out));
  }
  if (n == "unique") {
    bool cs = truthy(a.get(0, "case_sensitive", Value::boolean(false)));
    Value attribute = a.get(1, "attribute", Value::none());
    std::vector<Value> out, seen;
    for (auto& x : iterate(v)) {
      Value key = sort_key(attribute.is_none() ? x : attr_path(env, x, attribute), cs);
      bool dup = false;
      for (auto& s : seen) dup |= equal(s, key);
      if (!dup) {
        seen.push_back(key);
        out.push_back(x);
      }
    }
    return Value::generator(std::move(out));
  }
  if (n == "reverse") {
    if (v.is_string()) {
      auto c = utf8_chars(v.s);
      std::string out;
      for (size_t k = c.size(); k-- > 0;) out += c[k];
      return Value::str(out);
    }
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::new_list(std::move(items));
  }
  if (n == "sort") {
    bool rev = truthy(a.get(0, "reverse", Value::boolean(false)));
    bool cs = truthy(a.get(1, "case_sensitive", Value::boolean(false)));
    Value attribute = a.get(2, "attribute", Value::none());
    std::vector<Value> items = iterate(v);
    std::stable_sort(items.begin(), items.end(), [&](const Value& p, const Value& q) {
      Value x = sort_key(attribute.is_none() ? p : attr_path(env, p, attribute), cs);
      Value y = sort_key(attribute.is_none() ? q : attr_path(env, q, attribute), cs);
      return rev ? compare(x, y) > 0 : compare(x, y) < 0;
    });
    return Value::new_list(std::move(items));
  }
  if (n == "min" || n == "max") {
    bool cs = truthy(a.get(0, "case_sensitive", Value::boolean(false)));
    Value attribute = a.get(1, "attribute", Value::none());
    std::vector<Value> items = iterate(v);
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    Value best = items[0];
    for (auto& x : items) {
      Value kx = sort_key(attribute.is_none() ? x : attr_path(env, x, attribute), cs);
      Value kb = sort_key(attribute.is_none() ? best : attr_path(env, best, attribute), cs);
      if (n == "min" ? compare(kx, kb) < 0 : compare(kx, kb) > 0) best = x;
    }
    return best;
  }
  if (n == "sum") {
    Value attribute = a.get(0, "attribute", Value::none());
    Value total = a.get(1, "start", Value::integer(0));
    for (auto& x : iterate(v)) {
      Value y = attribute.is_none() ? x : attr_path(env, x, attribute);
      check_defined(y);
      if (!y.is_number() || !total.is_number()) fail("TypeError", "unsupported operand type(s) for +");
      if (y.kind == Value::Kind::kFloat || total.kind == Value::Kind::kFloat)
        total = Value::real(total.as_double() + y.as_double());
      else {
        int64_t s = 0;
        if (__builtin_add_overflow(total.kind == Value::Kind::kBool ? int64_t(total.b) : total.i,
                                   y.kind == Value::Kind::kBool ? int64_t(y.b) : y.i, &s))
          fail("OverflowError", "integer result too large (Corral's template integers are 64-bit)");
        total = Value::integer(s);
      }
    }
    return total;
  }
  if (n == "abs") {
    if (v.kind == Value::Kind::kFloat) return Value::real(std::fabs(v.f));
    if (v.kind == Value::Kind::kInt) {
      if (v.i == INT64_MIN) fail("OverflowError", "integer result too large (Corral's template integers are 64-bit)");
      return Value::integer(v.i < 0 ? -v.i : v.i);
    }
    if (v.kind == Value::Kind::kBool) return Value::integer(v.b);
    fail("TypeError", "bad operand type for abs(): '" + type_name(v) + "'");
  }
  if (n == "round") {
    int64_t prec = a.get(0, "precision", Value::integer(0)).i;
    std::string method = to_str(a.get(1, "method", Value::str("common")));
    if (!v.is_number()) fail("TypeError", "type " + type_name(v) + " doesn't define __round__ method");
    double x = v.as_double(), p = std::pow(10.0, double(prec));
    if (method == "common") {
      if (v.kind != Value::Kind::kFloat) return Value::integer(int64_t(x));
      double r = std::nearbyint(x * p) / p;  // round-half-even, as Python's round()
      return Value::real(r);
    }
    if (method == "ceil") return Value::real(std::ceil(x * p) / p);
    if (method == "floor") return Value::real(std::floor(x * p) / p);
    fail("FilterArgumentError", "method must be common, ceil or floor");
  }
  if (n == "indent")
    return Value::str(indent(to_str(v), a.get(0, "width", Value::integer(4)),
                             truthy(a.get(1, "first", Value::boolean(false))),
                             truthy(a.get(2, "blank", Value::boolean(false)))));
  if (n == "e" || n == "escape") return v.is_string() && v.b ? v : Value::markup(html_escape(to_str(v)));
  if (n == "forceescape") return Value::markup(html_escape(to_str(v)));
  if (n == "attr") return get_attr(env, v, to_str(a.get(0, "name")));
  if (n == "format") {
    Value args = Value::new_list(a.pos, true);
    return Value::str(py_percent(to_str(v), args));
  }
  if (n == "wordcount") {
    bool found;
    Value m = bound_method(env, Value::str(to_str(v)), "split", &found);
    Args none;
    return Value::integer(int64_t(length(env.call(m, none))));
  }
  if (n == "center") {
    bool found;
    Value m = bound_method(env, Value::str(to_str(v)), "center", &found);
    Args ca;
    ca.pos.push_back(a.get(0, "width", Value::integer(80)));
    return env.call(m, ca);
  }
  if (n == "batch") {
    int64_t size = std::max<int64_t>(1, a.get(0, "linecount").i);
    Value fill = a.get(1, "fill_with", Value::none());
    std::vector<Value> out, cur;
    for (auto& x : iterate(v)) {
      cur.push_back(x);
      if (int64_t(cur.size()) == size) {
        out.push_back(Value::new_list(cur));
        cur.clear();
      }
    }
    if (!cur.empty()) {
      if (!fill.is_none())
        while (int64_t(cur.size()) < size) cur.push_back(fill);
      out.push_back(Value::new_list(cur));
    }
    return Value::generator(std::move(out));
  }
  if (n == "pprint") return Value::str(to_repr(v));
  fail("TemplateRuntimeError", "the filter '" + n + "' is not supported");
}

bool apply_test(Env& env, const std::string& n, const Value& v, Args& a) {
  env.step();
  using K = Value::Kind;
  if (n == "defined") return !v.is_undefined();
  if (n == "undefined") return v.is_undefined();
  if (n == "none") return v.is_none();
  if (n == "string") return v.is_string();
  if (n == "number") return v.is_number();
  if (n == "integer") return v.kind == K::kInt;
  if (n == "float") return v.kind == K::kFloat;
  if (n == "boolean") return v.kind == K::kBool;
  if (n == "true") return v.kind == K::kBool && v.b;
  if (n == "false") return v.kind == K::kBool && !v.b;
  if (n == "mapping") return v.is_dict() && !v.dict->ns;
  if (n == "iterable") return v.is_string() || v.is_list() || (v.is_dict() && !v.dict->ns) || v.is_undefined();
  if (n == "sequence") return v.is_string() || v.is_list() || (v.is_dict() && !v.dict->ns) || v.is_undefined();
  if (n == "callable") return v.is_func();
  if (n == "equalto" || n == "eq" || n == "==") return equal(v, a.get(0, "b"));
  if (n == "ne" || n == "!=") return !equal(v, a.get(0, "b"));
  if (n == "sameas") {
    Value o = a.get(0, "other");
    if (v.kind != o.kind) return false;
    if (v.is_list()) return v.list == o.list;
    if (v.is_dict()) return v.dict == o.dict;
    if (v.is_string()) return false;  // distinct str objects, except interned ones
    return equal(v, o);
  }
  if (n == "in") {
    Value seq = a.get(0, "seq");
    if (seq.is_string()) return v.is_string() && seq.s.find(v.s) != std::string::npos;
    if (seq.is_dict()) return seq.dict->find(dict_key(v)) != nullptr;
    for (auto& x : iterate(seq))
      if (equal(x, v)) return true;
    return false;
  }
  if (n == "odd" || n == "even" || n == "divisibleby") {
    if (!v.is_number() || v.kind == K::kFloat) fail("TypeError", "not an integer");
    int64_t x = v.kind == K::kBool ? v.b : v.i;
    if (n == "divisibleby") {
      int64_t d = a.get(0, "num").i;
      if (d == 0) fail("ZeroDivisionError", "integer modulo by zero");
      return x % d == 0;
    }
    return ((x % 2) != 0) == (n == "odd");
  }
  if (n == "lower" || n == "upper") {
    std::string s = to_str(v);
    return n == "lower" ? s == py_lower(s) && s != py_upper(s) : s == py_upper(s) && s != py_lower(s);
  }
  if (n == "gt" || n == "greaterthan" || n == ">") return compare(v, a.get(0, "b")) > 0;
  if (n == "ge" || n == ">=") return compare(v, a.get(0, "b")) >= 0;
  if (n == "lt" || n == "lessthan" || n == "<") return compare(v, a.get(0, "b")) < 0;
  if (n == "le" || n == "<=") return compare(v, a.get(0, "b")) <= 0;
  if (n == "escaped") return false;
  if (n == "filter") return has_filter(to_str(v));
  if (n == "test") return has_test(to_str(v));
  fail("TemplateRuntimeError", "No test named '" + n + "'.");
}

std::string py_format(Env& env, const std::string& fmt, Args& a) {
  std::string out;
  size_t auto_idx = 0;
  for (size_t k = 0; k < fmt.size(); ++k) {
    char c = fmt[k];
    if (c == '{' && k + 1 < fmt.size() && fmt[k + 1] == '{') {
      out += '{';
      ++k;
      continue;
    }
    if (c == '}' && k + 1 < fmt.size() && fmt[k + 1] == '}') {
      out += '}';
      ++k;
      continue;
    }
    if (c == '}') fail("ValueError", "Single '}' encountered in format string");
    if (c != '{') {
      out += c;
      continue;
    }
    size_t end = fmt.find('}', k);
    if (end == std::string::npos) fail("ValueError", "Single '{' encountered in format string");
    std::string field = fmt.substr(k + 1, end - k - 1);
    std::string spec;
    if (size_t colon = field.find(':'); colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field = field.substr(0, colon);
    }
    bool repr = false;
    if (field.size() >= 2 && field[field.size() - 2] == '!') {
      repr = field.back() == 'r';
      field.resize(field.size() - 2);
    }
    Value v;
    if (field.empty()) {
      if (auto_idx >= a.pos.size()) fail("IndexError", "Replacement index " + std::to_string(auto_idx) + " out of range for positional args tuple");
      v = a.pos[auto_idx++];
    } else if (field.size() < 9 && std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      size_t i = std::stoul(field);
      if (i >= a.pos.size()) fail("IndexError", "Replacement index " + field + " out of range for positional args tuple");
      v = a.pos[i];
    } else {
      bool found = false;
      for (auto& [kn, kv] : a.kw)
        if (kn == field) {
          v = kv;
          found = true;
        }
      if (!found) fail("KeyError", "'" + field + "'");
    }
    if (!spec.empty()) {
      if (spec.size() >= 2 && spec[0] == '.' && spec.back() == 'f' && v.is_number()) {
        char buf[64];
        std::snprintf(buf, sizeof buf, ("%." + spec.substr(1, spec.size() - 2) + "f").c_str(), v.as_double());
        out += buf;
      } else if (spec == "d" && v.is_number()) {
        out += std::to_string(int64_t(v.as_double()));
      } else {
        fail("ValueError", "format spec '" + spec + "' is not supported");
      }
    } else {
      out += repr ? to_repr(v) : to_str(v);
    }
    env.check_size(out.size());
    k = end;
  }
  return out;
}

std::string py_percent(const std::string& fmt, const Value& args) {
  std::vector<Value> items = args.is_list() && args.list->tuple ? args.list->items : std::vector<Value>{args};
  std::string out;
  size_t next = 0;
  for (size_t k = 0; k < fmt.size(); ++k) {
    if (fmt[k] != '%') {
      out += fmt[k];
      continue;
    }
    if (++k >= fmt.size()) fail("ValueError", "incomplete format");
    char c = fmt[k];
    if (c == '%') {
      out += '%';
      continue;
    }
    if (next >= items.size()) fail("TypeError", "not enough arguments for format string");
    const Value& v = items[next++];
    if (c == 's') out += to_str(v);
    else if (c == 'r') out += to_repr(v);
    else if (c == 'd' || c == 'i') {
      if (!v.is_number()) fail("TypeError", "%d format: a real number is required, not " + type_name(v));
      out += std::to_string(int64_t(v.as_double()));
    } else {
      fail("ValueError", std::string("unsupported format character '") + c + "'");
    }
  }
  if (next < items.size()) fail("TypeError", "not all arguments converted during string formatting");
  return out;
}

std::vector<std::pair<std::string, Value>> make_globals(Env& env) {
  std::vector<std::pair<std::string, Value>> g;
  Env* e = &env;
  g.emplace_back("raise_exception", Value::function("raise_exception", [](Args& a) -> Value {
                   fail("TemplateError", to_str(a.get(0, "message")));
                 }));
  g.emplace_back("strftime_now", Value::function("strftime_now", [e](Args& a) {
                   return Value::str(strftime_utc(e->opt.now, to_str(a.get(0, "format"))));
                 }));
  g.emplace_back("range", Value::function("range", [e](Args& a) {
                   int64_t start = 0, stop, step = 1;
                   if (a.pos.size() == 1) {
                     stop = a.pos[0].i;
                   } else if (a.pos.size() >= 2) {
                     start = a.pos[0].i;
                     stop = a.pos[1].i;
                     if (a.pos.size() > 2) step = a.pos[2].i;
                   } else {
                     fail("TypeError", "range expected at least 1 argument, got 0");
                   }
                   for (auto& x : a.pos)
                     if (x.kind != Value::Kind::kInt) fail("TypeError", "'" + type_name(x) + "' object cannot be interpreted as an integer");
                   if (step == 0) fail("ValueError", "range() arg 3 must not be zero");
                   int64_t span = 0;
                   if (__builtin_sub_overflow(step > 0 ? stop : start, step > 0 ? start : stop, &span) ||
                       step == INT64_MIN)
                     fail("TemplateLimitError", "range() exceeds the template's loop limit");
                   const int64_t count = span <= 0 ? 0 : (span - 1) / (step > 0 ? step : -step) + 1;
                   if (uint64_t(count) > e->opt.limits.max_steps)
                     fail("TemplateLimitError", "range() of " + std::to_string(count) +
                                                    " items exceeds the template's loop limit");
                   std::vector<Value> items;
                   for (int64_t i = 0; i < count; ++i) {  // start + i * step stays between start and stop
                     e->step();
                     items.push_back(Value::integer(start + i * step));
                   }
                   return Value::new_list(std::move(items));
                 }));
  g.emplace_back("dict", Value::function("dict", [](Args& a) {
                   Value d = Value::new_dict();
                   if (!a.pos.empty() && a.pos[0].is_dict()) {
                     d.dict->items = a.pos[0].dict->items;
                     d.dict->depth = a.pos[0].dict->depth;
                   }
                   for (auto& [k, v] : a.kw) d.dict->set(k, v);
                   return d;
                 }));
  g.emplace_back("namespace", Value::function("namespace", [e](Args& a) {
                   Value d = Value::new_dict();
                   d.dict->ns = true;
                   e->namespaces.push_back(d.dict);
                   if (!a.pos.empty() && a.pos[0].is_dict()) {
                     d.dict->items = a.pos[0].dict->items;
                     d.dict->depth = a.pos[0].dict->depth;
                   }
                   for (auto& [k, v] : a.kw) d.dict->set(k, v);
                   return d;
                 }));
  g.emplace_back("cycler", Value::function("cycler", [](Args& a) {
                   // An object with next(), reset() and current, as jinja2's Cycler.
                   if (a.pos.empty()) fail("RuntimeError", "at least one item has to be provided");
                   auto items = std::make_shared<std::vector<Value>>(a.pos);
                   Value obj = Value::new_dict();
                   obj.dict->ns = true;  // attribute access, not a mapping
                   std::weak_ptr<DictData> dict = obj.dict;  // weak: the dict holds these functions
                   auto pos = std::make_shared<size_t>(0);
                   obj.dict->set("current", (*items)[0]);
                   obj.dict->set("next", Value::function("cycler.next", [items, pos, dict](Args&) {
                                   Value v = (*items)[*pos];
                                   *pos = (*pos + 1) % items->size();
                                   if (auto d = dict.lock()) d->set("current", (*items)[*pos]);
                                   return v;
                                 }));
                   obj.dict->set("reset", Value::function("cycler.reset", [items, pos, dict](Args&) {
                                   *pos = 0;
                                   if (auto d = dict.lock()) d->set("current", (*items)[0]);
                                   return Value::none();
                                 }));
                   return obj;
                 }));
  g.emplace_back("joiner", Value::function("joiner", [](Args& a) {
                   std::string sep = to_str(a.get(0, "sep", Value::str(", ")));
                   auto used = std::make_shared<bool>(false);
                   return Value::function("joiner", [sep, used](Args&) {
                     if (!*used) {
                       *used = true;
                       return Value::str("");
                     }
                     return Value::str(sep);
                   });
                 }));
  return g;
}

}  // namespace corral::jinja
