// What the hosting subcommands share: --ledger DSN and the JSON of tenants and keys.
#pragma once
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "hosting/hosting_json.h"
#include "hosting/keys.h"
#include "hosting/ledger.h"

namespace corral::cli {

inline void add_ledger_flag(CLI::App* sub, std::string& dsn) {
  sub->add_option("--ledger", dsn,
                  "ledger DSN: sqlite:PATH or postgresql://... (default $CORRAL_LEDGER, else "
                  "sqlite:corral-ledger.db)");
}

}  // namespace corral::cli
