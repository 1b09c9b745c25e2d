// Tensor element types, numbered exactly as ggml numbers them so GGUF files round-trip.
// Block types pack `block_size` values into `type_size` bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace corral {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct TypeTraits {
  std::string_view name;
  int64_t block_size;  // values per block
  size_t type_size;    // bytes per block
  bool quantized;
};

// Traits of a known type; nullopt for ids Corral does not handle.
std::optional<TypeTraits> type_traits(uint32_t id);
inline std::optional<TypeTraits> type_traits(DType t) { return type_traits(uint32_t(t)); }
std::string_view type_name(DType t);
std::optional<DType> type_from_name(std::string_view name);  // "q4_k", "F16", ...

// Bytes used by n values (n must be a multiple of the block size).
size_t row_bytes(DType t, int64_t n);

constexpr int64_t QK_K = 256;

}  // namespace corral
