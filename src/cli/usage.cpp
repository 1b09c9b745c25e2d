// corral usage (records or per tenant and model totals) and corral ledger verify|reconcile.
#include <cstdio>
#include <map>

#include "cli/hosting_flags.h"
#include "hosting/statement.h"

namespace corral::cli {

namespace {

struct UsageArgs {
  std::string ledger, tenant, from, to, older_than;
  bool json = false;
};

Status usage(UsageArgs& a) {
  UsageQuery q;
  q.tenant = a.tenant;
  if (!a.tenant.empty()) CORRAL_RETURN_IF_ERROR(validate_tenant_name(a.tenant));
  CORRAL_ASSIGN_OR_RETURN(q.from_ms, time_flag("--from", a.from, q.from_ms));
  CORRAL_ASSIGN_OR_RETURN(q.to_ms, time_flag("--to", a.to, q.to_ms));
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_ASSIGN_OR_RETURN(auto recs, l->usage(q));
  if (a.json) {
    for (auto& r : recs)
      std::printf(
          "%s\n",
          usage_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return Status::ok();
  }
  struct Tot {
    int64_t requests = 0, prompt = 0, cached = 0, completion = 0;
  };
  std::map<std::pair<std::string, std::string>, Tot> tot;
  for (auto& r : recs) {
    Tot& t = tot[{r.tenant, r.model}];
    t.requests++, t.prompt += r.prompt_tokens, t.cached += r.cached_tokens,
        t.completion += r.completion_tokens;
  }
  std::printf("%-24s %-28s %9s %12s %12s %12s\n", "tenant", "model", "requests", "prompt", "cached",
              "completion");
  for (auto& [k, t] : tot)
    std::printf("%-24s %-28s %9lld %12lld %12lld %12lld\n", k.first.c_str(), k.second.c_str(),
                (long long)t.requests, (long long)t.prompt, (long long)t.cached,
                (long long)t.completion);
  return Status::ok();
}

Status verify(UsageArgs& a) {
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_ASSIGN_OR_RETURN(auto v, l->verify());
  // Closed statements: the stored body still hashes to the stored digest.
  CORRAL_ASSIGN_OR_RETURN(auto closed, l->closed_statements());
  for (auto& c : closed) {
    auto j = nlohmann::json::parse(c.body, nullptr, false);
    if (j.is_discarded() || statement_digest(j) != c.digest || j.value("digest", "") != c.digest)
      v.push_back("closed statement " + format_iso8601(c.from_ms) + " .. " +
                  format_iso8601(c.to_ms) + " does not hash to its stored digest");
  }
  for (auto& s : v) std::printf("violation: %s\n", s.c_str());
  if (!v.empty()) return make_error("ledger verify: " + std::to_string(v.size()) + " violation(s)");
  std::printf("ledger verify: ok\n");
  return Status::ok();
}

Status reconcile(UsageArgs& a) {
  if (a.older_than.empty())
    return make_error("ledger reconcile: --older-than DURATION is required (e.g. 1h)");
  CORRAL_ASSIGN_OR_RETURN(int64_t d, parse_duration_ms(a.older_than));
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  const int64_t now = now_ms();
  CORRAL_ASSIGN_OR_RETURN(int64_t n, l->interrupt_open("", now - d, now));
  std::printf("ledger reconcile: %lld open request(s) older than %s marked interrupted\n",
              (long long)n, a.older_than.c_str());
  return Status::ok();
}

}  // namespace

Action add_usage(CLI::App& app) {
  auto* sub =
      app.add_subcommand("usage", "Usage records of the ledger (or totals per tenant and model)");
  auto a = std::make_shared<UsageArgs>();
  sub->add_option("--tenant", a->tenant, "only this tenant");
  sub->add_option("--from", a->from, "records started at or after (ISO-8601)");
  sub->add_option("--to", a->to, "records started before (ISO-8601)");
  sub->add_flag("--json", a->json, "one JSON object per record and line");
  add_ledger_flag(sub, a->ledger);
  return [a] { return usage(*a); };
}

Action add_ledger(CLI::App& app) {
  auto* sub = app.add_subcommand("ledger", "Ledger maintenance: verify, reconcile");
  sub->require_subcommand(1);
  auto a = std::make_shared<UsageArgs>();
  auto action = std::make_shared<Action>();
  auto* v =
      sub->add_subcommand("verify", "Check the ledger's invariants; exit 1 naming any violation");
  add_ledger_flag(v, a->ledger);
  v->callback([a, action] { *action = [a] { return verify(*a); }; });
  auto* r = sub->add_subcommand("reconcile", "Close open requests of servers that never came back");
  r->add_option("--older-than", a->older_than,
                "only requests started longer ago than this (30m, 2h, 1d)")
      ->required();
  add_ledger_flag(r, a->ledger);
  r->callback([a, action] { *action = [a] { return reconcile(*a); }; });
  return [action] { return (*action)(); };
}

}  // namespace corral::cli
