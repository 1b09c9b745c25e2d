// The consortium: members (organisations with tenants and versioned shares in basis points)
// share the cost of training custom versions, contribute money and compute in kind, and get
// access and revenue back. Everything is a fold over the ledger's consortium journal
// (ConsortiumEvent), so both stores share this code, and the statement is exact integer
// arithmetic in micro-units:
//   compute value (per job and member) = round_half_even(cpu_us * price / 3,600,000,000)
//   job cost                           = round_half_even(job cpu_us * price / 3,600,000,000)
//   job parts: the cost split by the shares in force at the job's end, largest remainder
//     (floor(cost * bp / sum_bp), then one micro-unit each to the largest remainders, ties to
//     the member first by name), so the parts add up to the cost exactly
//   revenue: per public custom version and per span of constant shares, the net (amount less
//     the licensor's share) of its records started in the period while public, by the
//     revenue statement's arithmetic, split the same way
//   balance = money + compute - costs + revenue
// price: micro-units per CPU hour.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/apportion.h"
#include "core/status.h"
#include "hosting/ledger.h"

namespace corral {

struct ConsortiumShare {
  int64_t basis_points = 0, from_ms = 0, event_id = 0;
};

struct ConsortiumMember {
  std::string org;
  std::vector<std::string> tenants;
  std::vector<ConsortiumShare> shares;  // versions in journal order
  int64_t share_at(int64_t ms) const;   // the version in force at ms (0 before the first)
};

struct ComputeContribution {  // one rank's metered compute for a job
  std::string job, org;
  int64_t cpu_us = 0, flops = 0, energy_uj = 0, trained_tokens = 0;
  int64_t at_ms = 0;
};

struct ConsortiumModel {
  std::string model_id, adapter, base;
  bool is_public = false;
  int64_t public_from_ms = 0;  // when it was opened (0: never)
};

struct Consortium {
  std::string name, currency = "USD";
  int64_t compute_price = 0;  // micro-units per CPU hour
  int64_t created_ms = 0;
  std::map<std::string, ConsortiumMember> members;  // by organisation
  struct Money {
    std::string org, ref;
    int64_t amount = 0, at_ms = 0;
  };
  std::vector<Money> money;
  std::vector<ComputeContribution> compute;
  std::map<std::string, ConsortiumModel> models;  // by model id
  int64_t sum_share_at(int64_t ms) const;
  // The organisation whose tenant this is ("" if none).
  std::string member_of(const std::string& tenant) const;
};

// The journal folded into consortia by name; errors name the event.
Expected<std::map<std::string, Consortium>> fold_consortia(const std::vector<ConsortiumEvent>& ev);

// Appends one event after validating it against the current state (the change is re-read and
// retried when another writer appended first). kind: create, member, contribution, compute,
// model; the body's fields as each command writes them.
Status append_consortium(Ledger& l, const std::string& consortium, const std::string& kind,
                         const nlohmann::json& body, int64_t at_ms);

// split_largest_remainder (core/apportion.h) splits job costs and revenue by the shares.

// The statement of [from, to) (see above), optionally of one member; with its digest.
Expected<nlohmann::json> consortium_statement(Ledger& l, const std::string& consortium,
                                              int64_t from_ms, int64_t to_ms,
                                              const std::string& member);
// A closed period of the consortium (its signed statement, stored in the journal): the
// statement of exactly that period is then this body, byte for byte.
struct ClosedConsortiumPeriod {
  int64_t from_ms = 0, to_ms = 0;
  std::string body;
};
Expected<std::vector<ClosedConsortiumPeriod>> consortium_closed(Ledger& l,
                                                                const std::string& consortium);

std::string consortium_statement_csv(const nlohmann::json& st);
// The statement as an A4 PDF (text searchable with pdftotext), the same figures formatted.
Expected<std::string> consortium_statement_pdf(const nlohmann::json& st);

nlohmann::json consortium_json(const Consortium& c);

}  // namespace corral
