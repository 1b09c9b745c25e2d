// Python's str(), repr(), ==, <, len(), iter() and json.dumps() over jinja::Value.
#include "template/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace corral::jinja {

void fail(const std::string& kind, const std::string& msg) { throw TemplateError(kind, msg); }

std::string dict_key(const Value& k) {
  switch (k.kind) {
    case Value::Kind::kString: return k.s;
    case Value::Kind::kInt: return std::string("\0i", 2) + std::to_string(k.i);
    case Value::Kind::kBool: return std::string("\0i", 2) + (k.b ? "1" : "0");  // True == 1 as a key
    case Value::Kind::kFloat:
      if (k.f == double(int64_t(k.f))) return std::string("\0i", 2) + std::to_string(int64_t(k.f));
      return std::string("\0f", 2) + float_repr(k.f);
    case Value::Kind::kNone: return std::string("\x00n", 2);
    default: fail("TypeError", "unhashable type: '" + type_name(k) + "'");
  }
}

Value key_value(const std::string& k) {
  if (k.empty() || k[0] != '\0' || k.size() < 2) return Value::str(k);
  if (k[1] == 'i') return Value::integer(std::stoll(k.substr(2)));
  if (k[1] == 'f') return Value::real(std::stod(k.substr(2)));
  return Value::none();
}

Value* DictData::find(const std::string& k) {
  for (auto& [key, v] : items)
    if (key == k) return &v;
  return nullptr;
}
const Value* DictData::find(const std::string& k) const {
  for (auto& [key, v] : items)
    if (key == k) return &v;
  return nullptr;
}
int nesting(const Value& v) { return v.list ? v.list->depth : v.dict ? v.dict->depth : 0; }

void DictData::set(const std::string& k, Value v) {
  depth = std::max(depth, nesting(v) + 1);
  if (depth > kMaxNesting)
    fail("RecursionError", "maximum nesting depth (" + std::to_string(kMaxNesting) + ") exceeded");
  if (Value* p = find(k))
    *p = std::move(v);
  else
    items.emplace_back(k, std::move(v));
}

Value Value::new_list(std::vector<Value> items, bool tuple) {
  Value v = make(Kind::kList);
  v.list = std::make_shared<ListData>();
  for (auto& x : items) v.list->depth = std::max(v.list->depth, nesting(x) + 1);
  if (v.list->depth > kMaxNesting)
    fail("RecursionError", "maximum nesting depth (" + std::to_string(kMaxNesting) + ") exceeded");
  v.list->items = std::move(items);
  v.list->tuple = tuple;
  return v;
}
Value Value::generator(std::vector<Value> items) {
  Value v = new_list(std::move(items));
  v.list->generator = true;
  return v;
}
Value Value::new_dict() {
  Value v = make(Kind::kDict);
  v.dict = std::make_shared<DictData>();
  return v;
}
Value Value::function(std::string name, Function fn) {
  Value v = make(Kind::kFunc);
  v.func = std::make_shared<FuncData>(FuncData{std::move(name), std::move(fn)});
  return v;
}

Value Args::get(size_t n, const char* name, Value def) const {
  if (n < pos.size()) return pos[n];
  for (auto& [k, v] : kw)
    if (k == name) return v;
  return def;
}
bool Args::has(size_t n, const char* name) const {
  if (n < pos.size()) return true;
  for (auto& [k, v] : kw)
    if (k == name) return true;
  return false;
}

void append_utf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += char(cp);
  } else if (cp < 0x800) {
    *out += char(0xC0 | (cp >> 6));
    *out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += char(0xE0 | (cp >> 12));
    *out += char(0x80 | ((cp >> 6) & 0x3F));
    *out += char(0x80 | (cp & 0x3F));
  } else {
    *out += char(0xF0 | (cp >> 18));
    *out += char(0x80 | ((cp >> 12) & 0x3F));
    *out += char(0x80 | ((cp >> 6) & 0x3F));
    *out += char(0x80 | (cp & 0x3F));
  }
}

std::vector<std::string> utf8_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (i + n > s.size()) n = 1;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) n = 1;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

namespace {

uint32_t decode_cp(const std::string& ch) {
  unsigned char c = ch[0];
  if (ch.size() == 1) return c;
  uint32_t cp = ch.size() == 2 ? (c & 0x1F) : ch.size() == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < ch.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(ch[k]) & 0x3F);
  return cp;
}

