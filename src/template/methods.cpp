// Attribute and item access as the immutable sandbox does them, and the str / dict / list
// methods templates call (mutating ones are refused, as ImmutableSandboxedEnvironment does).
#include <algorithm>
#include <cctype>

#include "template/eval.h"

namespace corral::jinja {

namespace {

bool in_chars(const std::string& ch, const std::vector<std::string>& set) {
  return std::find(set.begin(), set.end(), ch) != set.end();
}
bool is_space_char(const std::string& c) {
  return c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\v" || c == "\f" || c == "\x1c" ||
         c == "\x1d" || c == "\x1e" || c == "\x1f" || c == "\xc2\x85" || c == "\xc2\xa0" ||
         c == "\xe3\x80\x80" || c == "\xe2\x80\xa8" || c == "\xe2\x80\xa9";
}

std::string str_arg(const Value& v, const char* what) {
  if (!v.is_string()) fail("TypeError", std::string(what) + " must be str, not " + type_name(v));
  return v.s;
}

std::vector<std::string> py_split(const std::string& s, const Value& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep.is_none() || sep.is_undefined()) {  // runs of whitespace, no empty strings
    auto chars = utf8_chars(s);
    size_t k = 0;
    while (k < chars.size()) {
      while (k < chars.size() && is_space_char(chars[k])) ++k;
      if (k >= chars.size()) break;
      if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
        std::string rest;
        for (size_t j = k; j < chars.size(); ++j) rest += chars[j];
        size_t e = rest.size();
        out.push_back(rest.substr(0, e));
        return out;
      }
      std::string w;
      while (k < chars.size() && !is_space_char(chars[k])) w += chars[k++];
      out.push_back(w);
    }
    return out;
  }
  std::string d = str_arg(sep, "sep");
  if (d.empty()) fail("ValueError", "empty separator");
  size_t start = 0;
  while (true) {
    size_t at = s.find(d, start);
    if (at == std::string::npos || (maxsplit >= 0 && int64_t(out.size()) == maxsplit)) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, at - start));
    start = at + d.size();
  }
}

std::string capitalize(const std::string& s) {
  auto chars = utf8_chars(s);
  std::string out;
  for (size_t k = 0; k < chars.size(); ++k) out += k == 0 ? py_upper(chars[k]) : py_lower(chars[k]);
  return out;
}

std::string str_title(const std::string& s) {  // str.title(): words start after non-letters
  std::string out;
  bool prev_cased = false;
  for (auto& c : utf8_chars(s)) {
    bool letter = c.size() > 1 || std::isalpha(static_cast<unsigned char>(c[0]));
    out += letter ? (prev_cased ? py_lower(c) : py_upper(c)) : c;
    prev_cased = letter;
  }
  return out;
}

bool starts_or_ends(const std::string& s, const Value& x, bool start) {
  auto one = [&](const Value& p) {
    std::string q = str_arg(p, start ? "startswith arg" : "endswith arg");
    if (q.size() > s.size()) return false;
    return start ? s.compare(0, q.size(), q) == 0 : s.compare(s.size() - q.size(), q.size(), q) == 0;
  };
  if (x.is_list()) {
    for (auto& p : x.list->items)
      if (one(p)) return true;
    return false;
  }
  return one(x);
}

