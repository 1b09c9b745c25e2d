// The hosting ledger: tenants, hashed API keys, quotas and one usage record per request, behind
// one interface (SQLite embedded, PostgreSQL for several servers). Every write is a transaction;
// quota counters are derived from the records inside the admitting transaction, so several
// servers on one database never exceed a limit.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace corral {

struct TenantLimits {  // 0 = no limit
  int64_t rpm = 0, tpm = 0, max_concurrent = 0, monthly_tokens = 0;
};

struct Tenant {
  std::string name;
  int64_t mau = 0;
  std::string country;  // ISO 3166 alpha-2, or empty
  bool suspended = false;
  TenantLimits limits;
  int64_t created_ms = 0;
  int64_t month_prompt_tokens = 0, month_completion_tokens = 0;  // filled by list_tenants
};

struct TenantPatch {
  std::optional<int64_t> rpm, tpm, max_concurrent, monthly_tokens, mau;
  std::optional<std::string> country;
  std::optional<bool> suspended;
};

struct ApiKeyInfo {
  std::string key_id, tenant;
  std::vector<std::string> models;  // empty: every model
  int64_t expires_ms = 0;           // 0: never
  int64_t revoked_ms = 0;           // 0: not revoked
  int64_t created_ms = 0;
};

struct Admission {
  std::string request_id, tenant, key_id, model, instance;
  std::string family = "none";                     // the served model's license family
  int64_t prompt_tokens = 0, reserved_tokens = 0;  // reserved: prompt + max_tokens
  int64_t started_ms = 0;
};

struct AdmitResult {
  bool ok = false;
  std::string code, message;  // rate_limit_exceeded / insufficient_quota
  int64_t retry_after_s = 1;
  // -1: no limit. Remaining after this request's reservation.
  int64_t limit_requests = -1, remaining_requests = -1, limit_tokens = -1, remaining_tokens = -1;
};

struct UsageRecord {
  std::string request_id, tenant, key_id, model, instance;
  int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
  int64_t started_ms = 0, ended_ms = 0;
  std::string finish_reason, status;      // status: open, completed, cancelled, error, interrupted
  std::optional<int64_t> price_version;   // the price in force at its start (none: unpriced)
  std::string family = "none";            // the model's license family when it was served
  std::optional<int64_t> billed_from_ms;  // the closed statement period that billed it
};

struct UsageQuery {
  std::string tenant;  // empty: all
  int64_t from_ms = 0, to_ms = INT64_MAX;
  bool unbilled_only = false;             // only records no closed statement has billed
  std::optional<int64_t> billed_from_ms;  // only records billed by the period starting here
};

// Prices are micro-units of the currency per million tokens (an exact integer, never a float).
struct PriceVersion {
  int64_t version = 0;
  std::string model, currency = "USD";
  int64_t input_micros = 0, cached_micros = 0, output_micros = 0;
  int64_t from_ms = 0, created_ms = 0;
};

// The licensor's share of a license family's revenue, in basis points (1/100 of a percent).
struct ShareVersion {
  int64_t version = 0;
  std::string family;
  int64_t basis_points = 0;
  int64_t from_ms = 0, created_ms = 0;
};

// A licence the licensor granted a tenant (lifts the MAU clause for the family).
struct LicenseGrant {
  std::string tenant, family, ref;
  int64_t created_ms = 0;
};

// Grants and refusals, for the licensor's statement.
struct LicenseEvent {
  int64_t ms = 0;
  std::string kind;  // grant, refusal
  std::string tenant, model, family, code, detail;
};

// A closed statement period: its canonical body (signed JSON) and digest, never changed again.
struct ClosedStatement {
  int64_t from_ms = 0, to_ms = 0;
  std::string digest, body;
  int64_t closed_ms = 0;
};

// The consortium journal: each consortium change (its creation, a member's share version, a
// money contribution, a job's metered compute, a custom version) is one appended event, never
// changed; the state and the statements are folds over it (hosting/consortium.h), the same code
// for both stores. body is the event's fields as JSON.
struct ConsortiumEvent {
  int64_t id = 0;  // the ledger's order (assigned on append)
  std::string consortium, kind;
  std::string body;
  int64_t at_ms = 0, created_ms = 0;
};

// What a tenant has in use when a request arrives (from the records, inside the admitting
// transaction): requests and tokens started in the last minute, open requests, tokens this month.
struct TenantUse {
  int64_t requests_minute = 0, tokens_minute = 0, open = 0, tokens_month = 0;
};
// The admission decision both stores share: ok, or the first limit the reservation would pass.
AdmitResult decide_admission(const TenantLimits& L, const TenantUse& u, int64_t reserved_tokens);

// Key model lists as stored ("a,b").
std::string join_models(const std::vector<std::string>& v);
std::vector<std::string> split_models(const std::string& s);