// str.isprintable() for the code points templates meet; unassigned ones count as printable.
bool printable(uint32_t cp) {
  if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) return false;
  if ((cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
      (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 || cp == 0xFEFF || cp == 0x1680 ||
      (cp >= 0xFFF9 && cp <= 0xFFFB) || (cp >= 0xE000 && cp <= 0xF8FF) ||
      (cp >= 0xD800 && cp <= 0xDFFF) || cp >= 0xF0000 || cp == 0x061C || cp == 0x180E)
    return false;
  return true;
}

std::string str_repr(const std::string& s) {
  char q = '\'';
  if (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) q = '"';
  std::string out(1, q);
  char buf[16];
  for (const std::string& ch : utf8_chars(s)) {
    uint32_t cp = decode_cp(ch);
    if (cp == uint32_t(q) || cp == '\\') {
      out += '\\';
      out += char(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (!printable(cp)) {
      if (cp < 0x100)
        std::snprintf(buf, sizeof buf, "\\x%02x", cp);
      else if (cp < 0x10000)
        std::snprintf(buf, sizeof buf, "\\u%04x", cp);
      else
        std::snprintf(buf, sizeof buf, "\\U%08x", cp);
      out += buf;
    } else {
      out += ch;
    }
  }
  out += q;
  return out;
}

void json_str(const std::string& s, bool ensure_ascii, std::string* out) {
  *out += '"';
  char buf[16];
  for (const std::string& ch : utf8_chars(s)) {
    uint32_t cp = decode_cp(ch);
    switch (cp) {
      case '"': *out += "\\\""; continue;
      case '\\': *out += "\\\\"; continue;
      case '\n': *out += "\\n"; continue;
      case '\r': *out += "\\r"; continue;
      case '\t': *out += "\\t"; continue;
      case '\b': *out += "\\b"; continue;
      case '\f': *out += "\\f"; continue;
      default: break;
    }
    if (cp < 0x20) {
      std::snprintf(buf, sizeof buf, "\\u%04x", cp);
      *out += buf;
    } else if (ensure_ascii && cp >= 0x80) {
      if (cp >= 0x10000) {
        uint32_t v = cp - 0x10000;
        std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        std::snprintf(buf, sizeof buf, "\\u%04x", cp);
      }
      *out += buf;
    } else {
      *out += ch;
    }
  }
  *out += '"';
}

// Nesting deeper than kMaxNesting is refused (Python raises RecursionError near 1,000 frames);
// it keeps hostile data from overflowing the stack.
void check_nesting(int level) {
  if (level > kMaxNesting)
    fail("RecursionError", "maximum nesting depth (" + std::to_string(kMaxNesting) + ") exceeded");
}

void json_write(const Value& v, const JsonOptions& o, int level, std::string* out) {
  check_nesting(level);
  auto newline = [&](int lv) {
    if (o.indent < 0) return;
    *out += '\n';
    out->append(size_t(o.indent) * size_t(lv), ' ');
  };
  switch (v.kind) {
    case Value::Kind::kNone: *out += "null"; return;
    case Value::Kind::kBool: *out += v.b ? "true" : "false"; return;
    case Value::Kind::kInt: *out += std::to_string(v.i); return;
    case Value::Kind::kFloat:
      if (std::isnan(v.f))
        *out += "NaN";
      else if (std::isinf(v.f))
        *out += v.f > 0 ? "Infinity" : "-Infinity";
      else
        *out += float_repr(v.f);
      return;
    case Value::Kind::kString: json_str(v.s, o.ensure_ascii, out); return;
    case Value::Kind::kList: {
      if (v.list->generator) fail("TypeError", "Object of type generator is not JSON serializable");
      if (v.list->items.empty()) {
        *out += "[]";
        return;
      }
      *out += '[';
      for (size_t k = 0; k < v.list->items.size(); ++k) {
        if (k) *out += o.item_sep;
        newline(level + 1);
        json_write(v.list->items[k], o, level + 1, out);
      }
      newline(level);
      *out += ']';
      return;
    }
    case Value::Kind::kDict: {
      if (v.dict->ns) fail("TypeError", "Object of type Namespace is not JSON serializable");
      if (v.dict->items.empty()) {
        *out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> items;
      for (auto& kv : v.dict->items) items.push_back(&kv);
      if (o.sort_keys)
        std::stable_sort(items.begin(), items.end(),
                         [](auto* a, auto* b) { return a->first < b->first; });
      *out += '{';
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) *out += o.item_sep;
        newline(level + 1);
        Value key = key_value(items[k]->first);
        json_str(key.is_string() ? key.s : key.is_none() ? "null" : to_json(key, o), o.ensure_ascii, out);
        *out += o.key_sep;
        json_write(items[k]->second, o, level + 1, out);
      }
      newline(level);
      *out += '}';
      return;
    }
    default:
      fail("TypeError", "Object of type " + type_name(v) + " is not JSON serializable");
  }
}

}  // namespace

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits in scientific form, then laid out as Python's repr does:
  // positional when -4 <= exponent < 16, else d.ddde+XX.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t e = sci.find('e');
  int exp = std::stoi(sci.substr(e + 1));
  std::string digits;
  for (char c : sci.substr(0, e))
    if (c != '.') digits += c;
  std::string out = neg ? "-" : "";
  if (exp < -4 || exp >= 16) {
    out += digits[0];
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return out + eb;
  }
  if (exp < 0) return out + "0." + std::string(size_t(-exp - 1), '0') + digits;
  if (size_t(exp) + 1 >= digits.size())
    return out + digits + std::string(size_t(exp) + 1 - digits.size(), '0') + ".0";
  return out + digits.substr(0, size_t(exp) + 1) + "." + digits.substr(size_t(exp) + 1);
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return false;
    case Value::Kind::kBool: return v.b;
    case Value::Kind::kInt: return v.i != 0;
    case Value::Kind::kFloat: return v.f != 0;
    case Value::Kind::kString: return !v.s.empty();
    case Value::Kind::kList: return v.list->generator || !v.list->items.empty();
    case Value::Kind::kDict: return v.dict->ns || !v.dict->items.empty();
    case Value::Kind::kFunc: return true;
  }
  return false;
}

