#include "engine/scheduler.h"

#include <limits>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cmath>

namespace corral {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool SeqHandle::take(std::string* out_text, std::vector<TokenLogprob>* out_lps, int timeout_ms) {
  std::unique_lock<std::mutex> lk(mu);
  if (text.empty() && lps.empty() && !done)
    cv.wait_for(lk, std::chrono::milliseconds(timeout_ms),
                [&] { return !text.empty() || !lps.empty() || done; });
  if (text.empty() && lps.empty()) return false;
  out_text->append(text);
  text.clear();
  if (out_lps) out_lps->insert(out_lps->end(), lps.begin(), lps.end());
  lps.clear();
  piece_bytes.clear();
  return true;
}

SeqHandle::Take SeqHandle::take_piece(std::string* out_text, std::vector<TokenLogprob>* out_lps) {
  std::lock_guard<std::mutex> lk(mu);
  if (!piece_bytes.empty()) {
    const size_t n = std::min(piece_bytes.front(), text.size());
    piece_bytes.pop_front();
    out_text->append(text, 0, n);
    text.erase(0, n);
    if (!lps.empty()) {
      if (out_lps) out_lps->push_back(lps.front());
      lps.erase(lps.begin());
    }
    return Take::kPiece;
  }
  if (!done || tail_taken) return Take::kNone;
  tail_taken = true;
  out_text->append(text);
  text.clear();
  if (out_lps) out_lps->insert(out_lps->end(), lps.begin(), lps.end());
  lps.clear();
  return Take::kTail;
}

struct Scheduler::Seq {
  SeqRequest req;
  std::shared_ptr<SeqHandle> h;
  int32_t id = 0;               // KV sequence id; a new one after each preemption
  int64_t order = 0;            // admission order: the newest is preempted first
  std::vector<int32_t> tokens;  // prompt + generated
  int64_t n_prompt = 0;
  int64_t computed = 0;   // leading tokens whose K/V are in the cache
  int64_t generated = 0;  // sampled tokens (a final stop token included)
  bool prompt_published = false, prompt_lps_done = false;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<grammar::Matcher> matcher;  // structured output, when asked for
  std::unique_ptr<StreamDecoder> dec;
  std::string text;               // decoded output, cut at a stop string
  size_t released = 0;            // bytes of text handed out
  std::vector<TokenLogprob> lps;  // not yet handed out
  size_t max_stop = 0;
};

Scheduler::Scheduler(Engine& e, const SchedulerOptions& o) : e_(e), o_(o) {
  if (e_.tok) {
    stop_ids_ = e_.tok->vocab().stop_ids();
    if (e_.tok->vocab().bos >= 0) stop_ids_.push_back(e_.tok->vocab().bos);  // as `corral run`
  }
  stats_.kv_total = e_.kv->total_blocks();
  if (!o_.trace_path.empty()) trace_ = std::fopen(o_.trace_path.c_str(), "a");
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  struct CloseTrace {
    FILE*& f;
    ~CloseTrace() {
      if (f) std::fclose(f), f = nullptr;
    }
  } close_trace{trace_};
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_ptr<SeqHandle> Scheduler::submit(SeqRequest r) {
  auto s = std::make_unique<Seq>();
  s->h = std::make_shared<SeqHandle>();
  s->h->submitted = steady_seconds();
  s->h->prompt_tokens = int64_t(r.prompt.size());
  s->tokens = r.prompt;
  s->n_prompt = int64_t(r.prompt.size());
  s->sampler = std::make_unique<Sampler>(r.sampling);
  if (r.grammar) s->matcher = std::make_unique<grammar::Matcher>(r.grammar);
  if (e_.tok && !r.embed && !r.prompt.empty()) s->dec = std::make_unique<StreamDecoder>(*e_.tok, r.render_special, r.prompt.back());
  for (auto& st : r.stop_strings) s->max_stop = std::max(s->max_stop, st.size());
  s->req = std::move(r);
  auto h = s->h;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_ || int64_t(incoming_.size() + waiting_.size()) >= o_.max_queue) return nullptr;
    incoming_.push_back(std::move(s));
    stats_.waiting = int64_t(incoming_.size() + waiting_.size());
  }
  cv_.notify_all();
  return h;
}

