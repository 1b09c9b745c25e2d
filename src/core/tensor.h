// TensorView: the currency between layers. Shapes use ggml order: ne[0] is the contiguous
// (innermost) dimension, so a weight for y = W x with W [out, in] has ne = {in, out}.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/types.h"

namespace corral {

struct TensorView {
  const void* data = nullptr;
  DType type = DType::F32;
  std::array<int64_t, 4> ne{1, 1, 1, 1};
  int n_dims = 0;
  // Rows regrouped for the CPU kernels (see backend/cpu/repack.h); same byte size, so slices
  // by expert still work, but single rows cannot be read with row().
  bool repacked = false;

  int64_t nelements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
  size_t row_size() const { return row_bytes(type, ne[0]); }
  size_t nbytes() const { return row_size() * size_t(rows()); }
  const uint8_t* row(int64_t r) const {
    return static_cast<const uint8_t*>(data) + size_t(r) * row_size();
  }
  // Slice of a 3-d tensor (e.g. one expert of [in, out, n_expert]).
  TensorView slice2(int64_t i2) const {
    TensorView v = *this;
    v.data = static_cast<const uint8_t*>(data) + size_t(i2) * row_size() * size_t(ne[1]);
    v.ne = {ne[0], ne[1], 1, 1};
    v.n_dims = 2;
    return v;
  }
  bool valid() const { return data != nullptr; }
};

std::string shape_string(const TensorView& t);

}  // namespace corral
