// corral consortium create|member add|contribute|model add|list|show|statement: consortia of
// organisations sharing the cost of training custom versions (hosting/consortium.h). Every
// change is one event appended to the ledger's consortium journal.
#include "hosting/consortium.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "cli/hosting_flags.h"
#include "hosting/signing.h"
#include "hosting/statement.h"

namespace corral::cli {

namespace {

struct ConsortiumArgs {
  std::string ledger, name, org, currency = "USD", compute_price, share = "0", amount, at, ref;
  std::vector<std::string> tenants;
  std::string model_id, adapter, base, from, to, member, format = "json", out, key;
  bool is_public = false, json = false;
};

Status check_name(const std::string& what, const std::string& s) {
  if (s.empty() || s.size() > 64) return make_error(what + " must be 1 to 64 characters");
  for (unsigned char c : s)
    if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.'))
      return make_error(what + " '" + s + "': only letters, digits, '-', '_' and '.'");
  return Status::ok();
}

Status create(ConsortiumArgs& a) {
  CORRAL_RETURN_IF_ERROR(check_name("NAME", a.name));
  CORRAL_ASSIGN_OR_RETURN(int64_t price,
                          parse_decimal_scaled(a.compute_price, 6, "--compute-price"));
  std::string cur;
  for (char c : a.currency) cur += char(std::toupper((unsigned char)c));
  if (cur.size() != 3 ||
      !std::all_of(cur.begin(), cur.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
    return make_error("--currency: '" + a.currency + "' is not a three-letter ISO 4217 code");
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_RETURN_IF_ERROR(append_consortium(
      *l, a.name, "create", {{"currency", cur}, {"compute_price", price}}, now_ms()));
  std::printf("consortium %s: compute at %s %s per CPU hour\n", a.name.c_str(),
              format_micros(price).c_str(), cur.c_str());
  return Status::ok();
}

Status member_add(ConsortiumArgs& a) {
  CORRAL_RETURN_IF_ERROR(check_name("ORG", a.org));
  if (a.tenants.empty()) return make_error("--tenant: give at least one of the member's tenants");
  CORRAL_ASSIGN_OR_RETURN(int64_t bp, parse_decimal_scaled(a.share, 2, "--share"));
  CORRAL_ASSIGN_OR_RETURN(int64_t at, time_flag("--at", a.at, now_ms()));
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_RETURN_IF_ERROR(append_consortium(
      *l, a.name, "member", {{"org", a.org}, {"tenants", a.tenants}, {"share_bp", bp}}, at));
  std::printf(
      "member %s of %s: share %s%% from %s, tenants", a.org.c_str(), a.name.c_str(),
      (std::to_string(bp / 100) + "." + (bp % 100 < 10 ? "0" : "") + std::to_string(bp % 100))
          .c_str(),
      format_iso8601(at).c_str());
  for (auto& t : a.tenants) std::printf(" %s", t.c_str());
  std::printf("\n");
  return Status::ok();
}

Status contribute(ConsortiumArgs& a) {
  CORRAL_ASSIGN_OR_RETURN(int64_t amount, parse_decimal_scaled(a.amount, 6, "--amount"));
  if (amount <= 0) return make_error("--amount: must be positive");
  CORRAL_ASSIGN_OR_RETURN(int64_t at, time_flag("--at", a.at, now_ms()));
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_RETURN_IF_ERROR(append_consortium(
      *l, a.name, "contribution", {{"org", a.org}, {"amount", amount}, {"ref", a.ref}}, at));
  std::printf("%s contributed %s to %s at %s\n", a.org.c_str(), format_micros(amount).c_str(),
              a.name.c_str(), format_iso8601(at).c_str());
  return Status::ok();
}

Status model_add(ConsortiumArgs& a) {
  if (a.model_id.empty() || a.model_id.size() > 256)
    return make_error("MODEL_ID must be 1 to 256 characters");
  if (a.base.empty()) return make_error("--base: the id of the served base model is required");
  std::ifstream f(a.adapter);
  if (!f) return make_error(a.adapter + ": cannot open");
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_RETURN_IF_ERROR(
      append_consortium(*l, a.name, "model",
                        {{"model_id", a.model_id},
                         {"adapter", std::filesystem::absolute(a.adapter).string()},
                         {"base", a.base},
                         {"public", a.is_public}},
                        now_ms()));
  std::printf("model %s of %s over %s: %s\n", a.model_id.c_str(), a.name.c_str(), a.base.c_str(),
              a.is_public ? "public (revenue shared with the members)" : "members only");
  return Status::ok();
}

Status show(ConsortiumArgs& a, bool all) {
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_ASSIGN_OR_RETURN(auto ev, l->consortium_events(all ? "" : a.name));
  CORRAL_ASSIGN_OR_RETURN(auto cs, fold_consortia(ev));
  if (!all && !cs.count(a.name)) return make_error("no consortium named '" + a.name + "'");
  nlohmann::json arr = nlohmann::json::array();
  for (auto& [_, c] : cs) arr.push_back(consortium_json(c));
  if (a.json) {
    std::printf("%s\n", (all ? arr : arr[0]).dump().c_str());
    return Status::ok();
  }
  for (auto& c : arr) {
    std::printf("%s (%s, compute %s per CPU hour)\n", c["consortium"].get<std::string>().c_str(),
                c["currency"].get<std::string>().c_str(),
                format_micros(c["compute_price"]).c_str());
    for (auto& m : c["members"]) {
      std::printf("  member %-20s share %6lld bp  tenants", m["member"].get<std::string>().c_str(),
                  (long long)m["share_bp"].get<int64_t>());
      for (auto& t : m["tenants"]) std::printf(" %s", t.get<std::string>().c_str());
      std::printf("\n");
    }
    for (auto& m : c["models"])
      std::printf("  model  %-20s over %s (%s)\n", m["model_id"].get<std::string>().c_str(),
                  m["base"].get<std::string>().c_str(),
                  m["public"].get<bool>() ? "public" : "members only");
  }
  return Status::ok();
}

Status statement(ConsortiumArgs& a) {
  CORRAL_ASSIGN_OR_RETURN(int64_t from, time_flag("--from", a.from, 0));
  CORRAL_ASSIGN_OR_RETURN(int64_t to, time_flag("--to", a.to, 0));
  if (a.from.empty() || a.to.empty()) return make_error("--from and --to are required");
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_ASSIGN_OR_RETURN(nlohmann::json st, consortium_statement(*l, a.name, from, to, a.member));
  std::string text;
  if (a.format == "json")
    text = st.dump(2) + "\n";
  else if (a.format == "csv")
    text = consortium_statement_csv(st);
  else if (a.format == "pdf") {
    if (a.out.empty() && isatty(1))
      return make_error("--format pdf: give -o FILE.pdf (or redirect standard output)");
    CORRAL_ASSIGN_OR_RETURN(text, consortium_statement_pdf(st));
  } else
    return make_error("--format: '" + a.format + "' (json, csv or pdf)");
  if (a.out.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return Status::ok();
  }
  std::ofstream f(a.out, std::ios::binary);
  f << text;
  if (!f.flush()) return make_error("-o " + a.out + ": cannot write");
  return Status::ok();
}

Status close(ConsortiumArgs& a) {
  CORRAL_ASSIGN_OR_RETURN(int64_t from, time_flag("--from", a.from, 0));
  CORRAL_ASSIGN_OR_RETURN(int64_t to, time_flag("--to", a.to, 0));
  const std::string key_path = a.key.empty() ? default_key_path() : a.key;
  auto key = read_signing_key(key_path);
  if (!key.is_ok())
    return make_error(key.message() + " (make the host's key with: corral statement keygen)");
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_ASSIGN_OR_RETURN(auto closed, consortium_closed(*l, a.name));
  for (auto& c : closed)
    if (c.from_ms < to && from < c.to_ms)
      return make_error("the period overlaps the closed period " + format_iso8601(c.from_ms) +
                        " .. " + format_iso8601(c.to_ms));
  CORRAL_ASSIGN_OR_RETURN(nlohmann::json st, consortium_statement(*l, a.name, from, to, ""));
  const std::string digest = st["digest"];
  CORRAL_ASSIGN_OR_RETURN(std::string sig, sign_hex(*key, digest));
  st["signature"] = {{"algorithm", "ed25519"},
                     {"public_key", key->public_hex},
                     {"signed", "digest"},
                     {"value", sig}};
  const std::string body = st.dump();
  CORRAL_RETURN_IF_ERROR(append_consortium(
      *l, a.name, "close", {{"from_ms", from}, {"to_ms", to}, {"statement", body}}, now_ms()));
  std::fprintf(stderr, "closed %s .. %s of %s: digest %s, signed with key %s\n",
               format_iso8601(from).c_str(), format_iso8601(to).c_str(), a.name.c_str(),
               digest.c_str(), key->public_hex.c_str());
  const std::string text = nlohmann::json::parse(body).dump(2) + "\n";
  if (a.out.empty())
    std::fwrite(text.data(), 1, text.size(), stdout);
  else
    std::ofstream(a.out) << text;
  return Status::ok();
}

}  // namespace

Action add_consortium(CLI::App& app) {
  auto* sub = app.add_subcommand("consortium",
                                 "Consortia: members sharing training costs, compute in kind, "
                                 "custom versions and their revenue");
  sub->require_subcommand(1);
  auto a = std::make_shared<ConsortiumArgs>();
  auto action = std::make_shared<Action>();
  auto* c = sub->add_subcommand("create", "Create a consortium");
  c->add_option("NAME", a->name)->required();
  c->add_option("--compute-price", a->compute_price,
                "value of a CPU hour of compute given in kind (decimal)")
      ->required();
  c->add_option("--currency", a->currency, "ISO 4217 (default USD)");
  c->callback([=] { *action = [a] { return create(*a); }; });
  auto* m = sub->add_subcommand("member", "Members")->require_subcommand(1);
  auto* ma = m->add_subcommand(
      "add", "Add a member (an organisation and its tenants), or a new share version of one");
  ma->add_option("NAME", a->name)->required();
  ma->add_option("ORG", a->org)->required();
  ma->add_option("--tenant", a->tenants, "a tenant of the organisation (repeatable)")->required();
  ma->add_option("--share", a->share, "its share in percent (up to 2 decimals; default 0)");
  ma->add_option("--at", a->at, "from when (ISO 8601; default now)");
  ma->callback([=] { *action = [a] { return member_add(*a); }; });
  auto* co = sub->add_subcommand("contribute", "Record a money contribution");
  co->add_option("NAME", a->name)->required();
  co->add_option("ORG", a->org)->required();
  co->add_option("--amount", a->amount, "decimal amount in the consortium's currency")->required();
  co->add_option("--at", a->at, "when (ISO 8601; default now)");
  co->add_option("--ref", a->ref, "a reference (invoice, transfer)");
  co->callback([=] { *action = [a] { return contribute(*a); }; });
  auto* mo = sub->add_subcommand("model", "Custom versions")->require_subcommand(1);
  auto* moa = mo->add_subcommand(
      "add", "Register an adapter as a consortium model (again: replace its entry)");
  moa->add_option("NAME", a->name)->required();
  moa->add_option("MODEL_ID", a->model_id)->required();
  moa->add_option("ADAPTER", a->adapter, "the adapter (GGUF)")->required();
  moa->add_option("--base", a->base, "the served base model's id")->required();
  moa->add_flag("--public", a->is_public,
                "open it to every tenant at its price (revenue shared with the members)");
  moa->callback([=] { *action = [a] { return model_add(*a); }; });
  auto* li = sub->add_subcommand("list", "List the consortia");
  li->add_flag("--json", a->json, "JSON");
  li->callback([=] { *action = [a] { return show(*a, true); }; });
  auto* sh = sub->add_subcommand("show", "One consortium");
  sh->add_option("NAME", a->name)->required();
  sh->add_flag("--json", a->json, "JSON");
  sh->callback([=] { *action = [a] { return show(*a, false); }; });
  auto* st =
      sub->add_subcommand("statement", "Contributions, costs, revenue and balances of a period");
  st->add_option("NAME", a->name)->required();
  st->add_option("--from", a->from, "period start (ISO 8601)")->required();
  st->add_option("--to", a->to, "period end, exclusive (ISO 8601)")->required();
  st->add_option("--member", a->member, "one member only");
  st->add_option("--format", a->format, "json, csv or pdf (default json)");
  st->add_option("-o,--out", a->out, "write to FILE");
  st->callback([=] { *action = [a] { return statement(*a); }; });
  auto* cl = sub->add_subcommand(
      "close", "Close a period: its statement signed with the host's key and kept as it is");
  cl->add_option("NAME", a->name)->required();
  cl->add_option("--from", a->from, "period start (ISO 8601)")->required();
  cl->add_option("--to", a->to, "period end, exclusive (ISO 8601)")->required();
  cl->add_option("--key", a->key,
                 "the Ed25519 key (default $CORRAL_STATEMENT_KEY, else ./corral-statement.key)");
  cl->add_option("-o,--out", a->out, "write the signed statement to FILE");
  cl->callback([=] { *action = [a] { return close(*a); }; });
  for (auto* s : {c, ma, co, moa, li, sh, st, cl}) add_ledger_flag(s, a->ledger);
  return [action] { return *action ? (*action)() : make_error("consortium: give a subcommand"); };
}

}  // namespace corral::cli
