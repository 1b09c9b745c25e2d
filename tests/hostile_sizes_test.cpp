// Size arithmetic on hostile headers: the overflow-checked helpers themselves, and the files
// under fuzz/seeds/ (each once made a reader compute a wrapped or undefined size) failing cleanly.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/checked.h"
#include "format/gguf.h"
#include "format/llama2c.h"
#include "format/safetensors.h"
#include "test_util.h"

namespace corral {
namespace {

std::vector<uint8_t> slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

std::string seed(const std::string& rel) {
  return std::string(CORRAL_SOURCE_DIR) + "/fuzz/seeds/" + rel;
}

TEST(Checked, ProductsThatWrapAreRejected) {
  const int64_t f = int64_t(1) << 24;
  EXPECT_EQ(checked_elements({f, f}).value(), int64_t(1) << 48);
  EXPECT_FALSE(checked_elements({f, f, f}).has_value());  // 2^72
  // The reproducer's fields: 127063755329536 * 16763404 does not fit in int64.
  EXPECT_FALSE(checked_elements({11272256, 11272256, 16763404}).has_value());
  EXPECT_FALSE(checked_elements({-1, 4}).has_value());
  EXPECT_EQ(checked_elements({0, int64_t(1) << 40, int64_t(1) << 40}).value(), 0);
  // A zero dimension does not hide the product of the others.
  EXPECT_FALSE(
      checked_extent(std::vector<int64_t>{0, int64_t(1) << 40, int64_t(1) << 40}).has_value());
  EXPECT_EQ(checked_extent(std::vector<int64_t>{32, 0, 4}).value(), 128);
  EXPECT_EQ(checked_tensor_bytes(DType::Q4_0, std::vector<int64_t>{64, 3}).value(), 2u * 3u * 18u);
  EXPECT_EQ(checked_tensor_bytes(DType::F32, std::vector<int64_t>{7}).value(), 28u);
  EXPECT_FALSE(
      checked_tensor_bytes(DType::Q4_K, std::vector<int64_t>{100}).has_value());  // partial block
  EXPECT_FALSE(
      checked_tensor_bytes(DType::F64, std::vector<int64_t>{int64_t(1) << 62}).has_value());
  EXPECT_FALSE(checked_add<uint64_t>(~uint64_t(0), 1).has_value());
  EXPECT_FALSE(checked_mul<uint64_t>(uint64_t(1) << 32, uint64_t(1) << 32).has_value());
}

TEST(HostileSizes, FuzzReproducerForLlama2cFailsCleanly) {
  const auto b = slurp(seed("safetensors_fuzz/llama2c_size_overflow.bin"));
  ASSERT_EQ(b.size(), 44u);
  auto r = parse_llama2c(b.data(), b.size(), "repro.bin");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.message().find("repro.bin: offset 28"), std::string::npos) << r.message();
}

TEST(HostileSizes, ZeroDimensionDoesNotHideAWrappingShape) {
  const auto g = slurp(seed("gguf_fuzz/zero_dim_wrap.gguf"));
  auto r = parse_gguf(g.data(), g.size(), "wrap.gguf");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.message().find("tensor 'a': dimension 2"), std::string::npos) << r.message();
  const auto s = slurp(seed("safetensors_fuzz/zero_dim_wrap.safetensors"));
  auto t = parse_safetensors(s.data(), s.size(), "wrap.safetensors");
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.message().find("tensor 'a': shape too large"), std::string::npos) << t.message();
}

// Every seed file: `corral info` exits 1 with one `error:` line naming the file. (lora_fuzz's
// seeds are valid adapters to start the fuzzer from, not findings.)
TEST(HostileSizes, EverySeedFileExitsOneWithOneErrorLine) {
  int n = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(seed(""))) {
    const auto dir = e.path().parent_path().filename();
    if (!e.is_regular_file() || dir == "openai_request_fuzz" || dir == "lora_fuzz") continue;
    const std::string p = e.path().string();
    auto r = test::run_corral("info '" + p + "'");
    EXPECT_EQ(r.status, 1) << p << ": " << r.out << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << p << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << p << ": " << r.err;
    EXPECT_NE(r.err.find(p), std::string::npos) << p << ": " << r.err;
    EXPECT_EQ(r.err.find("runtime error"), std::string::npos) << p << ": " << r.err;
    ++n;
  }
  EXPECT_GE(n, 3);
}

}  // namespace
}  // namespace corral
