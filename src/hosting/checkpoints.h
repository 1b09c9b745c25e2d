// Group commit of streaming progress: a request's writer asks for "at least N completion tokens
// recorded" before it writes those tokens to the client, and waits until one ledger transaction
// holds it. Everything asked for while a transaction runs goes into the next one, so the ledger
// sees about one transaction per scheduler step however many streams run, and a kill -9 leaves
// every record at the tokens its client received (at most the chunk being written more).
#pragma once
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "hosting/ledger.h"

namespace corral {

class CheckpointBatcher {
 public:
  explicit CheckpointBatcher(std::shared_ptr<Ledger> ledger);
  ~CheckpointBatcher();
  // Blocks until a committed transaction records at least `tokens` for the request (a failed
  // transaction is returned to every writer in it).
  Status record(const std::string& request_id, int64_t tokens);
  int64_t transactions() const { return transactions_; }

 private:
  void loop();

  std::shared_ptr<Ledger> ledger_;
  std::mutex mu_;
  std::condition_variable work_, done_;
  std::unordered_map<std::string, int64_t> pending_;
  uint64_t taken_ = 0, committed_ = 0;  // batches taken / committed so far
  Status last_;                         // the last committed batch's result
  uint64_t failed_batch_ = 0;           // the last batch that failed, 0: none
  std::string failure_;
  bool stop_ = false;
  int64_t transactions_ = 0;
  std::thread thread_;
};

}  // namespace corral
