// Recursive descent over the lexer's tokens, following jinja2's parser.py function by function.
// Layouts of Expr::c: kList/kTuple items; kDict key, value, key, value...; kAttr [obj];
// kItem [obj, key]; kSlice [obj, start, stop, step] (null = omitted); kCall [callee, args...];
// kFilter/kTest [subject (null in a filter block), args...]; kNeg/kPos/kNot [x]; kBin [l, r];
// kCmp [first, each operand]; kAnd/kOr [l, r]; kCond [test, then, else (null)]; kConcat items.
#include "template/parser.h"

#include "template/lexer.h"

namespace corral::jinja {

namespace {

struct SyntaxError {
  std::string message;
  int line;
};

struct Parser {
  std::vector<Token> toks;
  size_t p = 0;
  int depth = 0;  // nesting of expressions and blocks, bounded against hostile templates
  static constexpr int kMaxDepth = 200;

  const Token& cur() const { return toks[p]; }
  const Token& peek(size_t n = 1) const { return toks[std::min(p + n, toks.size() - 1)]; }
  [[noreturn]] void error(const std::string& m) const { throw SyntaxError{m, cur().line}; }
  bool is_op(const char* o) const { return cur().type == Tok::kOp && cur().text == o; }
  bool is_name(const char* n) const { return cur().type == Tok::kName && cur().text == n; }
  bool skip_op(const char* o) {
    if (!is_op(o)) return false;
    ++p;
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    ++p;
    return true;
  }
  void expect_op(const char* o) {
    if (!skip_op(o)) error(std::string("expected '") + o + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().type != Tok::kName) error("expected a name, got " + describe(cur()));
    return toks[p++].text;
  }
  void expect_block_end() {
    if (cur().type != Tok::kBlockEnd) error("expected end of statement block, got " + describe(cur()));
    ++p;
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::kEof: return "end of template";
      case Tok::kBlockEnd: return "end of statement block";
      case Tok::kVarEnd: return "end of print statement";
      case Tok::kData: return "template data";
      default: return "'" + t.text + "'";
    }
  }
  ExprP node(Expr::K k) {
    auto e = std::make_unique<Expr>();
    e->k = k;
    e->line = cur().line;
    return e;
  }
  struct Guard {
    Parser* ps;
    explicit Guard(Parser* q) : ps(q) {
      if (++ps->depth > kMaxDepth) ps->error("template nested too deeply");
    }
    ~Guard() { --ps->depth; }
  };

  // ---- expressions ----
  ExprP expression(bool with_cond = true) { return with_cond ? condexpr() : or_expr(); }

