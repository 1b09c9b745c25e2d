#include "hosting/statement.h"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "hosting/keys.h"

namespace corral {

using nlohmann::json;

void StatementTotals::add(const StatementTotals& o) {
  requests += o.requests, uncached += o.uncached, cached += o.cached, completion += o.completion;
  amount += o.amount, share += o.share, net += o.net;
}

std::optional<int64_t> div_round_half_even(__int128 num, int64_t den) {
  if (num < 0 || den <= 0) return std::nullopt;
  __int128 q = num / den;
  const __int128 r = num % den;
  if (2 * r > den || (2 * r == den && (q & 1))) ++q;
  if (q > INT64_MAX) return std::nullopt;
  return int64_t(q);
}

namespace {

bool billable(const std::string& status) {
  return status == "completed" || status == "cancelled" || status == "interrupted";
}

// The version in force at `t`: the latest start at or before it, the newest version on ties.
template <class V, class Match>
const V* in_force(const std::vector<V>& vs, int64_t t, Match match) {
  const V* best = nullptr;
  for (const auto& v : vs)
    if (match(v) && v.from_ms <= t &&
        (!best || v.from_ms > best->from_ms ||
         (v.from_ms == best->from_ms && v.version > best->version)))
      best = &v;
  return best;
}

json opt(const std::optional<int64_t>& v) {
  return v ? json(*v) : json(nullptr);
}

}  // namespace

Expected<Statement> build_statement(int64_t from_ms, int64_t to_ms,
                                    const std::vector<UsageRecord>& records,
                                    const std::vector<PriceVersion>& prices,
                                    const std::vector<ShareVersion>& shares,
                                    const std::vector<ClosedStatement>& closed) {
  if (to_ms <= from_ms)
    return make_error("the statement period is empty (--to must be after --from)");
  Statement st;
  st.from_ms = from_ms, st.to_ms = to_ms;
  std::map<int64_t, const PriceVersion*> price_of;
  for (const auto& p : prices) price_of[p.version] = &p;

  // Line key: tenant, model, price version, share version, adjustment.
  using Key = std::tuple<std::string, std::string, int64_t, int64_t, bool>;
  struct Acc {
    StatementLine line;
    __int128 priced = 0;  // sum of token x price products, divided once per line
  };
  std::map<Key, Acc> acc;
  std::set<std::string> unpriced, currencies;
  for (const auto& r : records) {
    if (!billable(r.status)) continue;
    bool adjustment = false;
    if (r.started_ms < from_ms) {
      adjustment = std::any_of(closed.begin(), closed.end(), [&](const ClosedStatement& c) {
        return r.started_ms >= c.from_ms && r.started_ms < c.to_ms;
      });
      if (!adjustment) continue;
    } else if (r.started_ms >= to_ms) {
      continue;
    }
    const PriceVersion* p = nullptr;
    if (r.price_version) {
      auto it = price_of.find(*r.price_version);
      if (it == price_of.end())
        return make_error("request " + r.request_id + " names price version " +
                          std::to_string(*r.price_version) + ", which the ledger does not have");
      p = it->second;
      currencies.insert(p->currency);
    } else {
      unpriced.insert(r.model);
    }
    const ShareVersion* sh =
        r.family == "none" ? nullptr : in_force(shares, r.started_ms, [&](const ShareVersion& v) {
          return v.family == r.family;
        });
    const Key k{r.tenant, r.model, p ? p->version : -1, sh ? sh->version : -1, adjustment};
    Acc& a = acc[k];
    StatementLine& l = a.line;
    if (l.t.requests == 0) {
      l.tenant = r.tenant, l.model = r.model, l.family = r.family, l.adjustment = adjustment;
      if (p) l.price_version = p->version;
      if (sh) l.share_version = sh->version, l.basis_points = sh->basis_points;
    }
    const int64_t cached = std::clamp<int64_t>(r.cached_tokens, 0, r.prompt_tokens);
    const int64_t uncached = r.prompt_tokens - cached;
    l.t.requests += 1, l.t.uncached += uncached, l.t.cached += cached;
    l.t.completion += r.completion_tokens;
    if (p)
      a.priced += __int128(uncached) * p->input_micros + __int128(cached) * p->cached_micros +
                  __int128(r.completion_tokens) * p->output_micros;
    st.request_ids.push_back(r.request_id);
  }
  if (currencies.size() > 1) {
    std::string list;
    for (auto& c : currencies) list += (list.empty() ? "" : ", ") + c;
    return make_error("the period's prices use several currencies (" + list +
                      "); one statement has one currency");
  }
  if (!currencies.empty()) st.currency = *currencies.begin();
  for (auto& [k, a] : acc) {
    StatementLine& l = a.line;
    auto amount = div_round_half_even(a.priced, 1000000);
    if (!amount) return make_error("the amount of " + l.tenant + "/" + l.model + " overflows");
    l.t.amount = *amount;
    auto share = div_round_half_even(__int128(l.t.amount) * l.basis_points, 10000);
    if (!share) return make_error("the share of " + l.tenant + "/" + l.model + " overflows");
    l.t.share = *share;
    l.t.net = l.t.amount - l.t.share;
    st.lines.push_back(l);
  }
  for (auto& m : unpriced)
    st.warnings.push_back("model '" + m +
                          "' had no price in force for some requests; they are "
                          "billed at 0 (set one with 'corral price set')");
  return st;
}

json totals_json(const StatementTotals& t) {
  return {{"requests", t.requests},
          {"uncached_prompt_tokens", t.uncached},
          {"cached_prompt_tokens", t.cached},
          {"completion_tokens", t.completion},
          {"amount_micros", t.amount},
          {"share_micros", t.share},
          {"net_micros", t.net}};
}

json statement_json(const Statement& s) {
  json lines = json::array();
  StatementTotals overall;
  std::map<std::string, StatementTotals> by_tenant, by_family;
  for (const auto& l : s.lines) {
    json j = totals_json(l.t);
    j["tenant"] = l.tenant, j["model"] = l.model, j["family"] = l.family;
    j["price_version"] = opt(l.price_version);
    j["share_version"] = opt(l.share_version);
    j["basis_points"] = l.basis_points;
    j["adjustment"] = l.adjustment;
    lines.push_back(j);
    overall.add(l.t), by_tenant[l.tenant].add(l.t), by_family[l.family].add(l.t);
  }
  json bt = json::object(), bf = json::object();
  for (auto& [k, t] : by_tenant) bt[k] = totals_json(t);
  for (auto& [k, t] : by_family) bf[k] = totals_json(t);
  json j = {{"from", format_iso8601(s.from_ms)},
            {"to", format_iso8601(s.to_ms)},
            {"currency", s.currency},
            {"host", s.host},
            {"lines", lines},
            {"totals", {{"by_tenant", bt}, {"by_family", bf}, {"overall", totals_json(overall)}}}};
  if (!s.tenant.empty()) j["tenant"] = s.tenant;
  j["digest"] = statement_digest(j);
  return j;
}

std::string canonical_json(const json& j) {
  json c = j;
  if (c.is_object()) c.erase("digest"), c.erase("signature");
  return c.dump();  // nlohmann's objects are std::map: keys sorted; no indent: no whitespace
}

std::string statement_digest(const json& j) {
  return sha256_hex(canonical_json(j));
}

namespace {
std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}
std::string csv_totals(const json& t, const std::string& cur) {
  std::string o;
  for (const char* k : {"requests", "uncached_prompt_tokens", "cached_prompt_tokens",
                        "completion_tokens", "amount_micros", "share_micros", "net_micros"})
    o += std::to_string(t[k].get<int64_t>()) + ",";
  return o + cur;
}
std::string jstr(const json& j, const char* k) {
  return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
}
}  // namespace

