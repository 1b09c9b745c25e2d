// Overflow-checked size arithmetic for the file readers. Header fields of hostile files are
// chosen so that element counts and byte sizes wrap: signed overflow is undefined behaviour and
// a wrapped size slips past "runs past the end" checks, so every product goes through here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>

#include "core/types.h"

namespace corral {

// a * b and a + b, or nullopt when the result does not fit.
template <class T>
std::optional<T> checked_mul(T a, T b) {
  T r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}
template <class T>
std::optional<T> checked_add(T a, T b) {
  T r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// Number of elements of a shape: nullopt when a dimension is negative or the product overflows.
inline std::optional<int64_t> checked_elements(std::span<const int64_t> ne) {
  int64_t n = 1;
  for (int64_t x : ne) {
    if (x < 0) return std::nullopt;
    auto p = checked_mul(n, x);
    if (!p) return std::nullopt;
    n = *p;
  }
  return n;
}
inline std::optional<int64_t> checked_elements(std::initializer_list<int64_t> ne) {
  return checked_elements(std::span<const int64_t>(ne.begin(), ne.size()));
}

// Product of the dimensions with zeros counted as one: bounds every partial product taken of
// a shape later (rows(), expert slices), which an element count of 0 does not.
inline std::optional<int64_t> checked_extent(std::span<const int64_t> ne) {
  int64_t n = 1;
  for (int64_t x : ne) {
    if (x < 0) return std::nullopt;
    auto p = checked_mul<int64_t>(n, x == 0 ? 1 : x);
    if (!p) return std::nullopt;
    n = *p;
  }
  return n;
}

// Bytes of a tensor of type t and shape ne (ne[0] a multiple of the block size): nullopt on
// overflow, an unknown type or a row that does not fill whole blocks.
inline std::optional<uint64_t> checked_tensor_bytes(DType t, std::span<const int64_t> ne) {
  auto tr = type_traits(t);
  auto n = checked_elements(ne);
  if (!tr || !n || ne.empty() || ne[0] % tr->block_size != 0) return std::nullopt;
  return checked_mul<uint64_t>(uint64_t(*n / tr->block_size), tr->type_size);
}

}  // namespace corral