std::string repr_at(const Value& v, int level);
std::string to_repr(const Value& v) { return repr_at(v, 0); }
std::string repr_at(const Value& v, int level) {
  check_nesting(level);
  switch (v.kind) {
    case Value::Kind::kUndefined: return "Undefined";
    case Value::Kind::kString: return str_repr(v.s);
    case Value::Kind::kList: {
      if (v.list->generator) return "<generator object>";
      bool t = v.list->tuple;
      std::string out = t ? "(" : "[";
      for (size_t k = 0; k < v.list->items.size(); ++k) {
        if (k) out += ", ";
        out += repr_at(v.list->items[k], level + 1);
      }
      if (t && v.list->items.size() == 1) out += ",";
      return out + (t ? ")" : "]");
    }
    case Value::Kind::kDict: {
      if (v.dict->ns) return "<Namespace>";
      std::string out = "{";
      for (size_t k = 0; k < v.dict->items.size(); ++k) {
        if (k) out += ", ";
        out += to_repr(key_value(v.dict->items[k].first)) + ": " + repr_at(v.dict->items[k].second, level + 1);
      }
      return out + "}";
    }
    default: return to_str(v);
  }
}

std::string to_str(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined: return "";
    case Value::Kind::kNone: return "None";
    case Value::Kind::kBool: return v.b ? "True" : "False";
    case Value::Kind::kInt: return std::to_string(v.i);
    case Value::Kind::kFloat: return float_repr(v.f);
    case Value::Kind::kString: return v.s;
    case Value::Kind::kFunc: return "<function " + v.func->name + ">";
    default: return to_repr(v);
  }
}

std::string type_name(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined: return "Undefined";
    case Value::Kind::kNone: return "NoneType";
    case Value::Kind::kBool: return "bool";
    case Value::Kind::kInt: return "int";
    case Value::Kind::kFloat: return "float";
    case Value::Kind::kString: return "str";
    case Value::Kind::kList: return v.list->generator ? "generator" : v.list->tuple ? "tuple" : "list";
    case Value::Kind::kDict: return v.dict->ns ? "Namespace" : "dict";
    case Value::Kind::kFunc: return "function";
  }
  return "object";
}

