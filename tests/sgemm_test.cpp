// ops/sgemm.h against a float64 reference, for every transpose combination, sizes that are not
// multiples of the micro-kernel's tile or of the K block, with and without accumulation; and a
// row's result independent of the rows and columns computed with it.
#include "ops/sgemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

using namespace corral;

namespace {

std::vector<float> rnd(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = u(g);
  return v;
}

}  // namespace

TEST(Sgemm, EqualsAFloat64ReferenceForEveryTranspose) {
  const int64_t M = 37, N = 101;
  // K crosses kSgemmKc (256); 263 leaves a last slice of 7, not a multiple of the 4x4 transposes.
  for (int64_t K : {300, 263})
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int acc = 0; acc < 2; ++acc) {
        const auto A = rnd(size_t(M * K), 1), B = rnd(size_t(K * N), 2), C0 = rnd(size_t(M * N), 3);
        const int64_t lda = ta ? M : K, ldb = tb ? K : N;
        std::vector<float> C = C0;
        SgemmScratch s;
        sgemm(ta, tb, M, N, K, A.data(), lda, B.data(), ldb, C.data(), N, acc, s);
        double worst = 0;
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double r = acc ? C0[size_t(i * N + j)] : 0.0;
            for (int64_t k = 0; k < K; ++k)
              r += double(ta ? A[size_t(k * lda + i)] : A[size_t(i * lda + k)]) *
                   double(tb ? B[size_t(j * ldb + k)] : B[size_t(k * ldb + j)]);
            worst = std::max(worst, std::abs(r - C[size_t(i * N + j)]));
          }
        EXPECT_LT(worst, 1e-4) << "K " << K << " ta " << ta << " tb " << tb << " acc " << acc;
      }
}

TEST(Sgemm, ARowDoesNotDependOnTheRestOfTheProduct) {
  const int64_t M = 50, N = 70, K = 40;
  const auto A = rnd(size_t(M * K), 4), B = rnd(size_t(K * N), 5);
  std::vector<float> full(size_t(M * N)), part(size_t(3 * 9));
  SgemmScratch s;
  sgemm(false, false, M, N, K, A.data(), K, B.data(), N, full.data(), N, false, s);
  // Rows 17..19, columns 33..41 alone.
  sgemm(false, false, 3, 9, K, A.data() + 17 * K, K, B.data() + 33, N, part.data(), 9, false, s);
  for (int64_t i = 0; i < 3; ++i)
    EXPECT_EQ(std::memcmp(part.data() + i * 9, full.data() + (17 + i) * N + 33, 9 * 4), 0)
        << "row " << i;
}
