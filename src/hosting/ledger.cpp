#include "hosting/ledger.h"

#include <cstdlib>

namespace corral {

std::string default_ledger_dsn() {
  const char* e = std::getenv("CORRAL_LEDGER");
  return e && *e ? std::string(e) : std::string("sqlite:corral-ledger.db");
}

Expected<std::unique_ptr<Ledger>> open_ledger(const std::string& dsn_in) {
  const std::string dsn = dsn_in.empty() ? default_ledger_dsn() : dsn_in;
  if (dsn.rfind("sqlite:", 0) == 0) {
    const std::string path = dsn.substr(7);
    if (path.empty()) return make_error("--ledger: 'sqlite:' needs a path (sqlite:PATH)");
    return open_sqlite_ledger(path);
  }
  if (dsn.rfind("postgresql://", 0) == 0 || dsn.rfind("postgres://", 0) == 0)
    return open_postgres_ledger(dsn);
  return make_error("--ledger: '" + dsn + "' is not sqlite:PATH or postgresql://...");
}

}  // namespace corral
