// The lexer: jinja2's root state (text up to the next tag) and its tag states, one loop.
#include "template/lexer.h"

#include "template/value.h"

#include <cctype>
#include <cstring>

namespace corral::jinja {

namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

struct Lexer {
  const std::string& src;
  const std::string& name;
  LexOptions opt;
  size_t pos = 0;
  int line = 1;
  bool line_starting = true;
  std::vector<Token> out;

  Error err(const std::string& m) const {
    return make_error(name + ":" + std::to_string(line) + ": " + m);
  }
  void advance_to(size_t p) {
    for (size_t k = pos; k < p && k < src.size(); ++k)
      if (src[k] == '\n') ++line;
    pos = p;
  }
  void push(Tok t, std::string text = "") {
    Token k;
    k.type = t;
    k.text = std::move(text);
    k.line = line;
    out.push_back(std::move(k));
  }

  // Text before a tag, stripped as the tag's marker and lstrip_blocks ask.
  void emit_text(std::string text, char sign, bool is_var) {
    if (sign == '-') {
      size_t e = text.size();
      while (e > 0 && is_ws(text[e - 1])) --e;
      text.resize(e);
    } else if (sign != '+' && opt.lstrip_blocks && !is_var) {
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if (l_pos > 0 || line_starting) {
        bool all_ws = l_pos < text.size();
        for (size_t k = l_pos; k < text.size(); ++k)
          if (!is_ws(text[k])) all_ws = false;
        if (all_ws) text.resize(l_pos);
      }
    }
    if (!text.empty()) push(Tok::kData, std::move(text));
  }

  // After a closing marker: `-` eats all whitespace, trim_blocks one newline (blocks only).
  void after_end(bool minus, bool plus, bool block) {
    size_t p = pos;
    if (minus) {
      while (p < src.size() && is_ws(src[p])) ++p;
    } else if (!plus && block && opt.trim_blocks && p < src.size() && src[p] == '\n') {
      ++p;
    }
    line_starting = p > 0 && src[p - 1] == '\n' && p != pos ? true : false;
    advance_to(p);
  }

  Status string_token(char q) {
    size_t p = pos + 1;
    std::string v;
    while (p < src.size() && src[p] != q) {
      char c = src[p];
      if (c == '\\' && p + 1 < src.size()) {
        char e = src[++p];
        switch (e) {
          case 'n': v += '\n'; break;
          case 't': v += '\t'; break;
          case 'r': v += '\r'; break;
          case '0': v += '\0'; break;
          case 'a': v += '\a'; break;
          case 'b': v += '\b'; break;
          case 'f': v += '\f'; break;
          case 'v': v += '\v'; break;
          case '\\': v += '\\'; break;
          case '\'': v += '\''; break;
          case '"': v += '"'; break;
          case '\n': break;
          case 'x':
          case 'u':
          case 'U': {
            size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            if (p + n >= src.size()) return err("truncated \\" + std::string(1, e) + " escape");
            uint32_t cp = 0;
            for (size_t k = 1; k <= n; ++k) {
              char h = src[p + k];
              int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
              if (d < 0) return err("invalid \\" + std::string(1, e) + " escape in a string");
              cp = cp * 16 + uint32_t(d);
            }
            if (cp > 0x10FFFF) return err("invalid \\U escape (beyond U+10FFFF)");
            p += n;
            append_utf8(cp, &v);
            break;
          }
          default:
            v += '\\';
            v += e;
        }
        ++p;
        continue;
      }
      v += c;
      ++p;
    }
    if (p >= src.size()) return err("unterminated string");
    push(Tok::kString, std::move(v));
    advance_to(p + 1);
    return Status::ok();
  }

