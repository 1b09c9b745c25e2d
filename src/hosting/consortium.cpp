#include "hosting/consortium.h"

#include <algorithm>
#include <set>

#include "hosting/keys.h"
#include "hosting/statement.h"

namespace corral {

using json = nlohmann::json;

int64_t ConsortiumMember::share_at(int64_t ms) const {
  const ConsortiumShare* best = nullptr;
  for (auto& s : shares)
    if (s.from_ms <= ms && (!best || s.from_ms > best->from_ms ||
                            (s.from_ms == best->from_ms && s.event_id > best->event_id)))
      best = &s;
  return best ? best->basis_points : 0;
}

int64_t Consortium::sum_share_at(int64_t ms) const {
  int64_t s = 0;
  for (auto& [_, m] : members) s += m.share_at(ms);
  return s;
}

std::string Consortium::member_of(const std::string& tenant) const {
  for (auto& [org, m] : members)
    if (std::find(m.tenants.begin(), m.tenants.end(), tenant) != m.tenants.end()) return org;
  return "";
}

namespace {

// Fields of an event body, with errors naming the event.
struct Body {
  const json& j;
  std::string where;
  Expected<std::string> str(const char* k) const {
    if (!j.contains(k) || !j[k].is_string())
      return make_error(where + ": field " + k + " is missing");
    return j[k].get<std::string>();
  }
  Expected<int64_t> i64(const char* k) const {
    if (!j.contains(k) || !j[k].is_number_integer())
      return make_error(where + ": field " + k + " is missing");
    return j[k].get<int64_t>();
  }
};

int64_t int_or(const json& j, const char* k) {
  return j.contains(k) && j[k].is_number_integer() ? j[k].get<int64_t>() : 0;
}

Status apply(std::map<std::string, Consortium>& cs, const ConsortiumEvent& e) {
  const json j = json::parse(e.body, nullptr, false);
  const std::string where = "consortium event " + std::to_string(e.id) + " (" + e.kind + ")";
  if (!j.is_object()) return make_error(where + ": its body is not a JSON object");
  Body b{j, where};
  if (e.kind == "create") {
    if (cs.count(e.consortium))
      return make_error(where + ": consortium '" + e.consortium + "' exists");
    Consortium c;
    c.name = e.consortium;
    CORRAL_ASSIGN_OR_RETURN(c.currency, b.str("currency"));
    CORRAL_ASSIGN_OR_RETURN(c.compute_price, b.i64("compute_price"));
    c.created_ms = e.at_ms;
    cs[e.consortium] = std::move(c);
    return Status::ok();
  }
  auto it = cs.find(e.consortium);
  if (it == cs.end()) return make_error(where + ": no consortium named '" + e.consortium + "'");
  Consortium& c = it->second;
  if (e.kind == "member") {
    CORRAL_ASSIGN_OR_RETURN(std::string org, b.str("org"));
    CORRAL_ASSIGN_OR_RETURN(int64_t bp, b.i64("share_bp"));
    ConsortiumMember& m = c.members[org];
    m.org = org;
    if (j.contains("tenants") && j["tenants"].is_array())
      for (auto& t : j["tenants"])
        if (t.is_string() && std::find(m.tenants.begin(), m.tenants.end(), t) == m.tenants.end())
          m.tenants.push_back(t);
    m.shares.push_back({bp, e.at_ms, e.id});
  } else if (e.kind == "contribution") {
    Consortium::Money mo;
    CORRAL_ASSIGN_OR_RETURN(mo.org, b.str("org"));
    CORRAL_ASSIGN_OR_RETURN(mo.amount, b.i64("amount"));
    mo.ref = j.contains("ref") && j["ref"].is_string() ? j["ref"].get<std::string>() : "";
    mo.at_ms = e.at_ms;
    c.money.push_back(mo);
  } else if (e.kind == "compute") {
    ComputeContribution cc;
    CORRAL_ASSIGN_OR_RETURN(cc.job, b.str("job"));
    CORRAL_ASSIGN_OR_RETURN(cc.org, b.str("org"));
    CORRAL_ASSIGN_OR_RETURN(cc.cpu_us, b.i64("cpu_us"));
    cc.flops = int_or(j, "flops");
    cc.energy_uj = int_or(j, "energy_uj");
    cc.trained_tokens = int_or(j, "trained_tokens");
    cc.at_ms = e.at_ms;
    c.compute.push_back(cc);
  } else if (e.kind == "model") {
    ConsortiumModel m;
    CORRAL_ASSIGN_OR_RETURN(m.model_id, b.str("model_id"));
    CORRAL_ASSIGN_OR_RETURN(m.adapter, b.str("adapter"));
    CORRAL_ASSIGN_OR_RETURN(m.base, b.str("base"));
    m.is_public = j.contains("public") && j["public"].is_boolean() && j["public"].get<bool>();
    auto old = c.models.find(m.model_id);
    // Opened once: its revenue counts from then; a later private entry closes it again.
    m.public_from_ms =
        m.is_public ? (old != c.models.end() && old->second.is_public ? old->second.public_from_ms
                                                                      : e.at_ms)
                    : 0;
    c.models[m.model_id] = m;
  } else if (e.kind != "close") {
    return make_error(where + ": unknown kind");
  }
  return Status::ok();
}

}  // namespace

Expected<std::map<std::string, Consortium>> fold_consortia(const std::vector<ConsortiumEvent>& ev) {
  std::map<std::string, Consortium> cs;
  for (auto& e : ev) CORRAL_RETURN_IF_ERROR(apply(cs, e));
  return cs;
}

Status append_consortium(Ledger& l, const std::string& name, const std::string& kind,
                         const json& body, int64_t at_ms) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    CORRAL_ASSIGN_OR_RETURN(auto all, l.consortium_events(""));
    const int64_t last = all.empty() ? 0 : all.back().id;
    CORRAL_ASSIGN_OR_RETURN(auto cs, fold_consortia(all));
    ConsortiumEvent e{0, name, kind, body.dump(), at_ms, now_ms()};
    auto it = cs.find(name);
    if (kind == "create") {
      if (it != cs.end()) return make_error("a consortium named '" + name + "' exists already");
    } else if (it == cs.end()) {
      return make_error("no consortium named '" + name + "'");
    }
    if (kind == "member") {
      const Consortium& c = it->second;
      const std::string org = body["org"];
      const int64_t bp = body["share_bp"];
      if (bp < 0 || bp > 10000) return make_error("--share: must be 0..100 percent");
      for (auto& t : body["tenants"]) {
        CORRAL_ASSIGN_OR_RETURN(auto tn, l.get_tenant(t.get<std::string>()));
        if (!tn) return make_error("--tenant: no tenant named '" + t.get<std::string>() + "'");
        const std::string owner = c.member_of(t);
        if (!owner.empty() && owner != org)
          return make_error("--tenant: '" + t.get<std::string>() + "' belongs to member '" + owner +
                            "' already");
      }
      // The shares in force at every version's start, this one included, stay within 100%.
      std::vector<ConsortiumEvent> with = all;
      with.push_back(e);
      with.back().id = last + 1;
      CORRAL_ASSIGN_OR_RETURN(auto after, fold_consortia(with));
      const Consortium& a = after.at(name);
      for (auto& [_, m] : a.members)
        for (auto& v : m.shares)
          if (v.from_ms >= at_ms && a.sum_share_at(v.from_ms) > 10000)
            return make_error("the members' shares would add up to " +
                              std::to_string(a.sum_share_at(v.from_ms)) + " basis points from " +
                              format_iso8601(v.from_ms) + " (at most 10000, 100%)");
    } else if (kind == "contribution" || kind == "compute") {
      const std::string org = body["org"];
      if (!it->second.members.count(org))
        return make_error("'" + org + "' is not a member of consortium '" + name + "'");
    }
    int64_t id = 0;
    CORRAL_ASSIGN_OR_RETURN(bool ok, l.append_consortium_event(e, last, &id));
    if (ok) return Status::ok();
  }
  return make_error("the consortium journal is busy (too many concurrent writers); retry");
}

