// Statement arithmetic against values computed by hand here (half-way rounding, zero prices, a
// price change inside the period, statuses, adjustments), decimal parsing, the license terms and
// gate, and the ledger's price stamping.
#include "hosting/statement.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>

#include "hosting/keys.h"
#include "hosting/license.h"
#include "hosting/signing.h"
#include "test_util.h"

namespace corral {
namespace {

UsageRecord rec(const std::string& tenant, const std::string& model, int64_t started,
                std::optional<int64_t> price, int64_t prompt, int64_t cached, int64_t completion,
                const std::string& status = "completed", const std::string& family = "llama3.1") {
  UsageRecord r;
  static int n = 0;
  r.request_id = "r" + std::to_string(++n);
  r.tenant = tenant, r.model = model, r.started_ms = started, r.price_version = price;
  r.prompt_tokens = prompt, r.cached_tokens = cached, r.completion_tokens = completion;
  r.status = status, r.family = family;
  return r;
}

PriceVersion price(int64_t version, const std::string& model, int64_t in, int64_t cached,
                   int64_t out, int64_t from = 0) {
  PriceVersion p;
  p.version = version, p.model = model, p.input_micros = in, p.cached_micros = cached;
  p.output_micros = out, p.from_ms = from;
  return p;
}

TEST(Statement, RoundHalfEven) {
  EXPECT_EQ(*div_round_half_even(500000, 1000000), 0);   // 0.5 -> 0
  EXPECT_EQ(*div_round_half_even(1500000, 1000000), 2);  // 1.5 -> 2
  EXPECT_EQ(*div_round_half_even(2500000, 1000000), 2);  // 2.5 -> 2
  EXPECT_EQ(*div_round_half_even(2500001, 1000000), 3);
  EXPECT_EQ(*div_round_half_even(2499999, 1000000), 2);
  EXPECT_EQ(*div_round_half_even(5000, 10000), 0);
  EXPECT_EQ(*div_round_half_even(15000, 10000), 2);
  EXPECT_FALSE(div_round_half_even(__int128(INT64_MAX) * 4, 2).has_value());
}

TEST(Statement, DecimalParsing) {
  EXPECT_EQ(*parse_decimal_scaled("0.10", 6, "x"), 100000);
  EXPECT_EQ(*parse_decimal_scaled("2.5", 6, "x"), 2500000);
  EXPECT_EQ(*parse_decimal_scaled("007", 6, "x"), 7000000);
  EXPECT_EQ(*parse_decimal_scaled(".5", 6, "x"), 500000);
  EXPECT_EQ(*parse_decimal_scaled("12.34", 2, "x"), 1234);
  EXPECT_EQ(*parse_decimal_scaled("0.000001", 6, "x"), 1);
  for (const char* bad : {"", ".", "1.", "-1", "1e3", "1.2.3", "0.1234567", " 1", "1,5", "nan",
                          "99999999999999999999"})
    EXPECT_FALSE(parse_decimal_scaled(bad, 6, "--input").is_ok()) << bad;
  EXPECT_NE(parse_decimal_scaled("1.234", 2, "--percent").message().find("2 decimal places"),
            std::string::npos);
}

TEST(Statement, LinesAndTotalsByHand) {
  // Model a: input 0.10, cached 0.05, output 2.50 per million (micro-units per million tokens);
  // from t=1000 version 2: input 0.20, cached 0.20, output 1.00.
  std::vector<PriceVersion> prices = {price(1, "a", 100000, 50000, 2500000),
                                      price(2, "a", 200000, 200000, 1000000, 1000),
                                      price(3, "free", 0, 0, 0)};
  std::vector<ShareVersion> shares = {{1, "llama3.1", 1250, 0, 0}, {2, "llama4", 2500, 0, 0}};
  std::vector<UsageRecord> rs = {
      // t1/a/v1: uncached 800*100000 + 200*50000 + 300*2500000 = 840,000,000 -> 840 micros.
      rec("t1", "a", 10, 1, 1000, 200, 300),
      // same line: 7 uncached, 3 completion: 700,000 + 7,500,000 = 8,200,000 -> 8.2 ->
      // the line's sum is 848,200,000 -> 848 (rounded once per line, not per request).
      rec("t1", "a", 20, 1, 7, 0, 3, "cancelled"),
      // t1/a/v2 (the price changed mid-period): 2500 uncached * 200000 = 500,000,000; 1 completion
      // * 1,000,000 -> 501,000,000 -> 501.
      rec("t1", "a", 1500, 2, 2500, 0, 1, "interrupted"),
      // errors and open records are never billed.
      rec("t1", "a", 30, 1, 999, 0, 999, "error"),
      rec("t1", "a", 40, 1, 999, 0, 999, "open"),
      // zero-price line.
      rec("t2", "free", 50, 3, 123, 23, 45),
      // t2/b: llama4 at 0.000001 input per million ("price 1"): 1,500,000 tokens -> 1.5 -> 2.
      rec("t2", "b", 60, 4, 1500000, 0, 0, "completed", "llama4"),
      // outside the period: never counted.
      rec("t1", "a", 5000, 2, 1, 0, 1),
  };
  prices.push_back(price(4, "b", 1, 1, 0));
  auto st = build_statement(0, 2000, rs, prices, shares, {});
  ASSERT_TRUE(st.is_ok()) << st.message();
  ASSERT_EQ(st->lines.size(), 4u);
  const auto& l1 = st->lines[0];  // t1 a v1
  EXPECT_EQ(l1.tenant + l1.model, "t1a");
  EXPECT_EQ(*l1.price_version, 1);
  EXPECT_EQ(l1.t.requests, 2);
  EXPECT_EQ(l1.t.uncached, 807);
  EXPECT_EQ(l1.t.cached, 200);
  EXPECT_EQ(l1.t.completion, 303);
  EXPECT_EQ(l1.t.amount, 848);
  EXPECT_EQ(l1.t.share, 106);  // 848 * 1250 / 10000 = 106.0
  EXPECT_EQ(l1.t.net, 742);
  const auto& l2 = st->lines[1];  // t1 a v2
  EXPECT_EQ(*l2.price_version, 2);
  EXPECT_EQ(l2.t.amount, 501);
  EXPECT_EQ(l2.t.share, 63);      // 501 * 0.125 = 62.625 -> 63
  const auto& l3 = st->lines[2];  // t2 b (llama4, 25%)
  EXPECT_EQ(l3.model, "b");
  EXPECT_EQ(l3.t.amount, 2);  // 1.5 -> 2
  EXPECT_EQ(l3.t.share, 0);   // 2 * 0.25 = 0.5 -> 0
  EXPECT_EQ(l3.t.net, 2);
  const auto& l4 = st->lines[3];  // t2 free
  EXPECT_EQ(l4.t.amount, 0);
  EXPECT_EQ(l4.t.uncached, 100);
  EXPECT_EQ(l4.t.cached, 23);

  const auto j = statement_json(*st);
  EXPECT_EQ(j["totals"]["overall"]["amount_micros"], 848 + 501 + 2 + 0);
  EXPECT_EQ(j["totals"]["overall"]["share_micros"], 106 + 63 + 0 + 0);
  EXPECT_EQ(j["totals"]["overall"]["requests"], 5);
  EXPECT_EQ(j["totals"]["by_tenant"]["t1"]["net_micros"], 742 + 438);
  EXPECT_EQ(j["totals"]["by_family"]["llama4"]["amount_micros"], 2);
  EXPECT_EQ(j["digest"], statement_digest(j));
  EXPECT_EQ(j["from"], "1970-01-01T00:00:00.000Z");
}

TEST(Statement, ShareChangeInsidePeriodSplitsTheLine) {
  std::vector<PriceVersion> prices = {price(1, "a", 1000000, 1000000, 0)};
  std::vector<ShareVersion> shares = {{1, "llama3.1", 1000, 0, 0}, {2, "llama3.1", 2000, 100, 0}};
  auto st =
      build_statement(0, 1000, {rec("t", "a", 10, 1, 10, 0, 0), rec("t", "a", 200, 1, 10, 0, 0)},
                      prices, shares, {});
  ASSERT_TRUE(st.is_ok());
  ASSERT_EQ(st->lines.size(), 2u);
  EXPECT_EQ(st->lines[0].basis_points, 1000);
  EXPECT_EQ(st->lines[0].t.share, 1);  // 10 * 0.1
  EXPECT_EQ(st->lines[1].basis_points, 2000);
  EXPECT_EQ(st->lines[1].t.share, 2);
}

TEST(Statement, LateRecordsOfClosedPeriodsAreAdjustments) {
  std::vector<PriceVersion> prices = {price(1, "a", 1000000, 1000000, 1000000)};
  std::vector<ClosedStatement> closed = {{0, 100, "d", "{}", 0}};
  auto st =
      build_statement(100, 200,
                      {rec("t", "a", 50, 1, 3, 0, 4, "interrupted"),  // closed period: carried
                       rec("t", "a", 150, 1, 1, 0, 1),                // this period
                       rec("t", "a", 250, 1, 1, 0, 1)},               // later: not here
                      prices, {}, closed);
  ASSERT_TRUE(st.is_ok());
  ASSERT_EQ(st->lines.size(), 2u);
  EXPECT_FALSE(st->lines[0].adjustment);
  EXPECT_EQ(st->lines[0].t.amount, 2);
  EXPECT_TRUE(st->lines[1].adjustment);
  EXPECT_EQ(st->lines[1].t.amount, 7);
  EXPECT_EQ(st->request_ids.size(), 2u);
  // A record before the period but not in a closed one belongs to its own period.
  auto open = build_statement(100, 200, {rec("t", "a", 50, 1, 3, 0, 4)}, prices, {}, {});
  EXPECT_TRUE(open->lines.empty());
}

TEST(Statement, MixedCurrenciesAreRefused) {
  auto p1 = price(1, "a", 1, 1, 1), p2 = price(2, "b", 1, 1, 1);
  p2.currency = "EUR";
  auto st = build_statement(0, 100, {rec("t", "a", 1, 1, 1, 0, 1), rec("t", "b", 2, 2, 1, 0, 1)},
                            {p1, p2}, {}, {});
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("EUR, USD"), std::string::npos) << st.message();
}

TEST(Statement, DigestIsSha256OfSortedCompactJson) {
  // Written out by hand: keys sorted, no whitespace, digest and signature left out.
  nlohmann::json j = {{"to", "b"},
                      {"from", "a"},
                      {"lines", nlohmann::json::array({{{"z", 1}, {"a", 2}}})},
                      {"digest", "x"},
                      {"signature", {{"value", "y"}}}};
  EXPECT_EQ(canonical_json(j), R"({"from":"a","lines":[{"a":2,"z":1}],"to":"b"})");
  // sha256 of that string, computed with `printf %s '...' | sha256sum`.
  EXPECT_EQ(statement_digest(j),
            "5be8354e334eb1603c7fe2bffc817f3de26fd6444647fe21611762c815f79882");
}

TEST(Statement, SignAndVerify) {
  auto k = generate_signing_key();
  ASSERT_TRUE(k.is_ok());
  auto sig = sign_hex(*k, "digest");
  ASSERT_TRUE(sig.is_ok());
  EXPECT_TRUE(*verify_hex(k->public_hex, "digest", *sig));
  EXPECT_FALSE(*verify_hex(k->public_hex, "digesT", *sig));
  EXPECT_FALSE(verify_hex("zz", "digest", *sig).is_ok());
}

TEST(License, TermsMatchTheLicenseTexts) {
  ASSERT_EQ(license_terms().size(), 6u);
  const LicenseTerms* l2 = find_license("llama2");
  ASSERT_TRUE(l2);
  EXPECT_EQ(l2->effective, "2023-07-18");
  EXPECT_TRUE(l2->attribution.empty());
  EXPECT_TRUE(l2->name_prefix.empty());
  EXPECT_EQ(
      l2->notice,
      "Llama 2 is licensed under the LLAMA 2 Community License, Copyright (c) Meta Platforms, "
      "Inc. All Rights Reserved.");
  EXPECT_FALSE(l2->outputs_may_improve_other_llms);
  EXPECT_EQ(find_license("llama3")->attribution, "Built with Meta Llama 3");
  EXPECT_EQ(find_license("llama3")->name_prefix, "Llama 3");
  EXPECT_FALSE(find_license("llama3")->outputs_may_improve_other_llms);
  for (const char* f : {"llama3.1", "llama3.2", "llama3.3", "llama4"}) {
    EXPECT_EQ(find_license(f)->attribution, "Built with Llama") << f;
    EXPECT_EQ(find_license(f)->name_prefix, "Llama") << f;
    EXPECT_TRUE(find_license(f)->outputs_may_improve_other_llms) << f;
    EXPECT_EQ(find_license(f)->mau_limit, 700000000) << f;
  }
  EXPECT_EQ(find_license("llama3.1")->effective, "2024-07-23");
  EXPECT_EQ(find_license("llama3.2")->effective, "2024-09-25");
  EXPECT_EQ(find_license("llama3.3")->effective, "2024-12-06");
  EXPECT_EQ(find_license("llama4")->effective, "2025-04-05");
  EXPECT_TRUE(find_license("llama3.2")->eu_multimodal_excluded);
  EXPECT_TRUE(find_license("llama4")->eu_multimodal_excluded);
  EXPECT_FALSE(find_license("llama3.3")->eu_multimodal_excluded);
}

TEST(License, FamilyFromMetadataStrings) {
  EXPECT_EQ(license_family_of("llama3.1"), "llama3.1");
  EXPECT_EQ(license_family_of("Llama 3.2 Community License Agreement"), "llama3.2");
  EXPECT_EQ(license_family_of("META LLAMA 3 COMMUNITY LICENSE AGREEMENT"), "llama3");
  EXPECT_EQ(license_family_of("https://www.llama.com/llama3_3/license/"), "llama3.3");
  EXPECT_EQ(license_family_of("llama4"), "llama4");
  EXPECT_EQ(license_family_of("Llama-3.2-1B"), "llama3.2");
  EXPECT_EQ(license_family_of("https://ai.meta.com/llama/license/"), "llama2");
  EXPECT_EQ(license_family_of("apache-2.0"), "");
  EXPECT_EQ(license_family_of("llama9"), "");
  // Multimodal: all of llama4; of llama3.2 only the vision models (mllama).
  EXPECT_TRUE(model_license("llama4", "", "", "llama4").multimodal);
  EXPECT_FALSE(model_license("llama3.2", "", "", "llama").multimodal);
  EXPECT_TRUE(model_license("llama3.2", "", "", "mllama").multimodal);
  EXPECT_FALSE(model_license("llama3.1", "", "", "mllama").multimodal);
  EXPECT_EQ(model_license("llama3.1", "", "", "llama").link,
            "https://www.llama.com/llama3_1/license/");
}

TEST(License, Gate) {
  const ModelLicense l31 = model_license("llama3.1", "", "", "llama");
  const ModelLicense l4 = model_license("llama4", "", "", "llama4");
  const ModelLicense none = model_license("", "", "", "llama");
  auto code = [](const ModelLicense& m, int64_t mau, const std::string& cc, bool grant) {
    auto r = license_gate(m, {mau, cc, grant});
    return r ? r->code : std::string("ok");
  };
  EXPECT_EQ(code(l31, 700000000, "US", false), "ok");  // "greater than 700 million"
  EXPECT_EQ(code(l31, 700000001, "US", false), "license_required");
  EXPECT_EQ(code(l31, 700000001, "US", true), "ok");
  EXPECT_EQ(code(l31, 10, "DE", false), "ok");  // text-only: no EU clause
  EXPECT_EQ(code(l4, 10, "DE", false), "license_restricted");
  EXPECT_EQ(code(l4, 10, "FR", true), "license_restricted");  // a grant lifts the MAU clause only
  EXPECT_EQ(code(l4, 10, "CH", false), "ok");                 // Switzerland is not in the EU
  EXPECT_EQ(code(l4, 10, "", false), "ok");
  EXPECT_EQ(code(l4, 800000000, "DE", false), "license_required");
  EXPECT_EQ(code(none, 800000000, "DE", false), "ok");
}

TEST(License, NamingRule) {
  const ModelLicense l3 = model_license("llama3", "", "", "llama");
  const ModelLicense l31 = model_license("llama3.1", "", "", "llama");
  const ModelLicense l2 = model_license("llama2", "", "", "llama");
  EXPECT_FALSE(naming_warning(l31, "Llama-3.1-8B-mine"));
  EXPECT_FALSE(naming_warning(l31, "llama-assistant"));
  EXPECT_TRUE(naming_warning(l31, "my-assistant"));
  EXPECT_FALSE(naming_warning(l3, "Llama 3 Chat"));
  EXPECT_FALSE(naming_warning(l3, "llama3-8b"));
  EXPECT_TRUE(naming_warning(l3, "Llama-2-chat"));
  EXPECT_FALSE(naming_warning(l2, "anything"));  // Llama 2 has no naming rule
}

TEST(Ledger, PricesAreStampedAtAdmissionAndWhenAVersionStartsEarlier) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("corral-price-" + std::to_string(::getpid()) + ".db"))
                               .string();
  std::filesystem::remove(path);
  auto l = open_sqlite_ledger(path);
  ASSERT_TRUE(l.is_ok()) << l.message();
  Tenant t;
  t.name = "t", t.created_ms = 1;
  ASSERT_TRUE((*l)->create_tenant(t).is_ok());
  auto admit = [&](const std::string& id, int64_t at) {
    Admission a;
    a.request_id = id, a.tenant = "t", a.key_id = "k", a.model = "m", a.instance = "i";
    a.prompt_tokens = 1, a.reserved_tokens = 2, a.started_ms = at, a.family = "llama3.1";
    ASSERT_TRUE((*l)->admit(a, 0).is_ok());
    UsageRecord r;
    r.request_id = id, r.prompt_tokens = 1, r.completion_tokens = 1, r.ended_ms = at + 1;
    r.status = "completed", r.finish_reason = "stop";
    ASSERT_TRUE((*l)->settle(r).is_ok());
  };
  admit("a", 1000);  // no price yet
  PriceVersion p = price(0, "m", 5, 5, 5, 2000);
  auto v1 = (*l)->add_price(p);
  ASSERT_TRUE(v1.is_ok());
  admit("b", 3000);  // v1
  p.from_ms = 500;   // a version starting earlier: "a" is now in its force, "b" keeps v1
  auto v2 = (*l)->add_price(p);
  ASSERT_TRUE(v2.is_ok());
  auto recs = (*l)->usage({});
  ASSERT_TRUE(recs.is_ok());
  ASSERT_EQ(recs->size(), 2u);
  EXPECT_EQ((*recs)[0].price_version.value_or(-1), *v2);
  EXPECT_EQ((*recs)[1].price_version.value_or(-1), *v1);
  EXPECT_EQ((*recs)[0].family, "llama3.1");
  // Billed records are never re-priced.
  ASSERT_TRUE((*l)->close_statement({0, 2500, "d", "{}", 1}, {"a"}).is_ok());
  p.from_ms = 0;
  ASSERT_TRUE((*l)->add_price(p).is_ok());
  recs = (*l)->usage({});
  EXPECT_EQ((*recs)[0].price_version.value_or(-1), *v2);
  EXPECT_EQ((*recs)[0].billed_from_ms.value_or(-1), 0);
  // A closed period cannot overlap another, nor bill a record twice.
  EXPECT_FALSE((*l)->close_statement({2000, 4000, "d", "{}", 1}, {}).is_ok());
  EXPECT_FALSE((*l)->close_statement({2500, 4000, "d", "{}", 1}, {"a"}).is_ok());
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace corral

