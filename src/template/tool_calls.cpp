// Tool-call parsers per format, and the streaming wrapper that holds back what may be a call.
#include "template/tool_calls.h"

#include "template/value.h"

#include <algorithm>
#include <cctype>

namespace corral {

using ojson = nlohmann::ordered_json;

std::vector<ToolSpec> tool_specs(const ojson& tools) {
  std::vector<ToolSpec> out;
  if (!tools.is_array()) return out;
  for (auto& t : tools) {
    if (!t.is_object()) continue;
    const ojson& fn = t.contains("function") && t["function"].is_object() ? t["function"] : t;
    if (!fn.contains("name") || !fn["name"].is_string()) continue;
    ToolSpec s;
    s.name = fn["name"].get<std::string>();
    if (fn.contains("parameters") && fn["parameters"].is_object() && fn["parameters"].contains("required") &&
        fn["parameters"]["required"].is_array())
      for (auto& r : fn["parameters"]["required"])
        if (r.is_string()) s.required.push_back(r.get<std::string>());
    out.push_back(std::move(s));
  }
  return out;
}

namespace {

const char* kPythonTag = "<|python_tag|>";
const char* kPythonStart = "<|python_start|>";
const char* kPythonEnd = "<|python_end|>";
const char* kToolCall = "<tool_call>";
const char* kToolCallEnd = "</tool_call>";

bool ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
size_t skip_ws(const std::string& s, size_t p) {
  while (p < s.size() && ws(s[p])) ++p;
  return p;
}
std::string rstrip(std::string s) {
  while (!s.empty() && ws(s.back())) s.pop_back();
  return s;
}
std::string strip(const std::string& s) {
  size_t b = skip_ws(s, 0);
  return rstrip(s.substr(b));
}
bool starts_with(const std::string& s, size_t p, const char* x) { return s.compare(p, std::strlen(x), x) == 0; }
std::string strip_suffix(std::string s, const char* x) {
  s = rstrip(std::move(s));
  size_t n = std::strlen(x);
  if (s.size() >= n && s.compare(s.size() - n, n, x) == 0) s.resize(s.size() - n);
  return rstrip(std::move(s));
}

// The end of the JSON value starting at p (an object or array, strings respected), or npos.
size_t json_end(const std::string& s, size_t p) {
  if (p >= s.size() || (s[p] != '{' && s[p] != '[')) return std::string::npos;
  int depth = 0;
  bool in_str = false;
  for (size_t k = p; k < s.size(); ++k) {
    char c = s[k];
    if (in_str) {
      if (c == '\\') ++k;
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') in_str = true;
    else if (c == '{' || c == '[') ++depth;
    else if ((c == '}' || c == ']') && --depth == 0) return k + 1;
  }
  return std::string::npos;
}

std::string dump_args(const ojson& a) { return a.dump(-1, ' ', false, ojson::error_handler_t::replace); }

// {"name": N, "parameters"|"arguments": {...}} (and an optional "type"); nothing else is a call.
std::optional<ToolCall> call_from_object(const ojson& o) {
  if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) return std::nullopt;
  const char* key = o.contains("parameters") ? "parameters" : o.contains("arguments") ? "arguments" : nullptr;
  if (!key) return std::nullopt;
  for (auto it = o.begin(); it != o.end(); ++it)
    if (it.key() != "name" && it.key() != key && it.key() != "type") return std::nullopt;
  ojson args = o[key];
  if (args.is_string()) args = ojson::parse(args.get<std::string>(), nullptr, false);
  if (args.is_null()) args = ojson::object();
  if (!args.is_object()) return std::nullopt;
  return ToolCall{o["name"].get<std::string>(), dump_args(args)};
}

// One or more JSON calls separated by ';' (or a JSON array of them), nothing else around.
std::optional<std::vector<ToolCall>> json_calls(const std::string& s) {
  std::vector<ToolCall> out;
  size_t p = skip_ws(s, 0);
  if (p < s.size() && s[p] == '[') {
    size_t e = json_end(s, p);
    if (e == std::string::npos || skip_ws(s, e) != s.size()) return std::nullopt;
    ojson arr = ojson::parse(s.substr(p, e - p), nullptr, false);
    if (!arr.is_array() || arr.empty()) return std::nullopt;
    for (auto& o : arr) {
      auto c = call_from_object(o);
      if (!c) return std::nullopt;
      out.push_back(*c);
    }
    return out;
  }
  while (true) {
    size_t e = json_end(s, p);
    if (e == std::string::npos) return std::nullopt;
    ojson o = ojson::parse(s.substr(p, e - p), nullptr, false);
    auto c = call_from_object(o);
    if (!c) return std::nullopt;
    out.push_back(*c);
    p = skip_ws(s, e);
    if (p == s.size()) return out;
    if (s[p] != ';') return std::nullopt;
    p = skip_ws(s, p + 1);
    if (p == s.size()) return out;
  }
}

// Python literals (str, int, float, True/False/None, list, tuple, dict) to JSON.
struct PyParser {
  const std::string& s;
  size_t p = 0;
  int depth = 0;
  bool ok = true;