class Ledger {
 public:
  virtual ~Ledger() = default;
  virtual Status create_tenant(const Tenant& t) = 0;
  virtual Expected<std::vector<Tenant>> list_tenants(int64_t month_start_ms) = 0;
  virtual Expected<std::optional<Tenant>> get_tenant(const std::string& name) = 0;
  virtual Expected<bool> has_tenants() = 0;
  virtual Status update_tenant(const std::string& name, const TenantPatch& p) = 0;
  virtual Status create_key(const ApiKeyInfo& k, const std::string& hash) = 0;
  virtual Expected<std::vector<ApiKeyInfo>> list_keys(const std::string& tenant) = 0;
  virtual Status revoke_key(const std::string& key_id, int64_t now_ms) = 0;
  // The key with this hash and its tenant; nullopt when unknown.
  virtual Expected<std::optional<std::pair<ApiKeyInfo, Tenant>>> find_key(
      const std::string& hash) = 0;
  // Checks the tenant's limits and writes the open row, in one transaction.
  virtual Expected<AdmitResult> admit(const Admission& a, int64_t month_start_ms) = 0;
  virtual Status checkpoint(const std::string& request_id, int64_t completion_tokens) = 0;
  // Several open requests' progress in one transaction (what a streaming step wrote).
  virtual Status checkpoint_many(const std::vector<std::pair<std::string, int64_t>>& items) {
    for (auto& [id, n] : items) CORRAL_RETURN_IF_ERROR(checkpoint(id, n));
    return Status::ok();
  }
  // Closes an open row (no effect on a closed one, so a settle is never counted twice).
  virtual Status settle(const UsageRecord& r) = 0;
  // Open rows of `instance` (all instances when empty, only those started before
  // started_before_ms) become `interrupted`; returns how many.
  virtual Expected<int64_t> interrupt_open(const std::string& instance, int64_t started_before_ms,
                                           int64_t now_ms) = 0;
  virtual Expected<std::vector<UsageRecord>> usage(const UsageQuery& q) = 0;
  // Invariant violations, one line each (empty: the ledger is sound).
  virtual Expected<std::vector<std::string>> verify() = 0;

  // A new price version (returns its number). Unbilled records of the model that started at or
  // after its start are re-priced with the version now in force at their start, in the same
  // transaction, so every record always carries the version in force when it started.
  virtual Expected<int64_t> add_price(const PriceVersion& p) = 0;
  virtual Expected<std::vector<PriceVersion>> list_prices() = 0;
  virtual Expected<int64_t> add_share(const ShareVersion& s) = 0;
  virtual Expected<std::vector<ShareVersion>> list_shares() = 0;
  // Records the grant and its license event in one transaction.
  virtual Status add_grant(const LicenseGrant& g) = 0;
  virtual Expected<std::vector<LicenseGrant>> list_grants(const std::string& tenant) = 0;
  virtual Status add_license_event(const LicenseEvent& e) = 0;
  virtual Expected<std::vector<LicenseEvent>> license_events(int64_t from_ms, int64_t to_ms) = 0;
  virtual Expected<std::vector<ClosedStatement>> closed_statements() = 0;
  // Stores the closed period and marks exactly `request_ids` billed by it, in one transaction;
  // fails (changing nothing) when a closed period overlaps it or a record was billed or changed
  // meanwhile.
  virtual Status close_statement(const ClosedStatement& s,
                                 const std::vector<std::string>& request_ids) = 0;
  // Appends e (one transaction) only while the newest event of the whole journal is still
  // `after_id` (0: none), so a change validated against the state read is never interleaved
  // with another; false when someone appended first (re-read and retry). Returns the new id in
  // e_id.
  virtual Expected<bool> append_consortium_event(const ConsortiumEvent& e, int64_t after_id,
                                                 int64_t* e_id) = 0;
  // In id order; consortium "" for all.
  virtual Expected<std::vector<ConsortiumEvent>> consortium_events(const std::string& consortium) = 0;
};

// How durable a commit is. Both survive a kill -9 of the server (a committed SQLite WAL
// transaction is in the page cache; PostgreSQL has it). On power loss: kFull loses nothing
// committed (SQLite fsyncs the WAL at each commit; PostgreSQL synchronous_commit=on); kNormal may
// lose the last commits (SQLite synchronous=NORMAL: those since the last WAL checkpoint sync;
// PostgreSQL synchronous_commit=off: up to 3 x wal_writer_delay).
enum class LedgerSync { kFull, kNormal };

// "sqlite:PATH" or "postgresql://..."; empty: $CORRAL_LEDGER, else sqlite:corral-ledger.db.
// Applies the schema migrations; refuses a schema newer than this binary knows.
Expected<std::unique_ptr<Ledger>> open_ledger(const std::string& dsn, LedgerSync sync = LedgerSync::kFull);
std::string default_ledger_dsn();

struct NewKey;
// A new key for an existing tenant, stored hashed; the secret is in the result only.
Expected<NewKey> create_api_key(Ledger& l, const std::string& tenant,
                                const std::vector<std::string>& models, int64_t expires_ms);

Expected<std::unique_ptr<Ledger>> open_sqlite_ledger(const std::string& path, LedgerSync sync = LedgerSync::kFull);
Expected<std::unique_ptr<Ledger>> open_postgres_ledger(const std::string& conninfo,
                                                       LedgerSync sync = LedgerSync::kFull);

constexpr int kLedgerSchemaVersion = 3;

}  // namespace corral
