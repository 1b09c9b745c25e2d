// The shared ledger: PostgreSQL through libpq, for several `corral serve` processes that must
// behave as one service. Admission locks the tenant's row (SELECT ... FOR UPDATE), so the counts
// it checks cannot change under it on another server; every statement is parameterized.
#include <libpq-fe.h>

#include <mutex>

#include "hosting/keys.h"
#include "hosting/ledger.h"

namespace corral {

namespace {

const char* kPgMigrations[] = {
    R"sql(
CREATE TABLE tenants (
  name TEXT PRIMARY KEY,
  mau BIGINT NOT NULL DEFAULT 0,
  country TEXT NOT NULL DEFAULT '',
  suspended INTEGER NOT NULL DEFAULT 0,
  rpm BIGINT NOT NULL DEFAULT 0,
  tpm BIGINT NOT NULL DEFAULT 0,
  max_concurrent BIGINT NOT NULL DEFAULT 0,
  monthly_tokens BIGINT NOT NULL DEFAULT 0,
  created_ms BIGINT NOT NULL
);
CREATE TABLE api_keys (
  key_id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL REFERENCES tenants(name),
  hash TEXT NOT NULL UNIQUE,
  models TEXT NOT NULL DEFAULT '',
  expires_ms BIGINT NOT NULL DEFAULT 0,
  revoked_ms BIGINT NOT NULL DEFAULT 0,
  created_ms BIGINT NOT NULL
);
CREATE TABLE requests (
  request_id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  key_id TEXT NOT NULL,
  model TEXT NOT NULL,
  instance TEXT NOT NULL,
  prompt_tokens BIGINT NOT NULL,
  cached_tokens BIGINT NOT NULL DEFAULT 0,
  completion_tokens BIGINT NOT NULL DEFAULT 0,
  reserved_tokens BIGINT NOT NULL,
  started_ms BIGINT NOT NULL,
  ended_ms BIGINT,
  finish_reason TEXT,
  status TEXT NOT NULL CHECK (status IN ('open', 'completed', 'cancelled', 'error', 'interrupted')),
  price_version BIGINT
);
CREATE INDEX requests_tenant_started ON requests(tenant, started_ms);
CREATE INDEX requests_open ON requests(status, instance);
)sql",
    R"sql(
CREATE TABLE prices (
  version BIGSERIAL PRIMARY KEY,
  model TEXT NOT NULL,
  currency TEXT NOT NULL,
  input_micros BIGINT NOT NULL CHECK (input_micros >= 0),
  cached_micros BIGINT NOT NULL CHECK (cached_micros >= 0),
  output_micros BIGINT NOT NULL CHECK (output_micros >= 0),
  from_ms BIGINT NOT NULL,
  created_ms BIGINT NOT NULL
);
CREATE INDEX prices_model ON prices(model, from_ms);
CREATE TABLE shares (
  version BIGSERIAL PRIMARY KEY,
  family TEXT NOT NULL,
  basis_points BIGINT NOT NULL CHECK (basis_points BETWEEN 0 AND 10000),
  from_ms BIGINT NOT NULL,
  created_ms BIGINT NOT NULL
);
CREATE TABLE license_grants (
  id BIGSERIAL PRIMARY KEY,
  tenant TEXT NOT NULL REFERENCES tenants(name),
  family TEXT NOT NULL,
  ref TEXT NOT NULL,
  created_ms BIGINT NOT NULL
);
CREATE TABLE license_events (
  id BIGSERIAL PRIMARY KEY,
  ms BIGINT NOT NULL,
  kind TEXT NOT NULL,
  tenant TEXT NOT NULL,
  model TEXT NOT NULL,
  family TEXT NOT NULL,
  code TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX license_events_ms ON license_events(ms);
CREATE TABLE statements (
  from_ms BIGINT NOT NULL,
  to_ms BIGINT NOT NULL,
  digest TEXT NOT NULL,
  body TEXT NOT NULL,
  closed_ms BIGINT NOT NULL,
  PRIMARY KEY (from_ms, to_ms)
);
ALTER TABLE requests ADD COLUMN family TEXT NOT NULL DEFAULT 'none';
ALTER TABLE requests ADD COLUMN billed_from_ms BIGINT;
CREATE INDEX requests_billed ON requests(billed_from_ms);
)sql",
    // 3: the consortium journal.
    R"sql(
CREATE TABLE consortium_events (
  id BIGSERIAL PRIMARY KEY,
  consortium TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('create', 'member', 'contribution', 'compute', 'model', 'close')),
  body TEXT NOT NULL,
  at_ms BIGINT NOT NULL,
  created_ms BIGINT NOT NULL
);
CREATE INDEX consortium_events_name ON consortium_events(consortium, id);
)sql",
};

