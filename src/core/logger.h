// Logger passed down in the Context (no global logger): info/progress go to stderr.
#pragma once
#include <unistd.h>

#include <cstdio>
#include <string>

namespace corral {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

struct Logger {
  LogLevel level = LogLevel::kInfo;
  FILE* sink = stderr;
  void log(LogLevel l, const std::string& msg) const {
    if (l <= level && sink) std::fprintf(sink, "%s\n", msg.c_str());
  }
  void info(const std::string& m) const { log(LogLevel::kInfo, m); }
  void warn(const std::string& m) const { log(LogLevel::kWarn, "warning: " + m); }
  void debug(const std::string& m) const { log(LogLevel::kDebug, m); }
};

// Progress on stderr for long work ("converting  42/291 tensors"), overwritten in place.
struct Progress {
  const Logger* log;
  std::string what;
  int64_t total;
  int64_t last_pct = -1;
  void update(int64_t done) {
    if (!log || log->level < LogLevel::kInfo || total <= 0) return;
    int64_t pct = done * 100 / total;
    if (pct == last_pct) return;
    last_pct = pct;
    // Not a terminal (logs, CI): one line at the end instead of a redrawn bar.
    if (!isatty(fileno(log->sink))) {
      if (done >= total)
        std::fprintf(log->sink, "%s done (%lld/%lld)\n", what.c_str(), (long long)done,
                     (long long)total);
      return;
    }
    std::fprintf(log->sink, "\r%s %3lld%% (%lld/%lld)", what.c_str(), (long long)pct,
                 (long long)done, (long long)total);
    if (done >= total) std::fprintf(log->sink, "\n");
    std::fflush(log->sink);
  }
};

}  // namespace corral
