#include "train/ranks.h"

#include <cstring>

#include "train/collective.h"

namespace corral {

nlohmann::json RankLayout::to_json() const {
  std::vector<int64_t> flat;
  flat.reserve(records.size() * 4);
  for (auto& r : records) flat.insert(flat.end(), r.begin(), r.end());
  return {{"slots", slots}, {"records", flat}};
}

Expected<RankLayout> RankLayout::from_json(const nlohmann::json& j) {
  auto bad = [](const std::string& what) { return make_error("checkpoint layout: " + what); };
  if (!j.is_object() || !j.contains("slots") || !j["slots"].is_array() || !j.contains("records") ||
      !j["records"].is_array())
    return bad("'slots' and 'records' arrays expected");
  RankLayout l;
  for (auto& s : j["slots"]) {
    if (!s.is_string()) return bad("'slots' holds a non-string");
    l.slots.push_back(s.get<std::string>());
  }
  const auto& f = j["records"];
  if (f.size() % 4) return bad("'records' is not a multiple of 4 integers");
  for (size_t i = 0; i < f.size(); i += 4) {
    std::array<int64_t, 4> r{};
    for (size_t k = 0; k < 4; ++k) {
      if (!f[i + k].is_number_integer() || f[i + k].get<int64_t>() < 0)
        return bad("records[" + std::to_string(i + k) + "] is not a non-negative integer");
      r[k] = f[i + k].get<int64_t>();
    }
    if (r[0] >= int64_t(l.slots.size()) || r[3] > r[2])
      return bad("record " + std::to_string(i / 4) + " names slot " + std::to_string(r[0]) +
                 " of " + std::to_string(l.slots.size()) + " or predicts more tokens than it has");
    l.records.push_back(r);
  }
  return l;
}

namespace {
int64_t predicted_of(const Example& e) {
  int64_t p = 0;
  for (uint8_t x : e.loss) p += x;
  return p;
}
}  // namespace

Expected<DataSet> combine_ranks(Collective& c, const DataSet& mine,
                                const std::vector<int64_t>* weights, RankLayout* layout) {
  const int N = c.size();
  std::vector<int64_t> meta;
  for (auto& e : mine.examples)
    meta.push_back(int64_t(e.tokens.size())), meta.push_back(predicted_of(e));
  std::vector<uint8_t> raw(meta.size() * 8);
  std::memcpy(raw.data(), meta.data(), raw.size());
  std::vector<std::vector<uint8_t>> all;
  CORRAL_RETURN_IF_ERROR(c.allgather_v(raw, &all));
  std::vector<int64_t> count(static_cast<size_t>(N));
  int64_t total = 0;
  for (int r = 0; r < N; ++r) total += (count[size_t(r)] = int64_t(all[size_t(r)].size() / 16));
  std::vector<std::pair<int32_t, int64_t>> order;  // (rank, its record) per combined position
  if (weights) {
    CORRAL_ASSIGN_OR_RETURN(order, share_mix(count, *weights));
  } else {
    for (int r = 0; r < N; ++r)
      if (count[size_t(r)] != (total - r + N - 1) / N)
        return make_error("rank " + std::to_string(r) + " has " + std::to_string(count[size_t(r)]) +
                          " records of " + std::to_string(total) + ": with " + std::to_string(N) +
                          " ranks, record i of the combined data belongs to rank i mod N, so each "
                          "rank's --data must hold every N-th record (rank r: " +
                          "ceil((total - r) / N)), or mix them with --mix by-share");
    for (int64_t g = 0; g < total; ++g) order.push_back({int32_t(g % N), g / N});
  }
  layout->records.clear();
  for (auto [r, k] : order) {
    int64_t m[2];
    std::memcpy(m, all[size_t(r)].data() + k * 16, 16);
    layout->records.push_back({r, k, m[0], m[1]});
  }
  RankLayout l = *layout;
  l.slots.resize(size_t(N));
  DataSet d;
  CORRAL_ASSIGN_OR_RETURN(d, rebuild_from_layout(l, c.rank(), mine));
  return d;
}

Expected<DataSet> rebuild_from_layout(const RankLayout& l, int slot, const DataSet& mine) {
  DataSet d;
  d.truncated = mine.truncated;
  d.examples.resize(l.records.size());
  d.holder.resize(l.records.size());
  for (size_t g = 0; g < l.records.size(); ++g) {
    const auto [r, k, n, pred] = l.records[g];
    Example& e = d.examples[g];
    if (r == slot) {
      const std::string who =
          "this rank (" +
          (l.slots[size_t(slot)].empty() ? "slot " + std::to_string(slot) : l.slots[size_t(slot)]) +
          ")";
      if (k >= int64_t(mine.examples.size()))
        return make_error(who + ": the job's record " + std::to_string(g) + " is record " +
                          std::to_string(k) + " of its --data, which holds " +
                          std::to_string(mine.examples.size()));
      e = mine.examples[size_t(k)];
      if (int64_t(e.tokens.size()) != n || predicted_of(e) != pred)
        return make_error(who + ": record " + std::to_string(k) + " of its --data has " +
                          std::to_string(e.tokens.size()) + " tokens (" +
                          std::to_string(predicted_of(e)) + " predicted), the job's has " +
                          std::to_string(n) + " (" + std::to_string(pred) +
                          "): not the data this rank trained with");
    } else {
      e.tokens.assign(size_t(n), 0);
      e.loss.assign(size_t(n), 0);
      for (int64_t i = 0; i < pred && i < n; ++i) e.loss[size_t(n - 1 - i)] = 1;
    }
    e.index = int64_t(g);
    d.holder[g] = int32_t(r);
    d.tokens += n;
  }
  return d;
}

Expected<std::vector<int>> assign_slots(const RankLayout& l,
                                        const std::vector<std::string>& members) {
  std::vector<bool> taken(l.slots.size(), false);
  std::vector<int> out;
  for (size_t r = 0; r < members.size(); ++r) {
    int s = -1;
    for (size_t j = 0; j < l.slots.size() && s < 0; ++j)
      if (!taken[j] && l.slots[j] == members[r]) s = int(j);
    if (s < 0) {
      std::string names;
      for (size_t j = 0; j < l.slots.size(); ++j)
        if (!taken[j]) names += (names.empty() ? "" : ", ") + l.slots[j];
      return make_error("--resume: rank " + std::to_string(r) + " (--member " + members[r] +
                        ") stands for none of the job's ranks left to resume (" + names + ")");
    }
    taken[size_t(s)] = true;
    out.push_back(s);
  }
  return out;
}

}  // namespace corral
