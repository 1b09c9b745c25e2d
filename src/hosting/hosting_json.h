// JSON of tenants, keys and usage records, shared by the hosting commands and the admin API.
#pragma once
#include <nlohmann/json.hpp>

#include "hosting/keys.h"
#include "hosting/ledger.h"

namespace corral {

inline nlohmann::json limit_json(int64_t v) {
  return v > 0 ? nlohmann::json(v) : nlohmann::json(nullptr);
}

inline nlohmann::json tenant_json(const Tenant& t) {
  return {{"name", t.name},
          {"mau", t.mau},
          {"country", t.country.empty() ? nlohmann::json(nullptr) : nlohmann::json(t.country)},
          {"suspended", t.suspended},
          {"rpm", limit_json(t.limits.rpm)},
          {"tpm", limit_json(t.limits.tpm)},
          {"max_concurrent", limit_json(t.limits.max_concurrent)},
          {"monthly_tokens", limit_json(t.limits.monthly_tokens)},
          {"prompt_tokens", t.month_prompt_tokens},
          {"completion_tokens", t.month_completion_tokens},
          {"created_at", format_iso8601(t.created_ms)}};
}

inline nlohmann::json key_json(const ApiKeyInfo& k) {
  return {{"key_id", k.key_id},
          {"tenant", k.tenant},
          {"models", k.models},
          {"expires_at",
           k.expires_ms ? nlohmann::json(format_iso8601(k.expires_ms)) : nlohmann::json(nullptr)},
          {"revoked", k.revoked_ms != 0},
          {"created_at", format_iso8601(k.created_ms)}};
}

inline nlohmann::json usage_json(const UsageRecord& u) {
  return {{"request_id", u.request_id},
          {"tenant", u.tenant},
          {"key_id", u.key_id},
          {"model", u.model},
          {"prompt_tokens", u.prompt_tokens},
          {"cached_tokens", u.cached_tokens},
          {"completion_tokens", u.completion_tokens},
          {"started_at", format_iso8601(u.started_ms)},
          {"ended_at",
           u.ended_ms ? nlohmann::json(format_iso8601(u.ended_ms)) : nlohmann::json(nullptr)},
          {"finish_reason",
           u.finish_reason.empty() ? nlohmann::json(nullptr) : nlohmann::json(u.finish_reason)},
          {"status", u.status},
          {"price_version",
           u.price_version ? nlohmann::json(*u.price_version) : nlohmann::json(nullptr)},
          {"family", u.family},
          {"billed_from", u.billed_from_ms ? nlohmann::json(format_iso8601(*u.billed_from_ms))
                                           : nlohmann::json(nullptr)},
          {"instance", u.instance}};
}

// Totals of records: requests and the three token counts.
inline nlohmann::json usage_totals_json(const std::vector<UsageRecord>& recs) {
  int64_t n = 0, p = 0, c = 0, g = 0;
  for (auto& r : recs) ++n, p += r.prompt_tokens, c += r.cached_tokens, g += r.completion_tokens;
  return {{"requests", n}, {"prompt_tokens", p}, {"cached_tokens", c}, {"completion_tokens", g}};
}

}  // namespace corral
