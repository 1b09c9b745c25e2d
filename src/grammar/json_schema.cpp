#include "grammar/json_schema.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <set>

#include "grammar/regex.h"

namespace corral::grammar {
namespace {

using OJ = nlohmann::ordered_json;

const std::set<std::string> kAnnotations = {
    "title",    "description", "default",  "examples",  "$schema", "$id",        "id",
    "$comment", "deprecated",  "readOnly", "writeOnly", "$defs",   "definitions"};
const std::set<std::string> kKeywords = {"type",
                                         "properties",
                                         "required",
                                         "additionalProperties",
                                         "items",
                                         "prefixItems",
                                         "additionalItems",
                                         "minItems",
                                         "maxItems",
                                         "enum",
                                         "const",
                                         "anyOf",
                                         "oneOf",
                                         "allOf",
                                         "$ref",
                                         "minLength",
                                         "maxLength",
                                         "pattern",
                                         "format",
                                         "minimum",
                                         "maximum",
                                         "exclusiveMinimum",
                                         "exclusiveMaximum",
                                         "minProperties",
                                         "maxProperties",
                                         "nullable"};

std::string ptr_escape(const std::string& k) {
  std::string o;
  for (char c : k) {
    if (c == '~')
      o += "~0";
    else if (c == '/')
      o += "~1";
    else
      o += c;
  }
  return o;
}

Error err(const std::string& msg, const std::string& ptr) {
  return make_error(msg + " at " + (ptr.empty() ? std::string("/") : ptr));
}

const char* kFormats[][2] = {
    {"date", "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"},
    {"time",
     "([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5]["
     "0-9])"},
    {"date-time",
     "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-"
     "9]|60)(\\.[0-9]+)?"
     "([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"},
    {"email", "[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+"},
    {"uuid", "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"},
    {"uri", "[A-Za-z][A-Za-z0-9+.-]*:[^\\x00-\\x20\"<>\\\\^`{|}\\x7f]*"},
    {"ipv4",
     "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]"
     ")){3}"},
};

struct Compiler {
  Grammar g;
  const OJ& root;
  SchemaOptions o;
  int32_t ws_rule = -1, value_rule = -1, object_rule = -1, array_rule = -1, string_rule = -1;
  std::map<std::string, int32_t> ref_rules;
  int depth = 0;

  int32_t ws() {
    if (ws_rule < 0) {
      ws_rule = g.new_rule("ws");
      ByteSet s;
      s.set(' '), s.set('\t');
      const int32_t nl =
          g.seq({g.opt(g.byte('\r')), g.byte('\n'), g.repeat(g.bytes(s), 0, o.max_indent)});
      g.define(ws_rule, g.alt({g.repeat(g.bytes(s), 0, 2), nl}));
    }
    return g.ref(ws_rule);
  }
  int32_t sep(char c) { return g.seq({ws(), g.byte(uint8_t(c)), ws()}); }
  int32_t any_string() {
    if (string_rule < 0) {
      string_rule = g.new_rule("string");
      g.define(string_rule, g.seq({g.byte('"'), g.string_body(0, -1), g.byte('"')}));
    }
    return g.ref(string_rule);
  }
  int32_t number() {
    const int32_t digits = g.repeat(g.byte_range('0', '9'), 1, -1);
    ByteSet e, pm;
    e.set('e'), e.set('E'), pm.set('+'), pm.set('-');
    return g.seq({integer_syntax(), g.opt(g.seq({g.byte('.'), digits})),
                  g.opt(g.seq({g.bytes(e), g.opt(g.bytes(pm)), digits}))});
  }
  int32_t integer_syntax() {
    return g.seq(
        {g.opt(g.byte('-')),
         g.alt({g.byte('0'), g.seq({g.byte_range('1', '9'), g.star(g.byte_range('0', '9'))})})});
  }
  int32_t any_value() {
    if (value_rule < 0) {
      value_rule = g.new_rule("value");
      object_rule = g.new_rule("object");
      array_rule = g.new_rule("array");
      const int32_t v = g.ref(value_rule);
      const int32_t kv = g.seq({any_string(), sep(':'), v});
      g.define(object_rule,
               g.seq({g.byte('{'), ws(), g.opt(g.seq({kv, g.star(g.seq({sep(','), kv}))})), ws(),
                      g.byte('}')}));
      g.define(array_rule,
               g.seq({g.byte('['), ws(), g.opt(g.seq({v, g.star(g.seq({sep(','), v}))})), ws(),
                      g.byte(']')}));
      g.define(value_rule, g.alt({g.ref(object_rule), g.ref(array_rule), any_string(), number(),
                                  lit("true"), lit("false"), lit("null")}));
    }
    return g.ref(value_rule);
  }

