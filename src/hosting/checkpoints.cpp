#include "hosting/checkpoints.h"

#include <vector>

namespace corral {

CheckpointBatcher::CheckpointBatcher(std::shared_ptr<Ledger> ledger) : ledger_(std::move(ledger)) {
  thread_ = std::thread([this] { loop(); });
}

CheckpointBatcher::~CheckpointBatcher() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  work_.notify_all();
  thread_.join();
}

Status CheckpointBatcher::record(const std::string& id, int64_t tokens) {
  std::unique_lock<std::mutex> lk(mu_);
  if (stop_) return make_error("the ledger writer stopped");
  int64_t& p = pending_[id];
  p = std::max(p, tokens);
  const uint64_t batch = taken_ + 1;  // the next batch the writer takes holds this
  work_.notify_one();
  done_.wait(lk, [&] { return committed_ >= batch; });
  if (failed_batch_ == batch) return make_error(failure_);
  return Status::ok();
}

void CheckpointBatcher::loop() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    work_.wait(lk, [&] { return stop_ || !pending_.empty(); });
    if (pending_.empty() && stop_) return;
    std::vector<std::pair<std::string, int64_t>> items(pending_.begin(), pending_.end());
    pending_.clear();
    const uint64_t batch = ++taken_;
    lk.unlock();
    Status st = ledger_->checkpoint_many(items);
    lk.lock();
    ++transactions_;
    if (!st.is_ok()) failed_batch_ = batch, failure_ = st.message();
    committed_ = batch;
    done_.notify_all();
  }
}

}  // namespace corral
