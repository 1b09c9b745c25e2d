// corral price set|list and corral share set|list: versioned prices per model (micro-units per
// million tokens) and the licensor's share per license family (basis points).
#include <cstdio>

#include "cli/hosting_flags.h"
#include "hosting/license.h"
#include "hosting/statement.h"

namespace corral::cli {

namespace {

struct PriceArgs {
  std::string ledger, model, input, output, cached, currency = "USD", from, family, percent;
  bool json = false;
};

Status price_set(PriceArgs& a) {
  if (a.model.empty() || a.model.size() > 256)
    return make_error("MODEL_ID must be 1 to 256 characters");
  for (unsigned char c : a.model)
    if (c < 0x20 || c == 0x7f) return make_error("MODEL_ID must not contain control characters");
  PriceVersion p;
  p.model = a.model;
  CORRAL_ASSIGN_OR_RETURN(p.input_micros, parse_decimal_scaled(a.input, 6, "--input"));
  CORRAL_ASSIGN_OR_RETURN(p.output_micros, parse_decimal_scaled(a.output, 6, "--output"));
  if (a.cached.empty()) {
    p.cached_micros = p.input_micros;
  } else {
    CORRAL_ASSIGN_OR_RETURN(p.cached_micros, parse_decimal_scaled(a.cached, 6, "--cached"));
  }
  std::string cur;
  for (char c : a.currency) cur += char(std::toupper((unsigned char)c));
  if (cur.size() != 3 ||
      !std::all_of(cur.begin(), cur.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
    return make_error("--currency: '" + a.currency + "' is not a three-letter ISO 4217 code");
  p.currency = cur;
  CORRAL_ASSIGN_OR_RETURN(p.from_ms, time_flag("--from", a.from, now_ms()));
  p.created_ms = now_ms();
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_ASSIGN_OR_RETURN(int64_t v, l->add_price(p));
  std::printf(
      "price version %lld for %s from %s: input %s, cached %s, output %s %s per million "
      "tokens\n",
      (long long)v, p.model.c_str(), format_iso8601(p.from_ms).c_str(),
      format_micros(p.input_micros).c_str(), format_micros(p.cached_micros).c_str(),
      format_micros(p.output_micros).c_str(), p.currency.c_str());
  return Status::ok();
}

Status price_list(PriceArgs& a) {
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_ASSIGN_OR_RETURN(auto ps, l->list_prices());
  if (a.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (auto& p : ps)
      arr.push_back({{"version", p.version},
                     {"model", p.model},
                     {"currency", p.currency},
                     {"input_micros", p.input_micros},
                     {"cached_micros", p.cached_micros},
                     {"output_micros", p.output_micros},
                     {"from", format_iso8601(p.from_ms)},
                     {"created_at", format_iso8601(p.created_ms)}});
    std::printf("%s\n", arr.dump().c_str());
    return Status::ok();
  }
  std::printf("%-8s %-28s %-25s %14s %14s %14s %s\n", "version", "model", "from", "input/1M",
              "cached/1M", "output/1M", "currency");
  for (auto& p : ps)
    std::printf("%-8lld %-28s %-25s %14s %14s %14s %s\n", (long long)p.version, p.model.c_str(),
                format_iso8601(p.from_ms).c_str(), format_micros(p.input_micros).c_str(),
                format_micros(p.cached_micros).c_str(), format_micros(p.output_micros).c_str(),
                p.currency.c_str());
  return Status::ok();
}

Status share_set(PriceArgs& a) {
  if (!find_license(a.family))
    return make_error("unknown license family '" + a.family +
                      "' (one of: " + license_family_names() + ")");
  ShareVersion v;
  v.family = a.family;
  CORRAL_ASSIGN_OR_RETURN(v.basis_points, parse_decimal_scaled(a.percent, 2, "--percent"));
  if (v.basis_points > 10000) return make_error("--percent: '" + a.percent + "' is over 100");
  CORRAL_ASSIGN_OR_RETURN(v.from_ms, time_flag("--from", a.from, now_ms()));
  v.created_ms = now_ms();
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_ASSIGN_OR_RETURN(int64_t n, l->add_share(v));
  std::printf("share version %lld for %s from %s: %lld basis points (%s%%)\n", (long long)n,
              v.family.c_str(), format_iso8601(v.from_ms).c_str(), (long long)v.basis_points,
              a.percent.c_str());
  return Status::ok();
}

Status share_list(PriceArgs& a) {
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_ASSIGN_OR_RETURN(auto vs, l->list_shares());
  if (a.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (auto& v : vs)
      arr.push_back({{"version", v.version},
                     {"family", v.family},
                     {"basis_points", v.basis_points},
                     {"from", format_iso8601(v.from_ms)},
                     {"created_at", format_iso8601(v.created_ms)}});
    std::printf("%s\n", arr.dump().c_str());
    return Status::ok();
  }
  std::printf("%-8s %-10s %-25s %s\n", "version", "family", "from", "basis points");
  for (auto& v : vs)
    std::printf("%-8lld %-10s %-25s %lld\n", (long long)v.version, v.family.c_str(),
                format_iso8601(v.from_ms).c_str(), (long long)v.basis_points);
  return Status::ok();
}

}  // namespace

Action add_price(CLI::App& app) {
  auto* sub = app.add_subcommand("price", "Prices per model, versioned: set, list");
  sub->require_subcommand(1);
  auto a = std::make_shared<PriceArgs>();
  auto action = std::make_shared<Action>();
  auto* set = sub->add_subcommand("set", "A new price version for a served model id");
  set->add_option("MODEL_ID", a->model, "the model id as served")->required();
  set->add_option("--input", a->input, "per million uncached prompt tokens, e.g. 0.10")->required();
  set->add_option("--output", a->output, "per million completion tokens")->required();
  set->add_option("--cached", a->cached, "per million cached prompt tokens (default: --input)");
  set->add_option("--currency", a->currency, "ISO 4217 code (default USD)");
  set->add_option("--from", a->from, "in force from (ISO-8601; default now)");
  add_ledger_flag(set, a->ledger);
  set->callback([a, action] { *action = [a] { return price_set(*a); }; });
  auto* list = sub->add_subcommand("list", "Every price version");
  list->add_flag("--json", a->json, "JSON array (micro-units per million tokens)");
  add_ledger_flag(list, a->ledger);
  list->callback([a, action] { *action = [a] { return price_list(*a); }; });
  return [action] { return (*action)(); };
}

Action add_share(CLI::App& app) {
  auto* sub = app.add_subcommand("share", "The licensor's revenue share per license family");
  sub->require_subcommand(1);
  auto a = std::make_shared<PriceArgs>();
  auto action = std::make_shared<Action>();
  auto* set = sub->add_subcommand("set", "A new share version for a license family");
  set->add_option("FAMILY", a->family, "llama2, llama3, llama3.1, llama3.2, llama3.3, llama4")
      ->required();
  set->add_option("--percent", a->percent, "percent of revenue, at most 2 decimals")->required();
  set->add_option("--from", a->from, "in force from (ISO-8601; default now)");
  add_ledger_flag(set, a->ledger);
  set->callback([a, action] { *action = [a] { return share_set(*a); }; });
  auto* list = sub->add_subcommand("list", "Every share version");
  list->add_flag("--json", a->json, "JSON array");
  add_ledger_flag(list, a->ledger);
  list->callback([a, action] { *action = [a] { return share_list(*a); }; });
  return [action] { return (*action)(); };
}

}  // namespace corral::cli