  // ---- integers in ranges (decimal strings, no leading zeros) ----
  int32_t digits_between(const std::string& a, const std::string& b) {  // equal length, a <= b
    if (a.empty()) return g.empty();
    if (a == b) return g.literal(a);
    if (a[0] == b[0])
      return g.seq({g.byte(uint8_t(a[0])), digits_between(a.substr(1), b.substr(1))});
    const size_t n = a.size() - 1;
    const std::string zeros(n, '0'), nines(n, '9');
    if (a.substr(1) == zeros && b.substr(1) == nines)
      return g.seq({g.byte_range(uint8_t(a[0]), uint8_t(b[0])),
                    g.repeat(g.byte_range('0', '9'), int32_t(n), int32_t(n))});
    std::vector<int32_t> alts;
    alts.push_back(g.seq({g.byte(uint8_t(a[0])), digits_between(a.substr(1), nines)}));
    if (b[0] - a[0] > 1)
      alts.push_back(g.seq({g.byte_range(uint8_t(a[0] + 1), uint8_t(b[0] - 1)),
                            g.repeat(g.byte_range('0', '9'), int32_t(n), int32_t(n))}));
    alts.push_back(g.seq({g.byte(uint8_t(b[0])), digits_between(zeros, b.substr(1))}));
    return g.alt(std::move(alts));
  }
  // Non-negative integers in [lo, hi] (hi empty: unbounded).
  int32_t nonneg_range(int64_t lo, std::optional<int64_t> hi) {
    const std::string a = std::to_string(lo);
    std::vector<int32_t> alts;
    const size_t la = a.size();
    const size_t lb = hi ? std::to_string(*hi).size() : la;
    for (size_t n = la; n <= lb; ++n) {
      std::string x = n == la ? a : "1" + std::string(n - 1, '0');
      std::string y = hi && n == lb ? std::to_string(*hi) : std::string(n, '9');
      alts.push_back(digits_between(x, y));
    }
    if (!hi)
      alts.push_back(
          g.seq({g.byte_range('1', '9'), g.repeat(g.byte_range('0', '9'), int32_t(la), -1)}));
    return g.alt(std::move(alts));
  }
  int32_t int_range(std::optional<int64_t> lo, std::optional<int64_t> hi) {
    std::vector<int32_t> alts;
    if (!hi || *hi >= 0) alts.push_back(nonneg_range(lo && *lo > 0 ? *lo : 0, hi));
    if (!lo || *lo < 0) {  // negatives: magnitudes in [max(1, -hi), -lo]
      const int64_t mlo = hi && *hi < 0 ? -*hi : 1;
      std::optional<int64_t> mhi;
      if (lo) mhi = -*lo;
      if (!mhi || *mhi >= mlo) alts.push_back(g.seq({g.byte('-'), nonneg_range(mlo, mhi)}));
    }
    return g.alt(std::move(alts));
  }
  // A non-negative decimal bound: integer part and fraction digits (no trailing zeros).
  struct Dec {
    int64_t i = 0;
    std::string f;
  };
  static bool dec_less(const Dec& a, const Dec& b) {
    if (a.i != b.i) return a.i < b.i;
    const size_t n = std::max(a.f.size(), b.f.size());
    return (a.f + std::string(n - a.f.size(), '0')) < (b.f + std::string(n - b.f.size(), '0'));
  }
  static Dec dec_of(double x) {  // |x|, exactly as its shortest decimal form
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, std::fabs(x), std::chars_format::fixed);
    std::string t(buf, r.ptr);
    Dec d;
    const size_t dot = t.find('.');
    d.i = std::stoll(t.substr(0, dot));
    if (dot != std::string::npos) d.f = t.substr(dot + 1);
    while (!d.f.empty() && d.f.back() == '0') d.f.pop_back();
    return d;
  }
  // Fraction digits D (the value 0.D) compared with 0.f: op '<' '[' (<=) '>' ']' (>=). `top`:
  // D must hold at least one digit (it follows the '.').
  int32_t frac_cmp(const std::string& f, char op, bool top) {
    const int32_t dig = g.byte_range('0', '9');
    if (f.empty()) {  // the rest of 0.f is zeros
      switch (op) {
        case '[':
          return g.repeat(g.byte('0'), top ? 1 : 0, -1);
        case '<':
          return g.alt({});
        case ']':
          return g.repeat(dig, top ? 1 : 0, -1);
        default:
          return g.seq({g.star(dig), g.byte_range('1', '9'), g.star(dig)});
      }
    }
    const uint8_t f0 = uint8_t(f[0]);
    std::vector<int32_t> alts;
    if (op == '<' || op == '[') {
      if (f0 > '0') alts.push_back(g.seq({g.byte_range('0', f0 - 1), g.star(dig)}));
      if (!top) alts.push_back(g.empty());  // 0 < 0.f, f not zero
    } else if (f0 < '9') {
      alts.push_back(g.seq({g.byte_range(f0 + 1, '9'), g.star(dig)}));
    }
    alts.push_back(g.seq({g.byte(f0), frac_cmp(f.substr(1), op, false)}));
    return g.alt(std::move(alts));
  }
  // Whether an absent fraction (0) satisfies the comparison with 0.f.
  static bool frac_empty_ok(const std::string& f, char op) {
    if (op == '[') return true;
    if (op == '<') return !f.empty();
    if (op == ']') return f.empty();
    return false;
  }
  // Non-negative decimals m (no exponent) with lo <= m <= hi (each maybe exclusive; hi empty:
  // unbounded).
  int32_t nonneg_decimal(const Dec& lo, bool lo_ex, const std::optional<Dec>& hi, bool hi_ex) {
    const int32_t dig = g.byte_range('0', '9');
    const int32_t any_frac = g.opt(g.seq({g.byte('.'), g.repeat(dig, 1, -1)}));
    if (hi && (dec_less(*hi, lo) || (!dec_less(lo, *hi) && (lo_ex || hi_ex)))) return g.alt({});
    const char lop = lo_ex ? '>' : ']', hop = hi_ex ? '<' : '[';
    auto frac = [&](std::vector<std::pair<const std::string*, char>> conds) {
      bool empty_ok = true;
      for (auto& [f, op] : conds) empty_ok = empty_ok && frac_empty_ok(*f, op);
      int32_t d = frac_cmp(*conds[0].first, conds[0].second, true);
      if (conds.size() == 2) d = g.intersect(d, frac_cmp(*conds[1].first, conds[1].second, true));
      const int32_t some = g.seq({g.byte('.'), d});
      return empty_ok ? g.alt({g.empty(), some}) : some;
    };
    std::vector<int32_t> alts;
    if (hi && hi->i == lo.i) {
      alts.push_back(g.seq({g.literal(std::to_string(lo.i)), frac({{&lo.f, lop}, {&hi->f, hop}})}));
      return g.alt(std::move(alts));
    }
    // Integer parts strictly between the bounds' take any fraction.
    std::optional<int64_t> b;
    if (hi) b = hi->i - 1;
    if (!b || *b >= lo.i + 1) alts.push_back(g.seq({nonneg_range(lo.i + 1, b), any_frac}));
    alts.push_back(g.seq({g.literal(std::to_string(lo.i)), frac({{&lo.f, lop}})}));
    if (hi) alts.push_back(g.seq({g.literal(std::to_string(hi->i)), frac({{&hi->f, hop}})}));
    return g.alt(std::move(alts));
  }

