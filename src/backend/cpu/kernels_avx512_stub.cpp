// AVX-512 table: not built yet; the dispatcher falls back to AVX2.
#include "backend/cpu/kernels.h"

namespace corral {
const KernelTable* kernels_avx512() { return nullptr; }
}  // namespace corral
