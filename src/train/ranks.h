// The combined data of a data-parallel job (several ranks under mpirun, each with its own --data)
// and the layout a checkpoint keeps of it, so that the job can resume with fewer ranks: each of
// the job's ranks (its slots) and, per combined record, which slot holds it, where in that slot's
// data, and its shape (tokens, predicted tokens).
#pragma once
#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "train/data.h"

namespace corral {

class Collective;

struct RankLayout {
  std::vector<std::string> slots;  // the member name of each of the job's ranks, in rank order
  // Per combined record: {slot, index in the slot's own data, tokens, predicted tokens}.
  std::vector<std::array<int64_t, 4>> records;
  nlohmann::json to_json() const;
  static Expected<RankLayout> from_json(const nlohmann::json& j);  // a named error when malformed
};

// All ranks exchange their records' shapes and build the combined data: interleaved (record i
// on rank i mod N; each rank's --data must hold every N-th record) or, with weights (one per
// rank), mixed by share_mix. Fills layout->records; layout->slots is the caller's (members).
Expected<DataSet> combine_ranks(Collective& c, const DataSet& mine,
                                const std::vector<int64_t>* weights, RankLayout* layout);
// The combined data as seen by the rank in `slot`: its own records in full (checked against the
// layout's shapes), every other slot's as shape only (zeros, never read); holder set per record.
Expected<DataSet> rebuild_from_layout(const RankLayout& l, int slot, const DataSet& mine);
// The slot of each rank resuming a job of l.slots.size() ranks: the first unclaimed slot of the
// rank's member, in rank order. An error naming the rank when its member has no slot left.
Expected<std::vector<int>> assign_slots(const RankLayout& l,
                                        const std::vector<std::string>& members);

}  // namespace corral