  Expected<int32_t> numeric(const OJ& s, const std::string& ptr, bool integer) {
    std::optional<double> lo, hi;
    bool lo_ex = false, hi_ex = false;
    auto bound = [&](const char* k, std::optional<double>* v, bool* ex, bool is_ex,
                     bool is_lo) -> Status {
      auto it = s.find(k);
      if (it == s.end()) return Status::ok();
      if (it->is_boolean()) {  // draft 4: exclusiveMinimum: true modifies minimum
        if (it->get<bool>()) *ex = true;
        return Status::ok();
      }
      if (!it->is_number()) return err(std::string("'") + k + "' must be a number", ptr);
      const double x = it->get<double>();
      if (!v->has_value() || (is_lo ? x >= **v : x <= **v)) {
        if (v->has_value() && x == **v)
          *ex = *ex || is_ex;
        else
          *ex = is_ex;
        *v = x;
      }
      return Status::ok();
    };
    for (auto st : {bound("minimum", &lo, &lo_ex, false, true),
                    bound("exclusiveMinimum", &lo, &lo_ex, true, true),
                    bound("maximum", &hi, &hi_ex, false, false),
                    bound("exclusiveMaximum", &hi, &hi_ex, true, false)})
      if (!st.is_ok()) return st;
    if (!lo && !hi) return integer ? integer_syntax() : number();
    auto fits = [](double x) { return std::fabs(x) < 9e15; };
    if ((lo && !fits(*lo)) || (hi && !fits(*hi))) return err("numeric bound too large", ptr);
    if (integer) {
      std::optional<int64_t> a, b;
      if (lo) a = int64_t(lo_ex ? std::floor(*lo) + 1 : std::ceil(*lo));
      if (hi) b = int64_t(hi_ex ? std::ceil(*hi) - 1 : std::floor(*hi));
      if (a && b && *a > *b) return err("no integer satisfies the bounds", ptr);
      return int_range(a, b);
    }
    std::vector<int32_t> alts;
    // x >= 0 (written without a sign).
    if (!hi || *hi >= 0) {
      const bool at_zero = !lo || *lo < 0;
      std::optional<Dec> h;
      if (hi) h = dec_of(*hi);
      alts.push_back(
          nonneg_decimal(at_zero ? Dec{} : dec_of(*lo), at_zero ? false : lo_ex, h, hi_ex));
    }
    // x < 0: magnitude m in (max(0, -hi), -lo].
    if (!lo || *lo < 0) {
      Dec mlo;
      bool mlo_ex = true;  // m > 0 ("-0" is not negative)
      if (hi && *hi < 0) mlo = dec_of(*hi), mlo_ex = hi_ex;
      std::optional<Dec> mhi;
      if (lo) mhi = dec_of(*lo);
      alts.push_back(g.seq({g.byte('-'), nonneg_decimal(mlo, mlo_ex, mhi, lo_ex)}));
    }
    return g.alt(std::move(alts));
  }

  // A count keyword (minLength, maxItems, ...): `absent` when not given.
  static Expected<int64_t> count(const OJ& s, const char* key, const std::string& ptr,
                                 int64_t absent) {
    auto it = s.find(key);
    if (it == s.end()) return absent;
    if (!it->is_number_unsigned())
      return err(std::string("'") + key + "' must be a non-negative integer", ptr + "/" + key);
    return it->get<int64_t>();
  }

  // ---- strings ----
  Expected<int32_t> string(const OJ& s, const std::string& ptr) {
    auto mn_ = count(s, "minLength", ptr, 0), mx_ = count(s, "maxLength", ptr, -1);
    if (!mn_.is_ok()) return mn_.error();
    if (!mx_.is_ok()) return mx_.error();
    const int64_t mn = *mn_, mx = *mx_;
    if (mx >= 0 && mx < mn) return err("'maxLength' is below 'minLength'", ptr);
    if (mn > (1 << 17) || mx > (1 << 17)) return err("string length bound over 131072", ptr);
    const bool lengths = s.contains("minLength") || s.contains("maxLength");
    const bool pat = s.contains("pattern"), fmt = s.contains("format");
    if (pat && fmt) return err("'pattern' and 'format' cannot be combined on one string", ptr);
    // A pattern or format with lengths: both automata at once (their product).
    auto with_lengths = [&](int32_t e) {
      if (lengths) e = g.intersect(e, g.json_chars(int32_t(mn), int32_t(mx)));
      return g.seq({g.byte('"'), e, g.byte('"')});
    };
    if (pat) {
      if (!s["pattern"].is_string()) return err("'pattern' must be a string", ptr + "/pattern");
      auto e = pattern_to_grammar(g, s["pattern"].get<std::string>());
      if (!e.is_ok()) return err(e.error().message, ptr + "/pattern");
      return with_lengths(*e);
    }
    if (fmt) {
      if (!s["format"].is_string()) return err("'format' must be a string", ptr + "/format");
      const std::string f = s["format"].get<std::string>();
      for (auto& kv : kFormats)
        if (f == kv[0]) {
          auto e = full_regex_to_grammar(g, kv[1]);
          if (!e.is_ok()) return e.error();
          return with_lengths(*e);
        }
      return err("unsupported format '" + f + "'", ptr + "/format");
    }
    if (!lengths) return any_string();
    return g.seq({g.byte('"'), g.string_body(int32_t(mn), int32_t(mx)), g.byte('"')});
  }

  // ---- constants ----
  int32_t literal_value(const OJ& v) {
    switch (v.type()) {
      case OJ::value_t::object: {
        std::vector<int32_t> k = {g.byte('{'), ws()};
        bool first = true;
        for (auto& [key, val] : v.items()) {
          if (!first) k.push_back(sep(','));
          first = false;
          k.push_back(g.literal(json_quote(key)));
          k.push_back(sep(':'));
          k.push_back(literal_value(val));
        }
        k.push_back(ws());
        k.push_back(g.byte('}'));
        return g.seq(std::move(k));
      }
      case OJ::value_t::array: {
        std::vector<int32_t> k = {g.byte('['), ws()};
        for (size_t i = 0; i < v.size(); ++i) {
          if (i) k.push_back(sep(','));
          k.push_back(literal_value(v[i]));
        }
        k.push_back(ws());
        k.push_back(g.byte(']'));
        return g.seq(std::move(k));
      }
      case OJ::value_t::string:
        return g.literal(json_quote(v.get<std::string>()));
      case OJ::value_t::boolean:
      case OJ::value_t::null:
        return lit(v.dump());
      default:
        return g.literal(v.dump());
    }
  }
  // true/false/null, or Python's True/False/None.
  int32_t lit(const std::string& json_word) {
    if (!o.python) return g.literal(json_word);
    return g.literal(json_word == "true" ? "True" : json_word == "false" ? "False" : "None");
  }

