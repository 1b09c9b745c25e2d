// The evaluator: walks the node tree with jinja2's scoping (a for loop and a macro call open a
// scope, `if` does not), Python's operators, and the sandbox's limits counted as it goes.
#include "template/eval.h"

#include <cmath>
#include <optional>

#include "template/ast.h"
#include "template/parser.h"

namespace corral::jinja {

namespace {

enum class Flow { kNormal, kBreak, kContinue };

struct Evaluator {
  Env& env;
  std::string* out;
  // Frames that define macros, kept until the render ends: a macro holds its frame weakly, since
  // the frame holds the macro (a strong cycle would leak).
  std::vector<std::shared_ptr<Frame>> macro_frames;

  void emit(const std::string& s) {
    *out += s;
    env.check_size(out->size());
  }

  // ---- expressions ----
  Value lookup(const std::shared_ptr<Frame>& f, const std::string& n) {
    if (Value* v = f->find(n)) return *v;
    return Value::undefined(n);
  }

  Value eval(const Expr& e, const std::shared_ptr<Frame>& f) {
    switch (e.k) {
      case Expr::K::kLit: return e.lit;
      case Expr::K::kName: return lookup(f, e.name);
      case Expr::K::kList:
      case Expr::K::kTuple: {
        std::vector<Value> items;
        for (auto& c : e.c) items.push_back(eval(*c, f));
        return Value::new_list(std::move(items), e.k == Expr::K::kTuple);
      }
      case Expr::K::kDict: {
        Value d = Value::new_dict();
        for (size_t k = 0; k + 1 < e.c.size(); k += 2) {
          Value key = eval(*e.c[k], f);
          d.dict->set(dict_key(key), eval(*e.c[k + 1], f));
        }
        return d;
      }
      case Expr::K::kAttr: return get_attr(env, eval(*e.c[0], f), e.name);
      case Expr::K::kItem: return get_item(env, eval(*e.c[0], f), eval(*e.c[1], f));
      case Expr::K::kSlice: return slice(e, f);
      case Expr::K::kCall: {
        Value fn = eval(*e.c[0], f);
        Args a = args(e, f, 1);
        return env.call(fn, a);
      }
      case Expr::K::kFilter: {
        Value v = eval(*e.c[0], f);
        Args a = args(e, f, 1);
        return apply_filter(env, e.name, v, a);
      }
      case Expr::K::kTest: {
        Value v = eval(*e.c[0], f);
        Args a = args(e, f, 1);
        return Value::boolean(apply_test(env, e.name, v, a) != e.negated);
      }
      case Expr::K::kNeg:
      case Expr::K::kPos: {
        Value v = eval(*e.c[0], f);
        check_defined(v);
        if (v.kind == Value::Kind::kFloat) return Value::real(e.k == Expr::K::kNeg ? -v.f : v.f);
        if (v.kind == Value::Kind::kInt || v.kind == Value::Kind::kBool) {
          int64_t x = v.kind == Value::Kind::kBool ? v.b : v.i;
          if (e.k == Expr::K::kNeg && x == INT64_MIN) return checked(true, 0);
          return Value::integer(e.k == Expr::K::kNeg ? -x : x);
        }
        fail("TypeError", "bad operand type for unary " + std::string(e.k == Expr::K::kNeg ? "-" : "+") +
                              ": '" + type_name(v) + "'");
      }
      case Expr::K::kNot: return Value::boolean(!truthy(eval(*e.c[0], f)));
      case Expr::K::kAnd: {
        Value l = eval(*e.c[0], f);
        return truthy(l) ? eval(*e.c[1], f) : l;
      }
      case Expr::K::kOr: {
        Value l = eval(*e.c[0], f);
        return truthy(l) ? l : eval(*e.c[1], f);
      }
      case Expr::K::kCond: {
        if (truthy(eval(*e.c[0], f))) return eval(*e.c[1], f);
        if (e.c[2]) return eval(*e.c[2], f);
        return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                                " evaluated to false and no else section was defined.");
      }
      case Expr::K::kConcat: {
        std::string s;
        for (auto& c : e.c) {
          s += to_str(eval(*c, f));
          env.check_size(s.size());
        }
        return Value::str(std::move(s));
      }
      case Expr::K::kBin: return binop(e.name, eval(*e.c[0], f), eval(*e.c[1], f));
      case Expr::K::kCmp: {
        Value l = eval(*e.c[0], f);
        for (size_t k = 0; k < e.ops.size(); ++k) {
          Value r = eval(*e.c[k + 1], f);
          if (!cmp(e.ops[k], l, r)) return Value::boolean(false);
          l = std::move(r);
        }
        return Value::boolean(true);
      }
    }
    return Value::undefined();
  }