namespace corral {
namespace {

TEST(License, HfFolderAndConvert) {
  namespace fs = std::filesystem;
  using test::run_corral;
  using test::tmp_path;
  const fs::path d = fs::temp_directory_path() / ("corral-hf-lic-" + std::to_string(::getpid()));
  fs::create_directories(d);
  {
    std::ofstream(d / "README.md")
        << "---\nlanguage: en\nlicense: llama3.2\ntags: [x]\n---\n# Model\n";
  }
  EXPECT_EQ(hf_folder_license(d.string()), "llama3.2");
  fs::remove(d / "README.md");
  { std::ofstream(d / "config.json") << R"({"license": "Llama 3.3 Community License"})"; }
  EXPECT_EQ(license_family_of(hf_folder_license(d.string())), "llama3.3");
  { std::ofstream(d / "README.md") << "# No front matter\nlicense: llama2\n"; }
  EXPECT_EQ(license_family_of(hf_folder_license(d.string())), "llama3.3");  // config.json's
  fs::remove_all(d);

  // synth --license writes it; convert --license rewrites it; info shows both.
  const std::string a = tmp_path("lic-a.gguf"), b = tmp_path("lic-b.gguf");
  ASSERT_EQ(run_corral("synth --shape tiny --type q8_0 --layers 1 --license llama4 " + a).status,
            0);
  auto info = run_corral("info --json " + a);
  auto j = nlohmann::json::parse(info.out);
  EXPECT_EQ(j["license_family"], "llama4");
  EXPECT_EQ(j["general"]["license.link"], "https://www.llama.com/llama4/license/");
  EXPECT_EQ(j["attribution"], "Built with Llama");
  EXPECT_EQ(j["multimodal"], true);  // every model of the llama4 family
  ASSERT_EQ(run_corral("convert " + a + " " + b + " --license llama3.3").status, 0);
  j = nlohmann::json::parse(run_corral("info --json " + b).out);
  EXPECT_EQ(j["license_family"], "llama3.3");
  EXPECT_EQ(j["license_name"], "Llama 3.3 Community License Agreement");
  EXPECT_NE(run_corral("convert " + a + " " + b + " --license llama9").status, 0);
  auto chk = run_corral("license check " + b + " --id my-model");
  EXPECT_NE(chk.err.find("warning: the served id 'my-model' does not begin with \"Llama\""),
            std::string::npos)
      << chk.err;
  std::filesystem::remove(a);
  std::filesystem::remove(b);
}

}  // namespace
}  // namespace corral

