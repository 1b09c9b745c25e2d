// The embedded ledger: one SQLite file in WAL mode with synchronous=FULL (a committed record
// survives power loss), a busy timeout for several processes, and BEGIN IMMEDIATE around every
// read-then-write so two servers on one file admit against the same counts.
#include <sqlite3.h>

#include <mutex>

#include "hosting/keys.h"
#include "hosting/ledger.h"

namespace corral {

namespace {

// Schema migrations, applied in order; schema_version records how far a ledger has gone.
const char* kMigrations[] = {
    // 1: tenants, keys, requests.
    R"sql(
CREATE TABLE tenants (
  name TEXT PRIMARY KEY,
  mau INTEGER NOT NULL DEFAULT 0,
  country TEXT NOT NULL DEFAULT '',
  suspended INTEGER NOT NULL DEFAULT 0,
  rpm INTEGER NOT NULL DEFAULT 0,
  tpm INTEGER NOT NULL DEFAULT 0,
  max_concurrent INTEGER NOT NULL DEFAULT 0,
  monthly_tokens INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL
);
CREATE TABLE api_keys (
  key_id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL REFERENCES tenants(name),
  hash TEXT NOT NULL UNIQUE,
  models TEXT NOT NULL DEFAULT '',
  expires_ms INTEGER NOT NULL DEFAULT 0,
  revoked_ms INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL
);
CREATE TABLE requests (
  request_id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  key_id TEXT NOT NULL,
  model TEXT NOT NULL,
  instance TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  cached_tokens INTEGER NOT NULL DEFAULT 0,
  completion_tokens INTEGER NOT NULL DEFAULT 0,
  reserved_tokens INTEGER NOT NULL,
  started_ms INTEGER NOT NULL,
  ended_ms INTEGER,
  finish_reason TEXT,
  status TEXT NOT NULL CHECK (status IN ('open', 'completed', 'cancelled', 'error', 'interrupted')),
  price_version INTEGER
);
CREATE INDEX requests_tenant_started ON requests(tenant, started_ms);
CREATE INDEX requests_open ON requests(status, instance);
)sql",
    // 2: prices, licensor shares, licence grants and events, closed statements.
    R"sql(
CREATE TABLE prices (
  version INTEGER PRIMARY KEY AUTOINCREMENT,
  model TEXT NOT NULL,
  currency TEXT NOT NULL,
  input_micros INTEGER NOT NULL CHECK (input_micros >= 0),
  cached_micros INTEGER NOT NULL CHECK (cached_micros >= 0),
  output_micros INTEGER NOT NULL CHECK (output_micros >= 0),
  from_ms INTEGER NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE INDEX prices_model ON prices(model, from_ms);
CREATE TABLE shares (
  version INTEGER PRIMARY KEY AUTOINCREMENT,
  family TEXT NOT NULL,
  basis_points INTEGER NOT NULL CHECK (basis_points BETWEEN 0 AND 10000),
  from_ms INTEGER NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE TABLE license_grants (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant TEXT NOT NULL REFERENCES tenants(name),
  family TEXT NOT NULL,
  ref TEXT NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE TABLE license_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  ms INTEGER NOT NULL,
  kind TEXT NOT NULL,
  tenant TEXT NOT NULL,
  model TEXT NOT NULL,
  family TEXT NOT NULL,
  code TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX license_events_ms ON license_events(ms);
CREATE TABLE statements (
  from_ms INTEGER NOT NULL,
  to_ms INTEGER NOT NULL,
  digest TEXT NOT NULL,
  body TEXT NOT NULL,
  closed_ms INTEGER NOT NULL,
  PRIMARY KEY (from_ms, to_ms)
);
ALTER TABLE requests ADD COLUMN family TEXT NOT NULL DEFAULT 'none';
ALTER TABLE requests ADD COLUMN billed_from_ms INTEGER;
CREATE INDEX requests_billed ON requests(billed_from_ms);
)sql",
    // 3: the consortium journal.
    R"sql(
CREATE TABLE consortium_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  consortium TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('create', 'member', 'contribution', 'compute', 'model', 'close')),
  body TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE INDEX consortium_events_name ON consortium_events(consortium, id);
)sql",
};

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& bind_null(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }
  int step() { return sqlite3_step(s_); }
  void reset() { sqlite3_reset(s_); }
  int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
  bool is_null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  std::string str(int c) const {
    const auto* p = sqlite3_column_text(s_, c);
    return p ? std::string(reinterpret_cast<const char*>(p), size_t(sqlite3_column_bytes(s_, c)))
             : "";
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

class SqliteLedger : public Ledger {
 public:
  SqliteLedger(sqlite3* db, std::string path, LedgerSync sync) : db_(db), path_(std::move(path)), sync_(sync) {}
  ~SqliteLedger() override { sqlite3_close(db_); }

  Status init() {
    // Before anything touches the file: two processes opening it at once (the ranks of a
    // training job, several servers) wait for each other instead of failing "locked".
    sqlite3_busy_timeout(db_, 10000);
    for (const char* p : {"PRAGMA journal_mode=WAL",
                          sync_ == LedgerSync::kFull ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                          "PRAGMA foreign_keys=ON"})
      if (Status st = exec(p); !st.is_ok()) return st;
    std::lock_guard<std::mutex> lk(mu_);
    CORRAL_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
    Status st = migrate();
    CORRAL_RETURN_IF_ERROR(exec(st.is_ok() ? "COMMIT" : "ROLLBACK"));
    return st;
  }

  Status create_tenant(const Tenant& t) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, "INSERT INTO tenants (name, mau, country, created_ms) VALUES (?, ?, ?, ?)");
    s.bind(1, t.name).bind(2, t.mau).bind(3, t.country).bind(4, t.created_ms);
    const int rc = s.step();
    if (rc == SQLITE_CONSTRAINT) return make_error("tenant '" + t.name + "' already exists");
    return done(rc, "add tenant");
  }

