// Everything a computation needs from its surroundings, passed down explicitly: no globals.
#pragma once
#include <memory>

#include "core/logger.h"
#include "core/thread_pool.h"

namespace corral {

struct Context {
  Logger log;
  std::unique_ptr<ThreadPool> pool;
  explicit Context(int n_threads = 1) : pool(std::make_unique<ThreadPool>(n_threads)) {}
};

}  // namespace corral