std::string statement_csv(const json& j) {
  const std::string cur = jstr(j, "currency");
  std::string o =
      "kind,tenant,model,price_version,family,basis_points,adjustment,requests,"
      "uncached_prompt_tokens,cached_prompt_tokens,completion_tokens,amount_micros,share_micros,"
      "net_micros,currency\n";
  for (const auto& l : j["lines"])
    o += "line," + csv_cell(jstr(l, "tenant")) + "," + csv_cell(jstr(l, "model")) + "," +
         (l["price_version"].is_null() ? "" : std::to_string(l["price_version"].get<int64_t>())) +
         "," + csv_cell(jstr(l, "family")) + "," +
         std::to_string(l["basis_points"].get<int64_t>()) + "," +
         (l.value("adjustment", false) ? "true" : "false") + "," + csv_totals(l, cur) + "\n";
  for (auto& [k, t] : j["totals"]["by_tenant"].items())
    o += "tenant_total," + csv_cell(k) + ",,,,,," + csv_totals(t, cur) + "\n";
  for (auto& [k, t] : j["totals"]["by_family"].items())
    o += "family_total,,,," + csv_cell(k) + ",,," + csv_totals(t, cur) + "\n";
  o += "overall_total,,,,,,," + csv_totals(j["totals"]["overall"], cur) + "\n";
  o += "# period " + jstr(j, "from") + " .. " + jstr(j, "to") +
       ", digest sha256:" + jstr(j, "digest") + "\n";
  return o;
}