void Scheduler::cancel_all() {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& s : incoming_) s->h->cancel = true;
  for (auto& s : waiting_) s->h->cancel = true;
  for (auto& s : running_) s->h->cancel = true;
}

void Scheduler::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] {
        return stop_ || !incoming_.empty() || !waiting_.empty() || !running_.empty();
      });
      if (stop_) break;
      while (!incoming_.empty()) {
        waiting_.push_back(std::move(incoming_.front()));
        incoming_.pop_front();
      }
    }
    step();
  }
  std::lock_guard<std::mutex> lk(mu_);
  for (auto* q : {&incoming_, &waiting_})
    for (auto& s : *q) finish(s.get(), "cancelled");
  for (auto& s : running_) finish(s.get(), "cancelled");
  running_.clear();
}

void Scheduler::finish(Seq* s, const std::string& reason, const std::string& error) {
  if (s->dec && reason != "stop_string") {
    s->text += s->dec->flush();
  }
  // Whatever is still held back for a partial stop-string match is output after all.
  std::string out = s->text.substr(std::min(s->released, s->text.size()));
  s->released = s->text.size();
  if (s->id > 0) {
    // Embedding inputs' K/V may be bidirectional: never shared with generation.
    if (!s->req.embed) e_.kv->publish(s->id, s->tokens, s->computed, s->req.adapter_space);
    e_.kv->release(s->id);
    s->id = 0;
  }
  std::lock_guard<std::mutex> lk(s->h->mu);
  s->h->text += out;
  s->h->lps.insert(s->h->lps.end(), s->lps.begin(), s->lps.end());
  s->lps.clear();
  s->h->finish = reason == "stop_string" ? "stop" : reason;
  s->h->error = error;
  s->h->completion_tokens = s->generated;
  s->h->done = true;
  s->h->cv.notify_all();
}