  void sp() { p = skip_ws(s, p); }
  bool eat(char c) {
    sp();
    if (p < s.size() && s[p] == c) {
      ++p;
      return true;
    }
    return false;
  }
  std::string ident() {
    sp();
    size_t b = p;
    while (p < s.size() && (std::isalnum(static_cast<unsigned char>(s[p])) || s[p] == '_')) ++p;
    if (b == p || std::isdigit(static_cast<unsigned char>(s[b]))) {
      ok = false;
      return "";
    }
    return s.substr(b, p - b);
  }
  ojson value() {
    sp();
    if (p >= s.size() || ++depth > 64) {
      ok = false;
      return nullptr;
    }
    ojson v = value_inner();
    --depth;
    return v;
  }
  ojson value_inner() {
    char c = s[p];
    if (c == '"' || c == '\'') return string();
    if (c == '[' || c == '(') {
      char close = c == '[' ? ']' : ')';
      ++p;
      ojson arr = ojson::array();
      while (ok && !eat(close)) {
        if (!arr.empty() && !eat(',')) return fail();
        if (eat(close)) break;
        arr.push_back(value());
      }
      return arr;
    }
    if (c == '{') {
      ++p;
      ojson obj = ojson::object();
      while (ok && !eat('}')) {
        if (!obj.empty() && !eat(',')) return fail();
        if (eat('}')) break;
        ojson k = value();
        if (!k.is_string() || !eat(':')) return fail();
        obj[k.get<std::string>()] = value();
      }
      return obj;
    }
    if (c == '-' || c == '+' || std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      size_t b = p;
      ++p;
      while (p < s.size() && (std::isalnum(static_cast<unsigned char>(s[p])) || s[p] == '.' || s[p] == '_' ||
                              ((s[p] == '-' || s[p] == '+') && (s[p - 1] == 'e' || s[p - 1] == 'E'))))
        ++p;
      ojson n = ojson::parse(s.substr(b, p - b), nullptr, false);
      if (!n.is_number()) return fail();
      return n;
    }
    std::string id = ident();
    if (id == "True") return true;
    if (id == "False") return false;
    if (id == "None") return nullptr;
    return fail();
  }
  ojson fail() {
    ok = false;
    return nullptr;
  }
  ojson string() {
    char q = s[p++];
    std::string out;
    while (p < s.size() && s[p] != q) {
      char c = s[p++];
      if (c != '\\' || p >= s.size()) {
        out += c;
        continue;
      }
      char e = s[p++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'b': out += '\b'; break;  // JSON's escapes too: constrained calls write strings as JSON does
        case 'f': out += '\f'; break;
        case '/': out += '/'; break;
        case 'u': {
          if (p + 4 > s.size()) return fail();
          uint32_t cp = uint32_t(std::strtoul(s.substr(p, 4).c_str(), nullptr, 16));
          p += 4;
          jinja::append_utf8(cp, &out);
          break;
        }
        default:
          out += '\\';
          out += e;
      }
    }
    if (p >= s.size()) return fail();
    ++p;
    return out;
  }
  // NAME(k=v, ...) or NAME.call(k=v, ...) when `dot_call`.
  std::optional<ToolCall> call(bool dot_call) {
    std::string name = ident();
    if (!ok) return std::nullopt;
    if (dot_call) {
      if (!eat('.') || ident() != "call") return std::nullopt;
    }
    if (!eat('(')) return std::nullopt;
    ojson args = ojson::object();
    while (ok && !eat(')')) {
      if (!args.empty() && !eat(',')) return std::nullopt;
      if (eat(')')) break;
      std::string k = ident();
      if (!ok || !eat('=')) return std::nullopt;
      args[k] = value();
    }
    if (!ok) return std::nullopt;
    return ToolCall{name, dump_args(args)};
  }
};

// [f(a=1), g(b="x")] (brackets optional when `bare` is allowed).
std::optional<std::vector<ToolCall>> pythonic_calls(const std::string& s, bool bare) {
  PyParser ps{s};
  std::vector<ToolCall> out;
  bool bracket = ps.eat('[');
  if (!bracket && !bare) return std::nullopt;
  while (true) {
    auto c = ps.call(false);
    if (!c) return std::nullopt;
    out.push_back(*c);
    if (ps.eat(',')) continue;
    break;
  }
  if (bracket && !ps.eat(']')) return std::nullopt;
  ps.sp();
  if (ps.p != s.size()) return std::nullopt;
  return out;
}

std::optional<std::vector<ToolCall>> builtin_call(const std::string& s) {
  PyParser ps{s};
  auto c = ps.call(true);
  ps.sp();
  if (!c || ps.p != s.size()) return std::nullopt;
  return std::vector<ToolCall>{*c};
}

std::optional<std::vector<ToolCall>> hermes_calls(const std::string& region) {
  std::vector<ToolCall> out;
  size_t p = 0;
  while (true) {
    p = skip_ws(region, p);
    if (p == region.size()) break;
    if (!starts_with(region, p, kToolCall)) return std::nullopt;
    p = skip_ws(region, p + std::strlen(kToolCall));
    size_t e = json_end(region, p);
    if (e == std::string::npos) return std::nullopt;
    auto c = call_from_object(ojson::parse(region.substr(p, e - p), nullptr, false));
    if (!c) return std::nullopt;
    out.push_back(*c);
    p = skip_ws(region, e);
    if (starts_with(region, p, kToolCallEnd))
      p += std::strlen(kToolCallEnd);
    else if (p != region.size())
      return std::nullopt;
  }
  if (out.empty()) return std::nullopt;
  return out;
}

// Where a call may begin: a marker, or a JSON / pythonic call at the very start. npos: nowhere.
// Markers are looked for from `from` on (a stream has searched the text before it already).
size_t call_start(ToolFormat f, const std::string& t, size_t from = 0) {
  if (f == ToolFormat::kNone) return std::string::npos;
  if (f == ToolFormat::kHermes) return t.find(kToolCall, from);
  size_t m = t.find(f == ToolFormat::kLlama4 ? kPythonStart : kPythonTag, from);
  if (f == ToolFormat::kLlama4 && m == std::string::npos) m = t.find(kPythonTag, from);
  size_t b = skip_ws(t, 0);
  if (b < t.size() && (t[b] == '{' || t[b] == '[') && (m == std::string::npos || b < m)) return 0;
  return m;
}

const char* marker_of(ToolFormat f) {
  return f == ToolFormat::kHermes ? kToolCall : f == ToolFormat::kLlama4 ? kPythonStart : kPythonTag;
}

std::optional<std::vector<ToolCall>> parse_region(ToolFormat f, std::string r) {
  if (f == ToolFormat::kHermes) return hermes_calls(r);
  r = strip(r);
  bool tagged = false;
  for (const char* tag : {kPythonTag, kPythonStart})
    if (starts_with(r, 0, tag)) {
      r = strip(r.substr(std::strlen(tag)));
      tagged = true;
    }
  for (const char* end : {"<|eom_id|>", "<|eot_id|>", "<|eom|>", "<|eot|>", kPythonEnd}) r = strip_suffix(r, end);
  if (auto c = json_calls(r)) return c;
  if (auto c = pythonic_calls(r, tagged && f == ToolFormat::kLlama4)) return c;
  if (tagged && f == ToolFormat::kLlama3)
    if (auto c = builtin_call(r)) return c;
  return std::nullopt;
}

bool valid_call(const ToolCall& c, const std::vector<ToolSpec>& tools, bool builtin_form) {
  for (auto& t : tools) {
    if (t.name != c.name) continue;
    ojson args = ojson::parse(c.arguments, nullptr, false);
    for (auto& r : t.required)
      if (!args.is_object() || !args.contains(r)) return false;
    return true;
  }
  // Llama 3.1's built-in tools are enabled by its system prompt, not by `tools`.
  return builtin_form && (c.name == "brave_search" || c.name == "wolfram_alpha");
}

}  // namespace

ParsedOutput parse_tool_calls(ToolFormat f, const std::string& text, const std::vector<ToolSpec>& tools) {
  ParsedOutput verbatim{text, {}};
  size_t m = call_start(f, text);
  if (m == std::string::npos) return verbatim;
  std::string region = text.substr(m);
  auto calls = parse_region(f, region);
  if (!calls || calls->empty()) return verbatim;
  bool builtin_form = region.find(".call(") != std::string::npos && region.find(kPythonTag) != std::string::npos;
  for (auto& c : *calls)
    if (!valid_call(c, tools, builtin_form && calls->size() == 1)) return verbatim;
  ParsedOutput out;
  std::string pre = rstrip(text.substr(0, m));
  if (skip_ws(pre, 0) < pre.size()) out.content = pre;
  out.calls = std::move(*calls);
  return out;
}

std::string ToolCallStream::feed(const std::string& delta) {
  text_ += delta;
  if (holding_ || f_ == ToolFormat::kNone) {
    if (f_ != ToolFormat::kNone) return "";
    std::string out = text_.substr(released_);
    released_ = text_.size();
    return out;
  }
  size_t first = skip_ws(text_, 0);
  if (first == text_.size()) return "";  // only whitespace so far
  size_t m = call_start(f_, text_, scanned_);
  // No marker so far: the next search starts where a marker cut by this delta could begin.
  constexpr size_t kLongestMarker = 16;  // <|python_start|>
  scanned_ = text_.size() > kLongestMarker ? text_.size() - kLongestMarker : 0;
  size_t safe;
  if (m != std::string::npos) {
    holding_ = true;
    safe = m;
  } else {
    // Hold a tail that may be the start of the marker.
    const std::string marker = marker_of(f_);
    size_t hold = 0;
    for (size_t n = std::min(marker.size() - 1, text_.size()); n > 0; --n)
      if (text_.compare(text_.size() - n, n, marker, 0, n) == 0) {
        hold = n;
        break;
      }
    if (f_ == ToolFormat::kLlama4) {  // Llama 4 also writes <|python_tag|>
      const std::string tag = kPythonTag;
      for (size_t n = std::min(tag.size() - 1, text_.size()); n > hold; --n)
        if (text_.compare(text_.size() - n, n, tag, 0, n) == 0) {
          hold = n;
          break;
        }
    }
    safe = text_.size() - hold;
  }
  while (safe > released_ && ws(text_[safe - 1])) --safe;  // trailing whitespace may precede a call
  if (safe <= released_) return "";
  std::string out = text_.substr(released_, safe - released_);
  released_ = safe;
  return out;
}

ParsedOutput ToolCallStream::finish(bool truncated) {
  ParsedOutput p = truncated ? ParsedOutput{text_, {}} : parse_tool_calls(f_, text_, tools_);
  ParsedOutput rest;
  rest.calls = std::move(p.calls);
  if (p.content) rest.content = p.content->substr(std::min(released_, p.content->size()));
  released_ = text_.size();
  return rest;
}

}  // namespace corral