// One result, freed on scope exit.
class Res {
 public:
  explicit Res(PGresult* r) : r_(r) {}
  ~Res() { PQclear(r_); }
  Res(const Res&) = delete;
  ExecStatusType status() const { return PQresultStatus(r_); }
  bool ok() const { return status() == PGRES_COMMAND_OK || status() == PGRES_TUPLES_OK; }
  int rows() const { return PQntuples(r_); }
  std::string str(int row, int c) const { return PQgetvalue(r_, row, c); }
  bool is_null(int row, int c) const { return PQgetisnull(r_, row, c) != 0; }
  int64_t i64(int row, int c) const {
    return is_null(row, c) ? 0 : std::stoll(PQgetvalue(r_, row, c));
  }
  std::string error() const { return PQresultErrorMessage(r_); }
  std::string sqlstate() const {
    const char* s = PQresultErrorField(r_, PG_DIAG_SQLSTATE);
    return s ? s : "";
  }
  int64_t affected() const {
    const char* n = PQcmdTuples(r_);
    return n && *n ? std::stoll(n) : 0;
  }

 private:
  PGresult* r_;
};

class PgLedger : public Ledger {
 public:
  PgLedger(PGconn* c, std::string where) : c_(c), where_(std::move(where)) {}
  ~PgLedger() override { PQfinish(c_); }

  Status init() {
    std::lock_guard<std::mutex> lk(mu_);
    CORRAL_RETURN_IF_ERROR(cmd("BEGIN"));
    Status st = migrate();
    CORRAL_RETURN_IF_ERROR(cmd(st.is_ok() ? "COMMIT" : "ROLLBACK"));
    return st;
  }

  Status create_tenant(const Tenant& t) override {
    std::lock_guard<std::mutex> lk(mu_);
    Res r = q("INSERT INTO tenants (name, mau, country, created_ms) VALUES ($1, $2, $3, $4)",
              {t.name, std::to_string(t.mau), t.country, std::to_string(t.created_ms)});
    if (r.sqlstate() == "23505") return make_error("tenant '" + t.name + "' already exists");
    return check(r, "add tenant");
  }

