#include "grammar/regex.h"

#include <algorithm>

namespace corral::grammar {

CharRanges normalize(CharRanges r) {
  std::sort(r.begin(), r.end());
  CharRanges out;
  for (auto& x : r) {
    if (!out.empty() && x.first <= out.back().second + 1)
      out.back().second = std::max(out.back().second, x.second);
    else
      out.push_back(x);
  }
  return out;
}

CharRanges complement(const CharRanges& r0) {
  CharRanges r = normalize(r0), out;
  uint32_t next = 0;
  for (auto& x : r) {
    if (x.first > next) out.push_back({next, x.first - 1});
    next = x.second + 1;
  }
  if (next <= 0x10FFFF) out.push_back({next, 0x10FFFF});
  return out;
}

int32_t char_set(Grammar& g, const CharRanges& r0, bool json) {
  const CharRanges r = normalize(r0);
  if (!json) return utf8_set(g, r);
  // Characters JSON must escape are literal escapes; the rest raw.
  std::vector<int32_t> alts;
  CharRanges raw;
  for (auto [lo, hi] : r)
    for (uint32_t c = lo; c <= hi;) {
      if (c < 0x20 || c == '"' || c == '\\') {
        alts.push_back(g.literal(json_escape_char(c)));
        ++c;
        continue;
      }
      uint32_t e = hi;
      if (c < 0x22) e = std::min<uint32_t>(e, 0x21);
      else if (c < 0x5C) e = std::min<uint32_t>(e, 0x5B);
      raw.push_back({c, e});
      if (e == 0x10FFFF) break;
      c = e + 1;
    }
  if (!raw.empty()) alts.push_back(utf8_set(g, raw));
  if (alts.size() == 1) return alts[0];
  Expr e;
  e.kind = Expr::Kind::kAlt;
  e.kids = std::move(alts);
  return g.add(std::move(e));
}

bool decode_utf8(std::string_view s, std::vector<uint32_t>* out) {
  for (size_t i = 0; i < s.size();) {
    const uint8_t c = uint8_t(s[i]);
    uint32_t cp;
    int len;
    if (c < 0x80) cp = c, len = 1;
    else if ((c & 0xE0) == 0xC0) cp = c & 0x1F, len = 2;
    else if ((c & 0xF0) == 0xE0) cp = c & 0x0F, len = 3;
    else if ((c & 0xF8) == 0xF0) cp = c & 0x07, len = 4;
    else return false;
    if (i + size_t(len) > s.size()) return false;
    for (int j = 1; j < len; ++j) {
      const uint8_t x = uint8_t(s[i + size_t(j)]);
      if ((x & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (x & 0x3F);
    }
    out->push_back(cp);
    i += size_t(len);
  }
  return true;
}

namespace {

const CharRanges kDigit = {{'0', '9'}};
const CharRanges kWord = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
const CharRanges kSpace = {{0x09, 0x0D}, {0x20, 0x20}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A},
                           {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};
const CharRanges kDot = {{0, 0x09}, {0x0B, 0x0C}, {0x0E, 0x2027}, {0x202A, 0x10FFFF}};

struct Parser {
  Grammar& g;
  std::vector<uint32_t> p;
  size_t i = 0;
  bool json = true;
  std::string err;
  int depth = 0;

  bool at_end() const { return i >= p.size(); }
  uint32_t peek() const { return at_end() ? 0 : p[i]; }
  void fail(const std::string& m) {
    if (err.empty()) err = m + " at offset " + std::to_string(i);
  }
  int32_t set(const CharRanges& r) { return char_set(g, r, json); }

  static int hexval(uint32_t c) {
    if (c >= '0' && c <= '9') return int(c - '0');
    if (c >= 'a' && c <= 'f') return int(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return int(c - 'A' + 10);
    return -1;
  }
  bool hex(int n, uint32_t* out) {
    uint32_t v = 0;
    for (int k = 0; k < n; ++k) {
      if (at_end() || hexval(peek()) < 0) return false;
      v = v * 16 + uint32_t(hexval(p[i++]));
    }
    *out = v;
    return true;
  }

  // After a backslash: a class escape (ranges) or one character. in_class: \b is backspace.
  bool escape(CharRanges* out, bool in_class) {
    if (at_end()) {
      fail("pattern ends with a lone backslash");
      return false;
    }
    const uint32_t c = p[i++];
    auto one = [&](uint32_t x) {
      *out = {{x, x}};
      return true;
    };
    switch (c) {
      case 'd': *out = kDigit; return true;
      case 'D': *out = complement(kDigit); return true;
      case 'w': *out = kWord; return true;
      case 'W': *out = complement(kWord); return true;
      case 's': *out = kSpace; return true;
      case 'S': *out = complement(kSpace); return true;
      case 't': return one('\t');
      case 'n': return one('\n');
      case 'v': return one('\v');
      case 'f': return one('\f');
      case 'r': return one('\r');
      case '0':
        if (!at_end() && peek() >= '0' && peek() <= '9') break;
        return one(0);
      case 'b':
        if (in_class) return one('\b');
        fail("word boundaries (\\b) are not supported");
        return false;
      case 'c':
        if (!at_end() && ((peek() | 0x20) >= 'a' && (peek() | 0x20) <= 'z')) return one(p[i++] % 32);
        fail("bad \\c escape");
        return false;
      case 'x': {
        uint32_t v;
        if (hex(2, &v)) return one(v);
        fail("bad \\x escape");
        return false;
      }
      case 'u': {
        uint32_t v;
        if (peek() == '{') {
          ++i;
          v = 0;
          int n = 0;
          while (!at_end() && hexval(peek()) >= 0 && n < 7) v = v * 16 + uint32_t(hexval(p[i++])), ++n;
          if (n == 0 || peek() != '}' || v > 0x10FFFF) {
            fail("bad \\u{...} escape");
            return false;
          }
          ++i;
          return one(v);
        }
        if (!hex(4, &v)) {
          fail("bad \\u escape");
          return false;
        }
        if (v >= 0xD800 && v <= 0xDBFF && i + 6 <= p.size() && p[i] == '\\' && p[i + 1] == 'u') {
          const size_t save = i;
          i += 2;
          uint32_t lo;
          if (hex(4, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) return one(0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00));
          i = save;
        }
        return one(v);
      }
      default: break;
    }
    if ((c >= '1' && c <= '9') || c == 'k') {
      fail("backreferences are not supported");
      return false;
    }
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      fail(std::string("unknown escape \\") + char(c));
      return false;
    }
    return one(c);  // identity escape of a syntax character
  }

  bool klass(CharRanges* out) {  // after '['
    bool neg = false;
    if (peek() == '^') neg = true, ++i;
    CharRanges r;
    bool first = true;
    while (true) {
      if (at_end()) {
        fail("unterminated character class");
        return false;
      }
      uint32_t c = p[i];
      if (c == ']' && !first) {
        ++i;
        break;
      }
      if (c == ']' && first) {  // ECMA: [] matches nothing, [^] everything
        ++i;
        break;
      }
      first = false;
      CharRanges a;
      ++i;
      if (c == '\\') {
        if (!escape(&a, true)) return false;
      } else {
        a = {{c, c}};
      }
      if (peek() == '-' && i + 1 < p.size() && p[i + 1] != ']' && a.size() == 1 && a[0].first == a[0].second) {
        ++i;
        CharRanges b;
        const uint32_t d = p[i++];
        if (d == '\\') {
          if (!escape(&b, true)) return false;
        } else {
          b = {{d, d}};
        }
        if (b.size() != 1 || b[0].first != b[0].second) {
          fail("a class escape cannot end a range");
          return false;
        }
        if (b[0].first < a[0].first) {
          fail("character range out of order");
          return false;
        }
        r.push_back({a[0].first, b[0].first});
      } else {
        r.insert(r.end(), a.begin(), a.end());
      }
    }
    *out = neg ? complement(r) : normalize(r);
    return true;
  }

  int32_t atom() {
    const uint32_t c = p[i++];
    switch (c) {
      case '.': return set(kDot);
      case '[': {
        CharRanges r;
        if (!klass(&r)) return -1;
        return set(r);
      }
      case '\\': {
        CharRanges r;
        if (!escape(&r, false)) return -1;
        return set(r);
      }
      case '(': {
        if (peek() == '?') {
          ++i;
          if (peek() == ':') {
            ++i;
          } else if (peek() == '<' && i + 1 < p.size() && p[i + 1] != '=' && p[i + 1] != '!') {
            while (!at_end() && peek() != '>') ++i;  // named group: the name is not needed
            if (at_end()) {
              fail("unterminated group name");
              return -1;
            }
            ++i;
          } else {
            fail("lookaround assertions are not supported");
            return -1;
          }
        }
        if (++depth > 200) {
          fail("groups nested too deeply");
          return -1;
        }
        const int32_t e = disjunction();
        --depth;
        if (e < 0) return -1;
        if (peek() != ')') {
          fail("missing ')'");
          return -1;
        }
        ++i;
        return e;
      }
      case ')': fail("unmatched ')'"); return -1;
      case '*': case '+': case '?': fail("nothing to repeat"); return -1;
      case '^': case '$': fail("anchors are only supported at the start and end of the pattern"); return -1;
      default: return set({{c, c}});
    }
  }

  bool number(int32_t* v) {
    if (at_end() || peek() < '0' || peek() > '9') return false;
    int64_t x = 0;
    while (!at_end() && peek() >= '0' && peek() <= '9') {
      x = x * 10 + (p[i++] - '0');
      if (x > 100000) x = 100000;
    }
    *v = int32_t(x);
    return true;
  }

  int32_t term() {
    int32_t a = atom();
    if (a < 0) return -1;
    while (!at_end()) {
      const uint32_t c = peek();
      int32_t mn, mx;
      if (c == '*') mn = 0, mx = -1, ++i;
      else if (c == '+') mn = 1, mx = -1, ++i;
      else if (c == '?') mn = 0, mx = 1, ++i;
      else if (c == '{') {
        const size_t save = i++;
        if (!number(&mn)) {
          i = save;  // a literal '{' (Annex B)
          break;
        }
        mx = mn;
        if (peek() == ',') {
          ++i;
          if (!number(&mx)) mx = -1;
        }
        if (peek() != '}') {
          i = save;
          break;
        }
        ++i;
        if (mx >= 0 && mx < mn) {
          fail("repetition {n,m} with m < n");
          return -1;
        }
      } else {
        break;
      }
      if (peek() == '?') ++i;  // lazy: the same language
      a = g.repeat(a, mn, mx);
    }
    return a;
  }

  int32_t alternative() {
    std::vector<int32_t> k;
    while (!at_end() && peek() != '|' && peek() != ')') {
      if (peek() == '{') {  // a literal brace where no repetition can be
        ++i;
        k.push_back(set({{'{', '{'}}));
        continue;
      }
      const int32_t t = term();
      if (t < 0) return -1;
      k.push_back(t);
    }
    return g.seq(std::move(k));
  }

  int32_t disjunction() {
    std::vector<int32_t> alts;
    while (true) {
      const int32_t a = alternative();
      if (a < 0) return -1;
      alts.push_back(a);
      if (peek() != '|') break;
      ++i;
    }
    return g.alt(std::move(alts));
  }

  // Top level: each alternative may start with ^ and end with $ (unescaped); elsewhere they are
  // errors. Unanchored ends get "any characters".
  int32_t top(bool search) {
    std::vector<int32_t> alts;
    while (true) {
      bool head = !search;
      if (peek() == '^') head = true, ++i;
      std::vector<int32_t> k;
      bool tail_anchor = false;
      while (!at_end() && peek() != '|') {
        if (peek() == '$') {
          ++i;
          tail_anchor = true;
          if (!at_end() && peek() != '|') {
            fail("anchors are only supported at the start and end of the pattern");
            return -1;
          }
          break;
        }
        if (peek() == ')') {
          fail("unmatched ')'");
          return -1;
        }
        if (peek() == '{') {
          ++i;
          k.push_back(set({{'{', '{'}}));
          continue;
        }
        const int32_t t = term();
        if (t < 0) return -1;
        k.push_back(t);
      }
      const bool tail = !search || tail_anchor;
      const int32_t any = g.star(set({{0, 0x10FFFF}}));
      if (!head) k.insert(k.begin(), any);
      if (!tail) k.push_back(g.star(set({{0, 0x10FFFF}})));
      alts.push_back(g.seq(std::move(k)));
      if (peek() != '|') break;
      ++i;
    }
    return g.alt(std::move(alts));
  }
};

Expected<int32_t> run(Grammar& g, std::string_view pattern, bool search) {
  Parser ps{g, {}, 0, true, {}, 0};
  if (!decode_utf8(pattern, &ps.p)) return make_error("pattern is not valid UTF-8");
  const int32_t e = ps.top(search);
  if (!ps.err.empty() || e < 0) return make_error("pattern " + std::string(pattern).substr(0, 200) + ": " + ps.err);
  return e;
}

}  // namespace

Expected<int32_t> pattern_to_grammar(Grammar& g, std::string_view pattern) { return run(g, pattern, true); }

Expected<int32_t> full_regex_to_grammar(Grammar& g, std::string_view pattern) { return run(g, pattern, false); }

}  // namespace corral::grammar