json licensor_json(const json& st, const std::vector<LicenseEvent>& events) {
  std::map<std::string, StatementTotals> fam;
  std::map<std::string, std::set<int64_t>> bps;
  std::map<std::string, std::set<std::string>> tenants;
  StatementTotals overall;
  for (const auto& l : st["lines"]) {
    StatementTotals t;
    t.requests = l["requests"], t.uncached = l["uncached_prompt_tokens"];
    t.cached = l["cached_prompt_tokens"], t.completion = l["completion_tokens"];
    t.amount = l["amount_micros"], t.share = l["share_micros"], t.net = l["net_micros"];
    const std::string f = jstr(l, "family");
    fam[f].add(t), overall.add(t);
    bps[f].insert(l["basis_points"].get<int64_t>());
    tenants[f].insert(jstr(l, "tenant"));
  }
  json families = json::object();
  for (auto& [f, t] : fam) {
    json j = totals_json(t);
    j["basis_points"] = json(std::vector<int64_t>(bps[f].begin(), bps[f].end()));
    j["tenants"] = int64_t(tenants[f].size());
    families[f] = j;
  }
  json ev = json::array(), refusals = json::object();
  int64_t grants = 0;
  for (const auto& e : events) {
    ev.push_back({{"at", format_iso8601(e.ms)},
                  {"kind", e.kind},
                  {"tenant", e.tenant},
                  {"model", e.model},
                  {"family", e.family},
                  {"code", e.code},
                  {"detail", e.detail}});
    if (e.kind == "refusal") {
      json& r = refusals[e.family.empty() ? "none" : e.family];
      if (!r.is_object()) r = json::object();
      r[e.code] = (r.contains(e.code) ? r[e.code].get<int64_t>() : 0) + 1;
    } else if (e.kind == "grant") {
      ++grants;
    }
  }
  json j = {{"view", "licensor"},   {"from", st["from"]},
            {"to", st["to"]},       {"currency", st["currency"]},
            {"host", st["host"]},   {"statement_digest", st["digest"]},
            {"families", families}, {"overall", totals_json(overall)},
            {"license_events", ev}, {"refusals", refusals},
            {"grants", grants}};
  j["digest"] = statement_digest(j);
  return j;
}

std::string licensor_csv(const json& lj) {
  std::string o =
      "family,tenants,requests,uncached_prompt_tokens,cached_prompt_tokens,completion_tokens,"
      "amount_micros,share_micros,net_micros,currency\n";
  const std::string cur = jstr(lj, "currency");
  for (auto& [f, t] : lj["families"].items())
    o += csv_cell(f) + "," + std::to_string(t["tenants"].get<int64_t>()) + "," +
         csv_totals(t, cur) + "\n";
  o += "\nat,kind,tenant,model,family,code\n";
  for (auto& e : lj["license_events"])
    o += jstr(e, "at") + "," + jstr(e, "kind") + "," + csv_cell(jstr(e, "tenant")) + "," +
         csv_cell(jstr(e, "model")) + "," + csv_cell(jstr(e, "family")) + "," +
         csv_cell(jstr(e, "code")) + "\n";
  o += "# digest sha256:" + jstr(lj, "digest") + "\n";
  return o;
}