namespace {

int64_t cpu_value(int64_t cpu_us, int64_t price) {
  return div_round_half_even(__int128(cpu_us) * price, int64_t(3600) * 1000000).value_or(0);
}

}  // namespace

Expected<std::vector<ClosedConsortiumPeriod>> consortium_closed(Ledger& l,
                                                                const std::string& name) {
  CORRAL_ASSIGN_OR_RETURN(auto evs, l.consortium_events(name));
  std::vector<ClosedConsortiumPeriod> out;
  for (auto& e : evs) {
    if (e.kind != "close") continue;
    const json j = json::parse(e.body, nullptr, false);
    if (!j.is_object() || !j.contains("from_ms") || !j.contains("to_ms") ||
        !j.contains("statement"))
      return make_error("consortium event " + std::to_string(e.id) + " (close): malformed");
    out.push_back({j["from_ms"], j["to_ms"], j["statement"].get<std::string>()});
  }
  return out;
}

Expected<json> consortium_statement(Ledger& l, const std::string& name, int64_t from, int64_t to,
                                    const std::string& member) {
  if (to <= from) return make_error("the statement period is empty (--to must be after --from)");
  if (member.empty()) {  // a closed period: its signed body, as it was
    CORRAL_ASSIGN_OR_RETURN(auto closed, consortium_closed(l, name));
    for (auto& c : closed)
      if (c.from_ms == from && c.to_ms == to) return json::parse(c.body);
  }
  CORRAL_ASSIGN_OR_RETURN(auto evs, l.consortium_events(name));
  CORRAL_ASSIGN_OR_RETURN(auto cs, fold_consortia(evs));
  auto it = cs.find(name);
  if (it == cs.end()) return make_error("no consortium named '" + name + "'");
  const Consortium& c = it->second;
  if (!member.empty() && !c.members.count(member))
    return make_error("--member: '" + member + "' is not a member of '" + name + "'");
  std::vector<std::string> orgs;
  for (auto& [org, _] : c.members) orgs.push_back(org);
  auto weights_at = [&](int64_t ms) {
    std::vector<int64_t> w;
    for (auto& o : orgs) w.push_back(c.members.at(o).share_at(ms));
    return w;
  };
  std::map<std::string, int64_t> money, compute, costs, revenue;
  for (auto& m : c.money)
    if (m.at_ms >= from && m.at_ms < to) money[m.org] += m.amount;
  // Jobs: their records in the period, per member.
  struct Job {
    int64_t cpu_us = 0, flops = 0, energy_uj = 0, tokens = 0, end_ms = 0;
    std::map<std::string, ComputeContribution> by;
  };
  std::map<std::string, Job> jobs;
  for (auto& r : c.compute) {
    if (r.at_ms < from || r.at_ms >= to) continue;
    Job& j = jobs[r.job];
    j.cpu_us += r.cpu_us, j.flops += r.flops, j.energy_uj += r.energy_uj,
        j.tokens += r.trained_tokens;
    j.end_ms = std::max(j.end_ms, r.at_ms);
    ComputeContribution& b = j.by[r.org];
    b.cpu_us += r.cpu_us, b.flops += r.flops, b.trained_tokens += r.trained_tokens;
  }
  json jobs_out = json::array();
  for (auto& [id, j] : jobs) {
    const int64_t cost = cpu_value(j.cpu_us, c.compute_price);
    const auto parts = split_largest_remainder(cost, weights_at(j.end_ms));
    json pj = json::array(), contrib = json::array();
    for (size_t i = 0; i < orgs.size(); ++i) {
      costs[orgs[i]] += parts[i];
      pj.push_back({{"member", orgs[i]}, {"amount", parts[i]}});
    }
    for (auto& [org, b] : j.by) {
      const int64_t v = cpu_value(b.cpu_us, c.compute_price);
      compute[org] += v;
      contrib.push_back({{"member", org},
                         {"cpu_seconds", double(b.cpu_us) / 1e6},
                         {"flops", b.flops},
                         {"trained_tokens", b.trained_tokens},
                         {"value", v}});
    }
    jobs_out.push_back({{"job", id},
                        {"cpu_seconds", double(j.cpu_us) / 1e6},
                        {"flops", j.flops},
                        {"energy_joules", double(j.energy_uj) / 1e6},
                        {"trained_tokens", j.tokens},
                        {"ended_at", format_iso8601(j.end_ms)},
                        {"cost", cost},
                        {"parts", pj},
                        {"contributions", contrib}});
  }
  // Revenue of the public custom versions, per span of constant shares.
  json rev_out = json::array();
  bool any_public = false;
  for (auto& [_, m] : c.models) any_public |= m.public_from_ms > 0;
  if (any_public) {
    UsageQuery q;
    q.from_ms = from, q.to_ms = to;
    CORRAL_ASSIGN_OR_RETURN(auto recs, l.usage(q));
    CORRAL_ASSIGN_OR_RETURN(auto prices, l.list_prices());
    CORRAL_ASSIGN_OR_RETURN(auto shares, l.list_shares());
    for (auto& [mid, m] : c.models) {
      if (m.public_from_ms <= 0) continue;
      std::map<std::vector<int64_t>, std::vector<UsageRecord>> spans;
      for (auto& r : recs)
        if (r.model == mid && r.started_ms >= std::max(from, m.public_from_ms) && r.started_ms < to)
          spans[weights_at(r.started_ms)].push_back(r);
      for (auto& [w, rs] : spans) {
        CORRAL_ASSIGN_OR_RETURN(Statement st, build_statement(from, to, rs, prices, shares, {}));
        StatementTotals t;
        for (auto& line : st.lines) t.add(line.t);
        const auto parts = split_largest_remainder(t.net, w);
        json pj = json::array();
        for (size_t i = 0; i < orgs.size(); ++i) {
          revenue[orgs[i]] += parts[i];
          pj.push_back({{"member", orgs[i]}, {"amount", parts[i]}});
        }
        rev_out.push_back({{"model", mid},
                           {"requests", t.requests},
                           {"amount", t.amount},
                           {"licensor_share", t.share},
                           {"net", t.net},
                           {"share_bp", w},
                           {"parts", pj}});
      }
    }
  }
  json members = json::array();
  for (auto& org : orgs) {
    if (!member.empty() && org != member) continue;
    const int64_t bal = money[org] + compute[org] - costs[org] + revenue[org];
    members.push_back({{"member", org},
                       {"tenants", c.members.at(org).tenants},
                       {"share_bp", c.members.at(org).share_at(to - 1)},
                       {"money", money[org]},
                       {"compute", compute[org]},
                       {"costs", costs[org]},
                       {"revenue", revenue[org]},
                       {"balance", bal}});
  }
  json out = {{"consortium", name},
              {"from", format_iso8601(from)},
              {"to", format_iso8601(to)},
              {"currency", c.currency},
              {"compute_price", c.compute_price},
              {"members", members},
              {"jobs", jobs_out},
              {"revenue", rev_out}};
  if (!member.empty()) out["member"] = member;
  out["digest"] = statement_digest(out);
  return out;
}

