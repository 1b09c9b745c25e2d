#include "grammar/gbnf.h"

#include <vector>

#include "grammar/regex.h"

namespace corral::grammar {
namespace {

struct GbnfParser {
  std::string_view s;
  size_t i = 0;
  Grammar g;
  std::string err;
  int depth = 0;

  void fail(const std::string& m) {
    if (!err.empty()) return;
    size_t line = 1, col = 1;
    for (size_t k = 0; k < i && k < s.size(); ++k) {
      if (s[k] == '\n') ++line, col = 1;
      else ++col;
    }
    err = "grammar line " + std::to_string(line) + " column " + std::to_string(col) + ": " + m;
  }
  bool at_end() const { return i >= s.size(); }
  char peek() const { return at_end() ? '\0' : s[i]; }
  static bool word(char c) { return std::isalnum(uint8_t(c)) || c == '-' || c == '_'; }

  void space(bool newline_ok) {
    while (!at_end()) {
      const char c = s[i];
      if (c == ' ' || c == '\t') ++i;
      else if (c == '#') {
        while (!at_end() && s[i] != '\n') ++i;
      } else if (newline_ok && (c == '\n' || c == '\r')) ++i;
      else break;
    }
  }

  std::string name() {
    const size_t b = i;
    while (!at_end() && word(s[i])) ++i;
    return std::string(s.substr(b, i - b));
  }

  int32_t rule_id(const std::string& n) {
    int32_t r = g.find_rule(n);
    if (r < 0) r = g.new_rule(n);
    return r;
  }

  // One character of a literal or class (UTF-8 decoded), escapes included.
  bool ch(uint32_t* out) {
    if (at_end()) {
      fail("unexpected end of grammar");
      return false;
    }
    const uint8_t c = uint8_t(s[i]);
    if (c == '\\') {
      ++i;
      if (at_end()) {
        fail("unfinished escape");
        return false;
      }
      const char e = s[i++];
      auto hex = [&](int n) {
        uint32_t v = 0;
        for (int k = 0; k < n; ++k) {
          if (at_end() || !std::isxdigit(uint8_t(s[i]))) {
            fail("bad hex escape");
            return false;
          }
          const char x = s[i++];
          v = v * 16 + uint32_t(std::isdigit(uint8_t(x)) ? x - '0' : (std::tolower(x) - 'a' + 10));
        }
        *out = v;
        return true;
      };
      switch (e) {
        case 'x': return hex(2);
        case 'u': return hex(4);
        case 'U': return hex(8);
        case 't': *out = '\t'; return true;
        case 'r': *out = '\r'; return true;
        case 'n': *out = '\n'; return true;
        case '\\': case '"': case '[': case ']': case '-': case '^': *out = uint32_t(e); return true;
        default: fail(std::string("unknown escape \\") + e); return false;
      }
    }
    // Raw UTF-8.
    std::vector<uint32_t> cp;
    int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    if (i + size_t(len) > s.size() || !decode_utf8(s.substr(i, size_t(len)), &cp) || cp.size() != 1) {
      fail("invalid UTF-8");
      return false;
    }
    i += size_t(len);
    *out = cp[0];
    return true;
  }

  int32_t element() {
    const char c = peek();
    if (c == '"') {
      ++i;
      std::string bytes;
      while (!at_end() && peek() != '"') {
        uint32_t x;
        if (!ch(&x)) return -1;
        if (x > 0x10FFFF) {
          fail("code point out of range");
          return -1;
        }
        append_utf8(bytes, x);
      }
      if (at_end()) {
        fail("unterminated literal");
        return -1;
      }
      ++i;
      return bytes.empty() ? g.empty() : g.literal(bytes);
    }
    if (c == '[') {
      ++i;
      bool neg = false;
      if (peek() == '^') neg = true, ++i;
      CharRanges r;
      while (!at_end() && peek() != ']') {
        uint32_t a, b;
        if (!ch(&a)) return -1;
        b = a;
        if (peek() == '-' && i + 1 < s.size() && s[i + 1] != ']') {
          ++i;
          if (!ch(&b)) return -1;
          if (b < a) {
            fail("character range out of order");
            return -1;
          }
        }
        r.push_back({a, std::min<uint32_t>(b, 0x10FFFF)});
      }
      if (at_end()) {
        fail("unterminated character class");
        return -1;
      }
      ++i;
      return char_set(g, neg ? complement(r) : normalize(r), false);
    }
    if (c == '.') {
      ++i;
      return char_set(g, {{0, 0x10FFFF}}, false);
    }
    if (c == '(') {
      ++i;
      if (++depth > 500) {
        fail("groups nested too deeply");
        return -1;
      }
      space(true);
      const int32_t e = alternates(true);
      --depth;
      if (e < 0) return -1;
      space(true);
      if (peek() != ')') {
        fail("expected ')'");
        return -1;
      }
      ++i;
      return e;
    }
    if (c == '<') {
      fail("token references (<...>) are not supported");
      return -1;
    }
    if (word(c)) return g.ref(rule_id(name()));
    fail(std::string("unexpected '") + c + "'");
    return -1;
  }