  Args args(const Expr& e, const std::shared_ptr<Frame>& f, size_t from) {
    Args a;
    for (size_t k = from; k < e.c.size(); ++k) a.pos.push_back(eval(*e.c[k], f));
    for (auto& [n, x] : e.kw) a.kw.emplace_back(n, eval(*x, f));
    return a;
  }

  Value slice(const Expr& e, const std::shared_ptr<Frame>& f) {
    Value obj = eval(*e.c[0], f);
    check_defined(obj);
    auto bound = [&](const ExprP& x, bool* given) -> int64_t {
      *given = false;
      if (!x) return 0;
      Value v = eval(*x, f);
      if (v.is_none()) return 0;
      if (v.kind != Value::Kind::kInt && v.kind != Value::Kind::kBool)
        fail("TypeError", "slice indices must be integers or None");
      *given = true;
      return v.kind == Value::Kind::kBool ? v.b : v.i;
    };
    bool hs, he, hst;
    int64_t start = bound(e.c[1], &hs), stop = bound(e.c[2], &he), step = bound(e.c[3], &hst);
    if (!hst) step = 1;
    if (step == 0) fail("ValueError", "slice step cannot be zero");
    std::vector<Value> items;
    std::vector<std::string> chars;
    int64_t n;
    if (obj.is_string()) {
      chars = utf8_chars(obj.s);
      n = int64_t(chars.size());
    } else if (obj.is_list() && !obj.list->generator) {
      n = int64_t(obj.list->items.size());
    } else {
      fail("TypeError", "'" + type_name(obj) + "' object is not subscriptable");
    }
    auto norm = [&](int64_t x, bool given, int64_t def_pos, int64_t def_neg) {
      if (!given) return step > 0 ? def_pos : def_neg;
      if (x < 0) x += n;
      if (step > 0) return std::clamp<int64_t>(x, 0, n);
      return std::clamp<int64_t>(x, -1, n - 1);
    };
    int64_t a = norm(start, hs, 0, n - 1), b = norm(stop, he, n, -1);
    std::string s;
    std::vector<Value> out_items;
    for (int64_t k = a; step > 0 ? k < b : k > b; k += step) {
      if (obj.is_string())
        s += chars[size_t(k)];
      else
        out_items.push_back(obj.list->items[size_t(k)]);
    }
    if (obj.is_string()) return Value::str(std::move(s));
    return Value::new_list(std::move(out_items), obj.list->tuple);
  }

  static int64_t ival(const Value& v) { return v.kind == Value::Kind::kBool ? v.b : v.i; }
  static bool is_int(const Value& v) { return v.kind == Value::Kind::kInt || v.kind == Value::Kind::kBool; }

  [[noreturn]] void bad_operands(const std::string& op, const Value& l, const Value& r) {
    fail("TypeError", "unsupported operand type(s) for " + op + ": '" + type_name(l) + "' and '" +
                          type_name(r) + "'");
  }

  Value repeat(const Value& seq, int64_t n) {
    if (n < 0) n = 0;
    if (seq.is_string()) {
      env.check_size(seq.s.size() * size_t(n));
      std::string s;
      for (int64_t k = 0; k < n; ++k) s += seq.s;
      return Value::str(std::move(s));
    }
    env.check_size(seq.list->items.size() * size_t(n));
    std::vector<Value> items;
    for (int64_t k = 0; k < n; ++k)
      for (auto& x : seq.list->items) items.push_back(x);
    return Value::new_list(std::move(items), seq.list->tuple);
  }

  // Python's ints are unbounded; ours are 64-bit, and a result past that is an error.
  static Value checked(bool overflow, int64_t v) {
    if (overflow) fail("OverflowError", "integer result too large (Corral's template integers are 64-bit)");
    return Value::integer(v);
  }

