#include "ops/packed.h"

#include <cstdlib>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/repack.h"

namespace corral {

const PackedLayout* packed_layout(DType t, int64_t K) {
  const KernelTable& k = kernels_best();
  const bool amx = std::getenv("CORRAL_NO_AMX") == nullptr;
  switch (t) {
    case DType::Q4_0:
      return amx && k.amx_pair_q4_0 ? &packed_q4_0_amx() : &packed_q4_0_vector();
    case DType::Q8_0:
      return amx && k.amx_pair_q8_0 ? &packed_q8_0_amx() : &packed_q8_0_vector();
    case DType::Q4_K:
      return amx && k.amx_pair_q4_k ? &packed_q4_k_amx() : &packed_q4_k_vector();
    case DType::Q6_K:
      return &packed_q6_k_vector();
    case DType::BF16:
      return bf16_tile_layout(t, K) ? &packed_bf16_tiles() : &packed_columns();
    case DType::F16:
    case DType::F32:
      return &packed_columns();
    default:
      return nullptr;
  }
}

void packed_reference(const TensorView& packed, const float* x, int64_t T, float* y) {
  // The rows read back into the file's own encoding, then the plain reference.
  const PackedLayout* l = packed_layout(packed.type, packed.ne[0]);
  std::vector<uint8_t> plain(packed.nbytes());
  const size_t rb = packed.row_size();
  for (int64_t r = 0; r < packed.ne[1]; ++r) l->row(packed, r, plain.data() + size_t(r) * rb);
  TensorView w = packed;
  w.data = plain.data();
  w.repacked = false;
  matmul_reference(w, x, T, y);
}

}  // namespace corral