  // ---- $ref ----
  Expected<const OJ*> resolve(const std::string& ref, const std::string& ptr) {
    if (ref.empty() || ref[0] != '#')
      return err("only local $ref ('#...') is supported, not '" + ref + "'", ptr + "/$ref");
    const OJ* cur = &root;
    size_t i = 1;
    if (i < ref.size() && ref[i] != '/')
      return err("$ref '" + ref + "' is not a JSON pointer", ptr + "/$ref");
    while (i < ref.size()) {
      size_t j = ref.find('/', i + 1);
      if (j == std::string::npos) j = ref.size();
      std::string tok = ref.substr(i + 1, j - i - 1), key;
      for (size_t k = 0; k < tok.size(); ++k) {
        if (tok[k] == '~' && k + 1 < tok.size())
          key += tok[k + 1] == '1' ? '/' : '~', ++k;
        else if (tok[k] == '%' && k + 2 < tok.size())
          key += char(std::stoi(tok.substr(k + 1, 2), nullptr, 16)), k += 2;
        else
          key += tok[k];
      }
      if (cur->is_object() && cur->contains(key))
        cur = &(*cur)[key];
      else if (cur->is_array() && !key.empty() &&
               key.find_first_not_of("0123456789") == std::string::npos &&
               std::stoul(key) < cur->size())
        cur = &(*cur)[std::stoul(key)];
      else
        return err("$ref '" + ref + "' does not resolve", ptr + "/$ref");
      i = j;
    }
    return cur;
  }
  Expected<int32_t> ref_rule(const std::string& ref, const std::string& ptr) {
    if (auto it = ref_rules.find(ref); it != ref_rules.end()) return g.ref(it->second);
    auto t = resolve(ref, ptr);
    if (!t.is_ok()) return t.error();
    const int32_t r = g.new_rule("ref " + ref);
    ref_rules[ref] = r;
    auto e = compile(**t, ref.substr(1));
    if (!e.is_ok()) return e.error();
    g.define(r, *e);
    return g.ref(r);
  }

  // ---- allOf: merged into one schema ----
  Expected<OJ> deref(const OJ& s, const std::string& ptr, int d) {
    if (d > 32) return err("$ref chain too deep inside allOf", ptr);
    if (!s.is_object() || !s.contains("$ref")) return s;
    auto t = resolve(s["$ref"].is_string() ? s["$ref"].get<std::string>() : "", ptr);
    if (!t.is_ok()) return t.error();
    OJ rest = s;
    rest.erase("$ref");
    auto base = deref(**t, ptr, d + 1);
    if (!base.is_ok()) return base.error();
    if (has_constraints(rest)) return merge(*base, rest, ptr, d + 1);
    return *base;
  }
  static bool has_constraints(const OJ& s) {
    if (!s.is_object()) return true;
    for (auto& [k, v] : s.items())
      if (!kAnnotations.count(k)) return true;
    return false;
  }
  static std::set<std::string> types_of(const OJ& s) {
    std::set<std::string> t;
    if (!s.contains("type"))
      return {"null", "boolean", "object", "array", "string", "number", "integer"};
    if (s["type"].is_string())
      t.insert(s["type"].get<std::string>());
    else
      for (auto& x : s["type"])
        if (x.is_string()) t.insert(x.get<std::string>());
    if (t.count("number")) t.insert("integer");
    return t;
  }
  Expected<OJ> merge(const OJ& a0, const OJ& b0, const std::string& ptr, int d) {
    if (d > 64) return err("allOf nested too deeply", ptr);
    auto ra = deref(a0, ptr, d + 1);
    if (!ra.is_ok()) return ra.error();
    auto rb = deref(b0, ptr, d + 1);
    if (!rb.is_ok()) return rb.error();
    OJ a = *ra, b = *rb;
    if (a.is_boolean()) return a.get<bool>() ? b : a;
    if (b.is_boolean()) return b.get<bool>() ? a : b;
    if (!a.is_object() || !b.is_object()) return err("allOf branches must be schemas", ptr);
    for (const OJ* x : {&a, &b})
      if (x->contains("allOf")) {
        OJ y = *x;
        OJ list = y["allOf"];
        y.erase("allOf");
        OJ acc = y;
        for (auto& item : list) {
          auto m = merge(acc, item, ptr, d + 1);
          if (!m.is_ok()) return m.error();
          acc = *m;
        }
        if (x == &a)
          a = acc;
        else
          b = acc;
      }
    OJ out = OJ::object();
    const bool a_or = a.contains("anyOf") || a.contains("oneOf"),
               b_or = b.contains("anyOf") || b.contains("oneOf");
    if (a_or && b_or) return err("allOf of several anyOf/oneOf is not supported", ptr);
    // Types intersect (integer is a number).
    if (a.contains("type") || b.contains("type")) {
      std::set<std::string> ta = types_of(a), tb = types_of(b);
      OJ t = OJ::array();
      for (const char* n : {"null", "boolean", "object", "array", "string", "number", "integer"})
        if (ta.count(n) && tb.count(n)) {
          if (std::string(n) == "integer" && ta.count("number") && tb.count("number")) continue;
          t.push_back(n);
        }
      if (t.empty()) return err("allOf branches have no type in common", ptr);
      out["type"] = t.size() == 1 ? t[0] : t;
    }
    // Objects: a property is allowed where every branch allows it.
    const bool objs = a.contains("properties") || b.contains("properties") ||
                      a.contains("additionalProperties") || b.contains("additionalProperties");
    if (objs) {
      OJ pa = a.value("properties", OJ::object()), pb = b.value("properties", OJ::object());
      OJ aa = a.value("additionalProperties", OJ(true)),
         ab = b.value("additionalProperties", OJ(true));
      OJ props = OJ::object();
      auto add = [&](const std::string& k, const OJ& x, const OJ& y) -> Status {
        auto m = merge(x, y, ptr + "/properties/" + ptr_escape(k), d + 1);
        if (!m.is_ok()) return m.error();
        if (!(m->is_boolean() && !m->get<bool>())) props[k] = *m;
        return Status::ok();
      };
      for (auto& [k, v] : pa.items()) {
        auto st = add(k, v, pb.contains(k) ? pb[k] : ab);
        if (!st.is_ok()) return st;
      }
      for (auto& [k, v] : pb.items())
        if (!pa.contains(k)) {
          auto st = add(k, aa, v);
          if (!st.is_ok()) return st;
        }
      out["properties"] = props;
      auto m = merge(aa, ab, ptr + "/additionalProperties", d + 1);
      if (!m.is_ok()) return m.error();
      if (!(m->is_boolean() && m->get<bool>())) out["additionalProperties"] = *m;
    }
    for (const OJ* x : {&a, &b}) {
      for (auto& [k, v] : x->items()) {
        if (k == "type" || k == "properties" || k == "additionalProperties" ||
            kAnnotations.count(k))
          continue;
        if (k == "required") {
          OJ r = out.value("required", OJ::array());
          for (auto& n : v)
            if (std::find(r.begin(), r.end(), n) == r.end()) r.push_back(n);
          out["required"] = r;
        } else if (k == "minLength" || k == "minItems" || k == "minProperties" || k == "minimum" ||
                   k == "exclusiveMinimum") {
          if (!out.contains(k) ||
              (v.is_number() && out[k].is_number() && v.get<double>() > out[k].get<double>()))
            out[k] = v;
        } else if (k == "maxLength" || k == "maxItems" || k == "maxProperties" || k == "maximum" ||
                   k == "exclusiveMaximum") {
          if (!out.contains(k) ||
              (v.is_number() && out[k].is_number() && v.get<double>() < out[k].get<double>()))
            out[k] = v;
        } else if (k == "items") {
          if (out.contains("items")) {
            auto m = merge(out["items"], v, ptr + "/items", d + 1);
            if (!m.is_ok()) return m.error();
            out["items"] = *m;
          } else {
            out["items"] = v;
          }
        } else if (out.contains(k) && out[k] != v) {
          return err("allOf branches disagree on '" + k + "'", ptr);
        } else {
          out[k] = v;
        }
      }
    }
    return out;
  }