  Value binop(const std::string& op, const Value& l, const Value& r) {
    check_defined(l);
    check_defined(r);
    bool nums = l.is_number() && r.is_number();
    bool ints = nums && is_int(l) && is_int(r);
    int64_t iv = 0;
    if (op == "+") {
      if (ints) {
        const bool over = __builtin_add_overflow(ival(l), ival(r), &iv);  // before iv is read
        return checked(over, iv);
      }
      if (nums) return Value::real(l.as_double() + r.as_double());
      if (l.is_string() && r.is_string()) {
        env.check_size(l.s.size() + r.s.size());
        if (l.b || r.b)  // Markup + str escapes the str (markupsafe)
          return Value::markup((l.b ? l.s : html_escape(l.s)) + (r.b ? r.s : html_escape(r.s)));
        return Value::str(l.s + r.s);
      }
      if (l.is_list() && r.is_list() && l.list->tuple == r.list->tuple && !l.list->generator &&
          !r.list->generator) {
        std::vector<Value> items = l.list->items;
        for (auto& x : r.list->items) items.push_back(x);
        env.check_size(items.size());
        return Value::new_list(std::move(items), l.list->tuple);
      }
      if (l.is_string())
        fail("TypeError", "can only concatenate str (not \"" + type_name(r) + "\") to str");
      bad_operands("+", l, r);
    }
    if (op == "-") {
      if (ints) {
        const bool over = __builtin_sub_overflow(ival(l), ival(r), &iv);  // before iv is read
        return checked(over, iv);
      }
      if (nums) return Value::real(l.as_double() - r.as_double());
      bad_operands("-", l, r);
    }
    if (op == "*") {
      if (ints) {
        const bool over = __builtin_mul_overflow(ival(l), ival(r), &iv);  // before iv is read
        return checked(over, iv);
      }
      if (nums) return Value::real(l.as_double() * r.as_double());
      if ((l.is_string() || l.is_list()) && is_int(r)) return repeat(l, ival(r));
      if ((r.is_string() || r.is_list()) && is_int(l)) return repeat(r, ival(l));
      bad_operands("*", l, r);
    }
    if (op == "/") {
      if (!nums) bad_operands("/", l, r);
      if (r.as_double() == 0) fail("ZeroDivisionError", "division by zero");
      return Value::real(l.as_double() / r.as_double());
    }
    if (op == "//" || op == "%") {
      if (op == "%" && l.is_string()) return Value::str(py_percent(l.s, r));
      if (!nums) bad_operands(op, l, r);
      if (r.as_double() == 0)
        fail("ZeroDivisionError", op == "%" ? "integer modulo by zero" : "integer division or modulo by zero");
      if (ints) {
        if (ival(l) == INT64_MIN && ival(r) == -1) return checked(true, 0);
        int64_t a = ival(l), b = ival(r), q = a / b, m = a % b;
        if (m != 0 && ((m < 0) != (b < 0))) {
          --q;
          m += b;
        }
        return Value::integer(op == "//" ? q : m);
      }
      double a = l.as_double(), b = r.as_double();
      double m = std::fmod(a, b);
      if (m != 0 && ((m < 0) != (b < 0))) m += b;
      return Value::real(op == "//" ? std::floor(a / b) : m);
    }
    if (op == "**") {
      if (ints && ival(r) >= 0) {
        const int64_t b = ival(l), n = ival(r);
        if (b == 0 || b == 1) return Value::integer(n == 0 ? 1 : b);
        if (b == -1) return Value::integer(n % 2 ? -1 : 1);
        int64_t x = 1;  // |b| >= 2: past 63 factors it has overflowed
        bool over = n > 63;
        for (int64_t k = 0; k < n && !over; ++k) over = __builtin_mul_overflow(x, b, &x);
        return checked(over, x);
      }
      if (nums) return Value::real(std::pow(l.as_double(), r.as_double()));
      bad_operands("**", l, r);
    }
    fail("TemplateError", "unknown operator " + op);
  }

  bool contains(const Value& seq, const Value& x) {
    if (seq.is_string()) {
      if (!x.is_string())
        fail("TypeError", "'in <string>' requires string as left operand, not " + type_name(x));
      return seq.s.find(x.s) != std::string::npos;
    }
    if (seq.is_dict() && !seq.dict->ns) return seq.dict->find(dict_key(x)) != nullptr;
    if (seq.is_undefined()) return false;
    if (seq.is_list()) {
      for (auto& v : seq.list->items)
        if (equal(v, x)) return true;
      return false;
    }
    fail("TypeError", "argument of type '" + type_name(seq) + "' is not iterable");
  }

