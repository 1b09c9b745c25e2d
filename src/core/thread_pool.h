// Persistent worker threads: kernels split work into chunks and call parallel_for many times
// per token, so threads are started once and woken by a generation counter, not re-created.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace corral {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Runs fn(i) for i in [0, n) across all threads (the caller is one of them); returns when done.
  void parallel_for(int64_t n, const std::function<void(int64_t)>& fn);
  // Runs fn(thread_index, n_threads) once on every thread.
  void run_on_all(const std::function<void(int, int)>& fn);

 private:
  void worker(int idx);
  int n_threads_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int, int)>* job_ = nullptr;
  bool stop_ = false;
};

// Physical cores (logical CPUs / SMT width), at least 1.
int default_thread_count();

}  // namespace corral