  // ---- oneOf: exactly one branch ----
  // The grammar cannot count matching branches, so oneOf is compiled as anyOf over branches
  // that no value can match twice. Pairs that are provably disjoint (types, const/enum values,
  // a required property whose two schemas are disjoint) stay as written; an object pair that
  // is not is narrowed on both sides ("no property k", k required by the other branch only),
  // which keeps only values matching exactly one (it may refuse some valid ones, never accept
  // an invalid one). Any other overlap is an error rather than a silent anyOf.
  static std::set<std::string> value_types(const OJ& s) {
    if (s.is_boolean()) return s.get<bool>() ? types_of(OJ::object()) : std::set<std::string>{};
    if (!s.is_object()) return {};
    std::set<std::string> t = types_of(s);
    if (s.value("nullable", false)) t.insert("null");
    if (s.contains("const") || s.contains("enum")) {
      std::set<std::string> v;
      auto add = [&](const OJ& x) {
        v.insert(x.is_null()           ? "null"
                 : x.is_boolean()      ? "boolean"
                 : x.is_object()       ? "object"
                 : x.is_array()        ? "array"
                 : x.is_string()       ? "string"
                 : x.is_number_float() ? "number"
                                       : "integer");
        if (x.is_number_integer() || x.is_number_unsigned()) v.insert("number");
      };
      if (s.contains("const"))
        add(s["const"]);
      else if (s["enum"].is_array())
        for (auto& x : s["enum"]) add(x);
      std::set<std::string> both;
      for (auto& x : v)
        if (t.count(x)) both.insert(x);
      return both;
    }
    return t;
  }
  static std::set<std::string> shared_types(const OJ& a, const OJ& b) {
    const std::set<std::string> ta = value_types(a), tb = value_types(b);
    std::set<std::string> shared;
    std::set_intersection(ta.begin(), ta.end(), tb.begin(), tb.end(),
                          std::inserter(shared, shared.end()));
    return shared;
  }
  static std::optional<std::vector<OJ>> values_of(const OJ& s) {
    if (!s.is_object()) return std::nullopt;
    if (s.contains("const")) return std::vector<OJ>{s["const"]};
    if (s.contains("enum") && s["enum"].is_array())
      return std::vector<OJ>(s["enum"].begin(), s["enum"].end());
    return std::nullopt;
  }
  static OJ property_schema(const OJ& s, const std::string& k) {
    if (auto it = s.find("properties"); it != s.end() && it->is_object() && it->contains(k))
      return (*it)[k];
    return s.value("additionalProperties", OJ(true));
  }
  static std::set<std::string> required_of(const OJ& s) {
    std::set<std::string> r;
    if (auto it = s.find("required"); it != s.end() && it->is_array())
      for (auto& x : *it)
        if (x.is_string()) r.insert(x.get<std::string>());
    return r;
  }
  bool disjoint(const OJ& a0, const OJ& b0, int d) {
    if (d > 16) return false;
    auto ra = deref(a0, "", 0), rb = deref(b0, "", 0);
    if (!ra.is_ok() || !rb.is_ok()) return false;
    const OJ &a = *ra, &b = *rb;
    if (a.is_object() && (a.contains("anyOf") || a.contains("oneOf") || a.contains("allOf")))
      return false;
    if (b.is_object() && (b.contains("anyOf") || b.contains("oneOf") || b.contains("allOf")))
      return false;
    const std::set<std::string> shared = shared_types(a, b);
    if (shared.empty()) return true;
    auto va = values_of(a), vb = values_of(b);
    if (va && vb) {
      bool common = false;
      for (auto& x : *va) common = common || std::find(vb->begin(), vb->end(), x) != vb->end();
      if (!common) return true;
    }
    if (shared == std::set<std::string>{"object"}) {
      std::set<std::string> req = required_of(a);
      for (auto& k : required_of(b)) req.insert(k);
      for (auto& k : req)
        if (disjoint(property_schema(a, k), property_schema(b, k), d + 1)) return true;
    }
    return false;
  }
  Status exclusive(std::vector<OJ>& branches, const std::string& ptr) {
    if (branches.size() > 512) return err("oneOf with more than 512 branches", ptr);
    const size_t n = branches.size();
    std::vector<OJ> narrowed(branches);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = i + 1; j < n; ++j) {
        if (disjoint(branches[i], branches[j], 0)) continue;
        auto ri = deref(branches[i], ptr, 0), rj = deref(branches[j], ptr, 0);
        if (!ri.is_ok()) return ri.error();
        if (!rj.is_ok()) return rj.error();
        const std::set<std::string> shared = shared_types(*ri, *rj);
        const std::set<std::string> qi = required_of(*ri), qj = required_of(*rj);
        std::string only_i, only_j;
        for (auto& k : qi)
          if (!qj.count(k) && only_i.empty()) only_i = k;
        for (auto& k : qj)
          if (!qi.count(k) && only_j.empty()) only_j = k;
        const std::string which =
            " (branches " + std::to_string(i) + " and " + std::to_string(j) + ")";
        if (shared != std::set<std::string>{"object"} || only_i.empty() || only_j.empty() ||
            (*ri).contains("anyOf") || (*ri).contains("oneOf") || (*rj).contains("anyOf") ||
            (*rj).contains("oneOf"))
          return err("oneOf branches that one value can match both are not supported" + which +
                         "; make them differ in type, const/enum, or a required property",
                     ptr);
        // i without j's own required property, j without i's.
        for (auto [x, k] : {std::pair<size_t, std::string>{i, only_j}, {j, only_i}}) {
          auto r = deref(narrowed[x], ptr, 0);
          if (!r.is_ok()) return r.error();
          OJ s = *r;
          if (!s["properties"].is_object()) s["properties"] = OJ::object();
          s["properties"][k] = false;
          narrowed[x] = s;
        }
      }
    branches = std::move(narrowed);
    return Status::ok();
  }