void Scheduler::admit() {
  // Cancelled before they ran: done at once.
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if ((*it)->h->cancel) {
      finish(it->get(), "cancelled");
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  while (int64_t(running_.size()) < o_.parallel && !waiting_.empty()) {
    auto s = std::move(waiting_.front());
    waiting_.pop_front();
    s->id = next_id_++;
    if (next_id_ == INT32_MAX) next_id_ = 1;
    s->order = s->order ? s->order : s->id;
    // Reuse cached prompt blocks; the last token is always run (its logits start the answer).
    if (!s->req.embed && (!s->req.prompt_logprobs || s->prompt_lps_done)) {
      s->computed = e_.kv->attach_prefix(s->id, s->tokens, int64_t(s->tokens.size()) - 1, s->req.adapter_space);
      if (s->generated == 0) {
        s->h->cached_tokens = s->computed;
        stats_.cached_tokens += s->computed;
      }
    }
    running_.push_back(std::move(s));
  }
  std::lock_guard<std::mutex> lk(mu_);
  stats_.waiting = int64_t(incoming_.size() + waiting_.size());
  stats_.running = int64_t(running_.size());
}

void Scheduler::preempt(Seq* s) {
  if (!s->req.embed) e_.kv->publish(s->id, s->tokens, s->computed, s->req.adapter_space);
  e_.kv->release(s->id);
  s->id = 0;
  s->computed = 0;
  if (!s->prompt_lps_done) s->h->prompt_lps.clear();  // collected again when it is recomputed
  stats_.preemptions++;
  for (auto it = running_.begin(); it != running_.end(); ++it)
    if (it->get() == s) {
      waiting_.push_front(std::move(*it));
      running_.erase(it);
      break;
    }
}

namespace {

// log-softmax of the chosen token and the best `top` alternatives.
TokenLogprob logprobs_of(const float* logits, int64_t V, int32_t id, int32_t top) {
  float mx = logits[0];
  for (int64_t i = 1; i < V; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < V; ++i) sum += std::exp(double(logits[i] - mx));
  const float lse = mx + float(std::log(sum));
  TokenLogprob lp;
  lp.id = id;
  lp.logprob = logits[id] - lse;
  if (top > 0) {
    std::vector<int32_t> idx(static_cast<size_t>(V));
    for (int64_t i = 0; i < V; ++i) idx[size_t(i)] = int32_t(i);
    const size_t k = std::min<size_t>(size_t(top), idx.size());
    std::partial_sort(idx.begin(), idx.begin() + long(k), idx.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (size_t i = 0; i < k; ++i) lp.top.push_back({idx[i], logits[idx[i]] - lse});
  }
  return lp;
}

}  // namespace

void Scheduler::emit(Seq* s, int32_t id, const float* logits) {
  const int64_t V = e_.model->hp.n_vocab;
  if (s->req.top_logprobs >= 0) s->lps.push_back(logprobs_of(logits, V, id, s->req.top_logprobs));
  ++s->generated;
  s->h->generated = s->generated;
  stats_.generated_tokens++;
  if (s->generated == 1) s->h->first_token = steady_seconds();
  const bool is_stop =
      !s->req.ignore_eos && std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end();
  if (is_stop) return finish(s, "stop");
  s->tokens.push_back(id);
  if (s->dec) s->text += s->dec->feed(id);
  // The earliest complete stop string ends the output there; a partial one at the end is held.
  size_t cut = std::string::npos;
  for (auto& st : s->req.stop_strings)
    if (!st.empty()) cut = std::min(cut, s->text.find(st, s->released));
  if (cut != std::string::npos) {
    s->text.resize(cut);
    return finish(s, "stop_string");
  }
  size_t hold = 0;
  for (auto& st : s->req.stop_strings)
    for (size_t n = st.empty() ? 0 : std::min(st.size() - 1, s->text.size() - s->released);
         n > hold; --n)
      if (s->text.compare(s->text.size() - n, n, st, 0, n) == 0) {
        hold = n;
        break;
      }
  const bool at_limit =
      s->generated >= s->req.max_tokens || int64_t(s->tokens.size()) >= e_.ctx_size;
  const size_t upto = s->text.size() - hold;
  {
    std::lock_guard<std::mutex> lk(s->h->mu);
    const size_t piece = upto > s->released ? upto - s->released : 0;
    if (piece > 0) s->h->text.append(s->text, s->released, piece);
    s->h->piece_bytes.push_back(piece);
    s->released = std::max(s->released, upto);
    s->h->lps.insert(s->h->lps.end(), s->lps.begin(), s->lps.end());
    s->lps.clear();
    s->h->cv.notify_all();
  }
  if (at_limit) finish(s, "length");
}

bool Scheduler::step() {
  admit();
  // Cancelled sequences (client gone) free their blocks before anything is computed.
  for (size_t i = 0; i < running_.size();) {
    if (running_[i]->h->cancel) {
      finish(running_[i].get(), "cancelled");
      running_.erase(running_.begin() + long(i));
    } else {
      ++i;
    }
  }
  if (running_.empty()) {
    stats_.running = 0;
    stats_.kv_used = e_.kv->total_blocks() - e_.kv->free_blocks();
    return false;
  }
  // Decoding sequences first (one token each), then prompt chunks, oldest first.
  std::vector<Seq*> order;
  for (auto& s : running_) order.push_back(s.get());
  std::stable_sort(order.begin(), order.end(), [](Seq* a, Seq* b) {
    const bool da = int64_t(a->tokens.size()) - a->computed == 1;
    const bool db = int64_t(b->tokens.size()) - b->computed == 1;
    if (da != db) return da;
    return a->order < b->order;
  });
  std::vector<Seq*> seqs;
  std::vector<int64_t> ends;
  int64_t budget = std::max<int64_t>(o_.step_tokens, 1);
  bool has_chunk = false;  // a prompt chunk (not a decode token) is in this step already
  for (Seq* s : order) {
    if (budget <= 0) break;
    const int64_t left = int64_t(s->tokens.size()) - s->computed;
    int64_t n = std::min<int64_t>(left, budget);
    if (s->req.embed && n < left) {
      // An embedding input runs whole or not at all; past the budget only as the step's
      // first prompt work, so that a long input cannot wait forever.
      if (has_chunk) continue;
      n = left;
    }
    has_chunk = has_chunk || left > 1;
    seqs.push_back(s);
    ends.push_back(s->computed + n);
    budget -= n;
  }
  // Blocks for every chunk; when the pool is short, the newest sequence gives its blocks back.
  for (size_t i = 0; i < seqs.size();) {
    if (e_.kv->reserve(seqs[i]->id, ends[i])) {
      ++i;
      continue;
    }
    Seq* newest = nullptr;
    for (auto& s : running_)
      if (!newest || s->order > newest->order) newest = s.get();
    if (newest == seqs[0] && running_.size() == 1) {
      finish(newest, "error",
             "the KV pool (" + std::to_string(e_.kv->total_blocks()) +
                 " blocks) cannot hold this sequence; raise --kv-memory");
      running_.clear();
      return true;
    }
    auto at = std::find(seqs.begin(), seqs.end(), newest);
    if (at != seqs.end()) {
      const size_t k = size_t(at - seqs.begin());
      seqs.erase(at);
      ends.erase(ends.begin() + long(k));
      if (k < i) --i;
    }
    preempt(newest);
    if (seqs.empty()) return true;
  }
  std::vector<BatchToken> batch;
  e_.scratch.adapters.clear();  // this step's adapters, each once
  for (size_t i = 0; i < seqs.size(); ++i) {
    Seq* s = seqs[i];
    const bool all = s->req.prompt_logprobs && !s->prompt_lps_done;
    int32_t ai = -1;
    if (const LoraAdapter* a = s->req.adapter.get()) {
      auto at = std::find(e_.scratch.adapters.begin(), e_.scratch.adapters.end(), a);
      ai = int32_t(at - e_.scratch.adapters.begin());
      if (at == e_.scratch.adapters.end()) e_.scratch.adapters.push_back(a);
    }
    if (s->req.embed) {
      const int64_t n = ends[i];
      const EmbeddingSpec& es = s->req.embedding;
      for (int64_t p = 0; p < n; ++p)
        batch.push_back({s->id, int32_t(p), s->tokens[size_t(p)], false, ai,
                         pooling_reads(es.pooling, p, n), es.causal ? 0 : int32_t(n)});
      continue;
    }
    for (int64_t p = s->computed; p < ends[i]; ++p)
      batch.push_back({s->id, int32_t(p), s->tokens[size_t(p)],
                       all || p + 1 == int64_t(s->tokens.size()), ai});
  }
  if (trace_) {
    std::fprintf(trace_, "step %lld: %zu tokens", (long long)stats_.steps.load(), batch.size());
    for (size_t i = 0; i < seqs.size(); ++i)
      std::fprintf(trace_, " [seq %d order %lld: %lld-%lld of %zu]", seqs[i]->id, (long long)seqs[i]->order,
                   (long long)seqs[i]->computed, (long long)ends[i], seqs[i]->tokens.size());
    std::fprintf(trace_, "\n");
  }
  std::vector<float> logits;
  Status st = e_.model->forward(*e_.ctx, *e_.kv, batch, e_.scratch, &logits);
  e_.scratch.adapters.clear();
  stats_.steps++;
  stats_.last_batch = int64_t(batch.size());
  if (!st.is_ok()) {
    for (auto& s : running_) finish(s.get(), "error", st.message());
    running_.clear();
    return true;
  }
  const int64_t V = e_.model->hp.n_vocab;
  // Token masks of the constrained sequences that sample now, in parallel.
  std::vector<std::vector<uint64_t>> masks(seqs.size());
  std::vector<size_t> constrained;
  for (size_t i = 0; i < seqs.size(); ++i)
    if (seqs[i]->matcher && ends[i] == int64_t(seqs[i]->tokens.size())) constrained.push_back(i);
  if (!constrained.empty())
    e_.ctx->pool->parallel_for(int64_t(constrained.size()), [&](int64_t k) {
      const size_t i = constrained[size_t(k)];
      masks[i].resize(size_t(seqs[i]->matcher->runtime().index().words));
      seqs[i]->matcher->fill_mask(masks[i].data());
    });
  size_t row = 0, hrow = 0;  // next logits row, next hidden row
  std::vector<Seq*> done;
  for (size_t i = 0; i < seqs.size(); ++i) {
    Seq* s = seqs[i];
    if (s->req.embed) {
      const int64_t n = ends[i], E = e_.model->hp.n_embd;
      const Pooling pl = s->req.embedding.pooling;
      const int64_t nh = pl == Pooling::kMean ? n : 1;
      std::vector<float> v =
          pool_rows(pl, e_.scratch.hidden.data() + hrow * size_t(E), nh, E);
      hrow += size_t(nh);
      s->computed = n;
      stats_.prompt_tokens += n;
      {
        std::lock_guard<std::mutex> lk(s->h->mu);
        s->h->embedding = std::move(v);
      }
      finish(s, "stop");
      done.push_back(s);
      continue;
    }
    const bool all = s->req.prompt_logprobs && !s->prompt_lps_done;
    const int64_t from = s->computed, to = ends[i];
    const bool at_end = to == int64_t(s->tokens.size());
    const size_t base = row;  // this sequence's logits rows: one per token, or the last only
    row += all ? size_t(to - from) : size_t(at_end);
    s->computed = to;
    if (from < s->n_prompt) stats_.prompt_tokens += std::min(to, s->n_prompt) - from;
    if (all) {  // the logprob of prompt token p + 1 comes from the logits at p
      for (int64_t p = from; p < to; ++p)
        if (p + 1 < s->n_prompt)
          s->h->prompt_lps.push_back(
              logprobs_of(logits.data() + (base + size_t(p - from)) * size_t(V), V,
                          s->tokens[size_t(p + 1)], std::max(s->req.top_logprobs, 0)));
      if (to >= s->n_prompt) s->prompt_lps_done = true;
    }
    if (!s->prompt_published && to >= s->n_prompt) {
      e_.kv->publish(s->id, s->tokens, s->n_prompt, s->req.adapter_space);
      s->prompt_published = true;
    }
    if (!at_end) continue;
    float* lg = logits.data() + (row - 1) * size_t(V);
    std::vector<float> raw;  // logprobs come from the model's distribution, before penalties
    if (s->req.top_logprobs >= 0) raw.assign(lg, lg + V);
    if (!masks[i].empty()) {
      const int64_t n = int64_t(masks[i].size()) * 64;
      bool any = false;
      for (int64_t v = 0; v < V; ++v) {
        const bool ok = v < n && ((masks[i][size_t(v >> 6)] >> (v & 63)) & 1);
        if (!ok) lg[v] = -std::numeric_limits<float>::infinity();
        any = any || ok;
      }
      if (!any) {  // the grammar allows nothing more (a dead end): the output ends here
        finish(s, "stop");
        done.push_back(s);
        continue;
      }
    }
    if (trace_) {  // FNV-1a over the logits' bits, after the mask
      uint64_t h = 1469598103934665603ull;
      for (int64_t v = 0; v < V; ++v) {
        uint32_t u;
        std::memcpy(&u, lg + v, 4);
        h = (h ^ u) * 1099511628211ull;
      }
      std::fprintf(trace_, "  seq %d order %lld pos %zu logits %016llx", s->id, (long long)s->order, s->tokens.size(),
                   (unsigned long long)h);
    }
    const int32_t id = s->sampler->sample(lg, V, s->tokens);
    if (trace_) std::fprintf(trace_, " -> %d\n", id), std::fflush(trace_);
    if (s->matcher) s->matcher->accept(id);
    emit(s, id, raw.empty() ? lg : raw.data());
    if (s->h->done) done.push_back(s);
  }
  if (!done.empty())
    running_.erase(
        std::remove_if(
            running_.begin(), running_.end(),
            [&](auto& s) { return std::find(done.begin(), done.end(), s.get()) != done.end(); }),
        running_.end());
  stats_.running = int64_t(running_.size());
  stats_.kv_used = e_.kv->total_blocks() - e_.kv->free_blocks();
  return true;
}

}  // namespace corral
