// Prometheus counters and histograms for the server, rendered in the text exposition format.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace corral {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}
  void observe(double v);
  // Lines for metric `name` (with _bucket, _sum, _count).
  std::string render(const std::string& name, const std::string& help) const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;
  double sum_ = 0;
  int64_t n_ = 0;
};

struct ServerMetrics {
  std::mutex mu;
  std::map<std::pair<std::string, int>, int64_t> requests;  // (route, status) -> count
  Histogram ttft{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80}};
  Histogram itl{{0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2}};
  std::atomic<int64_t> license_refusals{0};
  void count(const std::string& route, int status) {
    std::lock_guard<std::mutex> lk(mu);
    requests[{route, status}]++;
  }
};

}  // namespace corral