  // ---- objects ----
  // Additional property names: any JSON string except the defined names (as written canonically;
  // escapes are refused while the name still follows a defined one).
  int32_t key_not_in(const std::vector<std::string>& names) {
    if (names.empty()) return any_string();
    struct TNode {
      std::map<uint8_t, int32_t> kids;
      bool terminal = false;
      bool boundary = true;
    };
    std::vector<TNode> t(1);
    for (auto& n : names) {
      const std::string q = json_quote(n);
      const std::string body = q.substr(1, q.size() - 2);
      int32_t cur = 0;
      int pending = 0;  // continuation bytes still due in the current character
      for (uint8_t c : body) {
        if (pending > 0)
          --pending;
        else if (c >= 0xF0)
          pending = 3;
        else if (c >= 0xE0)
          pending = 2;
        else if (c >= 0xC0)
          pending = 1;
        auto it = t[size_t(cur)].kids.find(c);
        if (it == t[size_t(cur)].kids.end()) {
          t.push_back({});
          t.back().boundary = pending == 0;
          const int32_t id = int32_t(t.size() - 1);
          t[size_t(cur)].kids[c] = id;
          cur = id;
        } else {
          cur = it->second;
        }
      }
      t[size_t(cur)].terminal = true;
    }
    const int32_t free_rest = g.seq({g.string_body(0, -1), g.byte('"')});
    std::vector<int32_t> rules(t.size());
    for (size_t i = 0; i < t.size(); ++i) rules[i] = g.new_rule("key");
    for (size_t i = 0; i < t.size(); ++i) {
      std::vector<int32_t> alts;
      for (auto [c, k] : t[i].kids) alts.push_back(g.seq({g.byte(c), g.ref(rules[size_t(k)])}));
      if (!t[i].terminal && t[i].boundary) alts.push_back(g.byte('"'));
      if (t[i].boundary) {
        // A first character that leaves every name: ASCII or a lead byte not among the children.
        CharRanges leave;
        for (uint32_t c = 0x20; c < 0x80; ++c)
          if (c != '"' && c != '\\' && !t[i].kids.count(uint8_t(c))) leave.push_back({c, c});
        for (uint32_t lead = 0xC2; lead <= 0xF4; ++lead) {
          if (t[i].kids.count(uint8_t(lead))) continue;
          uint32_t lo, hi;
          if (lead <= 0xDF)
            lo = (lead & 0x1F) << 6, hi = lo + 0x3F;
          else if (lead <= 0xEF)
            lo = (lead & 0x0F) << 12, hi = lo + 0xFFF;
          else
            lo = (lead & 0x07) << 18, hi = lo + 0x3FFFF;
          if (lead == 0xE0) lo = 0x800;
          if (lead == 0xF0) lo = 0x10000;
          hi = std::min<uint32_t>(hi, 0x10FFFF);
          if (lo <= hi) leave.push_back({lo, hi});
        }
        alts.push_back(g.seq({char_set(g, leave, false), free_rest}));
      }
      g.define(rules[i], g.alt(std::move(alts)));
    }
    return g.seq({g.byte('"'), g.ref(rules[0])});
  }

  // kwargs: Python keyword arguments (`k=v, ...`, no braces, declared properties only).
  Expected<int32_t> object(const OJ& s, const std::string& ptr, bool kwargs = false) {
    auto key = [&](const std::string& k) -> Expected<int32_t> {
      if (!kwargs) return g.seq({g.literal(json_quote(k)), sep(':')});
      if (!python_identifier(k))
        return err("property '" + k +
                       "' is not a Python identifier (pythonic tool calls pass keyword arguments)",
                   ptr);
      return g.seq({g.literal(k), sep('=')});
    };
    struct Prop {
      std::string name;
      int32_t kv;
      bool required;
    };
    std::vector<Prop> props;
    std::set<std::string> req;
    if (auto it = s.find("required"); it != s.end()) {
      if (!it->is_array()) return err("'required' must be an array", ptr + "/required");
      for (auto& r : *it) {
        if (!r.is_string()) return err("'required' must hold strings", ptr + "/required");
        req.insert(r.get<std::string>());
      }
    }
    OJ addl = s.value("additionalProperties", OJ(true));
    auto value_of = [&](const OJ& sub, const std::string& p) { return compile(sub, p); };
    std::vector<std::string> names;
    if (auto it = s.find("properties"); it != s.end()) {
      if (!it->is_object()) return err("'properties' must be an object", ptr + "/properties");
      for (auto& [k, v] : it->items()) {
        if (v.is_boolean() && !v.get<bool>()) {
          if (req.count(k)) return err("required property '" + k + "' is false", ptr);
          names.push_back(k);  // never allowed, and not an additional property either
          continue;
        }
        auto e = value_of(v, ptr + "/properties/" + ptr_escape(k));
        if (!e.is_ok()) return e.error();
        auto kk = key(k);
        if (!kk.is_ok()) return kk.error();
        props.push_back({k, g.seq({*kk, *e}), req.count(k) > 0});
        names.push_back(k);
      }
    }
    for (auto& r : req)
      if (std::find(names.begin(), names.end(), r) == names.end()) {
        if (addl.is_boolean() && !addl.get<bool>())
          return err("required property '" + r + "' is not allowed", ptr);
        auto e = value_of(addl.is_boolean() ? OJ::object() : addl, ptr + "/additionalProperties");
        if (!e.is_ok()) return e.error();
        auto kk = key(r);
        if (!kk.is_ok()) return kk.error();
        props.push_back({r, g.seq({*kk, *e}), true});
        names.push_back(r);
      }
    int32_t addl_kv = -1;
    if (!kwargs && !(addl.is_boolean() && !addl.get<bool>())) {
      auto e = value_of(addl.is_boolean() ? OJ::object() : addl, ptr + "/additionalProperties");
      if (!e.is_ok()) return e.error();
      addl_kv = g.seq({key_not_in(names), sep(':'), *e});
    }
    auto minp_ = count(s, "minProperties", ptr, 0), maxp_ = count(s, "maxProperties", ptr, -1);
    if (!minp_.is_ok()) return minp_.error();
    if (!maxp_.is_ok()) return maxp_.error();
    const int64_t minp = *minp_, maxp = *maxp_;
    const int64_t n = int64_t(props.size());
    const bool counted = minp > 0 || maxp >= 0;
    if (counted && (n + 1) * (std::min<int64_t>(maxp < 0 ? n + minp : maxp, n + minp) + 2) > 200000)
      return err("minProperties/maxProperties too large for this many properties", ptr);
    int64_t nreq = 0;
    for (auto& p : props) nreq += p.required;
    if (maxp >= 0 && nreq > maxp) return err("more required properties than maxProperties", ptr);
    // R(i, c): properties i.. after c emitted (c only counts when minProperties/maxProperties
    // are given; otherwise it is 0 or 1, "anything emitted yet", which decides the comma).
    std::map<std::pair<int64_t, int64_t>, int32_t> memo;
    std::function<int32_t(int64_t, int64_t)> R = [&](int64_t i, int64_t c) -> int32_t {
      const int64_t key_c = counted ? c : std::min<int64_t>(c, 1);
      if (auto it = memo.find({i, key_c}); it != memo.end()) return g.ref(it->second);
      const int32_t rule = g.new_rule("props");
      memo[{i, key_c}] = rule;
      std::vector<int32_t> alts;
      if (i == n) {
        const int64_t lo = std::max<int64_t>(0, minp - c);
        const int64_t hi = maxp < 0 ? -1 : maxp - c;
        if (addl_kv < 0 || hi == 0) {
          if (lo == 0) alts.push_back(g.empty());
        } else if (c == 0) {
          if (lo == 0) alts.push_back(g.empty());
          alts.push_back(g.seq(
              {addl_kv, g.repeat(g.seq({sep(','), addl_kv}), int32_t(std::max<int64_t>(0, lo - 1)),
                                 hi < 0 ? -1 : int32_t(hi - 1))}));
        } else {
          alts.push_back(
              g.repeat(g.seq({sep(','), addl_kv}), int32_t(lo), hi < 0 ? -1 : int32_t(hi)));
        }
      } else {
        const Prop& p = props[size_t(i)];
        if (maxp < 0 || c < maxp)
          alts.push_back(g.seq({c > 0 ? sep(',') : g.empty(), p.kv, R(i + 1, c + 1)}));
        if (!p.required) alts.push_back(R(i + 1, c));
      }
      g.define(rule, g.alt(std::move(alts)));
      return g.ref(rule);
    };
    if (kwargs) return R(0, 0);
    return g.seq({g.byte('{'), ws(), R(0, 0), ws(), g.byte('}')});
  }