Expected<StatementResult> compute_statement(Ledger& l, int64_t from_ms, int64_t to_ms,
                                            const std::string& tenant, const std::string& host) {
  CORRAL_ASSIGN_OR_RETURN(auto closed, l.closed_statements());
  const ClosedStatement* exact = nullptr;
  for (const auto& c : closed)
    if (c.from_ms == from_ms && c.to_ms == to_ms) exact = &c;
  StatementResult out;
  if (exact && tenant.empty()) {
    out.json = json::parse(exact->body, nullptr, false);
    if (out.json.is_discarded())
      return make_error("the closed statement of " + format_iso8601(from_ms) + " is not JSON");
    out.closed = true;
    return out;
  }
  CORRAL_ASSIGN_OR_RETURN(auto prices, l.list_prices());
  CORRAL_ASSIGN_OR_RETURN(auto shares, l.list_shares());
  std::vector<UsageRecord> recs;
  UsageQuery q;
  q.tenant = tenant;
  if (exact) {  // one tenant's part of a closed period: the records it billed
    q.billed_from_ms = from_ms;
    CORRAL_ASSIGN_OR_RETURN(recs, l.usage(q));
  } else {
    q.from_ms = from_ms, q.to_ms = to_ms;
    CORRAL_ASSIGN_OR_RETURN(recs, l.usage(q));
    UsageQuery late;
    late.tenant = tenant, late.to_ms = from_ms, late.unbilled_only = true;
    CORRAL_ASSIGN_OR_RETURN(auto earlier, l.usage(late));
    recs.insert(recs.end(), earlier.begin(), earlier.end());
  }
  CORRAL_ASSIGN_OR_RETURN(out.st, build_statement(from_ms, to_ms, recs, prices, shares, closed));
  out.st.host = host, out.st.tenant = tenant;
  out.json = statement_json(out.st);
  out.closed = exact != nullptr;
  return out;
}

std::string default_host_name() {
  if (const char* e = std::getenv("CORRAL_HOST_NAME"); e && *e) return e;
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) == 0 && buf[0]) return buf;
  return "corral";
}

std::string format_micros(int64_t micros) {
  const bool neg = micros < 0;
  const uint64_t u = neg ? uint64_t(0) - uint64_t(micros) : uint64_t(micros);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s%llu.%06llu", neg ? "-" : "", (unsigned long long)(u / 1000000),
                (unsigned long long)(u % 1000000));
  return buf;
}

Expected<int64_t> parse_decimal_scaled(const std::string& s, int decimals,
                                       const std::string& what) {
  auto bad = [&](const std::string& why) { return make_error(what + ": '" + s + "' " + why); };
  if (s.empty()) return bad("is empty");
  const size_t dot = s.find('.');
  const std::string ip = s.substr(0, dot), fp = dot == std::string::npos ? "" : s.substr(dot + 1);
  if (ip.empty() && fp.empty()) return bad("is not a number");
  for (char c : ip + fp)
    if (c < '0' || c > '9') return bad("is not a non-negative decimal number (digits and one '.')");
  if (dot != std::string::npos && fp.empty()) return bad("has no digits after the '.'");
  if (int(fp.size()) > decimals)
    return bad("has more than " + std::to_string(decimals) + " decimal places");
  __int128 v = 0;
  for (char c : ip) {
    v = v * 10 + (c - '0');
    if (v > INT64_MAX) return bad("is too large");
  }
  for (int i = 0; i < decimals; ++i) {
    v = v * 10 + (i < int(fp.size()) ? fp[i] - '0' : 0);
    if (v > INT64_MAX) return bad("is too large");
  }
  return int64_t(v);
}

}  // namespace corral
