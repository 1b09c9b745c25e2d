#include "hosting/ledger.h"

#include <algorithm>
#include <cstdlib>

#include "hosting/keys.h"

namespace corral {

AdmitResult decide_admission(const TenantLimits& L, const TenantUse& u, int64_t reserved) {
  AdmitResult r;
  if (L.rpm > 0)
    r.limit_requests = L.rpm,
    r.remaining_requests = std::max<int64_t>(0, L.rpm - u.requests_minute - 1);
  if (L.tpm > 0)
    r.limit_tokens = L.tpm,
    r.remaining_tokens = std::max<int64_t>(0, L.tpm - u.tokens_minute - reserved);
  auto refuse = [&](const char* code, const std::string& msg, int64_t retry) {
    r.ok = false, r.code = code, r.message = msg, r.retry_after_s = retry;
    if (r.remaining_requests >= 0)
      r.remaining_requests = std::max<int64_t>(0, L.rpm - u.requests_minute);
    if (r.remaining_tokens >= 0) r.remaining_tokens = std::max<int64_t>(0, L.tpm - u.tokens_minute);
    return r;
  };
  if (L.rpm > 0 && u.requests_minute + 1 > L.rpm)
    return refuse("rate_limit_exceeded",
                  "Rate limit reached: " + std::to_string(L.rpm) + " requests per minute.", 60);
  if (L.max_concurrent > 0 && u.open + 1 > L.max_concurrent)
    return refuse(
        "rate_limit_exceeded",
        "Too many concurrent requests: the limit is " + std::to_string(L.max_concurrent) + ".", 1);
  if (L.tpm > 0 && u.tokens_minute + reserved > L.tpm)
    return refuse("rate_limit_exceeded",
                  "Rate limit reached: " + std::to_string(L.tpm) +
                      " tokens per minute; this request reserves " + std::to_string(reserved) +
                      " and " + std::to_string(u.tokens_minute) + " are in use.",
                  60);
  if (L.monthly_tokens > 0 && u.tokens_month + reserved > L.monthly_tokens)
    return refuse("insufficient_quota",
                  "Monthly token quota exceeded: " + std::to_string(u.tokens_month) + " of " +
                      std::to_string(L.monthly_tokens) +
                      " used or reserved; this request reserves " + std::to_string(reserved) + ".",
                  3600);
  r.ok = true;
  return r;
}

std::string join_models(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

std::vector<std::string> split_models(const std::string& s) {
  std::vector<std::string> v;
  size_t p = 0;
  while (p < s.size()) {
    size_t e = s.find(',', p);
    if (e == std::string::npos) e = s.size();
    if (e > p) v.push_back(s.substr(p, e - p));
    p = e + 1;
  }
  return v;
}

Expected<NewKey> create_api_key(Ledger& l, const std::string& tenant,
                                const std::vector<std::string>& models, int64_t expires_ms) {
  CORRAL_ASSIGN_OR_RETURN(NewKey k, generate_api_key());
  ApiKeyInfo info;
  info.key_id = k.key_id;
  info.tenant = tenant;
  info.models = models;
  info.expires_ms = expires_ms;
  info.created_ms = now_ms();
  CORRAL_RETURN_IF_ERROR(l.create_key(info, k.hash));
  return k;
}

std::string default_ledger_dsn() {
  const char* e = std::getenv("CORRAL_LEDGER");
  return e && *e ? std::string(e) : std::string("sqlite:corral-ledger.db");
}

Expected<std::unique_ptr<Ledger>> open_ledger(const std::string& dsn_in, LedgerSync sync) {
  const std::string dsn = dsn_in.empty() ? default_ledger_dsn() : dsn_in;
  if (dsn.rfind("sqlite:", 0) == 0) {
    const std::string path = dsn.substr(7);
    if (path.empty()) return make_error("--ledger: 'sqlite:' needs a path (sqlite:PATH)");
    return open_sqlite_ledger(path, sync);
  }
  if (dsn.rfind("postgresql://", 0) == 0 || dsn.rfind("postgres://", 0) == 0)
    return open_postgres_ledger(dsn, sync);
  return make_error("--ledger: '" + dsn + "' is not sqlite:PATH or postgresql://...");
}

}  // namespace corral
