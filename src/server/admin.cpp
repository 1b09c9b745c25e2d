// The host's admin API (admin key only) and a tenant's own usage (GET /v1/usage), in the same
// JSON as the hosting commands print.
#include <httplib.h>

#include <filesystem>
#include <map>

#include "hosting/consortium.h"
#include "hosting/hosting_json.h"
#include "hosting/statement.h"
#include "server/http_server.h"

namespace corral {

using json = nlohmann::json;

namespace {

// ?from=&to= (ISO-8601); default: the current UTC month.
std::optional<ApiError> period(const httplib::Request& req, int64_t* from, int64_t* to) {
  const int64_t now = now_ms();
  *from = month_start_ms(now);
  *to = next_month_ms(now);
  for (auto [k, dst] : {std::pair{"from", from}, std::pair{"to", to}}) {
    if (!req.has_param(k)) continue;
    auto v = parse_iso8601(req.get_param_value(k));
    if (!v.is_ok())
      return ApiError{400, std::string(k) + ": " + v.message(), "invalid_request_error", k,
                      "invalid_value"};
    *dst = *v;
  }
  return std::nullopt;
}

// "country": a two-letter code (upper-cased), as the CLI's --country.
std::optional<ApiError> country_field(const json& v, std::string* out) {
  auto cc = v.is_string() ? normalize_country(v.get<std::string>())
                          : Expected<std::string>(make_error("'country' must be a string"));
  if (!cc.is_ok())
    return ApiError{400, cc.message(), "invalid_request_error", "country", "invalid_value"};
  *out = *cc;
  return std::nullopt;
}

json usage_body(const std::vector<UsageRecord>& recs, int64_t from, int64_t to) {
  json arr = json::array();
  for (auto& r : recs) {
    json j = usage_json(r);
    j.erase("instance");
    arr.push_back(j);
  }
  return {{"from", format_iso8601(from)},
          {"to", format_iso8601(to)},
          {"records", arr},
          {"totals", usage_totals_json(recs)}};
}

// A tenant's period per day and per model, priced with the statement arithmetic: one statement
// per day for the days, the whole period as one statement for the models and the total.
Expected<json> usage_summary(Ledger& l, const std::vector<UsageRecord>& recs, int64_t from,
                             int64_t to) {
  CORRAL_ASSIGN_OR_RETURN(auto prices, l.list_prices());
  CORRAL_ASSIGN_OR_RETURN(auto shares, l.list_shares());
  auto add = [](json& t, const StatementLine& ln) {
    for (auto [k, v] :
         {std::pair{"requests", ln.t.requests},
          std::pair{"prompt_tokens", ln.t.uncached + ln.t.cached},
          std::pair{"cached_tokens", ln.t.cached}, std::pair{"completion_tokens", ln.t.completion},
          std::pair{"amount_micros", ln.t.amount}})
      t[k] = t.value(k, int64_t(0)) + v;
  };
  auto zero = [] {
    return json{{"requests", 0},
                {"prompt_tokens", 0},
                {"cached_tokens", 0},
                {"completion_tokens", 0},
                {"amount_micros", 0}};
  };
  CORRAL_ASSIGN_OR_RETURN(Statement whole, build_statement(from, to, recs, prices, shares, {}));
  std::map<std::string, json> models;
  int64_t spend = 0;
  for (auto& ln : whole.lines) {
    json& m = models[ln.model];
    if (m.is_null()) m = zero(), m["model"] = ln.model;
    add(m, ln);
    spend += ln.t.amount;
  }
  json by_model = json::array();
  for (auto& [k, m] : models) by_model.push_back(m);
  json by_day = json::array();
  const int64_t day = 86400000, end = std::min(to, now_ms() + 1);  // days up to today
  for (int64_t d = from - ((from % day) + day) % day; d < end; d += day) {
    CORRAL_ASSIGN_OR_RETURN(Statement st, build_statement(std::max(d, from), std::min(d + day, to),
                                                          recs, prices, shares, {}));
    json j = zero();
    j["day"] = format_iso8601(d).substr(0, 10);
    for (auto& ln : st.lines) add(j, ln);
    by_day.push_back(j);
  }
  return json{{"currency", whole.currency},
              {"spend_micros", spend},
              {"by_model", by_model},
              {"by_day", by_day}};
}

}  // namespace

void HttpServer::handle_usage(const httplib::Request& req, httplib::Response& res) {
  const AuthCtx& a = current_auth();
  if (!o_.ledger || !a.metered)
    return reply_error(
        res,
        ApiError{403, "GET /v1/usage needs a tenant's API key (the server runs with --ledger).",
                 "permission_error", "", "tenant_key_required"});
  int64_t from, to;
  if (auto e = period(req, &from, &to)) return reply_error(res, *e);
  UsageQuery q;
  q.tenant = a.tenant;  // never another tenant's
  q.from_ms = from, q.to_ms = to;
  auto recs = o_.ledger->usage(q);
  if (!recs.is_ok())
    return reply_error(
        res, ApiError{503, recs.message(), "service_unavailable", "", "ledger_unavailable"});
  json body = usage_body(*recs, from, to);
  body["tenant"] = a.tenant;
  auto summary = usage_summary(*o_.ledger, *recs, from, to);
  auto t = o_.ledger->get_tenant(a.tenant);
  if (!summary.is_ok() || !t.is_ok() || !t->has_value())
    return reply_error(res, ApiError{503, !summary.is_ok() ? summary.message() : "ledger error",
                                     "service_unavailable", "", "ledger_unavailable"});
  body.update(*summary);
  const TenantLimits& L = (**t).limits;
  body["limits"] = {{"rpm", limit_json(L.rpm)},
                    {"tpm", limit_json(L.tpm)},
                    {"max_concurrent", limit_json(L.max_concurrent)},
                    {"monthly_tokens", limit_json(L.monthly_tokens)}};
  int64_t month = 0;
  const int64_t ms = month_start_ms(now_ms());
  for (auto& r : *recs)
    if (r.started_ms >= ms && r.status != "error") month += r.prompt_tokens + r.completion_tokens;
  body["month_tokens"] = month;
  res.set_content(dump(body), "application/json");
}

void HttpServer::admin_routes() {
  httplib::Server& s = *svr_;
  // Every admin route: the admin key was checked before routing; without a ledger there is
  // nothing to administer.
  auto guard = [this](httplib::Response& res) {
    if (!current_auth().admin) {
      reply_error(res, ApiError{403, "The admin API needs the admin key.", "permission_error", "",
                                "admin_only"});
      return false;
    }
    if (!o_.ledger) {
      reply_error(res, ApiError{404, "No ledger: start corral serve with --ledger.",
                                "invalid_request_error", "", "not_found"});
      return false;
    }
    return true;
  };
  auto ledger_error = [this](httplib::Response& res, const std::string& msg) {
    const bool missing =
        msg.find("no tenant") != std::string::npos || msg.find("no key") != std::string::npos;
    const bool exists = msg.find("already exists") != std::string::npos;
    reply_error(res, ApiError{missing  ? 404
                              : exists ? 409
                                       : 400,
                              msg, "invalid_request_error", "",
                              missing  ? "not_found"
                              : exists ? "conflict"
                                       : "invalid_value"});
  };
  // LoRA adapters served over a base, added and removed while serving. The file must lie under
  // --lora-dir (its real path, links resolved), so the admin key cannot read arbitrary files.
  auto admin_only = [this](httplib::Response& res) {
    if (current_auth().admin) return true;
    reply_error(res, ApiError{403, "The admin API needs the admin key.", "permission_error", "",
                              "admin_only"});
    return false;
  };
  auto adapter_json = [](const ServedModel& m) {
    return json{{"id", m.id},
                {"parent", m.parent},
                {"path", m.path},
                {"rank", m.adapter->rank},
                {"alpha", m.adapter->alpha},
                {"family", m.lic.family.empty() ? json(nullptr) : json(m.lic.family)}};
  };
  s.Get("/admin/v1/adapters", [=, this](const httplib::Request&, httplib::Response& res) {
    if (!admin_only(res)) return;
    json data = json::array();
    for (ServedModel* m : model_list())
      if (m->adapter) data.push_back(adapter_json(*m));
    res.set_content(dump(json{{"object", "list"}, {"data", data}}), "application/json");
  });
  s.Post("/admin/v1/adapters", [=, this](const httplib::Request& req, httplib::Response& res) {
    if (!admin_only(res)) return;
    const json b = json::parse(req.body, nullptr, false);
    auto bad = [&](const std::string& msg, const std::string& param, int status = 400) {
      reply_error(res, ApiError{status, msg, "invalid_request_error", param,
                                status == 409 ? "conflict" : "invalid_value"});
    };
    if (!b.is_object())
      return bad("The body must be a JSON object {\"id\", \"path\", \"base\"}.", "");
    if (!b.contains("id") || !b["id"].is_string() || b["id"].get<std::string>().empty())
      return bad("id: a non-empty string is required", "id");
    if (!b.contains("path") || !b["path"].is_string())
      return bad("path: a string is required", "path");
    if (b.contains("base") && !b["base"].is_string()) return bad("base: must be a string", "base");
    if (o_.lora_dir.empty())
      return bad("Adapters can be added only when the server runs with --lora-dir DIR.", "path",
                 403);
    std::error_code ec;
    const auto dir = std::filesystem::weakly_canonical(o_.lora_dir, ec);
    const auto file = std::filesystem::weakly_canonical(b["path"].get<std::string>(), ec);
    const std::string d = dir.string() + "/", f = file.string();
    if (ec || f.compare(0, d.size(), d) != 0)
      return bad(
          "path: '" + b["path"].get<std::string>() + "' is not under --lora-dir " + o_.lora_dir,
          "path", 403);
    Status st = add_adapter(b["id"], f, b.value("base", std::string()));
    if (!st.is_ok())
      return bad(st.message(), "",
                 st.message().find("already served") != std::string::npos ? 409 : 400);
    ServedModel* m = find_model(b["id"]);
    res.status = 201;
    res.set_content(dump(adapter_json(*m)), "application/json");
    log_.info("adapter " + m->id + " added over " + m->parent + " (" + f + ")");
  });
  s.Delete(
      R"(/admin/v1/adapters/(.+))", [=, this](const httplib::Request& req, httplib::Response& res) {
        if (!admin_only(res)) return;
        ServedModel* m = find_model(req.matches[1]);
        if (!m || !m->adapter) {
          reply_error(res, ApiError{404, "No adapter '" + req.matches[1].str() + "' is served.",
                                    "invalid_request_error", "", "not_found"});
          return;
        }
        m->removed = true;  // running requests keep their own reference to the adapter
        res.set_content(dump(json{{"id", m->id}, {"deleted", true}}), "application/json");
        log_.info("adapter " + m->id + " removed");
      });
  s.Get("/admin/v1/tenants", [=, this](const httplib::Request&, httplib::Response& res) {
    if (!guard(res)) return;
    auto ts = o_.ledger->list_tenants(month_start_ms(now_ms()));
    if (!ts.is_ok()) return ledger_error(res, ts.message());
    json arr = json::array();
    for (auto& t : *ts) arr.push_back(tenant_json(t));
    res.set_content(dump(arr), "application/json");
  });
  s.Post("/admin/v1/tenants", [=, this](const httplib::Request& req, httplib::Response& res) {
    if (!guard(res)) return;
    json b;
    if (auto e = parse_json_body(req.body, &b)) return reply_error(res, *e);
    if (!b.contains("name") || !b["name"].is_string())
      return reply_error(res, ApiError{400, "'name' (a string) is required.",
                                       "invalid_request_error", "name", "invalid_value"});
    Tenant t;
    t.name = b["name"];
    if (Status st = validate_tenant_name(t.name); !st.is_ok())
      return reply_error(
          res, ApiError{400, st.message(), "invalid_request_error", "name", "invalid_value"});
    if (b.contains("mau")) {
      if (!b["mau"].is_number_integer() || b["mau"].get<int64_t>() < 0)
        return reply_error(res, ApiError{400, "'mau' must be an integer >= 0.",
                                         "invalid_request_error", "mau", "invalid_value"});
      t.mau = b["mau"];
    }
    if (b.contains("country") && !b["country"].is_null())
      if (auto e = country_field(b["country"], &t.country)) return reply_error(res, *e);
    t.created_ms = now_ms();
    if (Status st = o_.ledger->create_tenant(t); !st.is_ok())
      return ledger_error(res, st.message());
    auto k = create_api_key(*o_.ledger, t.name, {}, 0);
    if (!k.is_ok()) return ledger_error(res, k.message());
    res.status = 201;
    res.set_content(dump({{"tenant", t.name}, {"key_id", k->key_id}, {"api_key", k->secret}}),
                    "application/json");
  });
  s.Get(R"(/admin/v1/tenants/([^/]+))",
        [=, this](const httplib::Request& req, httplib::Response& res) {
          if (!guard(res)) return;
          auto ts = o_.ledger->list_tenants(month_start_ms(now_ms()));
          if (!ts.is_ok()) return ledger_error(res, ts.message());
          for (auto& t : *ts)
            if (t.name == req.matches[1].str())
              return res.set_content(dump(tenant_json(t)), "application/json");
          ledger_error(res, "no tenant named '" + req.matches[1].str() + "'");
        });
  s.Patch(R"(/admin/v1/tenants/([^/]+))", [=, this](const httplib::Request& req,
                                                    httplib::Response& res) {
    if (!guard(res)) return;
    json b;
    if (auto e = parse_json_body(req.body, &b)) return reply_error(res, *e);
    TenantPatch p;
    for (auto [k, dst] :
         {std::pair{"rpm", &p.rpm}, std::pair{"tpm", &p.tpm},
          std::pair{"max_concurrent", &p.max_concurrent},
          std::pair{"monthly_tokens", &p.monthly_tokens}, std::pair{"mau", &p.mau}}) {
      if (!b.contains(k)) continue;
      if (b[k].is_null()) {
        *dst = 0;
        continue;
      }
      if (!b[k].is_number_integer() || b[k].get<int64_t>() < 0)
        return reply_error(
            res, ApiError{400, std::string("'") + k + "' must be an integer >= 0 or null.",
                          "invalid_request_error", k, "invalid_value"});
      *dst = b[k].get<int64_t>();
    }
    if (b.contains("suspended")) {
      if (!b["suspended"].is_boolean())
        return reply_error(res, ApiError{400, "'suspended' must be a boolean.",
                                         "invalid_request_error", "suspended", "invalid_type"});
      p.suspended = b["suspended"].get<bool>();
    }
    if (b.contains("country")) {
      std::string cc;
      if (auto e = country_field(b["country"], &cc)) return reply_error(res, *e);
      p.country = cc;
    }
    if (Status st = o_.ledger->update_tenant(req.matches[1].str(), p); !st.is_ok())
      return ledger_error(res, st.message());
    auto t = o_.ledger->get_tenant(req.matches[1].str());
    if (!t.is_ok() || !t->has_value())
      return ledger_error(res, "no tenant named '" + req.matches[1].str() + "'");
    res.set_content(dump(tenant_json(**t)), "application/json");
  });
  s.Post(R"(/admin/v1/tenants/([^/]+)/keys)", [=, this](const httplib::Request& req,
                                                        httplib::Response& res) {
    if (!guard(res)) return;
    json b = json::object();
    if (!req.body.empty())
      if (auto e = parse_json_body(req.body, &b)) return reply_error(res, *e);
    auto t = o_.ledger->get_tenant(req.matches[1].str());
    if (!t.is_ok()) return ledger_error(res, t.message());
    if (!t->has_value()) return ledger_error(res, "no tenant named '" + req.matches[1].str() + "'");
    ApiKeyInfo info;
    if (b.contains("models")) {
      if (!b["models"].is_array())
        return reply_error(res, ApiError{400, "'models' must be a list of model ids.",
                                         "invalid_request_error", "models", "invalid_type"});
      for (auto& m : b["models"]) {
        if (!m.is_string())
          return reply_error(res, ApiError{400, "'models' must be a list of model ids.",
                                           "invalid_request_error", "models", "invalid_type"});
        info.models.push_back(m);
      }
    }
    if (b.contains("expires") && !b["expires"].is_null()) {
      auto e = b["expires"].is_string() ? parse_iso8601(b["expires"].get<std::string>())
                                        : Expected<int64_t>(make_error("expires must be a string"));
      if (!e.is_ok())
        return reply_error(
            res, ApiError{400, e.message(), "invalid_request_error", "expires", "invalid_value"});
      info.expires_ms = *e;
    }
    auto k = create_api_key(*o_.ledger, req.matches[1].str(), info.models, info.expires_ms);
    if (!k.is_ok()) return ledger_error(res, k.message());
    res.status = 201;
    res.set_content(
        dump({{"tenant", req.matches[1].str()}, {"key_id", k->key_id}, {"api_key", k->secret}}),
        "application/json");
  });
  s.Delete(R"(/admin/v1/keys/([^/]+))",
           [=, this](const httplib::Request& req, httplib::Response& res) {
             if (!guard(res)) return;
             if (Status st = o_.ledger->revoke_key(req.matches[1].str(), now_ms()); !st.is_ok())
               return ledger_error(res, st.message());
             res.set_content(dump({{"key_id", req.matches[1].str()}, {"revoked", true}}),
                             "application/json");
           });
  s.Get(R"(/admin/v1/tenants/([^/]+)/keys)",
        [=, this](const httplib::Request& req, httplib::Response& res) {
          if (!guard(res)) return;
          auto ks = o_.ledger->list_keys(req.matches[1].str());
          if (!ks.is_ok()) return ledger_error(res, ks.message());
          json arr = json::array();
          for (auto& k : *ks) arr.push_back(key_json(k));
          res.set_content(dump(arr), "application/json");
        });
  // The statement of a period, as `corral statement` gives it: ?from=&to=[&tenant=]
  // [&format=json|csv|pdf][&licensor=1].
  s.Get("/admin/v1/statement", [=, this](const httplib::Request& req, httplib::Response& res) {
    if (!guard(res)) return;
    int64_t from, to;
    if (auto e = period(req, &from, &to)) return reply_error(res, *e);
    const std::string format = req.has_param("format") ? req.get_param_value("format") : "json";
    if (format != "json" && format != "csv" && format != "pdf")
      return reply_error(res, ApiError{400, "'format' must be json, csv or pdf.",
                                       "invalid_request_error", "format", "invalid_value"});
    const std::string tenant = req.has_param("tenant") ? req.get_param_value("tenant") : "";
    const bool licensor = req.has_param("licensor") && req.get_param_value("licensor") != "0";
    auto r = compute_statement(*o_.ledger, from, to, tenant, o_.host_name);
    if (!r.is_ok())
      return reply_error(res, ApiError{400, r.message(), "invalid_request_error", "", "statement"});
    json j = r->json;
    std::vector<LicenseEvent> events;
    if (licensor) {
      auto ev = o_.ledger->license_events(from, to);
      if (!ev.is_ok()) return ledger_error(res, ev.message());
      events = *ev;
      j = licensor_json(r->json, events);
    }
    const std::string base =
        "statement-" + format_iso8601(from).substr(0, 10) + "-" + format_iso8601(to).substr(0, 10);
    if (format == "json") return res.set_content(j.dump(2) + "\n", "application/json");
    res.set_header("Content-Disposition", "attachment; filename=\"" + base + "." + format + "\"");
    if (format == "csv")
      return res.set_content(licensor ? licensor_csv(j) : statement_csv(j), "text/csv");
    auto pdf = statement_pdf(j, licensor ? &events : nullptr);
    if (!pdf.is_ok()) return ledger_error(res, pdf.message());
    res.set_content(*pdf, "application/pdf");
  });
  // Consortia: their state, and a period's statement (the same JSON/CSV as the CLI's).
  s.Get("/admin/v1/consortia", [=, this](const httplib::Request&, httplib::Response& res) {
    if (!guard(res)) return;
    auto ev = o_.ledger->consortium_events("");
    if (!ev.is_ok()) return ledger_error(res, ev.message());
    auto cs = fold_consortia(*ev);
    if (!cs.is_ok()) return ledger_error(res, cs.message());
    json arr = json::array();
    for (auto& [_, c] : *cs) arr.push_back(consortium_json(c));
    res.set_content(json{{"object", "list"}, {"data", arr}}.dump(), "application/json");
  });
  s.Get(R"(/admin/v1/consortia/([^/]+)/statement)", [=, this](const httplib::Request& req,
                                                              httplib::Response& res) {
    if (!guard(res)) return;
    int64_t from, to;
    if (auto e = period(req, &from, &to)) return reply_error(res, *e);
    const std::string member = req.has_param("member") ? req.get_param_value("member") : "";
    if (req.has_param("format")) {
      const std::string f = req.get_param_value("format");
      if (f != "json" && f != "csv" && f != "pdf")
        return reply_error(res, ApiError{400, "'format' must be json, csv or pdf.",
                                         "invalid_request_error", "format", "invalid_value"});
    }
    auto st = consortium_statement(*o_.ledger, req.matches[1], from, to, member);
    if (!st.is_ok()) {
      const bool missing = st.message().find("no consortium") != std::string::npos;
      return reply_error(res, ApiError{missing ? 404 : 400, st.message(), "invalid_request_error",
                                       "", missing ? "not_found" : "statement"});
    }
    const std::string format = req.has_param("format") ? req.get_param_value("format") : "json";
    if (format == "json") return res.set_content(st->dump(2) + "\n", "application/json");
    res.set_header("Content-Disposition", "attachment; filename=\"consortium-" + req.matches[1].str() +
                                              "-" + format_iso8601(from).substr(0, 10) + "-" +
                                              format_iso8601(to).substr(0, 10) + "." + format + "\"");
    if (format == "csv") return res.set_content(consortium_statement_csv(*st), "text/csv");
    auto pdf = consortium_statement_pdf(*st);
    if (!pdf.is_ok()) return ledger_error(res, pdf.message());
    res.set_content(*pdf, "application/pdf");
  });
  s.Get("/admin/v1/usage", [=, this](const httplib::Request& req, httplib::Response& res) {
    if (!guard(res)) return;
    int64_t from, to;
    if (auto e = period(req, &from, &to)) return reply_error(res, *e);
    UsageQuery q;
    q.tenant = req.has_param("tenant") ? req.get_param_value("tenant") : "";
    q.from_ms = from, q.to_ms = to;
    auto recs = o_.ledger->usage(q);
    if (!recs.is_ok()) return ledger_error(res, recs.message());
    res.set_content(dump(usage_body(*recs, from, to)), "application/json");
  });
}

}  // namespace corral