  bool number(int32_t* v) {
    if (!std::isdigit(uint8_t(peek()))) return false;
    int64_t x = 0;
    while (std::isdigit(uint8_t(peek()))) x = std::min<int64_t>(x * 10 + (s[i++] - '0'), 1000000);
    *v = int32_t(x);
    return true;
  }

  int32_t sequence(bool nested) {
    std::vector<int32_t> k;
    while (!at_end()) {
      const char c = peek();
      if (c == '|' || c == ')' || c == '\n' || c == '\r') break;
      int32_t e = element();
      if (e < 0) return -1;
      space(nested);
      while (!at_end() && (peek() == '*' || peek() == '+' || peek() == '?' || peek() == '{')) {
        const char q = s[i++];
        if (q == '*') e = g.star(e);
        else if (q == '+') e = g.repeat(e, 1, -1);
        else if (q == '?') e = g.opt(e);
        else {
          space(nested);
          int32_t mn, mx;
          if (!number(&mn)) {
            fail("expected a number after '{'");
            return -1;
          }
          space(nested);
          mx = mn;
          if (peek() == ',') {
            ++i;
            space(nested);
            if (!number(&mx)) mx = -1;
            space(nested);
          }
          if (peek() != '}') {
            fail("expected '}'");
            return -1;
          }
          ++i;
          if (mx >= 0 && mx < mn) {
            fail("repetition {m,n} with n < m");
            return -1;
          }
          e = g.repeat(e, mn, mx);
        }
        space(nested);
      }
      k.push_back(e);
    }
    return g.seq(std::move(k));
  }

  int32_t alternates(bool nested) {
    std::vector<int32_t> alts;
    while (true) {
      const int32_t e = sequence(nested);
      if (e < 0) return -1;
      alts.push_back(e);
      if (peek() != '|') break;
      ++i;
      space(true);
    }
    return g.alt(std::move(alts));
  }

  bool parse() {
    space(true);
    while (!at_end()) {
      const std::string n = name();
      if (n.empty()) {
        fail("expected a rule name");
        return false;
      }
      space(false);
      if (s.substr(i, 3) != "::=") {
        fail("expected '::='");
        return false;
      }
      i += 3;
      space(true);
      const int32_t r = rule_id(n);
      if (g.rules[size_t(r)].expr >= 0) {
        fail("rule '" + n + "' is defined twice");
        return false;
      }
      const int32_t e = alternates(false);
      if (e < 0) return false;
      g.define(r, e);
      if (!at_end() && peek() != '\n' && peek() != '\r') {
        fail(std::string("unexpected '") + peek() + "'");
        return false;
      }
      space(true);
    }
    return true;
  }
};

}  // namespace

Expected<Grammar> parse_gbnf(std::string_view text) {
  GbnfParser p{text, 0, {}, {}, 0};
  if (!p.parse()) return make_error(p.err);
  for (auto& r : p.g.rules)
    if (r.expr < 0) return make_error("grammar: rule '" + r.name + "' is used but never defined");
  p.g.start = p.g.find_rule("root");
  if (p.g.start < 0) return make_error("grammar: no 'root' rule");
  return std::move(p.g);
}

}  // namespace corral::grammar