bool equal_at(const Value& a, const Value& b, int level);
bool equal(const Value& a, const Value& b) { return equal_at(a, b, 0); }
bool equal_at(const Value& a, const Value& b, int level) {
  check_nesting(level);
  if (a.is_number() && b.is_number()) {
    if (a.kind == Value::Kind::kFloat || b.kind == Value::Kind::kFloat)
      return a.as_double() == b.as_double();
    return (a.kind == Value::Kind::kBool ? a.b : a.i) == (b.kind == Value::Kind::kBool ? b.b : b.i);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return true;
    case Value::Kind::kString: return a.s == b.s;
    case Value::Kind::kList:
      if (a.list->tuple != b.list->tuple || a.list->items.size() != b.list->items.size())
        return false;
      for (size_t k = 0; k < a.list->items.size(); ++k)
        if (!equal_at(a.list->items[k], b.list->items[k], level + 1)) return false;
      return true;
    case Value::Kind::kDict:
      if (a.dict == b.dict) return true;
      if (a.dict->ns || b.dict->ns || a.dict->items.size() != b.dict->items.size()) return false;
      for (auto& [k, v] : a.dict->items) {
        const Value* o = b.dict->find(k);
        if (!o || !equal_at(v, *o, level + 1)) return false;
      }
      return true;
    case Value::Kind::kFunc: return a.func == b.func;
    default: return false;
  }
}

int compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind != Value::Kind::kFloat && b.kind != Value::Kind::kFloat) {
      int64_t x = a.kind == Value::Kind::kBool ? a.b : a.i, y = b.kind == Value::Kind::kBool ? b.b : b.i;
      return x < y ? -1 : x > y ? 1 : 0;
    }
    double x = a.as_double(), y = b.as_double();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) return a.s < b.s ? -1 : a.s > b.s ? 1 : 0;
  if (a.is_list() && b.is_list() && a.list->tuple == b.list->tuple) {
    size_t n = std::min(a.list->items.size(), b.list->items.size());
    for (size_t k = 0; k < n; ++k) {
      if (equal(a.list->items[k], b.list->items[k])) continue;
      return compare(a.list->items[k], b.list->items[k]);
    }
    return a.list->items.size() < b.list->items.size() ? -1 : a.list->items.size() > b.list->items.size() ? 1 : 0;
  }
  fail("TypeError", "'<' not supported between instances of '" + type_name(a) + "' and '" +
                        type_name(b) + "'");
}

size_t length(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined: return 0;
    case Value::Kind::kString: return utf8_chars(v.s).size();
    case Value::Kind::kList:
      if (v.list->generator) break;
      return v.list->items.size();
    case Value::Kind::kDict: return v.dict->items.size();
    default: break;
  }
  fail("TypeError", "object of type '" + type_name(v) + "' has no len()");
}

std::vector<Value> iterate(const Value& v) {
  std::vector<Value> out;
  switch (v.kind) {
    case Value::Kind::kUndefined: return out;
    case Value::Kind::kString:
      for (auto& c : utf8_chars(v.s)) out.push_back(Value::str(c));
      return out;
    case Value::Kind::kList: return v.list->items;
    case Value::Kind::kDict:
      if (v.dict->ns) break;
      for (auto& [k, x] : v.dict->items) out.push_back(key_value(k));
      return out;
    default: break;
  }
  fail("TypeError", "'" + type_name(v) + "' object is not iterable");
}

std::string to_json(const Value& v, const JsonOptions& o) {
  std::string out;
  json_write(v, o, 0, &out);
  return out;
}

template <class J>
Value from_json_t(const J& j, int level = 0) {
  check_nesting(level);
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value::none();
    case nlohmann::json::value_t::boolean: return Value::boolean(j.template get<bool>());
    case nlohmann::json::value_t::number_integer: return Value::integer(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      uint64_t u = j.template get<uint64_t>();
      return u > uint64_t(INT64_MAX) ? Value::real(double(u)) : Value::integer(int64_t(u));
    }
    case nlohmann::json::value_t::number_float: return Value::real(j.template get<double>());
    case nlohmann::json::value_t::string: return Value::str(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      Value l = Value::new_list();
      for (auto& x : j) {
        l.list->items.push_back(from_json_t(x, level + 1));
        l.list->depth = std::max(l.list->depth, nesting(l.list->items.back()) + 1);
      }
      return l;
    }
    case nlohmann::json::value_t::object: {
      Value d = Value::new_dict();
      for (auto it = j.begin(); it != j.end(); ++it) {
        d.dict->items.emplace_back(it.key(), from_json_t(it.value(), level + 1));
        d.dict->depth = std::max(d.dict->depth, nesting(d.dict->items.back().second) + 1);
      }
      return d;
    }
    default: return Value::none();
  }
}

Value from_json(const nlohmann::ordered_json& j) { return from_json_t(j); }
Value from_json(const nlohmann::json& j) { return from_json_t(j); }

}  // namespace corral::jinja
