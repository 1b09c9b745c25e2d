#include "core/types.h"

#include <algorithm>
#include <cctype>
#include <string>

namespace corral {

std::optional<TypeTraits> type_traits(uint32_t id) {
  switch (DType(id)) {
    case DType::F32: return TypeTraits{"F32", 1, 4, false};
    case DType::F16: return TypeTraits{"F16", 1, 2, false};
    case DType::BF16: return TypeTraits{"BF16", 1, 2, false};
    case DType::F64: return TypeTraits{"F64", 1, 8, false};
    case DType::I8: return TypeTraits{"I8", 1, 1, false};
    case DType::I16: return TypeTraits{"I16", 1, 2, false};
    case DType::I32: return TypeTraits{"I32", 1, 4, false};
    case DType::I64: return TypeTraits{"I64", 1, 8, false};
    case DType::Q4_0: return TypeTraits{"Q4_0", 32, 18, true};
    case DType::Q4_1: return TypeTraits{"Q4_1", 32, 20, true};
    case DType::Q5_0: return TypeTraits{"Q5_0", 32, 22, true};
    case DType::Q5_1: return TypeTraits{"Q5_1", 32, 24, true};
    case DType::Q8_0: return TypeTraits{"Q8_0", 32, 34, true};
    case DType::Q8_1: return TypeTraits{"Q8_1", 32, 36, true};
    case DType::Q2_K: return TypeTraits{"Q2_K", 256, 84, true};
    case DType::Q3_K: return TypeTraits{"Q3_K", 256, 110, true};
    case DType::Q4_K: return TypeTraits{"Q4_K", 256, 144, true};
    case DType::Q5_K: return TypeTraits{"Q5_K", 256, 176, true};
    case DType::Q6_K: return TypeTraits{"Q6_K", 256, 210, true};
    case DType::Q8_K: return TypeTraits{"Q8_K", 256, 292, true};
  }
  return std::nullopt;
}

std::string_view type_name(DType t) {
  auto tr = type_traits(t);
  return tr ? tr->name : std::string_view("unknown");
}

std::optional<DType> type_from_name(std::string_view name) {
  std::string up(name);
  std::transform(up.begin(), up.end(), up.begin(), [](unsigned char c) { return std::toupper(c); });
  for (uint32_t id = 0; id < 40; ++id) {
    auto tr = type_traits(id);
    if (tr && tr->name == up) return DType(id);
  }
  return std::nullopt;
}

size_t row_bytes(DType t, int64_t n) {
  auto tr = type_traits(t);
  return size_t(n / tr->block_size) * tr->type_size;
}

}  // namespace corral
