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

// Creates a key for an existing tenant; prints nothing.
inline Expected<NewKey> make_key(Ledger& l, const std::string& tenant,
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

}  // namespace corral::cli
