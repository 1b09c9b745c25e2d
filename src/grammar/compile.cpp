// Grammar -> per-rule DFAs: Thompson NFA per rule (calls are symbols like bytes), subset
// construction, then checks that the network can be run (every rule defined, no left recursion).
#include "grammar/compile.h"

#include <algorithm>
#include <map>
#include <unordered_map>

namespace corral::grammar {

int32_t Compiled::next(int32_t state, uint8_t b) const {
  const auto& e = states[size_t(state)].edges;
  // Edges are few; a linear scan beats a binary search for the usual 1-8.
  for (const ByteEdge& x : e) {
    if (b < x.lo) return -1;
    if (b <= x.hi) return x.to;
  }
  return -1;
}

namespace {

struct NState {
  std::vector<int32_t> eps;
  std::vector<std::pair<int32_t, int32_t>> bytes;  // (expr with the byte set, to)
  std::vector<std::pair<int32_t, int32_t>> calls;  // (rule, to)
};

struct Builder {
  const Grammar& g;
  const GrammarLimits& lim;
  std::vector<NState> n;
  std::map<std::pair<int32_t, int32_t>, int32_t>& body_rule;  // (min, max) -> rule id
  std::vector<StringBody>& bodies;
  int32_t& next_rule;
  std::string error;
  std::map<int32_t, int32_t>* intersections = nullptr;  // kIntersect expr -> rule id

  int32_t add() {
    if (int64_t(n.size()) >= lim.max_nfa_states) {
      if (error.empty()) error = "grammar too large (more than " + std::to_string(lim.max_nfa_states) + " NFA states)";
      return 0;
    }
    n.emplace_back();
    return int32_t(n.size() - 1);
  }

  int32_t build(int32_t ei, int32_t from, int depth) {
    if (!error.empty()) return from;
    if (depth > 4000) {
      error = "grammar expression nested too deeply";
      return from;
    }
    const Expr& e = g.exprs[size_t(ei)];
    switch (e.kind) {
      case Expr::Kind::kEmpty: return from;
      case Expr::Kind::kBytes: {
        const int32_t to = add();
        n[size_t(from)].bytes.push_back({ei, to});
        return to;
      }
      case Expr::Kind::kSeq: {
        int32_t cur = from;
        for (int32_t k : e.kids) cur = build(k, cur, depth + 1);
        return cur;
      }
      case Expr::Kind::kAlt: {
        const int32_t end = add();
        for (int32_t k : e.kids) {
          const int32_t s = add();
          n[size_t(from)].eps.push_back(s);
          const int32_t t = build(k, s, depth + 1);
          n[size_t(t)].eps.push_back(end);
        }
        return end;
      }
      case Expr::Kind::kRepeat: {
        int32_t cur = from;
        for (int32_t i = 0; i < e.min && error.empty(); ++i) {
          const int32_t s = add();
          n[size_t(cur)].eps.push_back(s);
          cur = build(e.kids[0], s, depth + 1);
        }
        if (e.max < 0) {
          const int32_t s = add();
          n[size_t(cur)].eps.push_back(s);
          const int32_t t = build(e.kids[0], s, depth + 1);
          n[size_t(t)].eps.push_back(s);
          return s;
        }
        const int32_t end = add();
        n[size_t(cur)].eps.push_back(end);
        for (int32_t i = e.min; i < e.max && error.empty(); ++i) {
          const int32_t s = add();
          n[size_t(cur)].eps.push_back(s);
          cur = build(e.kids[0], s, depth + 1);
          n[size_t(cur)].eps.push_back(end);
        }
        return end;
      }
      case Expr::Kind::kRef: {
        const int32_t to = add();
        n[size_t(from)].calls.push_back({e.rule, to});
        return to;
      }
      case Expr::Kind::kIntersect: {
        if (!intersections) {
          error = "an intersection inside an intersection";
          return from;
        }
        auto it = intersections->find(ei);
        if (it == intersections->end()) it = intersections->emplace(ei, next_rule++).first;
        const int32_t to = add();
        n[size_t(from)].calls.push_back({it->second, to});
        return to;
      }
      case Expr::Kind::kStringBody: {
        auto key = std::make_pair(e.min, e.max);
        auto it = body_rule.find(key);
        if (it == body_rule.end()) {
          it = body_rule.emplace(key, next_rule++).first;
          bodies.push_back({e.min, e.max, it->second});
        }
        const int32_t to = add();
        n[size_t(from)].calls.push_back({it->second, to});
        return to;
      }
    }
    return from;
  }
};

void closure(const std::vector<NState>& n, std::vector<int32_t>& set) {
  std::vector<char> seen(n.size(), 0);  // sized per call: NFAs here are per rule and small
  std::vector<int32_t> stack = set;
  for (int32_t s : set) seen[size_t(s)] = 1;
  while (!stack.empty()) {
    const int32_t s = stack.back();
    stack.pop_back();
    for (int32_t t : n[size_t(s)].eps)
      if (!seen[size_t(t)]) seen[size_t(t)] = 1, set.push_back(t), stack.push_back(t);
  }
  std::sort(set.begin(), set.end());
}

}  // namespace

// One JSON string character: a raw UTF-8 character other than '"', '\\' and controls, or an
// escape (a \u surrogate pair as one character).
int32_t json_char_expr(Grammar& g) {
  std::vector<std::pair<uint32_t, uint32_t>> raw = {{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0x10FFFF}};
  const int32_t plain = utf8_set(g, raw);
  ByteSet hex, simple, hi_sur2, lo_sur2, not_d, d, low7;
  for (char c : std::string("0123456789abcdefABCDEF")) hex.set(uint8_t(c));
  for (char c : std::string("\"\\/bfnrt")) simple.set(uint8_t(c));
  for (char c : std::string("89abAB")) hi_sur2.set(uint8_t(c));
  for (char c : std::string("cdefCDEF")) lo_sur2.set(uint8_t(c));
  for (char c : std::string("01234567")) low7.set(uint8_t(c));
  d.set('d'), d.set('D');
  not_d = hex & ~d;
  const int32_t h = g.bytes(hex);
  const int32_t bmp = g.alt({g.seq({g.bytes(not_d), h, h, h}), g.seq({g.bytes(d), g.bytes(low7), h, h})});
  const int32_t pair = g.seq({g.bytes(d), g.bytes(hi_sur2), h, h, g.literal("\\u"), g.bytes(d), g.bytes(lo_sur2), h, h});
  const int32_t esc = g.seq({g.byte('\\'), g.alt({g.bytes(simple), g.seq({g.byte('u'), g.alt({bmp, pair})})})});
  return g.alt({plain, esc});
}

namespace {

struct DfaBuilder {
  const std::vector<NState>& n;
  const Grammar& g;
  std::vector<State>& out;
  int32_t end;
  std::map<std::vector<int32_t>, int32_t> ids;
  std::vector<std::vector<int32_t>> todo;

