// Helpers shared by the tests: fixture paths, JSON files, running the corral binary, reading f32
// files.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace corral::test {

inline std::string fixture(const std::string& rel) {
  return std::string(CORRAL_FIXTURES) + "/" + rel;
}
inline nlohmann::json load_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}
// Sets an environment variable for a scope (also when an assertion returns early), then restores
// it.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(const std::string& n, const std::string& v) : name(n) {
    if (const char* o = std::getenv(n.c_str())) old = o;
    setenv(n.c_str(), v.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old)
      setenv(name.c_str(), old->c_str(), 1);
    else
      unsetenv(name.c_str());
  }
};

// n standard normal floats from a seeded generator (the same values on every run).
inline std::vector<float> randn(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(g);
  return v;
}

inline std::string tmp_path(const std::string& name) {
  return std::string(::testing::TempDir()) + "corral_" + name;
}

struct CmdResult {
  int status;
  std::string out, err;
};

// Runs the corral binary with args (a shell-quoted string); captures stdout and stderr.
inline CmdResult run_corral(const std::string& args, const std::string& stdin_text = "") {
  const std::string base = tmp_path("cmd_" + std::to_string(::getpid()));
  const std::string in = base + ".in", out = base + ".out", err = base + ".err";
  {
    std::ofstream f(in, std::ios::binary);
    f << stdin_text;
  }
  const std::string cmd =
      std::string(CORRAL_BINARY) + " " + args + " <" + in + " >" + out + " 2>" + err;
  int rc = std::system(cmd.c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  CmdResult r{WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc), slurp(out), slurp(err)};
  std::remove(in.c_str());
  std::remove(out.c_str());
  std::remove(err.c_str());
  return r;
}

inline std::vector<float> read_f32(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

}  // namespace corral::test