  // Tokens inside {{ }} or {% %} up to the closing marker (not counted inside brackets).
  Status tag(bool block) {
    const char* close = block ? "%}" : "}}";
    int depth = 0;
    while (true) {
      while (pos < src.size() && is_ws(src[pos])) advance_to(pos + 1);
      if (pos >= src.size()) return err(std::string("missing '") + close + "'");
      if (depth == 0) {
        bool minus = src.compare(pos, 3, std::string("-") + close) == 0;
        bool plus = src.compare(pos, 3, std::string("+") + close) == 0;
        if (minus || plus || src.compare(pos, 2, close) == 0) {
          push(block ? Tok::kBlockEnd : Tok::kVarEnd);
          advance_to(pos + (minus || plus ? 3 : 2));
          after_end(minus, plus, block);
          return Status::ok();
        }
      }
      char c = src[pos];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t p = pos;
        while (p < src.size() && (std::isalnum(static_cast<unsigned char>(src[p])) || src[p] == '_')) ++p;
        push(Tok::kName, src.substr(pos, p - pos));
        advance_to(p);
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t p = pos;
        std::string digits;
        bool is_float = false;
        auto run = [&] {
          while (p < src.size() && (std::isdigit(static_cast<unsigned char>(src[p])) || src[p] == '_'))
            if (src[p++] != '_') digits += src[p - 1];
        };
        run();
        if (p + 1 < src.size() && src[p] == '.' && std::isdigit(static_cast<unsigned char>(src[p + 1]))) {
          is_float = true;
          digits += src[p++];
          run();
        }
        if (p < src.size() && (src[p] == 'e' || src[p] == 'E')) {
          size_t q = p + 1;
          if (q < src.size() && (src[q] == '+' || src[q] == '-')) ++q;
          if (q < src.size() && std::isdigit(static_cast<unsigned char>(src[q]))) {
            is_float = true;
            digits += 'e';
            digits += src.substr(p + 1, q - p - 1);
            p = q;
            run();
          }
        }
        Token t;
        t.type = is_float ? Tok::kFloat : Tok::kInt;
        t.text = digits;
        t.line = line;
        try {
          if (is_float)
            t.f = std::stod(digits);
          else
            t.i = std::stoll(digits);
        } catch (...) {
          return err("number out of range: " + digits);
        }
        out.push_back(t);
        advance_to(p);
      } else if (c == '\'' || c == '"') {
        CORRAL_RETURN_IF_ERROR(string_token(c));
      } else {
        static const char* ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~",
                                    "<",  ">",  "=",  ".",  ",",  ":",  "|", "(", ")", "[", "]", "{", "}"};
        const char* hit = nullptr;
        for (const char* o : ops)
          if (src.compare(pos, std::strlen(o), o) == 0) {
            hit = o;
            break;
          }
        if (!hit) return err(std::string("unexpected char '") + c + "'");
        if (*hit == '(' || *hit == '[' || *hit == '{') ++depth;
        if (*hit == ')' || *hit == ']' || *hit == '}') {
          if (depth == 0) return err(std::string("unexpected '") + hit + "'");
          --depth;
        }
        push(Tok::kOp, hit);
        advance_to(pos + std::strlen(hit));
      }
    }
  }

  // The end of a {% raw %} tag at tag_at (npos when the tag is something else), and its marker.
  size_t raw_tag_end(size_t tag_at, char sign, bool* minus, bool* plus) const {
    size_t p = tag_at + 2 + (sign ? 1 : 0);
    while (p < src.size() && is_ws(src[p])) ++p;
    if (src.compare(p, 3, "raw") != 0) return std::string::npos;
    p += 3;
    while (p < src.size() && is_ws(src[p])) ++p;
    *minus = src.compare(p, 3, "-%}") == 0;
    *plus = src.compare(p, 3, "+%}") == 0;
    if (!*minus && !*plus && src.compare(p, 2, "%}") != 0) return std::string::npos;
    return p + (*minus || *plus ? 3 : 2);
  }

  // After {% raw %}: the body up to {% endraw %} is data as written.
  Status raw_body() {
    const size_t body = pos;
    for (size_t q = pos; (q = src.find("{%", q)) != std::string::npos; ++q) {
      size_t r = q + 2;
      char s2 = r < src.size() && (src[r] == '-' || src[r] == '+') ? src[r] : 0;
      if (s2) ++r;
      while (r < src.size() && is_ws(src[r])) ++r;
      if (src.compare(r, 6, "endraw") != 0) continue;
      r += 6;
      while (r < src.size() && is_ws(src[r])) ++r;
      bool m2 = src.compare(r, 3, "-%}") == 0, p2 = src.compare(r, 3, "+%}") == 0;
      if (!m2 && !p2 && src.compare(r, 2, "%}") != 0) continue;
      emit_text(src.substr(body, q - body), s2, false);
      advance_to(r + (m2 || p2 ? 3 : 2));
      after_end(m2, p2, true);
      return Status::ok();
    }
    return err("missing end of raw directive ({% endraw %})");
  }

  Status run() {
    while (pos < src.size()) {
      size_t at = std::string::npos;
      for (size_t q = pos; (q = src.find('{', q)) != std::string::npos; ++q)
        if (q + 1 < src.size() && (src[q + 1] == '{' || src[q + 1] == '%' || src[q + 1] == '#')) {
          at = q;
          break;
        }
      if (at == std::string::npos) {
        push(Tok::kData, src.substr(pos));
        advance_to(src.size());
        break;
      }
      char kind = src[at + 1];
      char sign = at + 2 < src.size() && (src[at + 2] == '-' || src[at + 2] == '+') ? src[at + 2] : 0;
      std::string text = src.substr(pos, at - pos);
      bool raw_minus = false, raw_plus = false;
      const size_t raw_end = kind == '%' ? raw_tag_end(at, sign, &raw_minus, &raw_plus) : std::string::npos;
      emit_text(text, sign, kind == '{');
      if (raw_end != std::string::npos) {
        advance_to(raw_end);
        after_end(raw_minus, raw_plus, true);
        CORRAL_RETURN_IF_ERROR(raw_body());
        continue;
      }
      advance_to(at + 2 + (sign ? 1 : 0));
      line_starting = false;
      if (kind == '#') {
        size_t end = src.find("#}", pos);
        if (end == std::string::npos) return err("missing '#}'");
        bool minus = end > pos && src[end - 1] == '-';
        bool plus = end > pos && src[end - 1] == '+';
        advance_to(end + 2);
        after_end(minus, plus, true);
        continue;
      }
      push(kind == '{' ? Tok::kVarBegin : Tok::kBlockBegin);
      CORRAL_RETURN_IF_ERROR(tag(kind == '%'));
    }
    push(Tok::kEof);
    return Status::ok();
  }
};

}  // namespace

Expected<std::vector<Token>> lex(const std::string& source, const std::string& name,
                                 const LexOptions& o) {
  // Newlines normalised to \n and one trailing newline dropped (keep_trailing_newline=False).
  std::string src;
  src.reserve(source.size());
  for (size_t k = 0; k < source.size(); ++k) {
    if (source[k] == '\r') {
      src += '\n';
      if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
    } else {
      src += source[k];
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();
  Lexer lx{src, name, o, 0, 1, true, {}};
  CORRAL_RETURN_IF_ERROR(lx.run());
  return std::move(lx.out);
}

}  // namespace corral::jinja
