// Training checkpoints: DIR/step-N/ holds the adapter (adapter.gguf), the optimizer's state
// (optimizer.bin: update count, AdamW moments) and state.json (the step and a digest of what
// the run computes). Each is written under DIR/.tmp-step-N, synced, then renamed into place, so
// a kill -9 at any point leaves either the whole checkpoint or none of it.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "format/lora.h"
#include "train/optimizer.h"

namespace corral {

struct Checkpoint {
  int64_t step = 0;  // updates done
  LoraAdapter adapter;
  OptimizerState opt;
  nlohmann::json state;
};

Status save_checkpoint(const std::string& dir, const Checkpoint& c);
// The newest complete checkpoint under dir; an error when there is none.
Expected<Checkpoint> load_latest_checkpoint(const std::string& dir);
// The newest checkpoint's files as one buffer, and back: rank 0 sends it to the other ranks of a
// resumed job, so a checkpoint need only be on rank 0's machine (no shared folder).
Expected<std::vector<uint8_t>> pack_latest_checkpoint(const std::string& dir);
Expected<Checkpoint> unpack_checkpoint(const std::vector<uint8_t>& buf);

}  // namespace corral
