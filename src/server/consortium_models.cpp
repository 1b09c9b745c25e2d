// Consortium custom versions in `corral serve`: the ledger's consortium journal says which
// adapters to serve over which base and who may use them; they are loaded like --lora adapters
// and, while members-only, hidden from every tenant that is not a member's.
#include <algorithm>

#include "hosting/consortium.h"
#include "server/http_server.h"

namespace corral {

bool HttpServer::visible(const ServedModel& m) const {
  if (!m.members_only) return true;
  const AuthCtx& au = current_auth();
  if (au.admin) return true;
  return !au.tenant.empty() && std::find(m.member_tenants.begin(), m.member_tenants.end(),
                                         au.tenant) != m.member_tenants.end();
}

void HttpServer::sync_consortium_models() {
  std::lock_guard<std::mutex> sync_lk(consortium_mu_);
  const double now = steady_seconds();
  if (consortium_checked_ >= 0 && now - consortium_checked_ < 1.0) return;
  consortium_checked_ = now;
  auto ev = o_.ledger->consortium_events("");
  if (!ev.is_ok()) return log_.info("consortium journal unreadable: " + ev.message());
  if (ev->empty()) return;
  auto cs = fold_consortia(*ev);
  if (!cs.is_ok()) return log_.info("consortium journal: " + cs.message());
  for (auto& [name, c] : *cs) {
    std::vector<std::string> tenants;
    for (auto& [_, mem] : c.members)
      tenants.insert(tenants.end(), mem.tenants.begin(), mem.tenants.end());
    for (auto& [id, cm] : c.models) {
      ServedModel* have = nullptr;
      {
        std::lock_guard<std::mutex> lk(models_mu_);
        for (auto& m : models_)
          if (m->id == id && !m->removed) have = m.get();
        // Replaced (another adapter): the old entry goes (running requests keep it).
        if (have && have->consortium == name && have->path != cm.adapter) {
          have->removed = true;
          have = nullptr;
        }
      }
      const std::string key = id + "\n" + cm.adapter;
      if (!have) {
        if (consortium_failed_.count(key)) continue;
        if (Status st = add_adapter(id, cm.adapter, cm.base); !st.is_ok()) {
          consortium_failed_.insert(key);
          log_.info("consortium " + name + ": model " + id + " not served: " + st.message());
          continue;
        }
        log_.info("consortium " + name + ": serving " + id + " over " + cm.base +
                  (cm.is_public ? " (public)" : " (members only)"));
      }
      std::lock_guard<std::mutex> lk(models_mu_);
      for (auto& m : models_)
        if (m->id == id && !m->removed) {
          if (!m->consortium.empty() || m->parent == cm.base) {
            m->consortium = name;
            m->members_only = !cm.is_public;
            m->member_tenants = tenants;
          }
        }
    }
  }
}

}  // namespace corral