  int32_t id_of(std::vector<int32_t> set) {
    closure(n, set);
    auto it = ids.find(set);
    if (it != ids.end()) return it->second;
    const int32_t id = int32_t(out.size());
    out.emplace_back();
    out.back().accept = std::binary_search(set.begin(), set.end(), end);
    ids.emplace(set, id);
    todo.push_back(std::move(set));
    return id;
  }

  void expand(int32_t id, const std::vector<int32_t>& set) {
    // Bytes: targets per byte, then runs of bytes with equal target sets.
    std::vector<int32_t> per[256];
    for (int32_t s : set)
      for (auto [ei, to] : n[size_t(s)].bytes) {
        const ByteSet& bs = g.exprs[size_t(ei)].bytes;
        for (int b = 0; b < 256; ++b)
          if (bs[size_t(b)]) per[b].push_back(to);
      }
    std::vector<ByteEdge> edges;
    for (int b = 0; b < 256;) {
      if (per[b].empty()) {
        ++b;
        continue;
      }
      int e = b + 1;
      while (e < 256 && per[e] == per[b]) ++e;
      edges.push_back({uint8_t(b), uint8_t(e - 1), id_of(per[b])});
      b = e;
    }
    std::map<int32_t, std::vector<int32_t>> calls;
    for (int32_t s : set)
      for (auto [r, to] : n[size_t(s)].calls) calls[r].push_back(to);
    std::vector<CallEdge> ce;
    for (auto& [r, tos] : calls) ce.push_back({r, id_of(tos)});
    out[size_t(id)].edges = std::move(edges);
    out[size_t(id)].calls = std::move(ce);
  }
};

}  // namespace

Expected<std::shared_ptr<const Compiled>> compile(Grammar g, const GrammarLimits& lim) {
  if (g.start < 0 || g.start >= int32_t(g.rules.size()))
    return make_error("grammar has no start rule");
  if (int64_t(g.exprs.size()) > lim.max_exprs)
    return make_error("grammar too large (more than " + std::to_string(lim.max_exprs) + " expressions)");
  for (auto& r : g.rules)
    if (r.expr < 0) return make_error("rule '" + r.name + "' is used but never defined");
  auto c = std::make_shared<Compiled>();
  const int32_t n_user = int32_t(g.rules.size());
  std::map<std::pair<int32_t, int32_t>, int32_t> body_rule;
  int32_t next_rule = n_user;
  // Pass 1: NFAs of the user rules; string bodies become rules numbered after them.
  std::vector<std::vector<NState>> nfas;
  std::vector<int32_t> ends;
  std::map<int32_t, int32_t> intersections;
  for (int32_t r = 0; r < n_user; ++r) {
    Builder b{g, lim, {}, body_rule, c->bodies, next_rule, {}, &intersections};
    b.add();
    const int32_t e = b.build(g.rules[size_t(r)].expr, 0, 0);
    if (!b.error.empty()) return make_error(b.error + " in rule '" + g.rules[size_t(r)].name + "'");
    nfas.push_back(std::move(b.n));
    ends.push_back(e);
  }
  if (!c->bodies.empty()) {  // the character rule the bodies call
    const int32_t jr = g.new_rule("json-char");
    g.define(jr, json_char_expr(g));
    // Renumber: bodies were numbered from n_user; the char rule goes after them.
    c->jchar_rule = next_rule;
    Builder b{g, lim, {}, body_rule, c->bodies, next_rule, {}, nullptr};
    b.add();
    const int32_t e = b.build(g.rules[size_t(jr)].expr, 0, 0);
    nfas.resize(size_t(c->jchar_rule + 1));
    ends.resize(size_t(c->jchar_rule + 1), 0);
    nfas[size_t(c->jchar_rule)] = std::move(b.n);
    ends[size_t(c->jchar_rule)] = e;
  }
  const int32_t n_rules = int32_t(std::max<size_t>(nfas.size(), size_t(next_rule)));
  if (c->jchar_rule < 0) c->jchar_rule = -1;
  c->rule_start.assign(size_t(n_rules), -1);
  c->rule_names.resize(size_t(n_rules));
  for (int32_t r = 0; r < n_user; ++r) c->rule_names[size_t(r)] = g.rules[size_t(r)].name;
  for (auto& b : c->bodies) c->rule_names[size_t(b.rule)] = "string-body";
  if (c->jchar_rule >= 0) c->rule_names[size_t(c->jchar_rule)] = "json-char";
  // Pass 2: DFAs.
  for (int32_t r = 0; r < n_rules; ++r) {
    if (r < int32_t(nfas.size()) && !nfas[size_t(r)].empty()) {
      DfaBuilder d{nfas[size_t(r)], g, c->states, ends[size_t(r)], {}, {}};
      const size_t before = c->states.size();
      c->rule_start[size_t(r)] = d.id_of({0});
      while (!d.todo.empty()) {
        auto set = std::move(d.todo.back());
        d.todo.pop_back();
        d.expand(d.ids[set], set);
        if (int64_t(c->states.size() - before) > lim.max_rule_dfa_states)
          return make_error("rule '" + c->rule_names[size_t(r)] + "' is too complex (more than " +
                                          std::to_string(lim.max_rule_dfa_states) + " DFA states)");
        if (int64_t(c->states.size()) > lim.max_dfa_states)
          return make_error("grammar too large (more than " + std::to_string(lim.max_dfa_states) + " DFA states)");
      }
    }
  }
  // Intersections: the product of the two kids' DFAs (both must be regular).
  for (auto [ei, rule] : intersections) {
    std::vector<State> part[2];
    int32_t start[2];
    for (int k = 0; k < 2; ++k) {
      std::map<std::pair<int32_t, int32_t>, int32_t> no_body;
      std::vector<StringBody> no_bodies;
      int32_t dummy = 0;
      Builder b{g, lim, {}, no_body, no_bodies, dummy, {}, nullptr};
      b.add();
      const int32_t e = b.build(g.exprs[size_t(ei)].kids[size_t(k)], 0, 0);
      if (!b.error.empty()) return make_error(b.error);
      for (auto& ns : b.n)
        if (!ns.calls.empty() || dummy != 0) return make_error("an intersection of expressions that are not regular");
      DfaBuilder d{b.n, g, part[k], e, {}, {}};
      start[k] = d.id_of({0});
      while (!d.todo.empty()) {
        auto set = std::move(d.todo.back());
        d.todo.pop_back();
        d.expand(d.ids[set], set);
        if (int64_t(part[k].size()) > lim.max_rule_dfa_states)
          return make_error("a pattern is too complex (more than " + std::to_string(lim.max_rule_dfa_states) + " DFA states)");
      }
    }
    auto next = [](const std::vector<State>& st, int32_t s, int b) {
      for (auto& x : st[size_t(s)].edges)
        if (b >= x.lo && b <= x.hi) return x.to;
      return -1;
    };
    std::map<std::pair<int32_t, int32_t>, int32_t> ids;
    std::vector<std::pair<int32_t, int32_t>> todo;
    auto id_of = [&](int32_t a, int32_t b) {
      auto [it, fresh] = ids.emplace(std::make_pair(a, b), int32_t(c->states.size()));
      if (fresh) {
        c->states.emplace_back();
        c->states.back().accept = part[0][size_t(a)].accept && part[1][size_t(b)].accept;
        todo.push_back({a, b});
      }
      return it->second;
    };
    const size_t before = c->states.size();
    c->rule_start[size_t(rule)] = id_of(start[0], start[1]);
    c->rule_names[size_t(rule)] = "intersection";
    while (!todo.empty()) {
      auto [a, b] = todo.back();
      todo.pop_back();
      const int32_t id = ids[{a, b}];
      std::vector<ByteEdge> edges;
      for (int x = 0; x < 256;) {
        const int32_t ta = next(part[0], a, x), tb = ta < 0 ? -1 : next(part[1], b, x);
        if (tb < 0) {
          ++x;
          continue;
        }
        int y = x + 1;
        while (y < 256 && next(part[0], a, y) == ta && next(part[1], b, y) == tb) ++y;
        edges.push_back({uint8_t(x), uint8_t(y - 1), id_of(ta, tb)});
        x = y;
      }
      c->states[size_t(id)].edges = std::move(edges);
      if (int64_t(c->states.size() - before) > lim.max_rule_dfa_states)
        return make_error("a pattern with a length bound is too complex (more than " +
                          std::to_string(lim.max_rule_dfa_states) + " DFA states)");
    }
  }
  // String bodies: chains of counted states, each calling the character rule.
  for (size_t bi = 0; bi < c->bodies.size(); ++bi) {
    const StringBody& b = c->bodies[bi];
    const int64_t len = b.max < 0 ? b.min : b.max;
    if (len > lim.max_string_length)
      return make_error("string length bound " + std::to_string(len) + " is over the limit of " +
                                      std::to_string(lim.max_string_length));
    const int32_t first = int32_t(c->states.size());
    for (int64_t k = 0; k <= len; ++k) {
      State s;
      s.body = int32_t(bi);
      s.count = int32_t(k);
      s.accept = k >= b.min;
      if (k < len) s.calls.push_back({c->jchar_rule, first + int32_t(k) + 1});
      if (k == len && b.max < 0) s.calls.push_back({c->jchar_rule, first + int32_t(k)});
      c->states.push_back(std::move(s));
    }
    c->rule_start[size_t(b.rule)] = first;
  }
  c->start_rule = g.start;
  // Left recursion: a rule reachable from its own start without consuming a byte.
  const int32_t R = n_rules;
  std::vector<char> nullable(size_t(R), 0);
  // The states of rule r reachable from its start through calls of nullable rules only; `on`
  // sees each once and returns true to stop.
  auto nullable_prefix = [&](int32_t r, auto&& on) {
    std::vector<int32_t> stack = {c->rule_start[size_t(r)]};
    std::unordered_map<int32_t, char> vis;
    while (!stack.empty()) {
      const int32_t s = stack.back();
      stack.pop_back();
      if (vis[s]) continue;
      vis[s] = 1;
      if (on(c->states[size_t(s)])) return true;
      for (auto& ce : c->states[size_t(s)].calls)
        if (nullable[size_t(ce.rule)]) stack.push_back(ce.to);
    }
    return false;
  };
  for (bool changed = true; changed;) {
    changed = false;
    for (int32_t r = 0; r < R; ++r)
      if (!nullable[size_t(r)] && c->rule_start[size_t(r)] >= 0 &&
          nullable_prefix(r, [](const State& st) { return st.accept; }))
        nullable[size_t(r)] = 1, changed = true;
  }
  // left[r]: rules r can call before consuming anything.
  std::vector<std::vector<int32_t>> left(static_cast<size_t>(R));
  for (int32_t r = 0; r < R; ++r)
    nullable_prefix(r, [&](const State& st) {
      for (auto& ce : st.calls) left[size_t(r)].push_back(ce.rule);
      return false;
    });
  std::vector<int8_t> mark(size_t(R), 0);  // 0 new, 1 on the path, 2 done
  for (int32_t r0 = 0; r0 < R; ++r0) {
    if (mark[size_t(r0)]) continue;
    std::vector<std::pair<int32_t, size_t>> st = {{r0, 0}};
    mark[size_t(r0)] = 1;
    while (!st.empty()) {
      auto& [r, i] = st.back();
      if (i < left[size_t(r)].size()) {
        const int32_t t = left[size_t(r)][i++];
        if (mark[size_t(t)] == 1) return make_error("rule '" + c->rule_names[size_t(t)] + "' is left-recursive");
        if (mark[size_t(t)] == 0) mark[size_t(t)] = 1, st.push_back({t, 0});
      } else {
        mark[size_t(r)] = 2;
        st.pop_back();
      }
    }
  }
  return std::shared_ptr<const Compiled>(std::move(c));
}

}  // namespace corral::grammar
