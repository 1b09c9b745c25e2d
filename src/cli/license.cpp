// corral license grant|list|check|terms: licences the licensor granted tenants, the naming rule
// for a served id, and the license terms Corral ships (data/licenses.json).
#include "hosting/license.h"

#include <cstdio>

#include "cli/hosting_flags.h"
#include "format/model_file.h"

namespace corral::cli {

namespace {

struct LicenseArgs {
  std::string ledger, tenant, family, ref, model, id, license;
  bool json = false;
};

Status grant(LicenseArgs& a) {
  CORRAL_RETURN_IF_ERROR(validate_tenant_name(a.tenant));
  if (!find_license(a.family))
    return make_error("unknown license family '" + a.family +
                      "' (one of: " + license_family_names() + ")");
  if (a.ref.empty() || a.ref.size() > 1000)
    return make_error("--ref: the licensor's reference must be 1 to 1000 characters");
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_ASSIGN_OR_RETURN(auto t, l->get_tenant(a.tenant));
  if (!t) return make_error("no tenant named '" + a.tenant + "'");
  CORRAL_RETURN_IF_ERROR(l->add_grant({a.tenant, a.family, a.ref, now_ms()}));
  std::printf("licence for %s recorded for tenant %s (ref: %s)\n", a.family.c_str(),
              a.tenant.c_str(), a.ref.c_str());
  return Status::ok();
}

Status list(LicenseArgs& a) {
  CORRAL_ASSIGN_OR_RETURN(auto l, open_ledger(a.ledger));
  CORRAL_ASSIGN_OR_RETURN(auto gs, l->list_grants(a.tenant));
  if (a.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (auto& g : gs)
      arr.push_back({{"tenant", g.tenant},
                     {"family", g.family},
                     {"ref", g.ref},
                     {"granted_at", format_iso8601(g.created_ms)}});
    std::printf("%s\n", arr.dump().c_str());
    return Status::ok();
  }
  std::printf("%-24s %-10s %-25s %s\n", "tenant", "family", "granted", "ref");
  for (auto& g : gs)
    std::printf("%-24s %-10s %-25s %s\n", g.tenant.c_str(), g.family.c_str(),
                format_iso8601(g.created_ms).c_str(), g.ref.c_str());
  return Status::ok();
}

Status check(LicenseArgs& a) {
  CORRAL_ASSIGN_OR_RETURN(LoadedModel m, load_model(a.model, LoadOptions{}));
  std::string lic = a.license;
  if (lic.empty()) lic = m.meta.get_str("general.license").value_or("");
  if (lic.empty()) lic = hf_folder_license(a.model);
  const ModelLicense ml = model_license(
      lic, a.license.empty() ? m.meta.get_str("general.license.name").value_or("") : "",
      a.license.empty() ? m.meta.get_str("general.license.link").value_or("") : "", m.meta.arch());
  if (ml.family.empty()) {
    std::printf("%s: no Llama license recorded (general.license: %s); no naming rule applies\n",
                a.model.c_str(), lic.empty() ? "(none)" : lic.c_str());
    return Status::ok();
  }
  const std::string id = a.id.empty() ? m.meta.get_str("general.name").value_or("") : a.id;
  if (auto w = naming_warning(ml, id)) {
    std::fprintf(stderr, "warning: %s\n", w->c_str());
    std::printf("%s (%s): warning: %s\n", a.model.c_str(), ml.family.c_str(), w->c_str());
    return Status::ok();
  }
  const LicenseTerms* t = find_license(ml.family);
  std::printf("%s (%s): ok: the id '%s' %s\n", a.model.c_str(), ml.family.c_str(), id.c_str(),
              t->name_prefix.empty() ? "is not subject to a naming rule"
                                     : ("begins with \"" + t->name_prefix + "\"").c_str());
  return Status::ok();
}

Status terms(LicenseArgs& a) {
  if (a.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (auto& t : license_terms())
      arr.push_back({{"family", t.family},
                     {"name", t.name},
                     {"link", t.link},
                     {"effective", t.effective},
                     {"mau_limit", t.mau_limit},
                     {"attribution", t.attribution},
                     {"notice", t.notice},
                     {"name_prefix", t.name_prefix},
                     {"outputs_may_improve_other_llms", t.outputs_may_improve_other_llms},
                     {"eu_multimodal_excluded", t.eu_multimodal_excluded},
                     {"multimodal", t.multimodal}});
    std::printf("%s\n", arr.dump(2).c_str());
    return Status::ok();
  }
  for (auto& t : license_terms())
    std::printf(
        "%-9s %s (effective %s)\n  MAU clause: > %lld needs a licence from Meta\n  "
        "attribution: %s\n  derivative names begin with: %s\n  outputs may improve other "
        "LLMs: %s\n  EU excluded from multimodal models: %s\n  notice: %s\n",
        t.family.c_str(), t.name.c_str(), t.effective.c_str(), (long long)t.mau_limit,
        t.attribution.empty() ? "(none)" : t.attribution.c_str(),
        t.name_prefix.empty() ? "(no rule)" : t.name_prefix.c_str(),
        t.outputs_may_improve_other_llms ? "yes" : "no", t.eu_multimodal_excluded ? "yes" : "no",
        t.notice.c_str());
  return Status::ok();
}

}  // namespace

Action add_license(CLI::App& app) {
  auto* sub = app.add_subcommand("license", "Llama license terms: grant, list, check, terms");
  sub->require_subcommand(1);
  auto a = std::make_shared<LicenseArgs>();
  auto action = std::make_shared<Action>();
  auto* g = sub->add_subcommand("grant", "Record a licence the licensor granted a tenant");
  g->add_option("TENANT", a->tenant, "tenant name")->required();
  g->add_option("FAMILY", a->family, "license family (llama2 ... llama4)")->required();
  g->add_option("--ref", a->ref, "the licensor's reference for the licence")->required();
  add_ledger_flag(g, a->ledger);
  g->callback([a, action] { *action = [a] { return grant(*a); }; });
  auto* l = sub->add_subcommand("list", "Licences granted");
  l->add_option("--tenant", a->tenant, "only this tenant");
  l->add_flag("--json", a->json, "JSON array");
  add_ledger_flag(l, a->ledger);
  l->callback([a, action] { *action = [a] { return list(*a); }; });
  auto* c = sub->add_subcommand("check", "Warn where a served id breaks the naming rule");
  c->add_option("MODEL", a->model, "model file or folder")->required();
  c->add_option("--id", a->id, "the id it is (to be) served under (default: general.name)");
  c->add_option("--license", a->license, "license family, when the model does not say");
  c->callback([a, action] { *action = [a] { return check(*a); }; });
  auto* t = sub->add_subcommand("terms", "The license terms Corral enforces (data/licenses.json)");
  t->add_flag("--json", a->json, "JSON array");
  t->callback([a, action] { *action = [a] { return terms(*a); }; });
  return [action] { return (*action)(); };
}

}  // namespace corral::cli
