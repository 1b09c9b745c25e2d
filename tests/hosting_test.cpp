// The SQLite ledger and the key/time helpers on their own: schema versions, quota arithmetic
// with reservations settled to real use, settle-once, interrupted rows, keys, ISO-8601 times.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <thread>

#include "hosting/checkpoints.h"
#include "hosting/keys.h"
#include "hosting/ledger.h"
#include "test_util.h"

using namespace corral;

namespace {

std::unique_ptr<Ledger> fresh(const std::string& name) {
  const std::string path = test::tmp_path(name + ".db");
  for (const char* s : {"", "-wal", "-shm"}) std::remove((path + s).c_str());
  auto l = open_ledger("sqlite:" + path);
  EXPECT_TRUE(l.is_ok()) << l.message();
  return l.is_ok() ? std::move(l.value()) : nullptr;
}

Admission adm(const std::string& id, int64_t prompt, int64_t reserve, int64_t at) {
  Admission a;
  a.request_id = id, a.tenant = "t", a.key_id = "key_1", a.model = "m", a.instance = "i1";
  a.prompt_tokens = prompt, a.reserved_tokens = reserve, a.started_ms = at;
  return a;
}

TEST(Ledger, NewerSchemaIsRefused) {
  const std::string path = test::tmp_path("schema.db");
  std::remove(path.c_str());
  ASSERT_TRUE(open_ledger("sqlite:" + path).is_ok());
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "INSERT INTO schema_version VALUES (99)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto l = open_ledger("sqlite:" + path);
  ASSERT_FALSE(l.is_ok());
  EXPECT_NE(l.message().find("schema version 99"), std::string::npos) << l.message();
  EXPECT_FALSE(open_ledger("mysql://x").is_ok());
}

TEST(Ledger, MonthlyQuotaCountsReservationsThenRealUse) {
  auto l = fresh("quota");
  Tenant t;
  t.name = "t", t.created_ms = 1;
  ASSERT_TRUE(l->create_tenant(t).is_ok());
  EXPECT_FALSE(l->create_tenant(t).is_ok());  // exists
  TenantPatch p;
  p.monthly_tokens = 100;
  ASSERT_TRUE(l->update_tenant("t", p).is_ok());
  const int64_t month = parse_iso8601("2026-12-01").value(), now = month + 5000;
  // 60 reserved: a second 60 would exceed 100 while the first is open ...
  ASSERT_TRUE(l->admit(adm("r1", 10, 60, now), month)->ok);
  auto r2 = l->admit(adm("r2", 10, 60, now + 1), month);
  ASSERT_TRUE(r2.is_ok());
  EXPECT_FALSE(r2->ok);
  EXPECT_EQ(r2->code, "insufficient_quota");
  // ... but once r1 settles to 10 + 15 = 25 tokens, 25 + 60 <= 100 fits.
  UsageRecord u;
  u.request_id = "r1", u.prompt_tokens = 10, u.completion_tokens = 15, u.ended_ms = now + 10;
  u.status = "completed", u.finish_reason = "stop";
  ASSERT_TRUE(l->settle(u).is_ok());
  u.completion_tokens = 999;  // a second settle changes nothing
  ASSERT_TRUE(l->settle(u).is_ok());
  ASSERT_TRUE(l->admit(adm("r3", 10, 60, now + 20), month)->ok);
  EXPECT_FALSE(l->admit(adm("r3", 1, 1, now + 21), month).is_ok());  // duplicate id
  // Last month's use does not count.
  ASSERT_TRUE(l->admit(adm("old", 10, 10, month - 1000), parse_iso8601("2026-11-01").value())->ok);
  auto recs = l->usage({"t", month, INT64_MAX});
  ASSERT_TRUE(recs.is_ok());
  ASSERT_EQ(recs->size(), 2u);
  EXPECT_EQ((*recs)[0].completion_tokens, 15);
  EXPECT_EQ((*recs)[1].status, "open");
  // Open rows: verify names them; interrupting this instance's closes them.
  auto v = l->verify();
  ASSERT_TRUE(v.is_ok());
  EXPECT_EQ(v->size(), 2u);  // r3 and old are open
  ASSERT_TRUE(l->checkpoint("r3", 50).is_ok());
  EXPECT_EQ(l->interrupt_open("other", INT64_MAX, now + 30).value(), 0);
  EXPECT_EQ(l->interrupt_open("i1", INT64_MAX, now + 30).value(), 2);
  recs = l->usage({"t", month, INT64_MAX});
  EXPECT_EQ((*recs)[1].status, "interrupted");
  EXPECT_EQ((*recs)[1].completion_tokens, 50);  // the last checkpoint
  EXPECT_TRUE(l->verify()->empty());
}

TEST(Ledger, CliReconcileClosesOldOpenRows) {
  const std::string path = test::tmp_path("reconcile.db");
  for (const char* x : {"", "-wal", "-shm"}) std::remove((path + x).c_str());
  {
    auto l = open_ledger("sqlite:" + path);
    ASSERT_TRUE(l.is_ok());
    Tenant t;
    t.name = "t", t.created_ms = 1;
    ASSERT_TRUE((*l)->create_tenant(t).is_ok());
    ASSERT_TRUE((*l)->admit(adm("gone", 5, 50, now_ms() - 7200000), 0)->ok);  // 2 h ago
    ASSERT_TRUE((*l)->admit(adm("fresh", 5, 50, now_ms()), 0)->ok);
  }
  const std::string dsn = " --ledger sqlite:" + path;
  auto v = test::run_corral("ledger verify" + dsn);
  EXPECT_EQ(v.status, 1);
  EXPECT_NE(v.out.find("request gone of instance i1 is still open"), std::string::npos) << v.out;
  auto r = test::run_corral("ledger reconcile --older-than 1h" + dsn);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("1 open request(s)"), std::string::npos) << r.out;
  EXPECT_EQ(test::run_corral("ledger reconcile --older-than 0s" + dsn).status, 0);
  EXPECT_EQ(test::run_corral("ledger verify" + dsn).status, 0);
  auto u = test::run_corral("usage --json" + dsn);
  EXPECT_EQ(std::count(u.out.begin(), u.out.end(), '\n'), 2);
  EXPECT_NE(u.out.find("\"status\":\"interrupted\""), std::string::npos);
  EXPECT_EQ(test::run_corral("ledger reconcile --older-than soon" + dsn).status, 1);
}