Value str_method(Env& env, const std::string& s, const std::string& name, Args& a) {
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return Value::str(py_strip(s, a.get(0, "chars", Value::none()), name != "rstrip", name != "lstrip"));
  if (name == "split" || name == "rsplit") {
    Value sep = a.get(0, "sep", Value::none());
    int64_t maxsplit = a.get(1, "maxsplit", Value::integer(-1)).i;
    if (name == "rsplit" && maxsplit >= 0 && !(sep.is_none())) {
      std::string d = str_arg(sep, "sep");
      std::vector<std::string> parts;
      size_t end = s.size();
      while (int64_t(parts.size()) < maxsplit) {
        size_t at = end >= d.size() ? s.rfind(d, end - d.size()) : std::string::npos;
        if (at == std::string::npos) break;
        parts.insert(parts.begin(), s.substr(at + d.size(), end - at - d.size()));
        end = at;
      }
      parts.insert(parts.begin(), s.substr(0, end));
      std::vector<Value> items;
      for (auto& p : parts) items.push_back(Value::str(p));
      return Value::new_list(std::move(items));
    }
    std::vector<Value> items;
    for (auto& p : py_split(s, sep, maxsplit)) items.push_back(Value::str(p));
    return Value::new_list(std::move(items));
  }
  if (name == "splitlines") {
    std::vector<Value> items;
    size_t start = 0;
    for (size_t k = 0; k < s.size(); ++k)
      if (s[k] == '\n' || s[k] == '\r') {
        items.push_back(Value::str(s.substr(start, k - start)));
        if (s[k] == '\r' && k + 1 < s.size() && s[k + 1] == '\n') ++k;
        start = k + 1;
      }
    if (start < s.size()) items.push_back(Value::str(s.substr(start)));
    return Value::new_list(std::move(items));
  }
  if (name == "startswith" || name == "endswith")
    return Value::boolean(starts_or_ends(s, a.get(0, "prefix"), name == "startswith"));
  if (name == "upper") return Value::str(py_upper(s));
  if (name == "lower") return Value::str(py_lower(s));
  if (name == "title") return Value::str(str_title(s));
  if (name == "capitalize") return Value::str(capitalize(s));
  if (name == "replace") {
    std::string from = str_arg(a.get(0, "old"), "replace() argument 1"),
                to = str_arg(a.get(1, "new"), "replace() argument 2");
    int64_t count = a.get(2, "count", Value::integer(-1)).i;
    std::string out;
    if (from.empty()) {
      auto chars = utf8_chars(s);
      int64_t n = 0;
      for (auto& c : chars) {
        if (count < 0 || n++ < count) out += to;
        out += c;
      }
      if (count < 0 || n < count) out += to;
      env.check_size(out.size());
      return Value::str(out);
    }
    size_t start = 0;
    int64_t n = 0;
    while (true) {
      size_t at = s.find(from, start);
      if (at == std::string::npos || (count >= 0 && n >= count)) break;
      out += s.substr(start, at - start) + to;
      start = at + from.size();
      ++n;
      env.check_size(out.size());
    }
    return Value::str(out + s.substr(start));
  }
  if (name == "format") return Value::str(py_format(env, s, a));
  if (name == "join") {
    std::string out;
    bool first = true;
    for (auto& x : iterate(a.get(0, "iterable"))) {
      if (!x.is_string()) fail("TypeError", "sequence item: expected str instance, " + type_name(x) + " found");
      if (!first) out += s;
      out += x.s;
      first = false;
      env.check_size(out.size());
    }
    return Value::str(out);
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    std::string sub = str_arg(a.get(0, "sub"), "must be str");
    if (name == "count") {
      if (sub.empty()) return Value::integer(int64_t(utf8_chars(s).size()) + 1);
      int64_t n = 0;
      for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
      return Value::integer(n);
    }
    size_t at = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
    if (at == std::string::npos) {
      if (name == "index" || name == "rindex") fail("ValueError", "substring not found");
      return Value::integer(-1);
    }
    return Value::integer(int64_t(utf8_chars(s.substr(0, at)).size()));
  }
  auto all_of = [&](auto pred) {
    if (s.empty()) return Value::boolean(false);
    for (unsigned char c : s)
      if (!pred(c)) return Value::boolean(false);
    return Value::boolean(true);
  };
  if (name == "isdigit" || name == "isnumeric" || name == "isdecimal") return all_of([](unsigned char c) { return std::isdigit(c) != 0; });
  if (name == "isalpha") return all_of([](unsigned char c) { return std::isalpha(c) != 0 || c >= 0x80; });
  if (name == "isalnum") return all_of([](unsigned char c) { return std::isalnum(c) != 0 || c >= 0x80; });
  if (name == "isspace") return all_of([](unsigned char c) { return std::isspace(c) != 0; });
  if (name == "islower" || name == "isupper") {
    bool cased = false, ok = true;
    for (unsigned char c : s) {
      if (std::isalpha(c)) {
        cased = true;
        if (name == "islower" ? std::isupper(c) : std::islower(c)) ok = false;
      }
    }
    return Value::boolean(cased && ok);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    std::string p = str_arg(a.get(0, "prefix"), "argument");
    if (name == "removeprefix") return Value::str(s.compare(0, p.size(), p) == 0 ? s.substr(p.size()) : s);
    if (p.size() <= s.size() && s.compare(s.size() - p.size(), p.size(), p) == 0)
      return Value::str(s.substr(0, s.size() - p.size()));
    return Value::str(s);
  }
  if (name == "zfill" || name == "ljust" || name == "rjust" || name == "center") {
    int64_t w = a.get(0, "width").i;
    std::string fill = name == "zfill" ? "0" : a.get(1, "fillchar", Value::str(" ")).s;
    int64_t n = int64_t(utf8_chars(s).size());
    if (w <= n) return Value::str(s);
    env.check_size(size_t(w));
    int64_t pad = w - n, left = name == "rjust" || name == "zfill" ? pad : name == "ljust" ? 0 : pad / 2 + (pad & w & 1);
    std::string out;
    for (int64_t k = 0; k < left; ++k) out += fill;
    out += s;
    for (int64_t k = 0; k < pad - left; ++k) out += fill;
    return Value::str(out);
  }
  fail("AttributeError", "'str' object has no attribute '" + name + "'");
}