  ExprP condexpr() {
    Guard g(this);
    ExprP e = or_expr();
    while (skip_name("if")) {
      auto c = node(Expr::K::kCond);
      c->c.push_back(or_expr());
      c->c.push_back(std::move(e));
      c->c.push_back(skip_name("else") ? condexpr() : nullptr);
      e = std::move(c);
    }
    return e;
  }
  ExprP binary(Expr::K k, ExprP l, ExprP r) {
    auto e = node(k);
    e->c.push_back(std::move(l));
    e->c.push_back(std::move(r));
    return e;
  }
  ExprP or_expr() {
    ExprP e = and_expr();
    while (skip_name("or")) e = binary(Expr::K::kOr, std::move(e), and_expr());
    return e;
  }
  ExprP and_expr() {
    ExprP e = not_expr();
    while (skip_name("and")) e = binary(Expr::K::kAnd, std::move(e), not_expr());
    return e;
  }
  ExprP not_expr() {
    if (is_name("not")) {
      Guard g(this);
      ++p;
      auto e = node(Expr::K::kNot);
      e->c.push_back(not_expr());
      return e;
    }
    return compare();
  }
  ExprP compare() {
    ExprP first = math1();
    auto e = node(Expr::K::kCmp);
    e->c.push_back(std::move(first));
    while (true) {
      static const char* cmp_ops[] = {"==", "!=", "<", ">", "<=", ">="};
      const char* hit = nullptr;
      for (const char* o : cmp_ops)
        if (is_op(o)) hit = o;
      if (hit) {
        ++p;
        e->ops.push_back(hit);
      } else if (is_name("in")) {
        ++p;
        e->ops.push_back("in");
      } else if (is_name("not") && peek().type == Tok::kName && peek().text == "in") {
        p += 2;
        e->ops.push_back("notin");
      } else {
        break;
      }
      e->c.push_back(math1());
    }
    if (e->ops.empty()) return std::move(e->c[0]);
    return e;
  }
  ExprP bin_op(ExprP l, const std::string& op, ExprP r) {
    auto e = binary(Expr::K::kBin, std::move(l), std::move(r));
    e->name = op;
    return e;
  }
  ExprP math1() {
    ExprP e = concat();
    while (is_op("+") || is_op("-")) {
      std::string op = toks[p++].text;
      e = bin_op(std::move(e), op, concat());
    }
    return e;
  }
  ExprP concat() {
    ExprP first = math2();
    if (!is_op("~")) return first;
    auto e = node(Expr::K::kConcat);
    e->c.push_back(std::move(first));
    while (skip_op("~")) e->c.push_back(math2());
    return e;
  }
  ExprP math2() {
    ExprP e = pow_expr();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = toks[p++].text;
      e = bin_op(std::move(e), op, pow_expr());
    }
    return e;
  }
  ExprP pow_expr() {
    ExprP e = unary(true);
    while (skip_op("**")) e = bin_op(std::move(e), "**", unary(true));
    return e;
  }
  ExprP unary(bool with_filter) {
    Guard g(this);
    ExprP e;
    if (is_op("-") || is_op("+")) {
      bool neg = toks[p++].text == "-";
      e = node(neg ? Expr::K::kNeg : Expr::K::kPos);
      e->c.push_back(unary(false));
    } else {
      e = postfix(primary());
    }
    return with_filter ? filter_expr(std::move(e)) : std::move(e);
  }
  ExprP primary() {
    Guard g(this);
    const Token& t = cur();
    if (t.type == Tok::kName) {
      auto e = node(Expr::K::kLit);
      if (t.text == "true" || t.text == "True")
        e->lit = Value::boolean(true);
      else if (t.text == "false" || t.text == "False")
        e->lit = Value::boolean(false);
      else if (t.text == "none" || t.text == "None")
        e->lit = Value::none();
      else {
        e->k = Expr::K::kName;
        e->name = t.text;
      }
      ++p;
      return e;
    }
    if (t.type == Tok::kString) {
      auto e = node(Expr::K::kLit);
      std::string s;
      while (cur().type == Tok::kString) s += toks[p++].text;
      e->lit = Value::str(std::move(s));
      return e;
    }
    if (t.type == Tok::kInt || t.type == Tok::kFloat) {
      auto e = node(Expr::K::kLit);
      e->lit = t.type == Tok::kInt ? Value::integer(t.i) : Value::real(t.f);
      ++p;
      return e;
    }
    if (skip_op("(")) {
      ExprP e = tuple(false, true, {}, true);
      expect_op(")");
      return e;
    }
    if (skip_op("[")) {
      auto e = node(Expr::K::kList);
      while (!is_op("]")) {
        if (!e->c.empty()) expect_op(",");
        if (is_op("]")) break;
        e->c.push_back(expression());
      }
      expect_op("]");
      return e;
    }
    if (skip_op("{")) {
      auto e = node(Expr::K::kDict);
      while (!is_op("}")) {
        if (!e->c.empty()) expect_op(",");
        if (is_op("}")) break;
        e->c.push_back(expression());
        expect_op(":");
        e->c.push_back(expression());
      }
      expect_op("}");
      return e;
    }
    error("unexpected " + describe(t));
  }
  // A tuple where commas make one; `simplified` parses primaries only (assignment targets).
  ExprP tuple(bool simplified, bool with_cond, std::vector<std::string> extra_end, bool parens) {
    auto e = node(Expr::K::kTuple);
    bool is_tuple = false;
    while (true) {
      if (!e->c.empty()) expect_op(",");
      const Token& t = cur();
      bool end = t.type == Tok::kVarEnd || t.type == Tok::kBlockEnd || t.type == Tok::kEof ||
                 (t.type == Tok::kOp && t.text == ")");
      for (auto& x : extra_end)
        if (t.type == Tok::kName && t.text == x) end = true;
      if (end) break;
      e->c.push_back(simplified ? primary() : expression(with_cond));
      if (is_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!e->c.empty()) return std::move(e->c[0]);
      if (!parens) error("expected an expression, got " + describe(cur()));
    }
    return e;
  }
  ExprP postfix(ExprP e) {
    while (true) {
      if (is_op(".")) {
        ++p;
        auto a = node(Expr::K::kAttr);
        if (cur().type == Tok::kName) {
          a->name = toks[p++].text;
          a->c.push_back(std::move(e));
        } else if (cur().type == Tok::kInt) {  // foo.0 is foo[0]
          a->k = Expr::K::kItem;
          a->c.push_back(std::move(e));
          auto idx = node(Expr::K::kLit);
          idx->lit = Value::integer(toks[p++].i);
          a->c.push_back(std::move(idx));
        } else {
          error("expected a name after '.'");
        }
        e = std::move(a);
      } else if (is_op("[")) {
        ++p;
        e = subscript(std::move(e));
      } else if (is_op("(")) {
        e = call(std::move(e));
      } else {
        break;
      }
    }
    return e;
  }
  ExprP subscript(ExprP obj) {
    // obj[key] or obj[start:stop:step]
    ExprP parts[3];
    bool slice = false;
    int at = 0;
    while (!is_op("]")) {
      if (is_op(":")) {
        ++p;
        slice = true;
        if (++at > 2) error("invalid slice");
        continue;
      }
      if (parts[at]) error("expected ']' or ':'");
      parts[at] = expression();
      if (!slice && is_op(",")) {  // a[x, y]: a tuple key
        auto t = node(Expr::K::kTuple);
        t->c.push_back(std::move(parts[0]));
        while (skip_op(",")) {
          if (is_op("]")) break;
          t->c.push_back(expression());
        }
        parts[0] = std::move(t);
      }
    }
    expect_op("]");
    if (!slice && !parts[0]) error("expected a subscript");
    auto e = node(slice ? Expr::K::kSlice : Expr::K::kItem);
    e->c.push_back(std::move(obj));
    if (slice)
      for (auto& x : parts) e->c.push_back(std::move(x));
    else
      e->c.push_back(std::move(parts[0]));
    return e;
  }
  void call_args(Expr* e) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) error("*args and **kwargs in calls are not supported");
      if (cur().type == Tok::kName && peek().type == Tok::kOp && peek().text == "=") {
        std::string k = toks[p].text;
        p += 2;
        e->kw.emplace_back(k, expression());
      } else {
        if (!e->kw.empty()) error("positional argument after a keyword argument");
        e->c.push_back(expression());
      }
    }
    expect_op(")");
  }
  ExprP call(ExprP callee) {
    auto e = node(Expr::K::kCall);
    e->c.push_back(std::move(callee));
    call_args(e.get());
    return e;
  }
  ExprP filter_expr(ExprP e) {
    while (true) {
      if (is_op("|")) {
        ++p;
        e = filter(std::move(e));
      } else if (is_name("is")) {
        e = test(std::move(e));
      } else if (is_op("(")) {
        e = call(std::move(e));
      } else {
        break;
      }
    }
    return e;
  }
  ExprP filter(ExprP subject) {
    auto f = node(Expr::K::kFilter);
    f->name = expect_name();
    while (is_op(".")) {
      ++p;
      f->name += "." + expect_name();
    }
    f->c.push_back(std::move(subject));
    if (is_op("(")) call_args(f.get());
    return f;
  }
  ExprP test(ExprP subject) {
    ++p;  // is
    auto t = node(Expr::K::kTest);
    t->negated = skip_name("not");
    t->name = expect_name();
    while (is_op(".")) {
      ++p;
      t->name += "." + expect_name();
    }
    t->c.push_back(std::move(subject));
    if (is_op("(")) {
      call_args(t.get());
    } else {
      const Token& c = cur();
      bool starts = c.type == Tok::kName || c.type == Tok::kString || c.type == Tok::kInt ||
                    c.type == Tok::kFloat ||
                    (c.type == Tok::kOp && (c.text == "(" || c.text == "[" || c.text == "{"));
      if (starts && !is_name("else") && !is_name("or") && !is_name("and")) {
        if (is_name("is")) error("You cannot chain multiple tests with is");
        t->c.push_back(postfix(primary()));
      }
    }
    return t;
  }

  // ---- statements ----
  // Parses until a block whose first name is one of `ends`; leaves p on that name.
  Body body(const std::vector<std::string>& ends) {
    Guard g(this);
    Body out;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::kEof) {
        if (!ends.empty()) {
          std::string names;
          for (auto& e : ends) names += (names.empty() ? "'" : " or '") + e + "'";
          error("unexpected end of template, looking for " + names);
        }
        return out;
      }
      if (t.type == Tok::kData) {
        auto s = std::make_unique<Stmt>();
        s->k = Stmt::K::kText;
        s->text = t.text;
        s->line = t.line;
        out.push_back(std::move(s));
        ++p;
      } else if (t.type == Tok::kVarBegin) {
        ++p;
        auto s = std::make_unique<Stmt>();
        s->k = Stmt::K::kPrint;
        s->line = t.line;
        s->e = tuple(false, true, {}, false);
        if (cur().type != Tok::kVarEnd) error("expected end of print statement, got " + describe(cur()));
        ++p;
        out.push_back(std::move(s));
      } else if (t.type == Tok::kBlockBegin) {
        ++p;
        if (cur().type != Tok::kName) error("expected a statement name, got " + describe(cur()));
        for (auto& e : ends)
          if (cur().text == e) return out;
        out.push_back(statement());
      } else {
        error("unexpected " + describe(t));
      }
    }
  }
  StmtP stmt(Stmt::K k) {
    auto s = std::make_unique<Stmt>();
    s->k = k;
    s->line = cur().line;
    return s;
  }
  void end_block(const char* name) {
    if (!skip_name(name)) error(std::string("expected '") + name + "'");
    expect_block_end();
  }
  std::vector<std::string> target_names(const std::vector<std::string>& extra_end) {
    std::vector<std::string> names;
    bool paren = skip_op("(");
    while (true) {
      names.push_back(expect_name());
      if (!skip_op(",")) break;
      bool end = false;
      for (auto& x : extra_end)
        if (is_name(x.c_str())) end = true;
      if (end || is_op("=") || is_op(")")) break;
    }
    if (paren) expect_op(")");
    return names;
  }
  void params(Stmt* s) {
    expect_op("(");
    while (!is_op(")")) {
      if (!s->params.empty()) expect_op(",");
      if (is_op(")")) break;
      s->params.push_back(expect_name());
      s->defaults.push_back(skip_op("=") ? expression() : nullptr);
    }
    expect_op(")");
  }
  std::vector<ExprP> filter_chain() {
    std::vector<ExprP> fs;
    do {
      fs.push_back(filter(nullptr));
    } while (skip_op("|"));
    return fs;
  }

  StmtP statement() {
    Guard g(this);
    std::string kw = cur().text;
    if (kw == "if") {
      auto s = stmt(Stmt::K::kIf);
      ++p;
      while (true) {
        ExprP test = tuple(false, false, {}, false);
        expect_block_end();
        Body b = body({"elif", "else", "endif"});
        s->branches.emplace_back(std::move(test), std::move(b));
        if (skip_name("elif")) continue;
        if (skip_name("else")) {
          expect_block_end();
          s->else_body = body({"endif"});
        }
        end_block("endif");
        return s;
      }
    }
    if (kw == "for") {
      auto s = stmt(Stmt::K::kFor);
      ++p;
      s->targets = target_names({"in"});
      if (!skip_name("in")) error("expected 'in'");
      s->e = tuple(false, false, {"recursive"}, false);
      if (skip_name("if")) s->cond = expression();
      if (skip_name("recursive")) s->recursive = true;
      expect_block_end();
      s->body = body({"endfor", "else"});
      if (skip_name("else")) {
        expect_block_end();
        s->else_body = body({"endfor"});
      }
      end_block("endfor");
      return s;
    }
    if (kw == "set") {
      ++p;
      auto s = stmt(Stmt::K::kSet);
      if (cur().type == Tok::kName && peek().type == Tok::kOp && peek().text == ".") {
        s->targets.push_back(toks[p].text);
        p += 2;
        s->text = expect_name();
      } else {
        s->targets = target_names({});
      }
      if (skip_op("=")) {
        s->e = tuple(false, true, {}, false);
        expect_block_end();
        return s;
      }
      if (!s->text.empty() || s->targets.size() != 1) error("expected '='");
      s->k = Stmt::K::kSetBlock;
      if (skip_op("|")) s->filters = filter_chain();
      expect_block_end();
      s->body = body({"endset"});
      end_block("endset");
      return s;
    }
    if (kw == "macro") {
      ++p;
      auto s = stmt(Stmt::K::kMacro);
      s->text = expect_name();
      params(s.get());
      expect_block_end();
      s->body = body({"endmacro"});
      end_block("endmacro");
      return s;
    }
    if (kw == "call") {
      ++p;
      auto s = stmt(Stmt::K::kCallBlock);
      if (is_op("(")) params(s.get());
      s->e = expression();
      if (s->e->k != Expr::K::kCall) error("expected a call after 'call'");
      expect_block_end();
      s->body = body({"endcall"});
      end_block("endcall");
      return s;
    }
    if (kw == "filter") {
      ++p;
      auto s = stmt(Stmt::K::kFilterBlock);
      s->filters = filter_chain();
      expect_block_end();
      s->body = body({"endfilter"});
      end_block("endfilter");
      return s;
    }
    if (kw == "with") {
      ++p;
      auto s = stmt(Stmt::K::kWith);
      while (cur().type != Tok::kBlockEnd) {
        if (!s->params.empty()) expect_op(",");
        s->params.push_back(expect_name());
        expect_op("=");
        s->defaults.push_back(expression());
      }
      expect_block_end();
      s->body = body({"endwith"});
      end_block("endwith");
      return s;
    }
    if (kw == "generation") {  // transformers' AssistantTracker: renders its body
      ++p;
      auto s = stmt(Stmt::K::kBlock);
      expect_block_end();
      s->body = body({"endgeneration"});
      end_block("endgeneration");
      return s;
    }
    if (kw == "break" || kw == "continue") {
      auto s = stmt(kw == "break" ? Stmt::K::kBreak : Stmt::K::kContinue);
      ++p;
      expect_block_end();
      return s;
    }
    if (kw == "include" || kw == "import" || kw == "from" || kw == "extends" || kw == "block")
      error("'" + kw + "' is not supported: a chat template cannot load other templates");
    error("Encountered unknown tag '" + kw + "'.");
  }
};

}  // namespace

Expected<std::shared_ptr<Program>> parse_template(const std::string& source, const std::string& name) {
  CORRAL_ASSIGN_OR_RETURN(std::vector<Token> toks, lex(source, name));
  Parser ps{std::move(toks)};
  auto prog = std::make_shared<Program>();
  prog->name = name;
  try {
    prog->body = ps.body({});
  } catch (const SyntaxError& e) {
    return make_error(name + ":" + std::to_string(e.line) + ": " + e.message);
  } catch (const std::exception& e) {
    return make_error(name + ": " + e.what());
  }
  return prog;
}

}  // namespace corral::jinja