namespace corral {
namespace {

// A ledger written by the previous schema (v1: no prices, no families) opens, migrates to v2
// and keeps its records: family "none", no price version, billable at 0.
TEST(Ledger, MigratesAVersion1Ledger) {
  const std::string path = test::tmp_path("v1-ledger.db");
  std::filesystem::remove(path);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const char* v1 = R"sql(
CREATE TABLE tenants (name TEXT PRIMARY KEY, mau INTEGER NOT NULL DEFAULT 0, country TEXT NOT NULL DEFAULT '',
  suspended INTEGER NOT NULL DEFAULT 0, rpm INTEGER NOT NULL DEFAULT 0, tpm INTEGER NOT NULL DEFAULT 0,
  max_concurrent INTEGER NOT NULL DEFAULT 0, monthly_tokens INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL);
CREATE TABLE api_keys (key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(name), hash TEXT NOT NULL UNIQUE,
  models TEXT NOT NULL DEFAULT '', expires_ms INTEGER NOT NULL DEFAULT 0, revoked_ms INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL);
CREATE TABLE requests (request_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, key_id TEXT NOT NULL, model TEXT NOT NULL,
  instance TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL DEFAULT 0,
  completion_tokens INTEGER NOT NULL DEFAULT 0, reserved_tokens INTEGER NOT NULL, started_ms INTEGER NOT NULL,
  ended_ms INTEGER, finish_reason TEXT,
  status TEXT NOT NULL CHECK (status IN ('open', 'completed', 'cancelled', 'error', 'interrupted')),
  price_version INTEGER);
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
INSERT INTO tenants (name, created_ms) VALUES ('old', 1);
INSERT INTO requests (request_id, tenant, key_id, model, instance, prompt_tokens, completion_tokens,
  reserved_tokens, started_ms, ended_ms, status) VALUES ('r1', 'old', 'k', 'm', 'i', 10, 5, 20, 1000, 2000, 'completed');
)sql";
  ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto l = open_sqlite_ledger(path);
  ASSERT_TRUE(l.is_ok()) << l.message();
  auto recs = (*l)->usage({});
  ASSERT_TRUE(recs.is_ok()) << recs.message();
  ASSERT_EQ(recs->size(), 1u);
  EXPECT_EQ((*recs)[0].family, "none");
  EXPECT_FALSE((*recs)[0].price_version.has_value());
  EXPECT_FALSE((*recs)[0].billed_from_ms.has_value());
  auto st = compute_statement(**l, 0, 10000, "", "h");
  ASSERT_TRUE(st.is_ok()) << st.message();
  EXPECT_EQ(st->json["totals"]["overall"]["requests"], 1);
  EXPECT_EQ(st->json["totals"]["overall"]["amount_micros"], 0);
  EXPECT_TRUE((*l)->list_prices().is_ok());
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace corral