  // ---- arrays ----
  Expected<int32_t> array(const OJ& s, const std::string& ptr) {
    std::vector<int32_t> prefix;
    const OJ* prefix_list = nullptr;
    std::string prefix_key;
    int32_t rest = -1;  // schema of items after the prefix; -1: none allowed
    if (s.contains("prefixItems")) prefix_list = &s["prefixItems"], prefix_key = "prefixItems";
    if (s.contains("items") && s["items"].is_array()) {
      if (prefix_list) return err("both 'prefixItems' and an 'items' array", ptr);
      prefix_list = &s["items"], prefix_key = "items";
    }
    if (prefix_list) {
      if (!prefix_list->is_array())
        return err("'" + prefix_key + "' must be an array", ptr + "/" + prefix_key);
      for (size_t i = 0; i < prefix_list->size(); ++i) {
        auto e = compile((*prefix_list)[i], ptr + "/" + prefix_key + "/" + std::to_string(i));
        if (!e.is_ok()) return e.error();
        prefix.push_back(*e);
      }
    }
    const OJ* tail = nullptr;
    std::string tail_key;
    if (prefix_key == "items") {
      if (s.contains("additionalItems")) tail = &s["additionalItems"], tail_key = "additionalItems";
    } else {
      if (s.contains("additionalItems"))
        return err("'additionalItems' needs an 'items' array", ptr);
      if (s.contains("items")) tail = &s["items"], tail_key = "items";
    }
    if (!tail || !(tail->is_boolean() && !tail->get<bool>())) {
      auto e = compile(tail ? *tail : OJ::object(), ptr + (tail ? "/" + tail_key : ""));
      if (!e.is_ok()) return e.error();
      rest = *e;
    }
    auto mn_ = count(s, "minItems", ptr, 0), mx_ = count(s, "maxItems", ptr, -1);
    if (!mn_.is_ok()) return mn_.error();
    if (!mx_.is_ok()) return mx_.error();
    const int64_t mn = *mn_;
    int64_t mx = *mx_;
    if (mn > 100000 || mx > 100000) return err("minItems/maxItems over 100000", ptr);
    const int64_t P = int64_t(prefix.size());
    if (rest < 0 && (mx < 0 || mx > P)) mx = P;
    if (mx >= 0 && mx < mn) return err("no array length satisfies minItems/maxItems", ptr);
    // E(i): elements i.. (the first has no comma).
    std::function<int32_t(int64_t)> E = [&](int64_t i) -> int32_t {
      const int32_t comma = i > 0 ? sep(',') : g.empty();
      if (i < P && (mx < 0 || i < mx)) {
        const int32_t x = g.seq({comma, prefix[size_t(i)], E(i + 1)});
        return i >= mn ? g.opt(x) : x;
      }
      if (i < P || rest < 0 || (mx >= 0 && i >= mx)) return g.empty();
      const int32_t lo = int32_t(std::max<int64_t>(0, mn - i));
      const int32_t hi = mx < 0 ? -1 : int32_t(mx - i);
      if (i > 0) return g.repeat(g.seq({sep(','), rest}), lo, hi);
      const int32_t more = g.seq(
          {rest, g.repeat(g.seq({sep(','), rest}), std::max(0, lo - 1), hi < 0 ? -1 : hi - 1)});
      return lo == 0 ? g.opt(more) : more;
    };
    return g.seq({g.byte('['), ws(), E(0), ws(), g.byte(']')});
  }

  // ---- dispatch ----
  Expected<int32_t> typed(const std::string& t, const OJ& s, const std::string& ptr) {
    if (t == "null") return lit("null");
    if (t == "boolean") return g.alt({lit("true"), lit("false")});
    if (t == "string") return string(s, ptr);
    if (t == "integer") return numeric(s, ptr, true);
    if (t == "number") return numeric(s, ptr, false);
    if (t == "object") return object(s, ptr);
    if (t == "array") return array(s, ptr);
    return err("unknown type '" + t + "'", ptr + "/type");
  }

