#include "grammar/grammar.h"

#include <algorithm>

namespace corral::grammar {

int32_t Grammar::add(Expr e) {
  exprs.push_back(std::move(e));
  return int32_t(exprs.size() - 1);
}

int32_t Grammar::empty() {
  return add({});
}

int32_t Grammar::bytes(const ByteSet& s) {
  Expr e;
  e.kind = Expr::Kind::kBytes;
  e.bytes = s;
  return add(std::move(e));
}

int32_t Grammar::byte(uint8_t c) {
  ByteSet s;
  s.set(c);
  return bytes(s);
}

int32_t Grammar::byte_range(uint8_t lo, uint8_t hi) {
  ByteSet s;
  for (int b = lo; b <= hi; ++b) s.set(size_t(b));
  return bytes(s);
}

int32_t Grammar::literal(std::string_view s) {
  if (s.size() == 1) return byte(uint8_t(s[0]));
  std::vector<int32_t> k;
  for (char c : s) k.push_back(byte(uint8_t(c)));
  return seq(std::move(k));
}

int32_t Grammar::seq(std::vector<int32_t> kids) {
  if (kids.size() == 1) return kids[0];
  Expr e;
  e.kind = kids.empty() ? Expr::Kind::kEmpty : Expr::Kind::kSeq;
  e.kids = std::move(kids);
  return add(std::move(e));
}

int32_t Grammar::alt(std::vector<int32_t> kids) {
  if (kids.size() == 1) return kids[0];
  Expr e;
  e.kind = Expr::Kind::kAlt;
  e.kids = std::move(kids);
  return add(std::move(e));
}

int32_t Grammar::repeat(int32_t x, int32_t min, int32_t max) {
  if (min == 1 && max == 1) return x;
  Expr e;
  e.kind = Expr::Kind::kRepeat;
  e.kids = {x};
  e.min = min;
  e.max = max;
  return add(std::move(e));
}

int32_t Grammar::ref(int32_t rule) {
  Expr e;
  e.kind = Expr::Kind::kRef;
  e.rule = rule;
  return add(std::move(e));
}

int32_t Grammar::string_body(int32_t min, int32_t max) {
  Expr e;
  e.kind = Expr::Kind::kStringBody;
  e.min = min;
  e.max = max;
  return add(std::move(e));
}

int32_t Grammar::intersect(int32_t a, int32_t b) {
  Expr e;
  e.kind = Expr::Kind::kIntersect;
  e.kids = {a, b};
  return add(std::move(e));
}

int32_t json_char_expr(Grammar& g);  // compile.cpp

int32_t Grammar::json_chars(int32_t min, int32_t max) {
  return repeat(json_char_expr(*this), min, max);
}

int32_t Grammar::new_rule(std::string name) {
  rules.push_back({std::move(name), -1});
  return int32_t(rules.size() - 1);
}

int32_t Grammar::import(const Grammar& other) {
  const int32_t eo = int32_t(exprs.size()), ro = int32_t(rules.size());
  for (const Expr& e : other.exprs) {
    Expr c = e;
    for (int32_t& k : c.kids) k += eo;
    if (c.rule >= 0) c.rule += ro;
    exprs.push_back(std::move(c));
  }
  for (const Rule& r : other.rules) rules.push_back({r.name, r.expr < 0 ? -1 : r.expr + eo});
  return ref(other.start + ro);
}

int32_t Grammar::find_rule(std::string_view name) const {
  for (size_t i = 0; i < rules.size(); ++i)
    if (rules[i].name == name) return int32_t(i);
  return -1;
}

void append_utf8(std::string& out, uint32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6));
    out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3F));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
}

namespace {

// Splits [lo, hi] (same encoded length) into ranges whose UTF-8 forms are products of byte
// ranges, the classic way: recurse on the leading byte.
void utf8_same_len(Grammar& g, uint32_t lo, uint32_t hi, std::vector<int32_t>& out) {
  std::string a, b;
  append_utf8(a, lo);
  append_utf8(b, hi);
  const size_t n = a.size();
  if (n == 1) {
    out.push_back(g.byte_range(uint8_t(a[0]), uint8_t(b[0])));
    return;
  }
  // Split so that every range below has all-continuation-byte tails spanning 80..BF, except at
  // the ends.
  for (size_t i = 1; i < n; ++i) {
    const uint32_t m = (1u << (6 * (n - i))) - 1;  // low bits covered by the last n - i bytes
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        utf8_same_len(g, lo, lo | m, out);
        utf8_same_len(g, (lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        utf8_same_len(g, lo, (hi & ~m) - 1, out);
        utf8_same_len(g, hi & ~m, hi, out);
        return;
      }
    }
  }
  std::vector<int32_t> k;
  for (size_t i = 0; i < n; ++i) k.push_back(g.byte_range(uint8_t(a[i]), uint8_t(b[i])));
  out.push_back(g.seq(std::move(k)));
}

}  // namespace

int32_t utf8_range(Grammar& g, uint32_t lo, uint32_t hi) {
  return utf8_set(g, {{lo, hi}});
}

int32_t utf8_set(Grammar& g, const std::vector<std::pair<uint32_t, uint32_t>>& ranges) {
  std::vector<int32_t> out;
  ByteSet ascii;
  for (auto [lo, hi] : ranges) {
    hi = std::min<uint32_t>(hi, 0x10FFFF);
    for (; lo <= hi && lo < 0x80; ++lo) ascii.set(lo);
    const uint32_t bounds[] = {0x7FF, 0xD7FF, 0xDFFF, 0xFFFF, 0x10FFFF};
    while (lo <= hi) {
      uint32_t end = hi;
      for (uint32_t b : bounds)
        if (lo <= b) {
          end = std::min(end, b);
          break;
        }
      if (!(lo >= 0xD800 && lo <= 0xDFFF)) utf8_same_len(g, lo, end, out);
      lo = end + 1;
    }
  }
  if (ascii.any()) out.insert(out.begin(), g.bytes(ascii));
  if (out.size() == 1) return out[0];
  Expr e;
  e.kind = Expr::Kind::kAlt;
  e.kids = std::move(out);
  return g.add(std::move(e));
}

std::string json_escape_char(uint32_t c) {
  switch (c) {
    case '"':
      return "\\\"";
    case '\\':
      return "\\\\";
    case '\n':
      return "\\n";
    case '\r':
      return "\\r";
    case '\t':
      return "\\t";
    case '\b':
      return "\\b";
    case '\f':
      return "\\f";
    default:
      break;
  }
  std::string s;
  if (c < 0x20) {
    static const char* hex = "0123456789abcdef";
    s = "\\u00";
    s += hex[c >> 4];
    s += hex[c & 15];
    return s;
  }
  append_utf8(s, c);
  return s;
}

std::string json_quote(std::string_view u) {
  std::string out = "\"";
  for (size_t i = 0; i < u.size(); ++i) {
    const uint8_t c = uint8_t(u[i]);
    if (c < 0x20 || c == '"' || c == '\\')
      out += json_escape_char(c);
    else
      out += char(c);
  }
  out += '"';
  return out;
}

}  // namespace corral::grammar