  bool cmp(const std::string& op, const Value& l, const Value& r) {
    if (op == "==") return equal(l, r);
    if (op == "!=") return !equal(l, r);
    if (op == "in") return contains(r, l);
    if (op == "notin") return !contains(r, l);
    check_defined(l);
    check_defined(r);
    int c = compare(l, r);
    if (op == "<") return c < 0;
    if (op == ">") return c > 0;
    if (op == "<=") return c <= 0;
    return c >= 0;
  }

  // ---- statements ----
  Flow exec(const Body& b, const std::shared_ptr<Frame>& f) {
    for (auto& s : b) {
      Flow fl = exec(*s, f);
      if (fl != Flow::kNormal) return fl;
    }
    return Flow::kNormal;
  }

  std::string capture(const Body& b, const std::shared_ptr<Frame>& f) {
    std::string buf;
    std::string* saved = out;
    out = &buf;
    exec(b, f);
    out = saved;
    return buf;
  }

  // A block's output through its filters ({% set x | f %} and {% filter f %}).
  Value filtered_body(const Stmt& s, const std::shared_ptr<Frame>& f) {
    Value v = Value::str(capture(s.body, f));
    for (auto& flt : s.filters) {
      Args a = args(*flt, f, 1);
      v = apply_filter(env, flt->name, v, a);
    }
    return v;
  }

  void assign(const std::vector<std::string>& targets, const Value& v, Frame* f) {
    if (targets.size() == 1) {
      f->set(targets[0], v);
      return;
    }
    std::vector<Value> items = iterate(v);
    if (items.size() != targets.size())
      fail("ValueError", items.size() > targets.size()
                             ? "too many values to unpack (expected " + std::to_string(targets.size()) + ")"
                             : "not enough values to unpack (expected " + std::to_string(targets.size()) +
                                   ", got " + std::to_string(items.size()) + ")");
    for (size_t k = 0; k < targets.size(); ++k) f->set(targets[k], items[k]);
  }

  Flow exec(const Stmt& s, const std::shared_ptr<Frame>& f) {
    switch (s.k) {
      case Stmt::K::kText: emit(s.text); return Flow::kNormal;
      case Stmt::K::kPrint: emit(to_str(eval(*s.e, f))); return Flow::kNormal;
      case Stmt::K::kIf:
        for (auto& [test, body] : s.branches)
          if (truthy(eval(*test, f))) return exec(body, f);
        return exec(s.else_body, f);
      case Stmt::K::kFor: return exec_for(s, f);
      case Stmt::K::kSet: {
        Value v = eval(*s.e, f);
        if (!s.text.empty()) {  // ns.attr = v
          Value ns = lookup(f, s.targets[0]);
          if (!ns.is_dict() || !ns.dict->ns)
            fail("TemplateRuntimeError", "cannot assign attribute on non-namespace object");
          ns.dict->set(s.text, std::move(v));
        } else {
          assign(s.targets, v, f.get());
        }
        return Flow::kNormal;
      }
      case Stmt::K::kSetBlock: f->set(s.targets[0], filtered_body(s, f)); return Flow::kNormal;
      case Stmt::K::kMacro: f->set(s.text, make_macro(s, f, s.text)); return Flow::kNormal;
      case Stmt::K::kCallBlock: {
        Value caller = make_macro(s, f, "caller");
        Value fn = eval(*s.e->c[0], f);
        Args a = args(*s.e, f, 1);
        a.kw.emplace_back("caller", caller);
        emit(to_str(env.call(fn, a)));
        return Flow::kNormal;
      }
      case Stmt::K::kFilterBlock: emit(to_str(filtered_body(s, f))); return Flow::kNormal;
      case Stmt::K::kWith: {
        auto inner = std::make_shared<Frame>();
        inner->parent = f;
        for (size_t k = 0; k < s.params.size(); ++k) inner->set(s.params[k], eval(*s.defaults[k], f));
        return exec(s.body, inner);
      }
      case Stmt::K::kBlock: return exec(s.body, f);
      case Stmt::K::kBreak: return Flow::kBreak;
      case Stmt::K::kContinue: return Flow::kContinue;
    }
    return Flow::kNormal;
  }