const char* kStrMethods[] = {"strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith",
                             "endswith", "upper", "lower", "title", "capitalize", "replace", "format",
                             "join", "find", "rfind", "index", "rindex", "count", "isdigit", "isnumeric",
                             "isdecimal", "isalpha", "isalnum", "isspace", "islower", "isupper",
                             "removeprefix", "removesuffix", "zfill", "ljust", "rjust", "center"};
const char* kDictMethods[] = {"get", "items", "keys", "values", "copy"};
const char* kDictMutating[] = {"pop", "popitem", "setdefault", "update", "clear"};
const char* kListMethods[] = {"index", "count", "copy"};
const char* kListMutating[] = {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"};

template <size_t N>
bool one_of(const std::string& n, const char* (&names)[N]) {
  for (const char* x : names)
    if (n == x) return true;
  return false;
}

}  // namespace

std::string py_strip(const std::string& s, const Value& chars, bool left, bool right) {
  auto cs = utf8_chars(s);
  std::vector<std::string> set;
  bool ws = chars.is_none() || chars.is_undefined();
  if (!ws) set = utf8_chars(str_arg(chars, "strip arg"));
  auto strip_it = [&](const std::string& c) { return ws ? is_space_char(c) : in_chars(c, set); };
  size_t b = 0, e = cs.size();
  if (left)
    while (b < e && strip_it(cs[b])) ++b;
  if (right)
    while (e > b && strip_it(cs[e - 1])) --e;
  std::string out;
  for (size_t k = b; k < e; ++k) out += cs[k];
  return out;
}

std::string py_lower(const std::string& s) {
  std::string out;
  for (auto& c : utf8_chars(s)) {
    if (c.size() == 1) {
      out += char(std::tolower(static_cast<unsigned char>(c[0])));
    } else if (c.size() == 2 && static_cast<unsigned char>(c[0]) == 0xC3 &&
               static_cast<unsigned char>(c[1]) >= 0x80 && static_cast<unsigned char>(c[1]) <= 0x9E &&
               static_cast<unsigned char>(c[1]) != 0x97) {  // Latin-1 capitals
      out += c[0];
      out += char(c[1] + 0x20);
    } else {
      out += c;
    }
  }
  return out;
}

std::string py_upper(const std::string& s) {
  std::string out;
  for (auto& c : utf8_chars(s)) {
    if (c.size() == 1) {
      out += char(std::toupper(static_cast<unsigned char>(c[0])));
    } else if (c.size() == 2 && static_cast<unsigned char>(c[0]) == 0xC3 &&
               static_cast<unsigned char>(c[1]) >= 0xA0 && static_cast<unsigned char>(c[1]) <= 0xBE &&
               static_cast<unsigned char>(c[1]) != 0xB7) {
      out += c[0];
      out += char(c[1] - 0x20);
    } else {
      out += c;
    }
  }
  return out;
}

