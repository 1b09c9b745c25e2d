// What the hosting subcommands share: --ledger DSN and the JSON of tenants and keys.
#pragma once
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "hosting/hosting_json.h"
#include "hosting/keys.h"
#include "hosting/ledger.h"

namespace corral::cli {

// An ISO-8601 time flag; empty gives `fallback`. Errors name the flag.
inline Expected<int64_t> time_flag(const std::string& flag, const std::string& value,
                                   int64_t fallback) {
  if (value.empty()) return fallback;
  auto t = parse_iso8601(value);
  if (!t.is_ok()) return make_error(flag + ": " + t.message());
  return *t;
}

// The host's statement signing key: $CORRAL_STATEMENT_KEY, else ./corral-statement.key.
inline std::string default_key_path() {
  if (const char* e = std::getenv("CORRAL_STATEMENT_KEY"); e && *e) return e;
  return "corral-statement.key";
}

inline void add_ledger_flag(CLI::App* sub, std::string& dsn) {
  sub->add_option("--ledger", dsn,
                  "ledger DSN: sqlite:PATH or postgresql://... (default $CORRAL_LEDGER, else "
                  "sqlite:corral-ledger.db)");
}

}  // namespace corral::cli
