// Small dense f32 GEMMs for training (attention per head, LoRA's low-rank products): C[M][N]
// (+)= op(A)[M][K] op(B)[K][N] on the kernel table's gemm_micro, single-threaded (callers split
// the work). op(A) is A [M][K] (lda apart) or, with ta, A^T of A [K][M]; op(B) is B [K][N] or,
// with tb, B^T of B [N][K]. Each C[i][j] is reduced over k in order, in blocks of kSgemmKc, so it
// depends only on row i of op(A) and column j of op(B): not on M, N or how callers split them.
#pragma once
#include <cstdint>
#include <vector>

namespace corral {

constexpr int64_t kSgemmKc = 256;

struct SgemmScratch {
  std::vector<float> a, b, c;
};

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
           const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate, SgemmScratch& s);

}  // namespace corral
