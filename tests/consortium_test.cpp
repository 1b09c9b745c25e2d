// The consortium's arithmetic by hand: largest-remainder splits that do not divide evenly (ties
// to the first member), compute values rounded half to even at exact halves, a share change
// and a new member inside the period, a zero-cost job, money outside the period left out; and
// the journal's validation (shares over 100%, a tenant of two members, unknown members).
#include "hosting/consortium.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "test_util.h"

using namespace corral;

namespace {

std::unique_ptr<Ledger> fresh(const std::string& name) {
  const std::string path = test::tmp_path(name + ".db");
  for (const char* s : {"", "-wal", "-shm"}) std::remove((path + s).c_str());
  auto l = open_ledger("sqlite:" + path);
  EXPECT_TRUE(l.is_ok()) << l.message();
  return std::move(l.value());
}

void tenant(Ledger& l, const std::string& n) {
  Tenant t;
  t.name = n;
  t.created_ms = 1;
  ASSERT_TRUE(l.create_tenant(t).is_ok());
}

}  // namespace

TEST(Consortium, LargestRemainder) {
  EXPECT_EQ(split_largest_remainder(100, {1, 1, 1}), (std::vector<int64_t>{34, 33, 33}));
  EXPECT_EQ(split_largest_remainder(10, {5000, 3333, 1667}), (std::vector<int64_t>{5, 3, 2}));
  EXPECT_EQ(split_largest_remainder(7, {1, 1}), (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(split_largest_remainder(0, {1, 2}), (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(split_largest_remainder(5, {0, 3, 0}), (std::vector<int64_t>{0, 5, 0}));
}

TEST(Consortium, StatementByHand) {
  auto l = fresh("consortium_hand");
  for (auto t : {"ta", "tb", "tc"}) tenant(*l, t);
  const int64_t t0 = 1700000000000, t1 = t0 + 100000, t2 = t0 + 200000;
  ASSERT_TRUE(
      append_consortium(*l, "c", "create", {{"currency", "USD"}, {"compute_price", 1000000}}, t0)
          .is_ok());
  auto member = [&](const char* org, const char* t, int64_t bp, int64_t at) {
    return append_consortium(*l, "c", "member", {{"org", org}, {"tenants", {t}}, {"share_bp", bp}},
                             at);
  };
  ASSERT_TRUE(member("A", "ta", 5000, t0).is_ok());
  ASSERT_TRUE(member("B", "tb", 5000, t0).is_ok());
  // Over 100%, a tenant of another member, money from a non-member: refused, nothing written.
  EXPECT_FALSE(member("C", "tc", 100, t0 + 5).is_ok());
  EXPECT_FALSE(member("C", "ta", 0, t0 + 5).is_ok());
  EXPECT_FALSE(
      append_consortium(*l, "c", "contribution", {{"org", "Z"}, {"amount", 1}}, t0).is_ok());
  EXPECT_FALSE(append_consortium(*l, "c", "create", {{"currency", "USD"}, {"compute_price", 1}}, t0)
                   .is_ok());
  // Inside the period: A goes down to 25% and C joins with 25%.
  ASSERT_TRUE(member("A", "ta", 2500, t1).is_ok());
  ASSERT_TRUE(member("C", "tc", 2500, t1).is_ok());
  auto money = [&](const char* org, int64_t amount, int64_t at) {
    return append_consortium(*l, "c", "contribution", {{"org", org}, {"amount", amount}}, at);
  };
  ASSERT_TRUE(money("A", 10000001, t0 + 1).is_ok());
  ASSERT_TRUE(money("B", 999, t2 + 1).is_ok());  // after the period
  auto compute = [&](const char* job, const char* org, int64_t cpu_us, int64_t at) {
    return append_consortium(*l, "c", "compute", {{"job", job}, {"org", org}, {"cpu_us", cpu_us}},
                             at);
  };
  // Price 1 per CPU hour: value = cpu_us / 3600 micro-units.
  ASSERT_TRUE(compute("j1", "A", 5400, t0 + 10).is_ok());  // 1.5 -> 2
  ASSERT_TRUE(compute("j1", "B", 9000, t0 + 10).is_ok());  // 2.5 -> 2; job: 4, shares 50/50/0
  ASSERT_TRUE(compute("j2", "A", 1800, t1 + 10).is_ok());  // 0.5 -> 0
  ASSERT_TRUE(compute("j2", "C", 3600, t1 + 10).is_ok());  // 1; job: 1.5 -> 2, shares 25/50/25
  ASSERT_TRUE(compute("j3", "B", 0, t1 + 20).is_ok());     // a zero-cost job
  auto st = consortium_statement(*l, "c", t0, t2, "");
  ASSERT_TRUE(st.is_ok()) << st.message();
  const auto& j = *st;
  ASSERT_EQ(j["jobs"].size(), 3u);
  auto parts = [&](size_t k) {
    std::vector<int64_t> v;
    for (auto& p : j["jobs"][k]["parts"]) v.push_back(p["amount"]);
    return v;
  };
  EXPECT_EQ(j["jobs"][0]["cost"], 4);
  EXPECT_EQ(parts(0), (std::vector<int64_t>{2, 2, 0}));
  EXPECT_EQ(j["jobs"][1]["cost"], 2);
  EXPECT_EQ(parts(1), (std::vector<int64_t>{1, 1, 0}));  // 0.5 / 1 / 0.5: the tie to A
  EXPECT_EQ(j["jobs"][2]["cost"], 0);
  EXPECT_EQ(parts(2), (std::vector<int64_t>{0, 0, 0}));
  struct Want {
    const char* org;
    int64_t share, money, compute, costs, balance;
  };
  const Want want[] = {
      {"A", 2500, 10000001, 2, 3, 10000000}, {"B", 5000, 0, 2, 3, -1}, {"C", 2500, 0, 1, 0, 1}};
  ASSERT_EQ(j["members"].size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const auto& m = j["members"][i];
    EXPECT_EQ(m["member"], want[i].org);
    EXPECT_EQ(m["share_bp"], want[i].share) << want[i].org;
    EXPECT_EQ(m["money"], want[i].money) << want[i].org;
    EXPECT_EQ(m["compute"], want[i].compute) << want[i].org;
    EXPECT_EQ(m["costs"], want[i].costs) << want[i].org;
    EXPECT_EQ(m["revenue"], 0) << want[i].org;
    EXPECT_EQ(m["balance"], want[i].balance) << want[i].org;
  }
  // The same statement again: the same digest; one member's view.
  EXPECT_EQ((*consortium_statement(*l, "c", t0, t2, ""))["digest"], j["digest"]);
  auto one = consortium_statement(*l, "c", t0, t2, "B");
  ASSERT_TRUE(one.is_ok());
  EXPECT_EQ((*one)["members"].size(), 1u);
  EXPECT_FALSE(consortium_statement(*l, "c", t0, t2, "Z").is_ok());
  EXPECT_FALSE(consortium_statement(*l, "nope", t0, t2, "").is_ok());
}
