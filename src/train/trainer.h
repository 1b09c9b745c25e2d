// `corral finetune`: LoRA training of a frozen base on JSONL data, with checkpoints, resume,
// a progress bar and a JSON-lines log. A step's loss is the mean cross-entropy over all predicted
// tokens of its batch; with grad_accum N, record i of the data goes to micro-batch i mod N and
// the micro-batches' gradients are summed in order. Under mpirun, N ranks are those N
// micro-batches: rank r holds (in its own --data) the records i mod N == r of the combined data,
// computes its micro-batch, and every rank sums the gathered gradients in rank order, so N ranks
// give bitwise the adapter one process gives with --grad-accum N over the combined data.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/logger.h"
#include "format/lora.h"
#include "train/optimizer.h"

namespace corral {

class Tokenizer;
struct ChatFormat;
struct Model;
struct Context;

class Collective;

// What this process computed since the last report (compute given in kind, for a consortium).
struct ComputeReport {
  int64_t cpu_us = 0, flops = 0, energy_uj = 0, trained_tokens = 0;
  bool final = false;
};

struct TrainOptions {
  std::string data, val, out, log_path, checkpoint_dir, resume_dir, init_adapter, base_path;
  int64_t rank = 16;
  float alpha = 32, dropout = 0;
  std::vector<int> targets = {0, 1, 2, 3, 4, 5, 6};
  OptimizerConfig opt;
  int64_t epochs = 0, steps = 0, batch_tokens = 4096, ctx = 1024, grad_accum = 1;
  int64_t checkpoint_every = 0, eval_every = 0;
  uint64_t seed = 0;
  bool shuffle = false, train_on_prompt = false;
  std::string recompute = "auto";  // auto | on | off
  bool progress = true;            // the bar on a terminal
  std::string grads_out;           // write the first step's loss and gradients (PEFT folder) and stop
  Collective* coll = nullptr;      // the ranks of a data-parallel job (null: one process)
  std::string member;              // this rank's member name, for the log's per-member tokens
  // How the ranks' data make the combined data: "interleave" (record i on rank i mod N) or
  // "by-share" (each member's records sampled in proportion to mix_share_bp, its share).
  std::string mix = "interleave";
  int64_t mix_share_bp = 0;
  // Called after every checkpoint and at the end with what this process computed since the last
  // call (its CPU time from getrusage, FLOPs, RAPL energy where readable, trained tokens).
  std::function<Status(const ComputeReport&)> on_compute;
};

// tok and chat may be null (ids records only).
Status run_training(Context& ctx, const Model& m, const Tokenizer* tok, const ChatFormat* chat,
                    const TrainOptions& o, const Logger& log);

// A fresh adapter as PEFT initialises one: A ~ U(-1/sqrt(n_in), 1/sqrt(n_in)) (Kaiming-uniform
// with a = sqrt(5)), B = 0, from seed.
LoraAdapter init_adapter(const LoraBaseShape& base, const std::vector<int>& targets, int64_t rank, float alpha,
                         uint64_t seed);

}  // namespace corral
