#include "ops/sgemm.h"

#include <algorithm>
#include <cstring>

#include "backend/cpu/kernels.h"
#include "backend/cpu/transpose_sse.h"

namespace corral {

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
           const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate, SgemmScratch& s) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.f);
    return;
  }
  const KernelTable& k = kernels_best();
  const int64_t MR = k.gemm_mr, NR = k.gemm_nr;
  const int64_t Mp = (M + MR - 1) / MR * MR, Np = (N + NR - 1) / NR * NR;
  const int64_t kc_max = std::min(K, kSgemmKc);
  s.a.resize(size_t(Mp * kc_max));
  s.b.resize(size_t(NR * kc_max));
  s.c.resize(size_t(MR * NR));
  for (int64_t k0 = 0; k0 < K; k0 += kSgemmKc) {
    const int64_t kc = std::min(kSgemmKc, K - k0);
    const bool acc = accumulate || k0 > 0;
    // A's rows as [Mp][kc] (zero rows past M). Untransposed A is read in place (rows lda apart)
    // except for a last partial block of rows; the kernel's arithmetic is the same either way.
    const int64_t m_direct = ta ? 0 : M / MR * MR;
    if (ta) transpose_strided(A + k0 * lda, lda, kc, M, s.a.data(), kc);  // A^T's M rows
    for (int64_t i = ta ? M : m_direct; i < Mp; ++i) {
      float* d = s.a.data() + i * kc;
      if (i >= M)
        std::fill(d, d + kc, 0.f);
      else
        std::memcpy(d, A + i * lda + k0, size_t(kc) * 4);
    }
    // One panel of B at a time (it stays in cache for all of A's row blocks). A last panel of
    // at most 16 or 32 columns goes to a narrow kernel where the table has one (W = its width):
    // without it, head width 64 or LoRA rank 16 would pad to 96 or 48 columns.
    for (int64_t p = 0; p < Np / NR; ++p) {
      const int64_t j0 = p * NR, nj = std::min(NR, N - j0);
      int64_t W = NR;
      GemmMicroFn micro = k.gemm_micro;
      for (int v = 0; v < 2 && nj < NR; ++v)
        if (k.gemm_micro_narrow[v] && nj <= 16 * (v + 1) && 16 * (v + 1) < NR) {
          W = 16 * (v + 1), micro = k.gemm_micro_narrow[v];
          break;
        }
      float* d = s.b.data();
      if (!tb) {
        for (int64_t q = 0; q < kc; ++q) {
          float* row = d + q * W;
          std::memcpy(row, B + (k0 + q) * ldb + j0, size_t(nj) * 4);
          std::fill(row + nj, row + W, 0.f);
        }
      } else {
        // B^T: read each of B's rows along k, write it down the panel's column.
        if (nj < W) std::fill(d, d + kc * W, 0.f);
        transpose_strided(B + j0 * ldb + k0, ldb, nj, kc, d, W);
      }
      for (int64_t i0 = 0; i0 < Mp; i0 += MR) {
        const int64_t ni = std::min(MR, M - i0);
        const float* a = i0 < m_direct ? A + i0 * lda + k0 : s.a.data() + i0 * kc;
        const int64_t la = i0 < m_direct ? lda : kc;
        if (ni == MR && nj == W) {  // a whole tile: straight into C
          micro(kc, a, la, d, C + i0 * ldc + j0, ldc, acc);
          continue;
        }
        float* ct = s.c.data();
        if (acc) {
          std::fill(ct, ct + MR * W, 0.f);
          for (int64_t i = 0; i < ni; ++i)
            std::memcpy(ct + i * W, C + (i0 + i) * ldc + j0, size_t(nj) * 4);
        }
        micro(kc, a, la, d, ct, W, acc);
        for (int64_t i = 0; i < ni; ++i)
          std::memcpy(C + (i0 + i) * ldc + j0, ct + i * W, size_t(nj) * 4);
      }
    }
  }
}

}  // namespace corral