  Expected<std::vector<Tenant>> list_tenants(int64_t month_start) override {
    std::lock_guard<std::mutex> lk(mu_);
    Res r = q(
        R"(SELECT t.name, t.mau, t.country, t.suspended, t.rpm, t.tpm, t.max_concurrent, t.monthly_tokens,
      t.created_ms,
      COALESCE((SELECT SUM(prompt_tokens) FROM requests r WHERE r.tenant = t.name AND r.started_ms >= $1 AND r.status != 'error'), 0),
      COALESCE((SELECT SUM(completion_tokens) FROM requests r WHERE r.tenant = t.name AND r.started_ms >= $1 AND r.status != 'error'), 0)
      FROM tenants t ORDER BY t.name)",
        {std::to_string(month_start)});
    CORRAL_RETURN_IF_ERROR(check(r, "list tenants"));
    std::vector<Tenant> out;
    for (int i = 0; i < r.rows(); ++i) {
      Tenant t = tenant_row(r, i);
      t.month_prompt_tokens = r.i64(i, 9);
      t.month_completion_tokens = r.i64(i, 10);
      out.push_back(t);
    }
    return out;
  }

  Expected<std::optional<Tenant>> get_tenant(const std::string& name) override {
    std::lock_guard<std::mutex> lk(mu_);
    return get_tenant_locked(name, false);
  }

  Expected<bool> has_tenants() override {
    std::lock_guard<std::mutex> lk(mu_);
    Res r = q("SELECT EXISTS (SELECT 1 FROM tenants)", {});
    CORRAL_RETURN_IF_ERROR(check(r, "count tenants"));
    return r.str(0, 0) == "t";
  }

  Status update_tenant(const std::string& name, const TenantPatch& p) override {
    std::lock_guard<std::mutex> lk(mu_);
    CORRAL_RETURN_IF_ERROR(cmd("BEGIN"));
    auto fail = [&](Status st) {
      (void)cmd("ROLLBACK");
      return st;
    };
    auto t = get_tenant_locked(name, true);
    if (!t.is_ok()) return fail(make_error(t.message()));
    if (!t->has_value()) return fail(make_error("no tenant named '" + name + "'"));
    const Tenant& c = **t;
    Res r = q(
        "UPDATE tenants SET rpm = $1, tpm = $2, max_concurrent = $3, monthly_tokens = $4, mau = "
        "$5, country = $6, suspended = $7 WHERE name = $8",
        {std::to_string(p.rpm.value_or(c.limits.rpm)), std::to_string(p.tpm.value_or(c.limits.tpm)),
         std::to_string(p.max_concurrent.value_or(c.limits.max_concurrent)),
         std::to_string(p.monthly_tokens.value_or(c.limits.monthly_tokens)),
         std::to_string(p.mau.value_or(c.mau)), p.country.value_or(c.country),
         std::to_string(int(p.suspended.value_or(c.suspended))), name});
    if (Status st = check(r, "update tenant"); !st.is_ok()) return fail(st);
    return cmd("COMMIT");
  }

  Status create_key(const ApiKeyInfo& k, const std::string& hash) override {
    std::lock_guard<std::mutex> lk(mu_);
    Res r =
        q("INSERT INTO api_keys (key_id, tenant, hash, models, expires_ms, created_ms) VALUES ($1, "
          "$2, $3, $4, $5, $6)",
          {k.key_id, k.tenant, hash, join_models(k.models), std::to_string(k.expires_ms),
           std::to_string(k.created_ms)});
    if (r.sqlstate().rfind("23", 0) == 0)
      return make_error("cannot create the key (unknown tenant '" + k.tenant + "'?)");
    return check(r, "create key");
  }

  Expected<std::vector<ApiKeyInfo>> list_keys(const std::string& tenant) override {
    std::lock_guard<std::mutex> lk(mu_);
    Res r =
        q("SELECT key_id, tenant, models, expires_ms, revoked_ms, created_ms FROM api_keys WHERE "
          "$1 = '' OR tenant = $1 ORDER BY tenant, created_ms",
          {tenant});
    CORRAL_RETURN_IF_ERROR(check(r, "list keys"));
    std::vector<ApiKeyInfo> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(key_row(r, i, 0));
    return out;
  }

  Status revoke_key(const std::string& key_id, int64_t now) override {
    std::lock_guard<std::mutex> lk(mu_);
    Res r = q("UPDATE api_keys SET revoked_ms = $1 WHERE key_id = $2 AND revoked_ms = 0",
              {std::to_string(now), key_id});
    CORRAL_RETURN_IF_ERROR(check(r, "revoke key"));
    if (r.affected() == 0) {
      Res e = q("SELECT 1 FROM api_keys WHERE key_id = $1", {key_id});
      if (e.rows() == 0) return make_error("no key with id '" + key_id + "'");
    }
    return Status::ok();
  }

  Expected<std::optional<std::pair<ApiKeyInfo, Tenant>>> find_key(
      const std::string& hash) override {
    std::lock_guard<std::mutex> lk(mu_);
    Res r =
        q(R"(SELECT k.key_id, k.tenant, k.models, k.expires_ms, k.revoked_ms, k.created_ms, k.hash,
      t.name, t.mau, t.country, t.suspended, t.rpm, t.tpm, t.max_concurrent, t.monthly_tokens, t.created_ms
      FROM api_keys k JOIN tenants t ON t.name = k.tenant WHERE k.hash = $1)",
          {hash});
    CORRAL_RETURN_IF_ERROR(check(r, "find key"));
    if (r.rows() == 0 || !constant_time_equal(r.str(0, 6), hash))
      return std::optional<std::pair<ApiKeyInfo, Tenant>>();
    Tenant t;
    t.name = r.str(0, 7), t.mau = r.i64(0, 8), t.country = r.str(0, 9),
    t.suspended = r.i64(0, 10) != 0;
    t.limits = {r.i64(0, 11), r.i64(0, 12), r.i64(0, 13), r.i64(0, 14)};
    t.created_ms = r.i64(0, 15);
    return std::optional<std::pair<ApiKeyInfo, Tenant>>(std::make_pair(key_row(r, 0, 0), t));
  }

  Expected<AdmitResult> admit(const Admission& a, int64_t month_start) override {
    std::lock_guard<std::mutex> lk(mu_);
    CORRAL_RETURN_IF_ERROR(cmd("BEGIN"));
    auto r = admit_locked(a, month_start);
    (void)cmd(r.is_ok() && r->ok ? "COMMIT" : "ROLLBACK");
    return r;
  }

  Status checkpoint(const std::string& id, int64_t completion) override {
    std::lock_guard<std::mutex> lk(mu_);
    return check(
        q("UPDATE requests SET completion_tokens = $1 WHERE request_id = $2 AND status = 'open'",
          {std::to_string(completion), id}),
        "checkpoint");
  }

  // One statement, one round trip: UPDATE ... FROM (VALUES ...).
  Status checkpoint_many(const std::vector<std::pair<std::string, int64_t>>& items) override {
    if (items.empty()) return Status::ok();
    std::lock_guard<std::mutex> lk(mu_);
    std::string sql = "UPDATE requests r SET completion_tokens = v.n FROM (VALUES ";
    std::vector<std::string> params;
    for (size_t i = 0; i < items.size(); ++i) {
      sql += (i ? ", ($" : "($") + std::to_string(2 * i + 1) + "::text, $" + std::to_string(2 * i + 2) + "::bigint)";
      params.push_back(items[i].first);
      params.push_back(std::to_string(items[i].second));
    }
    sql += ") AS v(id, n) WHERE r.request_id = v.id AND r.status = 'open'";
    return check(q(sql.c_str(), params), "checkpoint");
  }

  Status settle(const UsageRecord& u) override {
    std::lock_guard<std::mutex> lk(mu_);
    return check(
        q(R"(UPDATE requests SET prompt_tokens = $1, cached_tokens = $2, completion_tokens = $3, ended_ms = $4,
      finish_reason = $5, status = $6 WHERE request_id = $7 AND status = 'open')",
          {std::to_string(u.prompt_tokens), std::to_string(u.cached_tokens),
           std::to_string(u.completion_tokens), std::to_string(u.ended_ms), u.finish_reason,
           u.status, u.request_id}),
        "settle request " + u.request_id);
  }

  Expected<int64_t> interrupt_open(const std::string& instance, int64_t before,
                                   int64_t now) override {
    std::lock_guard<std::mutex> lk(mu_);
    Res r = q(
        R"(UPDATE requests SET status = 'interrupted', ended_ms = $1, finish_reason = 'interrupted',
      prompt_tokens = CASE WHEN completion_tokens = 0 THEN 0 ELSE prompt_tokens END,
      cached_tokens = CASE WHEN completion_tokens = 0 THEN 0 ELSE cached_tokens END
      WHERE status = 'open' AND ($2 = '' OR instance = $2) AND started_ms < $3)",
        {std::to_string(now), instance, std::to_string(before)});
    CORRAL_RETURN_IF_ERROR(check(r, "close open requests"));
    return r.affected();
  }

  Expected<std::vector<UsageRecord>> usage(const UsageQuery& uq) override {
    std::lock_guard<std::mutex> lk(mu_);
    Res r = q(
        R"(SELECT request_id, tenant, key_id, model, instance, prompt_tokens, cached_tokens, completion_tokens,
      started_ms, COALESCE(ended_ms, 0), COALESCE(finish_reason, ''), status, price_version, family,
      billed_from_ms
      FROM requests WHERE ($1 = '' OR tenant = $1) AND started_ms >= $2 AND started_ms < $3
      AND ($4::integer = 0 OR billed_from_ms IS NULL) AND ($5::bigint = -1 OR billed_from_ms = $5::bigint)
      ORDER BY started_ms, request_id)",
        {uq.tenant, std::to_string(uq.from_ms), std::to_string(uq.to_ms),
         std::to_string(int(uq.unbilled_only)), std::to_string(uq.billed_from_ms.value_or(-1))});
    CORRAL_RETURN_IF_ERROR(check(r, "read usage"));
    std::vector<UsageRecord> out;
    for (int i = 0; i < r.rows(); ++i) {
      UsageRecord u;
      u.request_id = r.str(i, 0), u.tenant = r.str(i, 1), u.key_id = r.str(i, 2),
      u.model = r.str(i, 3), u.instance = r.str(i, 4);
      u.prompt_tokens = r.i64(i, 5), u.cached_tokens = r.i64(i, 6),
      u.completion_tokens = r.i64(i, 7);
      u.started_ms = r.i64(i, 8), u.ended_ms = r.i64(i, 9), u.finish_reason = r.str(i, 10),
      u.status = r.str(i, 11);
      if (!r.is_null(i, 12)) u.price_version = r.i64(i, 12);
      u.family = r.str(i, 13);
      if (!r.is_null(i, 14)) u.billed_from_ms = r.i64(i, 14);
      out.push_back(u);
    }
    return out;
  }

  Expected<std::vector<std::string>> verify() override {
    std::lock_guard<std::mutex> lk(mu_);
    std::vector<std::string> v;
    Res open = q(
        "SELECT request_id, instance FROM requests WHERE status = 'open' ORDER BY started_ms", {});
    CORRAL_RETURN_IF_ERROR(check(open, "verify"));
    for (int i = 0; i < open.rows(); ++i)
      v.push_back("request " + open.str(i, 0) + " of instance " + open.str(i, 1) +
                  " is still open");
    Res bad = q(
        R"(SELECT request_id FROM requests WHERE status != 'open' AND (ended_ms IS NULL OR ended_ms < started_ms
      OR prompt_tokens < 0 OR completion_tokens < 0 OR cached_tokens < 0 OR cached_tokens > prompt_tokens))",
        {});
    for (int i = 0; i < bad.rows(); ++i)
      v.push_back("request " + bad.str(i, 0) + " has inconsistent counts or times");
    Res over = q("SELECT request_id FROM requests WHERE prompt_tokens + completion_tokens > reserved_tokens", {});
    CORRAL_RETURN_IF_ERROR(check(over, "verify"));
    for (int i = 0; i < over.rows(); ++i)
      v.push_back("request " + over.str(i, 0) + " has more tokens than its reservation");
    Res intr = q("SELECT request_id FROM requests WHERE status = 'interrupted' AND finish_reason != 'interrupted'", {});
    CORRAL_RETURN_IF_ERROR(check(intr, "verify"));
    for (int i = 0; i < intr.rows(); ++i)
      v.push_back("request " + intr.str(i, 0) + " is interrupted but was not closed at a restart");
    Res orphan =
        q("SELECT r.request_id FROM requests r LEFT JOIN tenants t ON t.name = r.tenant WHERE "
          "t.name IS NULL",
          {});
    for (int i = 0; i < orphan.rows(); ++i)
      v.push_back("request " + orphan.str(i, 0) + " names no known tenant");
    return v;
  }

  Expected<int64_t> add_price(const PriceVersion& p) override {
    std::lock_guard<std::mutex> lk(mu_);
    CORRAL_RETURN_IF_ERROR(cmd("BEGIN"));
    auto r = [&]() -> Expected<int64_t> {
      // One price writer at a time, so the re-pricing below sees every version.
      CORRAL_RETURN_IF_ERROR(cmd("LOCK TABLE prices IN EXCLUSIVE MODE"));
      Res ins =
          q(R"(INSERT INTO prices (model, currency, input_micros, cached_micros, output_micros,
        from_ms, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING version)",
            {p.model, p.currency, std::to_string(p.input_micros), std::to_string(p.cached_micros),
             std::to_string(p.output_micros), std::to_string(p.from_ms),
             std::to_string(p.created_ms)});
      CORRAL_RETURN_IF_ERROR(check(ins, "add price"));
      Res u = q(R"(UPDATE requests SET price_version = (SELECT p.version FROM prices p
        WHERE p.model = requests.model AND p.from_ms <= requests.started_ms
        ORDER BY p.from_ms DESC, p.version DESC LIMIT 1)
        WHERE model = $1 AND started_ms >= $2 AND billed_from_ms IS NULL)",
                {p.model, std::to_string(p.from_ms)});
      CORRAL_RETURN_IF_ERROR(check(u, "re-price records"));
      return ins.i64(0, 0);
    }();
    (void)cmd(r.is_ok() ? "COMMIT" : "ROLLBACK");
    return r;
  }

  Expected<std::vector<PriceVersion>> list_prices() override {
    std::lock_guard<std::mutex> lk(mu_);
    Res r =
        q(R"(SELECT version, model, currency, input_micros, cached_micros, output_micros, from_ms,
      created_ms FROM prices ORDER BY model, from_ms, version)",
          {});
    CORRAL_RETURN_IF_ERROR(check(r, "list prices"));
    std::vector<PriceVersion> out;
    for (int i = 0; i < r.rows(); ++i)
      out.push_back({r.i64(i, 0), r.str(i, 1), r.str(i, 2), r.i64(i, 3), r.i64(i, 4), r.i64(i, 5),
                     r.i64(i, 6), r.i64(i, 7)});
    return out;
  }

  Expected<int64_t> add_share(const ShareVersion& v) override {
    std::lock_guard<std::mutex> lk(mu_);
    Res r =
        q("INSERT INTO shares (family, basis_points, from_ms, created_ms) VALUES ($1, $2, $3, $4) "
          "RETURNING version",
          {v.family, std::to_string(v.basis_points), std::to_string(v.from_ms),
           std::to_string(v.created_ms)});
    CORRAL_RETURN_IF_ERROR(check(r, "add share"));
    return r.i64(0, 0);
  }

  Expected<bool> append_consortium_event(const ConsortiumEvent& e, int64_t after_id,
                                         int64_t* e_id) override {
    std::lock_guard<std::mutex> lk(mu_);
    CORRAL_RETURN_IF_ERROR(cmd("BEGIN"));
    bool appended = false;
    Status st = [&]() -> Status {
      CORRAL_RETURN_IF_ERROR(cmd("LOCK TABLE consortium_events IN EXCLUSIVE MODE"));
      Res last = q("SELECT COALESCE(MAX(id), 0) FROM consortium_events", {});
      CORRAL_RETURN_IF_ERROR(check(last, "consortium journal"));
      if (last.i64(0, 0) != after_id) return Status::ok();
      Res r = q("INSERT INTO consortium_events (consortium, kind, body, at_ms, created_ms) VALUES "
                "($1, $2, $3, $4, $5) RETURNING id",
                {e.consortium, e.kind, e.body, std::to_string(e.at_ms), std::to_string(e.created_ms)});
      CORRAL_RETURN_IF_ERROR(check(r, "append consortium event"));
      if (e_id) *e_id = r.i64(0, 0);
      appended = true;
      return Status::ok();
    }();
    (void)cmd(st.is_ok() ? "COMMIT" : "ROLLBACK");
    if (!st.is_ok()) return st;
    return appended;
  }

  Expected<std::vector<ConsortiumEvent>> consortium_events(const std::string& name) override {
    std::lock_guard<std::mutex> lk(mu_);
    Res r = q("SELECT id, consortium, kind, body, at_ms, created_ms FROM consortium_events WHERE $1 "
              "= '' OR consortium = $1 ORDER BY id",
              {name});
    CORRAL_RETURN_IF_ERROR(check(r, "consortium events"));
    std::vector<ConsortiumEvent> out;
    for (int i = 0; i < r.rows(); ++i)
      out.push_back({r.i64(i, 0), r.str(i, 1), r.str(i, 2), r.str(i, 3), r.i64(i, 4), r.i64(i, 5)});
    return out;
  }

  Expected<std::vector<ShareVersion>> list_shares() override {
    std::lock_guard<std::mutex> lk(mu_);
    Res r =
        q("SELECT version, family, basis_points, from_ms, created_ms FROM shares ORDER BY family, "
          "from_ms, version",
          {});
    CORRAL_RETURN_IF_ERROR(check(r, "list shares"));
    std::vector<ShareVersion> out;
    for (int i = 0; i < r.rows(); ++i)
      out.push_back({r.i64(i, 0), r.str(i, 1), r.i64(i, 2), r.i64(i, 3), r.i64(i, 4)});
    return out;
  }

  Status add_grant(const LicenseGrant& g) override {
    std::lock_guard<std::mutex> lk(mu_);
    CORRAL_RETURN_IF_ERROR(cmd("BEGIN"));
    Status st = [&]() -> Status {
      Res r =
          q("INSERT INTO license_grants (tenant, family, ref, created_ms) VALUES ($1, $2, $3, $4)",
            {g.tenant, g.family, g.ref, std::to_string(g.created_ms)});
      if (r.sqlstate().rfind("23", 0) == 0) return make_error("no tenant named '" + g.tenant + "'");
      CORRAL_RETURN_IF_ERROR(check(r, "add grant"));
      return insert_event({g.created_ms, "grant", g.tenant, "", g.family, "granted", g.ref});
    }();
    (void)cmd(st.is_ok() ? "COMMIT" : "ROLLBACK");
    return st;
  }

  Expected<std::vector<LicenseGrant>> list_grants(const std::string& tenant) override {
    std::lock_guard<std::mutex> lk(mu_);
    Res r =
        q("SELECT tenant, family, ref, created_ms FROM license_grants WHERE $1 = '' OR tenant = $1 "
          "ORDER BY tenant, family, created_ms",
          {tenant});
    CORRAL_RETURN_IF_ERROR(check(r, "list grants"));
    std::vector<LicenseGrant> out;
    for (int i = 0; i < r.rows(); ++i)
      out.push_back({r.str(i, 0), r.str(i, 1), r.str(i, 2), r.i64(i, 3)});
    return out;
  }

  Status add_license_event(const LicenseEvent& e) override {
    std::lock_guard<std::mutex> lk(mu_);
    return insert_event(e);
  }

  Expected<std::vector<LicenseEvent>> license_events(int64_t from, int64_t to) override {
    std::lock_guard<std::mutex> lk(mu_);
    Res r =
        q("SELECT ms, kind, tenant, model, family, code, detail FROM license_events WHERE ms >= $1 "
          "AND ms < $2 ORDER BY ms, id",
          {std::to_string(from), std::to_string(to)});
    CORRAL_RETURN_IF_ERROR(check(r, "read license events"));
    std::vector<LicenseEvent> out;
    for (int i = 0; i < r.rows(); ++i)
      out.push_back({r.i64(i, 0), r.str(i, 1), r.str(i, 2), r.str(i, 3), r.str(i, 4), r.str(i, 5),
                     r.str(i, 6)});
    return out;
  }

  Expected<std::vector<ClosedStatement>> closed_statements() override {
    std::lock_guard<std::mutex> lk(mu_);
    Res r =
        q("SELECT from_ms, to_ms, digest, body, closed_ms FROM statements ORDER BY from_ms", {});
    CORRAL_RETURN_IF_ERROR(check(r, "read closed statements"));
    std::vector<ClosedStatement> out;
    for (int i = 0; i < r.rows(); ++i)
      out.push_back({r.i64(i, 0), r.i64(i, 1), r.str(i, 2), r.str(i, 3), r.i64(i, 4)});
    return out;
  }

  Status close_statement(const ClosedStatement& c, const std::vector<std::string>& ids) override {
    std::lock_guard<std::mutex> lk(mu_);
    CORRAL_RETURN_IF_ERROR(cmd("BEGIN"));
    Status st = [&]() -> Status {
      // One closer at a time across servers (the overlap check must see the others).
      CORRAL_RETURN_IF_ERROR(cmd("LOCK TABLE statements IN EXCLUSIVE MODE"));
      Res o = q("SELECT from_ms, to_ms FROM statements WHERE from_ms < $1 AND to_ms > $2",
                {std::to_string(c.to_ms), std::to_string(c.from_ms)});
      CORRAL_RETURN_IF_ERROR(check(o, "read closed statements"));
      if (o.rows() > 0)
        return make_error("the period overlaps the closed period " + format_iso8601(o.i64(0, 0)) +
                          " .. " + format_iso8601(o.i64(0, 1)));
      CORRAL_RETURN_IF_ERROR(
          check(q("INSERT INTO statements (from_ms, to_ms, digest, body, closed_ms) VALUES ($1, "
                  "$2, $3, $4, $5)",
                  {std::to_string(c.from_ms), std::to_string(c.to_ms), c.digest, c.body,
                   std::to_string(c.closed_ms)}),
                "store the closed statement"));
      for (const auto& id : ids) {
        Res u =
            q("UPDATE requests SET billed_from_ms = $1 WHERE request_id = $2 AND billed_from_ms IS "
              "NULL AND status NOT IN ('open', 'error')",
              {std::to_string(c.from_ms), id});
        CORRAL_RETURN_IF_ERROR(check(u, "bill request " + id));
        if (u.affected() != 1)
          return make_error("request " + id +
                            " was billed or changed while the statement was computed; close again");
      }
      return Status::ok();
    }();
    (void)cmd(st.is_ok() ? "COMMIT" : "ROLLBACK");
    return st;
  }

 private:
  Status insert_event(const LicenseEvent& e) {
    return check(q("INSERT INTO license_events (ms, kind, tenant, model, family, code, detail) "
                   "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                   {std::to_string(e.ms), e.kind, e.tenant, e.model, e.family, e.code, e.detail}),
                 "record license event");
  }

  // Parameterized statement (text parameters; the server converts them to the column types).
  Res q(const char* sql, const std::vector<std::string>& params) {
    std::vector<const char*> p;
    for (auto& s : params) p.push_back(s.c_str());
    PGresult* r = PQexecParams(c_, sql, int(p.size()), nullptr, p.data(), nullptr, nullptr, 0);
    if (PQstatus(c_) == CONNECTION_BAD) {  // the server restarted: one reconnect, then retry
      PQclear(r);
      PQreset(c_);
      r = PQexecParams(c_, sql, int(p.size()), nullptr, p.data(), nullptr, nullptr, 0);
    }
    return Res(r);
  }
  Status cmd(const char* sql) { return check(q(sql, {}), sql); }

 public:
  Status set_sync(LedgerSync s) {
    std::lock_guard<std::mutex> lk(mu_);
    return cmd(s == LedgerSync::kFull ? "SET synchronous_commit TO on" : "SET synchronous_commit TO off");
  }

 private:
  Status check(const Res& r, const std::string& what) {
    if (r.ok()) return Status::ok();
    std::string e = r.error();
    while (!e.empty() && e.back() == '\n') e.pop_back();
    return make_error(where_ + ": " + what + ": " + (e.empty() ? PQerrorMessage(c_) : e));
  }

  Status migrate() {
    // One migrating server at a time (the others wait here, then see the new version).
    CORRAL_RETURN_IF_ERROR(cmd("SELECT pg_advisory_xact_lock(7336547261)"));
    CORRAL_RETURN_IF_ERROR(
        cmd("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
    Res r = q("SELECT COALESCE(MAX(version), 0) FROM schema_version", {});
    CORRAL_RETURN_IF_ERROR(check(r, "read schema version"));
    const int64_t have = r.i64(0, 0),
                  known = int64_t(sizeof kPgMigrations / sizeof kPgMigrations[0]);
    if (have > known)
      return make_error(where_ + ": the ledger has schema version " + std::to_string(have) +
                        ", newer than this corral knows (" + std::to_string(known) +
                        "); upgrade corral");
    for (int64_t v = have; v < known; ++v) {
      CORRAL_RETURN_IF_ERROR(
          check(Res(PQexec(c_, kPgMigrations[v])), "migration " + std::to_string(v + 1)));
      CORRAL_RETURN_IF_ERROR(
          check(q("INSERT INTO schema_version (version) VALUES ($1)", {std::to_string(v + 1)}),
                "record schema version"));
    }
    return Status::ok();
  }

  static Tenant tenant_row(const Res& r, int i) {
    Tenant t;
    t.name = r.str(i, 0), t.mau = r.i64(i, 1), t.country = r.str(i, 2),
    t.suspended = r.i64(i, 3) != 0;
    t.limits = {r.i64(i, 4), r.i64(i, 5), r.i64(i, 6), r.i64(i, 7)};
    t.created_ms = r.i64(i, 8);
    return t;
  }
  static ApiKeyInfo key_row(const Res& r, int i, int c) {
    ApiKeyInfo k;
    k.key_id = r.str(i, c), k.tenant = r.str(i, c + 1), k.models = split_models(r.str(i, c + 2));
    k.expires_ms = r.i64(i, c + 3), k.revoked_ms = r.i64(i, c + 4), k.created_ms = r.i64(i, c + 5);
    return k;
  }

  Expected<std::optional<Tenant>> get_tenant_locked(const std::string& name, bool for_update) {
    Res r = q(for_update ? "SELECT name, mau, country, suspended, rpm, tpm, max_concurrent, "
                           "monthly_tokens, created_ms FROM tenants WHERE name = $1 FOR UPDATE"
                         : "SELECT name, mau, country, suspended, rpm, tpm, max_concurrent, "
                           "monthly_tokens, created_ms FROM tenants WHERE name = $1",
              {name});
    CORRAL_RETURN_IF_ERROR(check(r, "read tenant"));
    if (r.rows() == 0) return std::optional<Tenant>();
    return std::optional<Tenant>(tenant_row(r, 0));
  }

  Expected<AdmitResult> admit_locked(const Admission& a, int64_t month_start) {
    // The tenant's row lock orders admissions of one tenant across every server.
    CORRAL_ASSIGN_OR_RETURN(auto t, get_tenant_locked(a.tenant, true));
    if (!t) return make_error("admit: no tenant '" + a.tenant + "'");
    const std::string minute = std::to_string(a.started_ms - 60000);
    Res c = q(R"(SELECT
      COUNT(*) FILTER (WHERE started_ms > $2),
      COALESCE(SUM(CASE WHEN status = 'open' THEN reserved_tokens ELSE prompt_tokens + completion_tokens END)
               FILTER (WHERE started_ms > $2 AND status != 'error'), 0),
      COUNT(*) FILTER (WHERE status = 'open'),
      COALESCE(SUM(CASE WHEN status = 'open' THEN reserved_tokens ELSE prompt_tokens + completion_tokens END)
               FILTER (WHERE started_ms >= $3 AND status != 'error'), 0)
      FROM requests WHERE tenant = $1)",
              {a.tenant, minute, std::to_string(month_start)});
    CORRAL_RETURN_IF_ERROR(check(c, "admit"));
    TenantUse u;
    u.requests_minute = c.i64(0, 0), u.tokens_minute = c.i64(0, 1), u.open = c.i64(0, 2),
    u.tokens_month = c.i64(0, 3);
    AdmitResult r = decide_admission(t->limits, u, a.reserved_tokens);
    if (!r.ok) return r;
    Res ins = q(
        R"(INSERT INTO requests (request_id, tenant, key_id, model, instance, prompt_tokens, reserved_tokens,
      started_ms, status, family, price_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9,
      (SELECT version FROM prices WHERE model = $4 AND from_ms <= $8 ORDER BY from_ms DESC, version DESC LIMIT 1)))",
        {a.request_id, a.tenant, a.key_id, a.model, a.instance, std::to_string(a.prompt_tokens),
         std::to_string(a.reserved_tokens), std::to_string(a.started_ms), a.family});
    if (ins.sqlstate() == "23505")
      return make_error("admit: request id " + a.request_id + " exists already");
    CORRAL_RETURN_IF_ERROR(check(ins, "admit"));
    return r;
  }

  PGconn* c_;
  std::string where_;
  std::mutex mu_;
};

}  // namespace

Expected<std::unique_ptr<Ledger>> open_postgres_ledger(const std::string& conninfo, LedgerSync sync) {
  // The DSN without its password, for messages.
  std::string where = conninfo;
  const size_t at = where.find('@'), scheme = where.find("://");
  if (at != std::string::npos && scheme != std::string::npos && at > scheme) {
    const size_t colon = where.find(':', scheme + 3);
    if (colon != std::string::npos && colon < at)
      where = where.substr(0, colon) + ":***" + where.substr(at);
  }
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string e = PQerrorMessage(c);
    while (!e.empty() && e.back() == '\n') e.pop_back();
    PQfinish(c);
    return make_error(where + ": cannot connect to the ledger: " + e);
  }
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);  // "relation exists, skipping"
  auto l = std::make_unique<PgLedger>(c, where);
  CORRAL_RETURN_IF_ERROR(l->init());
  CORRAL_RETURN_IF_ERROR(l->set_sync(sync));
  return std::unique_ptr<Ledger>(std::move(l));
}

}  // namespace corral