TEST(Ledger, RateLimitsAndConcurrency) {
  auto l = fresh("rates");
  Tenant t;
  t.name = "t", t.created_ms = 1;
  ASSERT_TRUE(l->create_tenant(t).is_ok());
  TenantPatch p;
  p.rpm = 2, p.max_concurrent = 5, p.tpm = 1000;
  ASSERT_TRUE(l->update_tenant("t", p).is_ok());
  const int64_t now = parse_iso8601("2026-12-01T10:00:00Z").value();
  auto a = l->admit(adm("a", 1, 10, now), 0);
  EXPECT_TRUE(a->ok);
  EXPECT_EQ(a->limit_requests, 2);
  EXPECT_EQ(a->remaining_requests, 1);
  EXPECT_EQ(a->remaining_tokens, 990);
  EXPECT_TRUE(l->admit(adm("b", 1, 10, now + 1), 0)->ok);
  auto c = l->admit(adm("c", 1, 10, now + 2), 0);
  EXPECT_FALSE(c->ok);
  EXPECT_EQ(c->code, "rate_limit_exceeded");
  EXPECT_TRUE(l->admit(adm("d", 1, 10, now + 61000), 0)->ok);  // a minute later
  p = {};
  p.rpm = 0, p.max_concurrent = 3;
  ASSERT_TRUE(l->update_tenant("t", p).is_ok());
  EXPECT_FALSE(l->admit(adm("e", 1, 10, now + 62000), 0)->ok);  // a, b, d still open
}

TEST(Keys, FormatHashAndNames) {
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    auto k = generate_api_key();
    ASSERT_TRUE(k.is_ok());
    ASSERT_EQ(k->secret.rfind("sk-corral-", 0), 0u);
    ASSERT_EQ(k->secret.size(), 10u + 43u);
    for (char c : k->secret.substr(10)) ASSERT_TRUE(std::isalnum((unsigned char)c));
    EXPECT_EQ(k->hash, sha256_hex(k->secret));
    EXPECT_TRUE(seen.insert(k->secret).second);
  }
  // SHA-256 of "abc" (FIPS 180-2 test vector).
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(validate_tenant_name("acme-eu.prod_1").is_ok());
  for (const char* bad : {"", "-x", "a b", "x'--", "a/b", "tab\t", "\xc3\xa9t\xc3\xa9"})
    EXPECT_FALSE(validate_tenant_name(bad).is_ok()) << bad;
  EXPECT_FALSE(validate_tenant_name(std::string(65, 'a')).is_ok());
  EXPECT_EQ(normalize_country("de").value(), "DE");
  EXPECT_FALSE(normalize_country("DEU").is_ok());
  EXPECT_TRUE(is_eu_country("FR"));
  EXPECT_FALSE(is_eu_country("US"));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
}

