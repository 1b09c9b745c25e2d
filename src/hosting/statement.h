// Revenue-share statements computed from the ledger, exactly: integers in micro-units, rounding
// half to even once per line, totals as sums of lines. The arithmetic (README "Statements"):
//   amount = round_half_even((uncached * input + cached * cached_price + completion * output)
//                            / 1,000,000)            prices: micro-units per million tokens
//   share  = round_half_even(amount * basis_points / 10,000)
//   net    = amount - share
// A statement's digest is the SHA-256 of its JSON without "digest" and "signature", with sorted
// keys and no whitespace.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "hosting/ledger.h"

namespace corral {

struct StatementTotals {
  int64_t requests = 0, uncached = 0, cached = 0, completion = 0;
  int64_t amount = 0, share = 0, net = 0;
  void add(const StatementTotals& o);
};

// One (tenant, model, price version) line; split further only where the licensor's share
// changed inside the period, and kept apart for records carried from a closed period.
struct StatementLine {
  std::string tenant, model, family;
  std::optional<int64_t> price_version;  // none: the model had no price (amount 0)
  std::optional<int64_t> share_version;  // none: no share set for the family (0 bp)
  int64_t basis_points = 0;
  bool adjustment = false;  // a late record of a closed period, billed here
  StatementTotals t;
};

struct Statement {
  int64_t from_ms = 0, to_ms = 0;
  std::string currency = "USD", host, tenant;  // tenant: empty for all tenants
  std::vector<StatementLine> lines;
  std::vector<std::string> request_ids;  // every record the statement bills
  std::vector<std::string> warnings;     // unpriced models and the like, for stderr
};

// round_half_even(num / den) for num >= 0, den > 0; nullopt when the result exceeds int64.
std::optional<int64_t> div_round_half_even(__int128 num, int64_t den);

// Lines of the period [from, to) from `records`: those started inside it are billed when
// completed, cancelled or interrupted; those started before it and inside one of `closed`
// (late records of a closed period) become adjustment lines; the rest are ignored.
Expected<Statement> build_statement(int64_t from_ms, int64_t to_ms,
                                    const std::vector<UsageRecord>& records,
                                    const std::vector<PriceVersion>& prices,
                                    const std::vector<ShareVersion>& shares,
                                    const std::vector<ClosedStatement>& closed);

nlohmann::json totals_json(const StatementTotals& t);
// The statement as JSON, its digest included.
nlohmann::json statement_json(const Statement& s);
// Sorted keys, no whitespace, without "digest" and "signature".
std::string canonical_json(const nlohmann::json& j);
std::string statement_digest(const nlohmann::json& j);
std::string statement_csv(const nlohmann::json& statement);

// The licensor's view of a statement: per family across tenants, the share, the license events.
nlohmann::json licensor_json(const nlohmann::json& statement,
                             const std::vector<LicenseEvent>& events);
std::string licensor_csv(const nlohmann::json& licensor);

// The statement of [from, to) from a ledger: a closed period (all tenants) is its stored body,
// byte for byte; otherwise it is computed from the records (adjustments included).
struct StatementResult {
  nlohmann::json json;
  Statement st;  // the computed statement (empty lines for a stored one)
  bool closed = false;
};
Expected<StatementResult> compute_statement(Ledger& l, int64_t from_ms, int64_t to_ms,
                                            const std::string& tenant, const std::string& host);

// The host named on statements: $CORRAL_HOST_NAME, else the machine's name.
std::string default_host_name();

// "12.345678" for 12345678 micro-units.
std::string format_micros(int64_t micros);
// A decimal amount with at most `decimals` places ("0.10", "2.5") as an integer scaled by
// 10^decimals, never through a float.
Expected<int64_t> parse_decimal_scaled(const std::string& s, int decimals, const std::string& what);

// PDF (cairo): the period, the host, a table per family, a bar chart of tokens and revenue per
// model, totals and the digest. `licensor` adds the license events.
Expected<std::string> statement_pdf(const nlohmann::json& statement,
                                    const std::vector<LicenseEvent>* events);

}  // namespace corral