  Flow exec_for(const Stmt& s, const std::shared_ptr<Frame>& f) {
    if (s.recursive) fail("TemplateError", "recursive for loops are not supported");
    Value seq = eval(*s.e, f);
    std::vector<Value> items = iterate(seq);
    auto scope = std::make_shared<Frame>();
    scope->parent = f;
    if (s.cond) {  // the `if` filter runs before the loop counts its items
      std::vector<Value> kept;
      for (auto& x : items) {
        env.step();
        assign(s.targets, x, scope.get());
        if (truthy(eval(*s.cond, scope))) kept.push_back(x);
      }
      items = std::move(kept);
    }
    int64_t n = int64_t(items.size());
    // loop.changed(*values): true on the first call and whenever the values differ from the
    // previous call's (one memory for the whole loop, as jinja2's LoopContext keeps).
    auto last_changed = std::make_shared<Value>();
    struct Forget {  // when the loop ends (or fails): no cycle through loop.changed(loop)
      std::shared_ptr<Value> v;
      ~Forget() { *v = Value::undefined(); }
    } forget{last_changed};
    for (int64_t k = 0; k < n; ++k) {
      env.step();
      Value loop = Value::new_dict();
      auto& d = *loop.dict;
      d.set("index", Value::integer(k + 1));
      d.set("index0", Value::integer(k));
      d.set("revindex", Value::integer(n - k));
      d.set("revindex0", Value::integer(n - k - 1));
      d.set("first", Value::boolean(k == 0));
      d.set("last", Value::boolean(k == n - 1));
      d.set("length", Value::integer(n));
      d.set("depth", Value::integer(1));
      d.set("depth0", Value::integer(0));
      d.set("previtem", k > 0 ? items[size_t(k - 1)] : Value::undefined("there is no previous item"));
      d.set("nextitem", k + 1 < n ? items[size_t(k + 1)] : Value::undefined("there is no next item"));
      d.set("cycle", Value::function("loop.cycle", [k](Args& a) {
              if (a.pos.empty()) fail("TypeError", "no items for cycling given");
              return a.pos[size_t(k) % a.pos.size()];
            }));
      d.set("changed", Value::function("loop.changed", [last_changed](Args& a) {
              Value v = Value::new_list(a.pos, true);
              if (!last_changed->is_undefined() && equal(*last_changed, v)) return Value::boolean(false);
              *last_changed = v;
              return Value::boolean(true);
            }));
      scope->set("loop", loop);
      assign(s.targets, items[size_t(k)], scope.get());
      Flow fl = exec(s.body, scope);
      if (fl == Flow::kBreak) break;
    }
    if (n == 0) return exec(s.else_body, f);
    return Flow::kNormal;
  }

  Value make_macro(const Stmt& s, const std::shared_ptr<Frame>& def_frame, const std::string& name) {
    const Stmt* node = &s;
    Evaluator* self = this;
    macro_frames.push_back(def_frame);
    std::weak_ptr<Frame> weak_frame = def_frame;
    return Value::function(name, [node, weak_frame, self, name](Args& a) {
      Env& env = self->env;
      std::shared_ptr<Frame> def_frame = weak_frame.lock();
      if (++env.depth > env.opt.limits.max_call_depth) {
        --env.depth;
        fail("TemplateLimitError", "macro '" + name + "' nested deeper than " +
                                  std::to_string(env.opt.limits.max_call_depth) + " calls");
      }
      auto scope = std::make_shared<Frame>();
      scope->parent = def_frame;
      size_t np = node->params.size();
      std::vector<Value> varargs;
      for (size_t k = 0; k < a.pos.size(); ++k) {
        if (k < np)
          scope->set(node->params[k], a.pos[k]);
        else
          varargs.push_back(a.pos[k]);
      }
      Value kwargs = Value::new_dict();
      for (auto& [kn, kv] : a.kw) {
        bool param = false;
        for (auto& p : node->params) param |= p == kn;
        if (param)
          scope->set(kn, kv);
        else if (kn == "caller")
          scope->set("caller", kv);
        else
          kwargs.dict->set(kn, kv);
      }
      for (size_t k = a.pos.size(); k < np; ++k) {
        bool given = false;
        for (auto& [kn, kv] : a.kw) given |= kn == node->params[k];
        if (given) continue;
        scope->set(node->params[k], node->defaults[k] ? self->eval(*node->defaults[k], scope)
                                                      : Value::undefined(node->params[k]));
      }
      scope->set("varargs", Value::new_list(std::move(varargs), true));
      scope->set("kwargs", kwargs);
      std::string text;
      try {
        text = self->capture(node->body, scope);
      } catch (...) {
        --env.depth;
        throw;
      }
      --env.depth;
      return Value::str(std::move(text));
    });
  }
};

// Filter and test names jinja2 checks when it compiles: all but those inside an if statement or
// an if-expression of the same scope ("soft" frames), which fail only when they run.
using NameList = std::vector<std::pair<std::string, bool>>;
void collect_names(const Expr* e, bool soft, NameList* out) {
  if (!e) return;
  if (!soft && e->k == Expr::K::kFilter) out->emplace_back(e->name, true);
  if (!soft && e->k == Expr::K::kTest) out->emplace_back(e->name, false);
  soft |= e->k == Expr::K::kCond;
  for (auto& c : e->c) collect_names(c.get(), soft, out);
  for (auto& [k, c] : e->kw) collect_names(c.get(), soft, out);
}
void collect_names(const Body& b, bool soft, NameList* out) {
  for (auto& s : b) {
    switch (s->k) {
      case Stmt::K::kIf:
        for (auto& [t, body] : s->branches) {
          collect_names(t.get(), true, out);
          collect_names(body, true, out);
        }
        collect_names(s->else_body, true, out);
        continue;
      case Stmt::K::kFor:
        collect_names(s->e.get(), soft, out);
        collect_names(s->cond.get(), false, out);
        collect_names(s->body, false, out);
        collect_names(s->else_body, false, out);
        continue;
      case Stmt::K::kPrint:
      case Stmt::K::kSet:
      case Stmt::K::kBlock: collect_names(s->e.get(), soft, out); collect_names(s->body, soft, out); continue;
      case Stmt::K::kCallBlock: collect_names(s->e.get(), soft, out); break;
      default: break;
    }
    for (auto& d : s->defaults) collect_names(d.get(), false, out);
    for (auto& x : s->filters) collect_names(x.get(), soft, out);
    collect_names(s->body, false, out);
  }
}

}  // namespace

