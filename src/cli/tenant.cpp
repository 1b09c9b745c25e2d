// corral tenant add|list|set and corral key create|list|revoke: the tenants and keys of a ledger.
#include <cstdio>

#include "cli/hosting_flags.h"

namespace corral::cli {

namespace {

struct TenantArgs {
  std::string ledger, name, country, suspended;
  int64_t mau = -1, rpm = -1, tpm = -1, max_concurrent = -1, monthly = -1;
  bool json = false;
  std::string models, expires, key_id;
};

Status check_non_negative(int64_t v, const char* flag) {
  if (v < -1) return make_error(std::string(flag) + ": must be 0 or more");
  return Status::ok();
}

std::string lim(int64_t v) {
  return v > 0 ? std::to_string(v) : "-";
}

Status tenant_add(TenantArgs& a) {
  CORRAL_RETURN_IF_ERROR(validate_tenant_name(a.name));
  CORRAL_RETURN_IF_ERROR(check_non_negative(a.mau, "--mau"));
  Tenant t;
  t.name = a.name;
  t.mau = std::max<int64_t>(a.mau, 0);
  if (!a.country.empty()) {
    CORRAL_ASSIGN_OR_RETURN(t.country, normalize_country(a.country));
  }
  t.created_ms = now_ms();
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_RETURN_IF_ERROR(l->create_tenant(t));
  CORRAL_ASSIGN_OR_RETURN(NewKey k, create_api_key(*l, t.name, {}, 0));
  if (a.json) {
    std::printf("%s\n",
                nlohmann::json{{"tenant", t.name}, {"key_id", k.key_id}, {"api_key", k.secret}}
                    .dump()
                    .c_str());
  } else {
    std::printf("tenant %s created\nkey %s: %s\n", t.name.c_str(), k.key_id.c_str(),
                k.secret.c_str());
    std::fprintf(stderr, "the key is shown only now; store it\n");
  }
  return Status::ok();
}

Status tenant_list(TenantArgs& a) {
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_ASSIGN_OR_RETURN(auto ts, l->list_tenants(month_start_ms(now_ms())));
  if (a.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (auto& t : ts) arr.push_back(tenant_json(t));
    std::printf("%s\n", arr.dump().c_str());
    return Status::ok();
  }
  std::printf("%-24s %-9s %-4s %-9s %-7s %-9s %-6s %-22s %s\n", "tenant", "mau", "cc", "state",
              "rpm", "tpm", "conc", "tokens this month", "monthly limit");
  for (auto& t : ts) {
    const int64_t used = t.month_prompt_tokens + t.month_completion_tokens;
    std::string month = std::to_string(used);
    if (t.limits.monthly_tokens > 0)
      month += " (" + std::to_string(used * 100 / t.limits.monthly_tokens) + "%)";
    std::printf("%-24s %-9lld %-4s %-9s %-7s %-9s %-6s %-22s %s\n", t.name.c_str(),
                (long long)t.mau, t.country.empty() ? "-" : t.country.c_str(),
                t.suspended ? "suspended" : "active", lim(t.limits.rpm).c_str(),
                lim(t.limits.tpm).c_str(), lim(t.limits.max_concurrent).c_str(), month.c_str(),
                lim(t.limits.monthly_tokens).c_str());
  }
  return Status::ok();
}

Status tenant_set(TenantArgs& a) {
  CORRAL_RETURN_IF_ERROR(validate_tenant_name(a.name));
  TenantPatch p;
  for (auto [v, f, dst] : {std::tuple{a.rpm, "--rpm", &p.rpm}, std::tuple{a.tpm, "--tpm", &p.tpm},
                           std::tuple{a.max_concurrent, "--max-concurrent", &p.max_concurrent},
                           std::tuple{a.monthly, "--monthly-tokens", &p.monthly_tokens},
                           std::tuple{a.mau, "--mau", &p.mau}}) {
    CORRAL_RETURN_IF_ERROR(check_non_negative(v, f));
    if (v >= 0) *dst = v;
  }
  if (!a.country.empty()) {
    CORRAL_ASSIGN_OR_RETURN(p.country, normalize_country(a.country));
  }
  if (!a.suspended.empty()) {
    if (a.suspended != "true" && a.suspended != "false")
      return make_error("--suspended: true or false");
    p.suspended = a.suspended == "true";
  }
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_RETURN_IF_ERROR(l->update_tenant(a.name, p));
  std::printf("tenant %s updated\n", a.name.c_str());
  return Status::ok();
}

Status key_create(TenantArgs& a) {
  CORRAL_RETURN_IF_ERROR(validate_tenant_name(a.name));
  std::vector<std::string> models;
  for (size_t p = 0; p < a.models.size();) {
    size_t e = a.models.find(',', p);
    if (e == std::string::npos) e = a.models.size();
    if (e > p) models.push_back(a.models.substr(p, e - p));
    p = e + 1;
  }
  CORRAL_ASSIGN_OR_RETURN(int64_t expires, time_flag("--expires", a.expires, 0));
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_ASSIGN_OR_RETURN(auto t, l->get_tenant(a.name));
  if (!t) return make_error("no tenant named '" + a.name + "'");
  CORRAL_ASSIGN_OR_RETURN(NewKey k, create_api_key(*l, a.name, models, expires));
  if (a.json)
    std::printf("%s\n",
                nlohmann::json{{"tenant", a.name}, {"key_id", k.key_id}, {"api_key", k.secret}}
                    .dump()
                    .c_str());
  else
    std::printf("key %s for %s: %s\n", k.key_id.c_str(), a.name.c_str(), k.secret.c_str());
  return Status::ok();
}

Status key_list(TenantArgs& a) {
  if (!a.name.empty()) CORRAL_RETURN_IF_ERROR(validate_tenant_name(a.name));
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_ASSIGN_OR_RETURN(auto ks, l->list_keys(a.name));
  if (a.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (auto& k : ks) arr.push_back(key_json(k));
    std::printf("%s\n", arr.dump().c_str());
    return Status::ok();
  }
  std::printf("%-21s %-24s %-9s %-25s %s\n", "key_id", "tenant", "state", "expires", "models");
  for (auto& k : ks) {
    std::string models;
    for (auto& m : k.models) models += (models.empty() ? "" : ",") + m;
    std::printf("%-21s %-24s %-9s %-25s %s\n", k.key_id.c_str(), k.tenant.c_str(),
                k.revoked_ms ? "revoked" : "active",
                k.expires_ms ? format_iso8601(k.expires_ms).c_str() : "never",
                models.empty() ? "all" : models.c_str());
  }
  return Status::ok();
}

Status key_revoke(TenantArgs& a) {
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_RETURN_IF_ERROR(l->revoke_key(a.key_id, now_ms()));
  std::printf("key %s revoked\n", a.key_id.c_str());
  return Status::ok();
}

}  // namespace

Action add_tenant(CLI::App& app) {
  auto* sub = app.add_subcommand("tenant", "Tenants of a ledger: add, list, set");
  sub->require_subcommand(1);
  auto a = std::make_shared<TenantArgs>();
  auto action = std::make_shared<Action>();
  auto* add = sub->add_subcommand("add", "Create a tenant and its first key (printed once)");
  add->add_option("NAME", a->name, "tenant name")->required();
  add->add_option("--mau", a->mau, "monthly active users the tenant declares");
  add->add_option("--country", a->country, "country of the tenant (ISO 3166 alpha-2)");
  add->add_flag("--json", a->json, "JSON: {tenant, key_id, api_key}");
  add_ledger_flag(add, a->ledger);
  add->callback([a, action] { *action = [a] { return tenant_add(*a); }; });
  auto* list = sub->add_subcommand("list", "Tenants with this month's usage against their limits");
  list->add_flag("--json", a->json, "JSON array");
  add_ledger_flag(list, a->ledger);
  list->callback([a, action] { *action = [a] { return tenant_list(*a); }; });
  auto* set = sub->add_subcommand("set", "Change a tenant's limits, MAU, country or suspension");
  set->add_option("NAME", a->name, "tenant name")->required();
  set->add_option("--rpm", a->rpm, "requests per minute (0 = no limit)");
  set->add_option("--tpm", a->tpm, "tokens per minute (0 = no limit)");
  set->add_option("--max-concurrent", a->max_concurrent, "requests at once (0 = no limit)");
  set->add_option("--monthly-tokens", a->monthly, "tokens per calendar month, UTC (0 = no limit)");
  set->add_option("--mau", a->mau, "monthly active users");
  set->add_option("--country", a->country, "ISO 3166 alpha-2");
  set->add_option("--suspended", a->suspended, "true or false");
  add_ledger_flag(set, a->ledger);
  set->callback([a, action] { *action = [a] { return tenant_set(*a); }; });
  return [action] { return (*action)(); };
}

Action add_key(CLI::App& app) {
  auto* sub = app.add_subcommand("key", "API keys: create, list, revoke");
  sub->require_subcommand(1);
  auto a = std::make_shared<TenantArgs>();
  auto action = std::make_shared<Action>();
  auto* create = sub->add_subcommand("create", "Create a key for a tenant (printed once)");
  create->add_option("TENANT", a->name, "tenant name")->required();
  create->add_option("--models", a->models, "only these model ids (comma-separated)");
  create->add_option("--expires", a->expires, "expiry time, ISO-8601");
  create->add_flag("--json", a->json, "JSON: {tenant, key_id, api_key}");
  add_ledger_flag(create, a->ledger);
  create->callback([a, action] { *action = [a] { return key_create(*a); }; });
  auto* list = sub->add_subcommand("list", "Keys (never their secrets)");
  list->add_option("TENANT", a->name, "only this tenant's keys");
  list->add_flag("--json", a->json, "JSON array");
  add_ledger_flag(list, a->ledger);
  list->callback([a, action] { *action = [a] { return key_list(*a); }; });
  auto* revoke = sub->add_subcommand("revoke", "Revoke a key");
  revoke->add_option("KEY_ID", a->key_id, "key id (key_...)")->required();
  add_ledger_flag(revoke, a->ledger);
  revoke->callback([a, action] { *action = [a] { return key_revoke(*a); }; });
  return [action] { return (*action)(); };
}

}  // namespace corral::cli