Value bound_method(Env& env, const Value& obj, const std::string& name, bool* found) {
  *found = true;
  if (obj.is_string() && one_of(name, kStrMethods)) {
    std::string s = obj.s;
    return Value::function("str." + name, [&env, s, name](Args& a) { return str_method(env, s, name, a); });
  }
  if (obj.is_dict() && !obj.dict->ns) {
    if (one_of(name, kDictMutating)) return unsafe_undefined(obj, name);
    if (one_of(name, kDictMethods)) {
      auto d = obj.dict;
      return Value::function("dict." + name, [d, name](Args& a) {
        if (name == "get") {
          Value k = a.get(0, "key");
          const Value* v = d->find(dict_key(k));
          return v ? *v : a.get(1, "default", Value::none());
        }
        std::vector<Value> items;
        for (auto& [k, v] : d->items) {
          if (name == "keys") items.push_back(key_value(k));
          if (name == "values") items.push_back(v);
          if (name == "items") items.push_back(Value::new_list({key_value(k), v}, true));
        }
        if (name == "copy") {
          Value c = Value::new_dict();
          c.dict->items = d->items;
          c.dict->depth = d->depth;
          return c;
        }
        return Value::new_list(std::move(items));
      });
    }
  }
  if (obj.is_list()) {
    if (one_of(name, kListMutating)) return unsafe_undefined(obj, name);
    if (one_of(name, kListMethods)) {
      auto l = obj.list;
      return Value::function("list." + name, [l, name](Args& a) {
        if (name == "copy") return Value::new_list(l->items, l->tuple);
        Value x = a.get(0, "value");
        int64_t n = 0;
        for (size_t k = 0; k < l->items.size(); ++k)
          if (equal(l->items[k], x)) {
            if (name == "index") return Value::integer(int64_t(k));
            ++n;
          }
        if (name == "index") fail("ValueError", to_repr(x) + " is not in list");
        return Value::integer(n);
      });
    }
  }
  *found = false;
  return Value::undefined();
}

Value get_attr(Env& env, const Value& obj, const std::string& name) {
  if (obj.is_undefined()) check_defined(obj);
  if (!name.empty() && name[0] == '_') return unsafe_undefined(obj, name);
  bool found;
  Value m = bound_method(env, obj, name, &found);
  if (found) return m;
  if (obj.is_dict())
    if (const Value* v = obj.dict->find(name)) return *v;
  return Value::undefined("'" + type_name(obj) + " object' has no attribute '" + name + "'");
}

Value get_item(Env& env, const Value& obj, const Value& key) {
  if (obj.is_undefined()) check_defined(obj);
  if (obj.is_dict() && !obj.dict->ns) {
    if (key.is_string() || key.is_number() || key.is_none())
      if (const Value* v = obj.dict->find(dict_key(key))) return *v;
  } else if ((obj.is_list() && !obj.list->generator) || obj.is_string()) {
    if (key.kind == Value::Kind::kInt || key.kind == Value::Kind::kBool) {
      int64_t i = key.kind == Value::Kind::kBool ? key.b : key.i;
      if (obj.is_list()) {
        int64_t n = int64_t(obj.list->items.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return obj.list->items[size_t(i)];
      } else {
        auto chars = utf8_chars(obj.s);
        int64_t n = int64_t(chars.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return Value::str(chars[size_t(i)]);
      }
    }
  }
  if (key.is_string()) {
    if (obj.is_dict() && obj.dict->ns)
      if (const Value* v = obj.dict->find(key.s)) return *v;
    bool found;
    Value m = bound_method(env, obj, key.s, &found);
    if (found) return m;
  }
  return Value::undefined("'" + type_name(obj) + " object' has no attribute '" + to_str(key) + "'");
}

}  // namespace corral::jinja