  Expected<std::vector<Tenant>> list_tenants(int64_t month_start) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, R"(SELECT t.name, t.mau, t.country, t.suspended, t.rpm, t.tpm, t.max_concurrent,
      t.monthly_tokens, t.created_ms,
      COALESCE((SELECT SUM(prompt_tokens) FROM requests r WHERE r.tenant = t.name AND r.started_ms >= ?1 AND r.status != 'error'), 0),
      COALESCE((SELECT SUM(completion_tokens) FROM requests r WHERE r.tenant = t.name AND r.started_ms >= ?1 AND r.status != 'error'), 0)
      FROM tenants t ORDER BY t.name)");
    s.bind(1, month_start);
    std::vector<Tenant> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      Tenant t = tenant_row(s);
      t.month_prompt_tokens = s.i64(9);
      t.month_completion_tokens = s.i64(10);
      out.push_back(t);
    }
    CORRAL_RETURN_IF_ERROR(done(rc, "list tenants"));
    return out;
  }

  Expected<std::optional<Tenant>> get_tenant(const std::string& name) override {
    std::lock_guard<std::mutex> lk(mu_);
    return get_tenant_locked(name);
  }

  Expected<bool> has_tenants() override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, "SELECT EXISTS (SELECT 1 FROM tenants)");
    if (s.step() != SQLITE_ROW) return make_error(err("count tenants"));
    return s.i64(0) != 0;
  }

  Status update_tenant(const std::string& name, const TenantPatch& p) override {
    std::lock_guard<std::mutex> lk(mu_);
    CORRAL_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
    auto fail = [&](Status st) {
      exec("ROLLBACK");
      return st;
    };
    auto t = get_tenant_locked(name);
    if (!t.is_ok()) return fail(make_error(t.message()));
    if (!t->has_value()) return fail(make_error("no tenant named '" + name + "'"));
    Stmt s(db_,
           R"(UPDATE tenants SET rpm = ?, tpm = ?, max_concurrent = ?, monthly_tokens = ?, mau = ?,
      country = ?, suspended = ? WHERE name = ?)");
    const Tenant& c = **t;
    s.bind(1, p.rpm.value_or(c.limits.rpm)).bind(2, p.tpm.value_or(c.limits.tpm));
    s.bind(3, p.max_concurrent.value_or(c.limits.max_concurrent))
        .bind(4, p.monthly_tokens.value_or(c.limits.monthly_tokens));
    s.bind(5, p.mau.value_or(c.mau)).bind(6, p.country.value_or(c.country));
    s.bind(7, int64_t(p.suspended.value_or(c.suspended))).bind(8, name);
    if (Status st = done(s.step(), "update tenant"); !st.is_ok()) return fail(st);
    return exec("COMMIT");
  }

  Status create_key(const ApiKeyInfo& k, const std::string& hash) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_,
           "INSERT INTO api_keys (key_id, tenant, hash, models, expires_ms, created_ms) VALUES (?, "
           "?, ?, ?, ?, ?)");
    s.bind(1, k.key_id)
        .bind(2, k.tenant)
        .bind(3, hash)
        .bind(4, join_models(k.models))
        .bind(5, k.expires_ms)
        .bind(6, k.created_ms);
    const int rc = s.step();
    if (rc == SQLITE_CONSTRAINT)
      return make_error("cannot create the key (unknown tenant '" + k.tenant + "'?)");
    return done(rc, "create key");
  }

  Expected<std::vector<ApiKeyInfo>> list_keys(const std::string& tenant) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_,
           "SELECT key_id, tenant, models, expires_ms, revoked_ms, created_ms FROM api_keys WHERE "
           "?1 = '' OR tenant = ?1 ORDER BY tenant, created_ms");
    s.bind(1, tenant);
    std::vector<ApiKeyInfo> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(key_row(s, 0));
    CORRAL_RETURN_IF_ERROR(done(rc, "list keys"));
    return out;
  }

  Status revoke_key(const std::string& key_id, int64_t now) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, "UPDATE api_keys SET revoked_ms = ? WHERE key_id = ? AND revoked_ms = 0");
    s.bind(1, now).bind(2, key_id);
    CORRAL_RETURN_IF_ERROR(done(s.step(), "revoke key"));
    if (sqlite3_changes(db_) == 0) {
      Stmt q(db_, "SELECT 1 FROM api_keys WHERE key_id = ?");
      q.bind(1, key_id);
      if (q.step() != SQLITE_ROW) return make_error("no key with id '" + key_id + "'");
    }
    return Status::ok();
  }

  Expected<std::optional<std::pair<ApiKeyInfo, Tenant>>> find_key(
      const std::string& hash) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_,
           R"(SELECT k.key_id, k.tenant, k.models, k.expires_ms, k.revoked_ms, k.created_ms, k.hash,
      t.name, t.mau, t.country, t.suspended, t.rpm, t.tpm, t.max_concurrent, t.monthly_tokens, t.created_ms
      FROM api_keys k JOIN tenants t ON t.name = k.tenant WHERE k.hash = ?)");
    s.bind(1, hash);
    const int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<std::pair<ApiKeyInfo, Tenant>>();
    if (rc != SQLITE_ROW) return make_error(err("find key"));
    if (!constant_time_equal(s.str(6), hash)) return std::optional<std::pair<ApiKeyInfo, Tenant>>();
    Tenant t;
    t.name = s.str(7);
    t.mau = s.i64(8);
    t.country = s.str(9);
    t.suspended = s.i64(10) != 0;
    t.limits = {s.i64(11), s.i64(12), s.i64(13), s.i64(14)};
    t.created_ms = s.i64(15);
    return std::optional<std::pair<ApiKeyInfo, Tenant>>(std::make_pair(key_row(s, 0), t));
  }

  Expected<AdmitResult> admit(const Admission& a, int64_t month_start) override {
    std::lock_guard<std::mutex> lk(mu_);
    CORRAL_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
    auto r = admit_locked(a, month_start);
    exec(r.is_ok() && r->ok ? "COMMIT" : "ROLLBACK");
    return r;
  }

  Status checkpoint(const std::string& id, int64_t completion) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_,
           "UPDATE requests SET completion_tokens = ? WHERE request_id = ? AND status = 'open'");
    s.bind(1, completion).bind(2, id);
    return done(s.step(), "checkpoint");
  }

  Status checkpoint_many(const std::vector<std::pair<std::string, int64_t>>& items) override {
    std::lock_guard<std::mutex> lk(mu_);
    CORRAL_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
    Status st = [&]() -> Status {
      Stmt s(db_, "UPDATE requests SET completion_tokens = ? WHERE request_id = ? AND status = 'open'");
      for (auto& [id, n] : items) {
        s.bind(1, n).bind(2, id);
        CORRAL_RETURN_IF_ERROR(done(s.step(), "checkpoint"));
        s.reset();
      }
      return Status::ok();
    }();
    CORRAL_RETURN_IF_ERROR(exec(st.is_ok() ? "COMMIT" : "ROLLBACK"));
    return st;
  }

  Status settle(const UsageRecord& r) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, R"(UPDATE requests SET prompt_tokens = ?, cached_tokens = ?, completion_tokens = ?,
      ended_ms = ?, finish_reason = ?, status = ? WHERE request_id = ? AND status = 'open')");
    s.bind(1, r.prompt_tokens)
        .bind(2, r.cached_tokens)
        .bind(3, r.completion_tokens)
        .bind(4, r.ended_ms);
    s.bind(5, r.finish_reason).bind(6, r.status).bind(7, r.request_id);
    return done(s.step(), "settle request " + r.request_id);
  }

  Expected<int64_t> interrupt_open(const std::string& instance, int64_t before,
                                   int64_t now) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(
        db_,
        R"(UPDATE requests SET status = 'interrupted', ended_ms = ?, finish_reason = 'interrupted',
      prompt_tokens = CASE WHEN completion_tokens = 0 THEN 0 ELSE prompt_tokens END,
      cached_tokens = CASE WHEN completion_tokens = 0 THEN 0 ELSE cached_tokens END
      WHERE status = 'open' AND (?2 = '' OR instance = ?2) AND started_ms < ?3)");
    s.bind(1, now).bind(2, instance).bind(3, before);
    CORRAL_RETURN_IF_ERROR(done(s.step(), "close open requests"));
    return int64_t(sqlite3_changes(db_));
  }

  Expected<std::vector<UsageRecord>> usage(const UsageQuery& q) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, R"(SELECT request_id, tenant, key_id, model, instance, prompt_tokens, cached_tokens,
      completion_tokens, started_ms, COALESCE(ended_ms, 0), COALESCE(finish_reason, ''), status, price_version,
      family, billed_from_ms
      FROM requests WHERE (?1 = '' OR tenant = ?1) AND started_ms >= ?2 AND started_ms < ?3
      AND (?4 = 0 OR billed_from_ms IS NULL) AND (?5 = -1 OR billed_from_ms = ?5)
      ORDER BY started_ms, request_id)");
    s.bind(1, q.tenant).bind(2, q.from_ms).bind(3, q.to_ms).bind(4, int64_t(q.unbilled_only));
    s.bind(5, q.billed_from_ms.value_or(-1));
    std::vector<UsageRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      UsageRecord u;
      u.request_id = s.str(0), u.tenant = s.str(1), u.key_id = s.str(2), u.model = s.str(3),
      u.instance = s.str(4);
      u.prompt_tokens = s.i64(5), u.cached_tokens = s.i64(6), u.completion_tokens = s.i64(7);
      u.started_ms = s.i64(8), u.ended_ms = s.i64(9), u.finish_reason = s.str(10),
      u.status = s.str(11);
      if (!s.is_null(12)) u.price_version = s.i64(12);
      u.family = s.str(13);
      if (!s.is_null(14)) u.billed_from_ms = s.i64(14);
      out.push_back(u);
    }
    CORRAL_RETURN_IF_ERROR(done(rc, "read usage"));
    return out;
  }

  Expected<std::vector<std::string>> verify() override {
    std::lock_guard<std::mutex> lk(mu_);
    std::vector<std::string> v;
    Stmt open(
        db_, "SELECT request_id, instance FROM requests WHERE status = 'open' ORDER BY started_ms");
    while (open.step() == SQLITE_ROW)
      v.push_back("request " + open.str(0) + " of instance " + open.str(1) + " is still open");
    Stmt bad(db_, R"(SELECT request_id FROM requests WHERE status != 'open' AND (ended_ms IS NULL OR
      ended_ms < started_ms OR prompt_tokens < 0 OR completion_tokens < 0 OR cached_tokens < 0 OR
      cached_tokens > prompt_tokens))");
    while (bad.step() == SQLITE_ROW)
      v.push_back("request " + bad.str(0) + " has inconsistent counts or times");
    Stmt over(db_, "SELECT request_id FROM requests WHERE prompt_tokens + completion_tokens > reserved_tokens");
    while (over.step() == SQLITE_ROW)
      v.push_back("request " + over.str(0) + " has more tokens than its reservation");
    Stmt intr(db_, "SELECT request_id FROM requests WHERE status = 'interrupted' AND finish_reason != 'interrupted'");
    while (intr.step() == SQLITE_ROW)
      v.push_back("request " + intr.str(0) + " is interrupted but was not closed at a restart");
    Stmt orphan(db_,
                "SELECT r.request_id FROM requests r LEFT JOIN tenants t ON t.name = r.tenant "
                "WHERE t.name IS NULL");
    while (orphan.step() == SQLITE_ROW)
      v.push_back("request " + orphan.str(0) + " names no known tenant");
    Stmt ic(db_, "PRAGMA integrity_check");
    if (ic.step() == SQLITE_ROW && ic.str(0) != "ok")
      v.push_back("sqlite integrity_check: " + ic.str(0));
    return v;
  }

  Expected<int64_t> add_price(const PriceVersion& p) override {
    std::lock_guard<std::mutex> lk(mu_);
    CORRAL_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
    auto r = [&]() -> Expected<int64_t> {
      Stmt s(db_,
             R"(INSERT INTO prices (model, currency, input_micros, cached_micros, output_micros,
        from_ms, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?))");
      s.bind(1, p.model).bind(2, p.currency).bind(3, p.input_micros).bind(4, p.cached_micros);
      s.bind(5, p.output_micros).bind(6, p.from_ms).bind(7, p.created_ms);
      CORRAL_RETURN_IF_ERROR(done(s.step(), "add price"));
      const int64_t v = sqlite3_last_insert_rowid(db_);
      Stmt u(db_, R"(UPDATE requests SET price_version = (SELECT p.version FROM prices p
        WHERE p.model = requests.model AND p.from_ms <= requests.started_ms
        ORDER BY p.from_ms DESC, p.version DESC LIMIT 1)
        WHERE model = ? AND started_ms >= ? AND billed_from_ms IS NULL)");
      u.bind(1, p.model).bind(2, p.from_ms);
      CORRAL_RETURN_IF_ERROR(done(u.step(), "re-price records"));
      return v;
    }();
    exec(r.is_ok() ? "COMMIT" : "ROLLBACK");
    return r;
  }

  Expected<std::vector<PriceVersion>> list_prices() override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, R"(SELECT version, model, currency, input_micros, cached_micros, output_micros,
      from_ms, created_ms FROM prices ORDER BY model, from_ms, version)");
    std::vector<PriceVersion> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back(
          {s.i64(0), s.str(1), s.str(2), s.i64(3), s.i64(4), s.i64(5), s.i64(6), s.i64(7)});
    CORRAL_RETURN_IF_ERROR(done(rc, "list prices"));
    return out;
  }

  Expected<int64_t> add_share(const ShareVersion& v) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_,
           "INSERT INTO shares (family, basis_points, from_ms, created_ms) VALUES (?, ?, ?, ?)");
    s.bind(1, v.family).bind(2, v.basis_points).bind(3, v.from_ms).bind(4, v.created_ms);
    CORRAL_RETURN_IF_ERROR(done(s.step(), "add share"));
    return int64_t(sqlite3_last_insert_rowid(db_));
  }

  Expected<bool> append_consortium_event(const ConsortiumEvent& e, int64_t after_id,
                                         int64_t* e_id) override {
    std::lock_guard<std::mutex> lk(mu_);
    CORRAL_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
    bool appended = false;
    Status st = [&]() -> Status {
      Stmt last(db_, "SELECT COALESCE(MAX(id), 0) FROM consortium_events");
      if (last.step() != SQLITE_ROW) return make_error(std::string("consortium journal: ") + sqlite3_errmsg(db_));
      if (last.i64(0) != after_id) return Status::ok();
      Stmt s(db_,
             "INSERT INTO consortium_events (consortium, kind, body, at_ms, created_ms) VALUES (?, "
             "?, ?, ?, ?)");
      s.bind(1, e.consortium).bind(2, e.kind).bind(3, e.body).bind(4, e.at_ms).bind(5, e.created_ms);
      CORRAL_RETURN_IF_ERROR(done(s.step(), "append consortium event"));
      if (e_id) *e_id = int64_t(sqlite3_last_insert_rowid(db_));
      appended = true;
      return Status::ok();
    }();
    exec(st.is_ok() ? "COMMIT" : "ROLLBACK");
    if (!st.is_ok()) return st;
    return appended;
  }

  Expected<std::vector<ConsortiumEvent>> consortium_events(const std::string& name) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_,
           "SELECT id, consortium, kind, body, at_ms, created_ms FROM consortium_events WHERE ? = "
           "'' OR consortium = ? ORDER BY id");
    s.bind(1, name).bind(2, name);
    std::vector<ConsortiumEvent> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back({s.i64(0), s.str(1), s.str(2), s.str(3), s.i64(4), s.i64(5)});
    CORRAL_RETURN_IF_ERROR(done(rc, "consortium events"));
    return out;
  }

  Expected<std::vector<ShareVersion>> list_shares() override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_,
           "SELECT version, family, basis_points, from_ms, created_ms FROM shares ORDER BY family, "
           "from_ms, version");
    std::vector<ShareVersion> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back({s.i64(0), s.str(1), s.i64(2), s.i64(3), s.i64(4)});
    CORRAL_RETURN_IF_ERROR(done(rc, "list shares"));
    return out;
  }

  Status add_grant(const LicenseGrant& g) override {
    std::lock_guard<std::mutex> lk(mu_);
    CORRAL_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
    Status st = [&]() -> Status {
      Stmt s(db_,
             "INSERT INTO license_grants (tenant, family, ref, created_ms) VALUES (?, ?, ?, ?)");
      s.bind(1, g.tenant).bind(2, g.family).bind(3, g.ref).bind(4, g.created_ms);
      const int rc = s.step();
      if (rc == SQLITE_CONSTRAINT) return make_error("no tenant named '" + g.tenant + "'");
      CORRAL_RETURN_IF_ERROR(done(rc, "add grant"));
      return insert_event({g.created_ms, "grant", g.tenant, "", g.family, "granted", g.ref});
    }();
    exec(st.is_ok() ? "COMMIT" : "ROLLBACK");
    return st;
  }

  Expected<std::vector<LicenseGrant>> list_grants(const std::string& tenant) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_,
           "SELECT tenant, family, ref, created_ms FROM license_grants WHERE ?1 = '' OR tenant = "
           "?1 ORDER BY tenant, family, created_ms");
    s.bind(1, tenant);
    std::vector<LicenseGrant> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back({s.str(0), s.str(1), s.str(2), s.i64(3)});
    CORRAL_RETURN_IF_ERROR(done(rc, "list grants"));
    return out;
  }

  Status add_license_event(const LicenseEvent& e) override {
    std::lock_guard<std::mutex> lk(mu_);
    return insert_event(e);
  }

  Expected<std::vector<LicenseEvent>> license_events(int64_t from, int64_t to) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_,
           "SELECT ms, kind, tenant, model, family, code, detail FROM license_events WHERE ms >= ? "
           "AND ms < ? ORDER BY ms, id");
    s.bind(1, from).bind(2, to);
    std::vector<LicenseEvent> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back({s.i64(0), s.str(1), s.str(2), s.str(3), s.str(4), s.str(5), s.str(6)});
    CORRAL_RETURN_IF_ERROR(done(rc, "read license events"));
    return out;
  }

  Expected<std::vector<ClosedStatement>> closed_statements() override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, "SELECT from_ms, to_ms, digest, body, closed_ms FROM statements ORDER BY from_ms");
    std::vector<ClosedStatement> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back({s.i64(0), s.i64(1), s.str(2), s.str(3), s.i64(4)});
    CORRAL_RETURN_IF_ERROR(done(rc, "read closed statements"));
    return out;
  }

  Status close_statement(const ClosedStatement& c, const std::vector<std::string>& ids) override {
    std::lock_guard<std::mutex> lk(mu_);
    CORRAL_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
    Status st = [&]() -> Status {
      Stmt o(db_, "SELECT from_ms, to_ms FROM statements WHERE from_ms < ? AND to_ms > ?");
      o.bind(1, c.to_ms).bind(2, c.from_ms);
      if (o.step() == SQLITE_ROW)
        return make_error("the period overlaps the closed period " + format_iso8601(o.i64(0)) +
                          " .. " + format_iso8601(o.i64(1)));
      Stmt s(db_,
             "INSERT INTO statements (from_ms, to_ms, digest, body, closed_ms) VALUES (?, ?, ?, ?, "
             "?)");
      s.bind(1, c.from_ms).bind(2, c.to_ms).bind(3, c.digest).bind(4, c.body).bind(5, c.closed_ms);
      CORRAL_RETURN_IF_ERROR(done(s.step(), "store the closed statement"));
      for (const auto& id : ids) {
        Stmt u(db_,
               "UPDATE requests SET billed_from_ms = ? WHERE request_id = ? AND billed_from_ms IS "
               "NULL AND status NOT IN ('open', 'error')");
        u.bind(1, c.from_ms).bind(2, id);
        CORRAL_RETURN_IF_ERROR(done(u.step(), "bill request " + id));
        if (sqlite3_changes(db_) != 1)
          return make_error("request " + id +
                            " was billed or changed while the statement was computed; close again");
      }
      return Status::ok();
    }();
    exec(st.is_ok() ? "COMMIT" : "ROLLBACK");
    return st;
  }

 private:
  Status insert_event(const LicenseEvent& e) {
    Stmt s(db_,
           "INSERT INTO license_events (ms, kind, tenant, model, family, code, detail) VALUES (?, "
           "?, ?, ?, ?, ?, ?)");
    s.bind(1, e.ms).bind(2, e.kind).bind(3, e.tenant).bind(4, e.model).bind(5, e.family);
    s.bind(6, e.code).bind(7, e.detail);
    return done(s.step(), "record license event");
  }

  Status exec(const char* sql) {
    char* e = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &e) != SQLITE_OK) {
      std::string m = e ? e : "unknown error";
      sqlite3_free(e);
      return make_error(path_ + ": " + m + " (in: " + std::string(sql).substr(0, 60) + ")");
    }
    return Status::ok();
  }
  std::string err(const std::string& what) {
    return path_ + ": " + what + ": " + sqlite3_errmsg(db_);
  }
  Status done(int rc, const std::string& what) {
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? Status::ok() : Status(make_error(err(what)));
  }

  Status migrate() {
    CORRAL_RETURN_IF_ERROR(
        exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
    int64_t have = 0;
    {
      Stmt s(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
      if (s.step() == SQLITE_ROW) have = s.i64(0);
    }
    const int64_t known = int64_t(sizeof kMigrations / sizeof kMigrations[0]);
    if (have > known)
      return make_error(path_ + ": the ledger has schema version " + std::to_string(have) +
                        ", newer than this corral knows (" + std::to_string(known) +
                        "); upgrade corral");
    for (int64_t v = have; v < known; ++v) {
      CORRAL_RETURN_IF_ERROR(exec(kMigrations[v]));
      Stmt s(db_, "INSERT INTO schema_version (version) VALUES (?)");
      s.bind(1, v + 1);
      CORRAL_RETURN_IF_ERROR(done(s.step(), "record schema version"));
    }
    return Status::ok();
  }

  static Tenant tenant_row(const Stmt& s) {
    Tenant t;
    t.name = s.str(0), t.mau = s.i64(1), t.country = s.str(2), t.suspended = s.i64(3) != 0;
    t.limits = {s.i64(4), s.i64(5), s.i64(6), s.i64(7)};
    t.created_ms = s.i64(8);
    return t;
  }
  static ApiKeyInfo key_row(const Stmt& s, int c) {
    ApiKeyInfo k;
    k.key_id = s.str(c), k.tenant = s.str(c + 1), k.models = split_models(s.str(c + 2));
    k.expires_ms = s.i64(c + 3), k.revoked_ms = s.i64(c + 4), k.created_ms = s.i64(c + 5);
    return k;
  }

  Expected<std::optional<Tenant>> get_tenant_locked(const std::string& name) {
    Stmt s(db_,
           "SELECT name, mau, country, suspended, rpm, tpm, max_concurrent, monthly_tokens, "
           "created_ms FROM tenants WHERE name = ?");
    s.bind(1, name);
    const int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<Tenant>();
    if (rc != SQLITE_ROW) return make_error(err("read tenant"));
    return std::optional<Tenant>(tenant_row(s));
  }

  Expected<AdmitResult> admit_locked(const Admission& a, int64_t month_start) {
    CORRAL_ASSIGN_OR_RETURN(auto t, get_tenant_locked(a.tenant));
    if (!t) return make_error("admit: no tenant '" + a.tenant + "'");
    // Tokens a request counts for: its reservation while open, its real use once closed.
    const char* used =
        "CASE WHEN status = 'open' THEN reserved_tokens ELSE prompt_tokens + completion_tokens END";
    auto scalar = [&](const std::string& sql, int64_t since) -> int64_t {
      Stmt s(db_, sql.c_str());
      s.bind(1, a.tenant).bind(2, since);
      return s.step() == SQLITE_ROW ? s.i64(0) : 0;
    };
    const int64_t minute = a.started_ms - 60000;
    TenantUse u;
    u.requests_minute =
        scalar("SELECT COUNT(*) FROM requests WHERE tenant = ? AND started_ms > ?", minute);
    u.tokens_minute =
        scalar(std::string("SELECT COALESCE(SUM(") + used +
                   "), 0) FROM requests WHERE tenant = ? AND started_ms > ? AND status != 'error'",
               minute);
    u.open =
        scalar("SELECT COUNT(*) FROM requests WHERE tenant = ? AND status = 'open' AND ? >= 0", 0);
    u.tokens_month =
        scalar(std::string("SELECT COALESCE(SUM(") + used +
                   "), 0) FROM requests WHERE tenant = ? AND started_ms >= ? AND status != 'error'",
               month_start);
    AdmitResult r = decide_admission(t->limits, u, a.reserved_tokens);
    if (!r.ok) return r;
    // The price in force at the start is read in the admitting transaction, so a price set a
    // moment ago (by any process) applies from the next request on.
    Stmt s(db_, R"(INSERT INTO requests (request_id, tenant, key_id, model, instance, prompt_tokens,
      reserved_tokens, started_ms, status, family, price_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,
      'open', ?9, (SELECT version FROM prices WHERE model = ?4 AND from_ms <= ?8
                   ORDER BY from_ms DESC, version DESC LIMIT 1)))");
    s.bind(1, a.request_id)
        .bind(2, a.tenant)
        .bind(3, a.key_id)
        .bind(4, a.model)
        .bind(5, a.instance);
    s.bind(6, a.prompt_tokens).bind(7, a.reserved_tokens).bind(8, a.started_ms).bind(9, a.family);
    const int rc = s.step();
    if (rc == SQLITE_CONSTRAINT)
      return make_error("admit: request id " + a.request_id + " exists already");
    CORRAL_RETURN_IF_ERROR(done(rc, "admit"));
    return r;
  }

  sqlite3* db_;
  std::string path_;
  LedgerSync sync_;
  std::mutex mu_;
};

}  // namespace

Expected<std::unique_ptr<Ledger>> open_sqlite_ledger(const std::string& path, LedgerSync sync) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string m = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return make_error(path + ": cannot open the ledger: " + m);
  }
  auto l = std::make_unique<SqliteLedger>(db, path, sync);
  CORRAL_RETURN_IF_ERROR(l->init());
  return std::unique_ptr<Ledger>(std::move(l));
}

}  // namespace corral