  Expected<int32_t> compile(const OJ& s, const std::string& ptr) {
    if (++depth > 200) return err("schema nested too deeply", ptr);
    struct Leave {
      int& d;
      ~Leave() { --d; }
    } leave{depth};
    if (s.is_boolean()) return s.get<bool>() ? any_value() : g.alt({});
    if (!s.is_object()) return err("a schema must be an object or a boolean", ptr);
    for (auto& [k, v] : s.items())
      if (!kKeywords.count(k) && !kAnnotations.count(k))
        return err("unsupported keyword '" + k + "'", ptr + "/" + ptr_escape(k));
    if (s.contains("$ref")) {
      if (!s["$ref"].is_string()) return err("'$ref' must be a string", ptr + "/$ref");
      OJ rest = s;
      rest.erase("$ref");
      if (!has_constraints(rest)) return ref_rule(s["$ref"].get<std::string>(), ptr);
      auto m = merge(s, OJ::object(), ptr, 0);
      if (!m.is_ok()) return m.error();
      return compile(*m, ptr);
    }
    if (s.contains("allOf")) {
      if (!s["allOf"].is_array() || s["allOf"].empty())
        return err("'allOf' must be a non-empty array", ptr + "/allOf");
      OJ rest = s;
      rest.erase("allOf");
      OJ acc = rest;
      for (size_t i = 0; i < s["allOf"].size(); ++i) {
        auto m = merge(acc, s["allOf"][i], ptr + "/allOf/" + std::to_string(i), 0);
        if (!m.is_ok()) return m.error();
        acc = *m;
      }
      if (acc.contains("allOf")) return err("allOf could not be merged", ptr);
      return compile(acc, ptr);
    }
    for (const char* k : {"anyOf", "oneOf"})
      if (s.contains(k)) {
        if (!s[k].is_array() || s[k].empty())
          return err(std::string("'") + k + "' must be a non-empty array", ptr + "/" + k);
        OJ rest = s;
        rest.erase(k);
        std::vector<OJ> branches;
        for (size_t i = 0; i < s[k].size(); ++i) {
          const std::string p = ptr + "/" + k + "/" + std::to_string(i);
          OJ branch = s[k][i];
          if (has_constraints(rest)) {
            auto m = merge(rest, s[k][i], p, 0);
            if (!m.is_ok()) return m.error();
            branch = *m;
          }
          branches.push_back(std::move(branch));
        }
        if (std::string(k) == "oneOf") {
          auto st = exclusive(branches, ptr + "/oneOf");
          if (!st.is_ok()) return st;
        }
        std::vector<int32_t> alts;
        for (size_t i = 0; i < branches.size(); ++i) {
          auto e = compile(branches[i], ptr + "/" + k + "/" + std::to_string(i));
          if (!e.is_ok()) return e.error();
          alts.push_back(*e);
        }
        return g.alt(std::move(alts));
      }
    const bool nullable = s.value("nullable", false);
    if (s.contains("const") || s.contains("enum")) {
      OJ values = OJ::array();
      if (s.contains("const")) values.push_back(s["const"]);
      if (s.contains("enum")) {
        if (!s["enum"].is_array()) return err("'enum' must be an array", ptr + "/enum");
        if (s["enum"].size() > 100000)
          return err("'enum' has more than 100000 values", ptr + "/enum");
        for (auto& v : s["enum"])
          if (!s.contains("const") || v == s["const"]) values.push_back(v);
        if (s.contains("const")) values.erase(values.begin());
      }
      const std::set<std::string> types = types_of(s);
      std::vector<int32_t> alts;
      for (auto& v : values) {
        std::string t = v.is_null()                                       ? "null"
                        : v.is_boolean()                                  ? "boolean"
                        : v.is_object()                                   ? "object"
                        : v.is_array()                                    ? "array"
                        : v.is_string()                                   ? "string"
                        : v.is_number_integer() || v.is_number_unsigned() ? "integer"
                                                                          : "number";
        if (types.count(t) || (nullable && t == "null")) alts.push_back(literal_value(v));
      }
      return g.alt(std::move(alts));
    }
    std::vector<std::string> types;
    if (auto it = s.find("type"); it != s.end()) {
      if (it->is_string())
        types.push_back(it->get<std::string>());
      else if (it->is_array()) {
        for (auto& t : *it) {
          if (!t.is_string()) return err("'type' must hold strings", ptr + "/type");
          types.push_back(t.get<std::string>());
        }
      } else
        return err("'type' must be a string or an array", ptr + "/type");
    } else {
      bool constrained = false;
      for (auto& [k, v] : s.items())
        if (!kAnnotations.count(k) && k != "nullable") constrained = true;
      if (!constrained) return any_value();
      types = {"null", "boolean", "object", "array", "string", "number"};
    }
    if (nullable && std::find(types.begin(), types.end(), "null") == types.end())
      types.push_back("null");
    std::vector<int32_t> alts;
    bool has_number = std::find(types.begin(), types.end(), "number") != types.end();
    for (auto& t : types) {
      if (t == "integer" && has_number) continue;
      auto e = typed(t, s, ptr);
      if (!e.is_ok()) return e.error();
      alts.push_back(*e);
    }
    return g.alt(std::move(alts));
  }
};

}  // namespace

Expected<Grammar> schema_to_grammar(const OJ& schema, const SchemaOptions& o) {
  Compiler c{{}, schema, o, -1, -1, -1, -1, -1, {}, 0};
  const int32_t root = c.g.new_rule("root");
  auto e = c.compile(schema, "");
  if (!e.is_ok()) return e.error();
  c.g.define(root, c.g.seq({c.ws(), *e, c.ws()}));
  c.g.start = root;
  return std::move(c.g);
}

bool python_identifier(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

Expected<Grammar> kwargs_grammar(const OJ& schema, const SchemaOptions& o0) {
  SchemaOptions o = o0;
  o.python = true;
  Compiler c{{}, schema, o, -1, -1, -1, -1, -1, {}, 0};
  const int32_t root = c.g.new_rule("kwargs");
  OJ s = schema;
  if (s.is_object() && (s.contains("$ref") || s.contains("allOf"))) {
    auto m = c.merge(s, OJ::object(), "", 0);
    if (!m.is_ok()) return m.error();
    s = *m;
  }
  if (s.is_boolean() && s.get<bool>()) s = OJ::object();
  if (!s.is_object()) return err("tool parameters must be an object schema", "");
  for (auto& [k, v] : s.items())
    if (!kKeywords.count(k) && !kAnnotations.count(k))
      return err("unsupported keyword '" + k + "'", "/" + ptr_escape(k));
  for (const char* k : {"anyOf", "oneOf", "enum", "const"})
    if (s.contains(k))
      return err(
          std::string("'") + k + "' at the top of a pythonic call's parameters is not supported",
          "");
  if (s.contains("type") && !(s["type"].is_string() && s["type"].get<std::string>() == "object"))
    return err("tool parameters must be an object schema", "/type");
  auto e = c.object(s, "", true);
  if (!e.is_ok()) return e.error();
  c.g.define(root, c.g.seq({c.ws(), *e, c.ws()}));
  c.g.start = root;
  return std::move(c.g);
}

Grammar json_object_grammar(const SchemaOptions& o) {
  OJ s = {{"type", "object"}};
  auto g = schema_to_grammar(s, o);
  return std::move(*g);
}

}  // namespace corral::grammar