Value Env::call(const Value& f, Args& a) {
  step();
  if (f.is_undefined()) {
    if (f.b) fail("SecurityError", f.s);
    fail("UndefinedError", "'" + (f.s.empty() ? std::string("undefined") : f.s) + "' is undefined");
  }
  if (!f.is_func()) fail("TypeError", "'" + type_name(f) + "' object is not callable");
  return f.func->fn(a);
}

void check_defined(const Value& v) {
  if (!v.is_undefined()) return;
  if (v.b) fail("SecurityError", v.s);
  if (v.s.find(' ') != std::string::npos) fail("UndefinedError", v.s);
  fail("UndefinedError", "'" + (v.s.empty() ? std::string("undefined") : v.s) + "' is undefined");
}

Value unsafe_undefined(const Value& obj, const std::string& attr) {
  Value u = Value::undefined("access to attribute '" + attr + "' of '" + type_name(obj) +
                             "' object is unsafe.");
  u.b = true;
  return u;
}

Expected<Template> parse(const std::string& source, const std::string& name) {
  CORRAL_ASSIGN_OR_RETURN(std::shared_ptr<Program> prog, parse_template(source, name));
  NameList names;
  collect_names(prog->body, false, &names);
  for (auto& [n, is_filter] : names) {
    if (is_filter && !has_filter(n)) return make_error(name + ": No filter named '" + n + "'.");
    if (!is_filter && !has_test(n)) return make_error(name + ": No test named '" + n + "'.");
  }
  return Template{prog, name};
}

Expected<std::string> render(const Template& t, const std::vector<std::pair<std::string, Value>>& vars,
                             const RenderOptions& o) {
  Env env;
  env.opt = o;
  if (env.opt.now == 0) env.opt.now = std::time(nullptr);
  std::string out;
  std::optional<Error> err;
  {
    auto globals = std::make_shared<Frame>();
    auto top = std::make_shared<Frame>();
    try {
      globals->vars = make_globals(env);
      top->parent = globals;
      for (auto& [k, v] : vars) top->set(k, v);
      Evaluator ev{env, &out, {}};
      ev.exec(t.program->body, top);
    } catch (const TemplateError& e) {
      err = make_error(e.kind + ": " + e.what());
    } catch (const std::exception& e) {  // std::bad_alloc and the like: still an error, not a crash
      err = make_error(std::string("TemplateError: internal: ") + e.what());
    }
  }
  for (auto& ns : env.namespaces) ns->items.clear();  // break any ns.self = ns cycle
  if (err) return *err;
  return out;
}

bool is_raised(const Error& e, std::string* msg) {
  static const std::string p = "TemplateError: ";
  if (e.message.rfind(p, 0) != 0) return false;
  if (msg) *msg = e.message.substr(p.size());
  return true;
}

}  // namespace corral::jinja
