// Training data: JSONL records into token sequences with a loss mask, the steps of a run (which
// records each step and micro-batch takes) and their packing into sequences of at most ctx tokens.
// Records: {"messages": [...]} (the model's chat template; loss on the assistant turns unless
// train_on_prompt), {"prompt", "completion"} (loss on the completion and the EOS after it),
// {"text"} (BOS, the text, EOS; loss on every next token) or {"ids": [...]} (as given; every
// next token).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "train/backprop.h"

namespace corral {

class Tokenizer;
struct ChatFormat;

struct Example {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> loss;  // loss[i]: token i is predicted (from token i - 1)
  int64_t index = 0;          // the record's line order in its file (0-based)
};

struct DataOptions {
  bool train_on_prompt = false;
  int64_t ctx = 1024;  // longer records are cut to this many tokens
};

struct DataSet {
  std::vector<Example> examples;
  // The micro-batch (rank) each record belongs to, where it is not i mod n (a data-parallel job
  // mixed by the members' shares); empty otherwise.
  std::vector<int32_t> holder;
  int64_t truncated = 0;  // records cut to ctx
  int64_t tokens = 0;
};

// Errors name the file and line. tok and chat may be null (a model without a tokenizer: ids
// records only); n_vocab bounds the ids.
Expected<DataSet> load_jsonl(const std::string& path, const Tokenizer* tok, const ChatFormat* chat,
                             int64_t n_vocab, const DataOptions& o);

// The records of every step: epochs of the data in file order (or shuffled per epoch by seed),
// each step taking records until batch_tokens would be passed (at least one record), a step
// never spanning two epochs. steps > 0: that many steps (as many epochs as they need).
struct StepPlan {
  std::vector<std::vector<int64_t>> steps;  // record indices (into DataSet::examples)
  std::vector<int64_t> epoch_of;
};
StepPlan plan_steps(const DataSet& d, int64_t batch_tokens, int64_t epochs, int64_t steps, bool shuffle,
                    uint64_t seed);

// The records of `step` that go to micro-batch m of n: those with index i mod n == m (or whose
// d.holder is m, where it is set).
std::vector<int64_t> micro_batch(const DataSet& d, const std::vector<int64_t>& step, int64_t m, int64_t n);
// The predicted tokens of these records (the step's loss is their mean).
int64_t predicted_tokens(const DataSet& d, const std::vector<int64_t>& records);
// The combined order of a data-parallel job mixed by the members' shares (--mix by-share): rank
// r holds counts[r] records and weighs weights[r]; the job's epoch has as many records as all
// ranks hold together, split among the ranks by weight (largest remainder), each rank's taken in
// its file order (from the start again when its quota passes its count), and interleaved so that
// every prefix stays as close to the shares as it can (the rank most behind its due next, ties
// to the lower rank). Returns (rank, record of that rank) per position; an error when a rank
// with a positive quota holds no records.
Expected<std::vector<std::pair<int32_t, int64_t>>> share_mix(const std::vector<int64_t>& counts,
                                                             const std::vector<int64_t>& weights);
// Records packed in order into sequences of at most ctx tokens.
std::vector<PackedSequence> pack(const DataSet& d, const std::vector<int64_t>& records, int64_t ctx);

}  // namespace corral