std::string consortium_statement_csv(const json& st) {
  std::string s = "member,share_bp,money,compute,costs,revenue,balance\n";
  for (auto& m : st["members"])
    s += m["member"].get<std::string>() + "," + std::to_string(m["share_bp"].get<int64_t>()) + "," +
         format_micros(m["money"]) + "," + format_micros(m["compute"]) + "," +
         format_micros(m["costs"]) + "," + format_micros(m["revenue"]) + "," +
         format_micros(m["balance"]) + "\n";
  s += "\njob,cpu_seconds,flops,cost";
  for (auto& m : st["members"]) s += "," + m["member"].get<std::string>();
  s += "\n";
  for (auto& j : st["jobs"]) {
    char cpu[32];
    std::snprintf(cpu, sizeof cpu, "%.3f", j["cpu_seconds"].get<double>());
    s += j["job"].get<std::string>() + "," + cpu + "," + std::to_string(j["flops"].get<int64_t>()) +
         "," + format_micros(j["cost"]);
    for (auto& m : st["members"])
      for (auto& p : j["parts"])
        if (p["member"] == m["member"]) s += "," + format_micros(p["amount"]);
    s += "\n";
  }
  s += "\ndigest," + st["digest"].get<std::string>() + "\n";
  return s;
}

json consortium_json(const Consortium& c) {
  json members = json::array();
  for (auto& [org, m] : c.members) {
    json versions = json::array();
    for (auto& v : m.shares)
      versions.push_back({{"share_bp", v.basis_points}, {"from", format_iso8601(v.from_ms)}});
    members.push_back({{"member", org},
                       {"tenants", m.tenants},
                       {"share_bp", m.share_at(now_ms())},
                       {"versions", versions}});
  }
  json models = json::array();
  for (auto& [id, m] : c.models)
    models.push_back(
        {{"model_id", id}, {"adapter", m.adapter}, {"base", m.base}, {"public", m.is_public}});
  int64_t money = 0;
  for (auto& m : c.money) money += m.amount;
  return {{"consortium", c.name},
          {"currency", c.currency},
          {"compute_price", c.compute_price},
          {"created_at", format_iso8601(c.created_ms)},
          {"members", members},
          {"models", models},
          {"money", money},
          {"compute_records", c.compute.size()}};
}

}  // namespace corral
