// Continuous batching over one Engine: every step is one forward pass over all running
// sequences (one decode token each, plus prompt chunks under a per-step token budget); new
// requests join between steps. The KV pool is shared, full prompt blocks are reused across
// requests (prefix cache), and when the pool runs out the newest sequence is preempted and
// recomputed later. Callers talk to it only through Submit and the SeqHandle it returns: the
// scheduler knows nothing of HTTP.
#pragma once
#include <atomic>
#include <cstdio>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/embed.h"
#include "engine/generator.h"
#include "engine/sampler.h"
#include "format/lora.h"
#include "grammar/matcher.h"

namespace corral {

struct SeqRequest {
  std::vector<int32_t> prompt;
  int64_t max_tokens = 16;  // generated tokens at most (the context end also stops)
  SamplerParams sampling;
  std::vector<std::string> stop_strings;
  bool ignore_eos = false;
  int32_t top_logprobs = -1;     // -1: no logprobs; else alternatives per token (0..20)
  bool prompt_logprobs = false;  // logprobs of the prompt tokens too (legacy echo)
  bool render_special = false;   // special tokens written out in the text (tool-call parsing)
  // Structured output: only tokens this grammar allows are sampled (masks applied to the
  // logits after the forward pass, so the logits themselves stay batch-invariant).
  std::shared_ptr<grammar::GrammarRuntime> grammar;
  // A LoRA adapter over the base (null: none): its tokens go through it in the same batch as
  // everyone else's; adapter_space keeps its prefix-cache blocks apart (unique per adapter).
  std::shared_ptr<const LoraAdapter> adapter;
  int32_t adapter_space = 0;
  // An embedding instead of a completion: the whole prompt runs in one step (bidirectional
  // attention needs every key before any query), nothing is sampled, no prefix-cache blocks are
  // read or published, and SeqHandle::embedding gets the pooled (not yet normalised) vector.
  bool embed = false;
  EmbeddingSpec embedding;
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // best alternatives, most likely first
};

// Output released so far and the final state; shared by the scheduler (writer) and one reader.
struct SeqHandle {
  std::mutex mu;
  std::condition_variable cv;
  std::string text;               // released text not yet taken
  std::vector<TokenLogprob> lps;  // logprobs of tokens not yet taken
  // Per generated token (the final stop token aside) not yet taken: the bytes of `text` it
  // released (0 while its text is held back). Streams send one chunk per token.
  std::deque<size_t> piece_bytes;
  bool tail_taken = false;
  std::vector<TokenLogprob> prompt_lps;
  bool done = false;
  std::string finish;  // stop, length, cancelled, error
  std::string error;
  int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
  std::vector<float> embedding;  // embedding requests: [n_embd], set before done
  std::atomic<bool> cancel{false};
  std::atomic<int64_t> generated{0};  // tokens sampled so far (for metering checkpoints)
  double submitted = 0, first_token = 0;  // seconds on the steady clock

  // Takes what was released; waits up to timeout_ms while there is nothing. false: nothing new.
  bool take(std::string* out_text, std::vector<TokenLogprob>* out_lps, int timeout_ms);
  // One token at a time, for streams: kPiece is the next token's text (maybe empty) and
  // logprob; once done and all pieces are taken, kTail (once) is the text no token carries (held
  // text flushed at the end) and the final stop token's logprob; kNone: nothing now.
  enum class Take { kNone, kPiece, kTail };
  Take take_piece(std::string* out_text, std::vector<TokenLogprob>* out_lps);
  bool has_piece_or_done() const { return !piece_bytes.empty() || (done && !tail_taken); }  // under mu
};

struct SchedulerOptions {
  int64_t parallel = 16;      // sequences in one batch at most
  int64_t step_tokens = 256;  // tokens per forward pass at most (decode + prompt chunks)
  int64_t max_queue = 256;    // waiting requests at most
  // Diagnostics: each step's composition (sequence, positions) and each sampled token (its
  // sequence, position, a hash of its logits, the id) appended to this file. Empty: off.
  std::string trace_path;
};

struct SchedulerStats {
  std::atomic<int64_t> prompt_tokens{0}, cached_tokens{0}, generated_tokens{0};
  std::atomic<int64_t> running{0}, waiting{0}, steps{0}, last_batch{0}, preemptions{0};
  std::atomic<int64_t> kv_used{0}, kv_total{0};
};

class Scheduler {
 public:
  Scheduler(Engine& e, const SchedulerOptions& o);
  ~Scheduler();  // cancels what is left and joins the loop
  // nullptr when the queue is full (the caller answers 429).
  std::shared_ptr<SeqHandle> submit(SeqRequest r);
  const SchedulerStats& stats() const { return stats_; }
  void cancel_all();
  Engine& engine() { return e_; }
  int64_t active() const { return stats_.running.load() + stats_.waiting.load(); }

 private:
  struct Seq;
  void loop();
  bool step();  // false when there is nothing to do
  void admit();
  bool reserve_for(std::vector<Seq*>& batch_seqs, const std::vector<int64_t>& ends);
  void preempt(Seq* s);
  void finish(Seq* s, const std::string& reason, const std::string& error = "");
  void emit(Seq* s, int32_t id, const float* logits);

  Engine& e_;
  SchedulerOptions o_;
  SchedulerStats stats_;
  std::vector<int32_t> stop_ids_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Seq>> incoming_;  // submitted, not yet seen by the loop
  std::deque<std::unique_ptr<Seq>> waiting_;   // admitted order (preempted ones go first)
  std::vector<std::unique_ptr<Seq>> running_;
  bool stop_ = false;
  int32_t next_id_ = 1;
  FILE* trace_ = nullptr;
  std::thread thread_;
};

double steady_seconds();

}  // namespace corral
