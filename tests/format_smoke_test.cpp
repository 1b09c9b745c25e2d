#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "test_util.h"

TEST(Smoke, InfoOnLlama2c) {
  auto r = corral::test::run_corral("info " + corral::test::fixture("llama2c/aidreams260K.bin"));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("llama"), std::string::npos);
}