TEST(Keys, Iso8601AndMonths) {
  EXPECT_EQ(parse_iso8601("1970-01-01").value(), 0);
  EXPECT_EQ(parse_iso8601("2000-03-01T00:00:00Z").value(), 951868800000);
  EXPECT_EQ(parse_iso8601("2024-02-29T12:30:15.250Z").value(), 1709209815250);
  EXPECT_EQ(parse_iso8601("2024-02-29T14:30:15.250+02:00").value(), 1709209815250);
  for (const char* bad :
       {"2023-02-29", "2024-13-01", "2024-1-01", "yesterday", "2024-01-01T25:00", "2024-01-01Z"})
    EXPECT_FALSE(parse_iso8601(bad).is_ok()) << bad;
  EXPECT_EQ(format_iso8601(1709209815250), "2024-02-29T12:30:15.250Z");
  EXPECT_EQ(month_start_ms(1709209815250), parse_iso8601("2024-02-01").value());
  EXPECT_EQ(next_month_ms(parse_iso8601("2024-12-31T23:59:59Z").value()),
            parse_iso8601("2025-01-01").value());
  EXPECT_EQ(parse_duration_ms("90s").value(), 90000);
  EXPECT_EQ(parse_duration_ms("2h").value(), 7200000);
  EXPECT_FALSE(parse_duration_ms("2 weeks").is_ok());
}

}  // namespace

namespace {

// Group commit: many writers' checkpoints land in few transactions, each writer returns only
// once its value is committed, and an interrupted row that received nothing bills nothing.
TEST(Ledger, CheckpointBatcherCommitsBeforeReturningAndGroupsWriters) {
  std::shared_ptr<Ledger> l = fresh("batcher");
  ASSERT_TRUE(l);
  Tenant t;
  t.name = "t", t.created_ms = 1;
  ASSERT_TRUE(l->create_tenant(t).is_ok());
  const int64_t month = parse_iso8601("2026-12-01").value(), now = month + 1000;
  for (int i = 0; i < 16; ++i) ASSERT_TRUE(l->admit(adm("s" + std::to_string(i), 7, 1000, now + i), month)->ok);
  ASSERT_TRUE(l->admit(adm("empty", 9, 1000, now + 20), month)->ok);
  auto b = std::make_shared<CheckpointBatcher>(l);
  std::vector<std::thread> th;
  for (int i = 0; i < 16; ++i)
    th.emplace_back([&, i] {
      for (int k = 1; k <= 50; ++k) {
        ASSERT_TRUE(b->record("s" + std::to_string(i), k).is_ok());
        // Once record() returns, a fresh connection sees at least k.
        auto recs = l->usage({"t", month, INT64_MAX});
        ASSERT_TRUE(recs.is_ok());
        for (auto& r : *recs)
          if (r.request_id == "s" + std::to_string(i)) ASSERT_GE(r.completion_tokens, k);
      }
    });
  for (auto& x : th) x.join();
  EXPECT_LT(b->transactions(), 16 * 50);  // writers shared transactions
  b.reset();
  EXPECT_EQ(l->interrupt_open("i1", INT64_MAX, now + 100).value(), 17);
  auto recs = l->usage({"t", month, INT64_MAX});
  for (auto& r : *recs) {
    EXPECT_EQ(r.status, "interrupted");
    if (r.request_id == "empty") {
      EXPECT_EQ(r.prompt_tokens, 0);  // received nothing: billed nothing
      EXPECT_EQ(r.completion_tokens, 0);
    } else {
      EXPECT_EQ(r.completion_tokens, 50);
      EXPECT_EQ(r.prompt_tokens, 7);
    }
  }
  EXPECT_TRUE(l->verify()->empty());
}

TEST(Ledger, VerifyNamesRecordsOverTheirReservation) {
  std::shared_ptr<Ledger> l = fresh("over");
  Tenant t;
  t.name = "t", t.created_ms = 1;
  ASSERT_TRUE(l->create_tenant(t).is_ok());
  const int64_t month = parse_iso8601("2026-12-01").value(), now = month + 1000;
  ASSERT_TRUE(l->admit(adm("big", 10, 20, now), month)->ok);
  UsageRecord u;
  u.request_id = "big", u.prompt_tokens = 10, u.completion_tokens = 11, u.ended_ms = now + 5;
  u.status = "completed", u.finish_reason = "stop";
  ASSERT_TRUE(l->settle(u).is_ok());
  auto v = l->verify();
  ASSERT_TRUE(v.is_ok());
  ASSERT_EQ(v->size(), 1u);
  EXPECT_NE((*v)[0].find("more tokens than its reservation"), std::string::npos);
}

}  // namespace
