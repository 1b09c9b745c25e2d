// GGUF-style key/value metadata. Every loader (GGUF, HF, llama2.c) produces its hyperparameters
// and tokenizer as these llama.cpp-named keys, so one code path reads them all and `convert`
// writes them out unchanged.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace corral {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

struct GgufValue {
  GgufType type = GgufType::U32;
  uint64_t u = 0;  // unsigned ints and bool
  int64_t i = 0;   // signed ints
  double f = 0;    // floats
  std::string str;
  GgufType elem_type = GgufType::U8;  // arrays
  std::vector<GgufValue> arr;

  static GgufValue of_u32(uint32_t v) { GgufValue x; x.type = GgufType::U32; x.u = v; return x; }
  static GgufValue of_i32(int32_t v) { GgufValue x; x.type = GgufType::I32; x.i = v; return x; }
  static GgufValue of_u64(uint64_t v) { GgufValue x; x.type = GgufType::U64; x.u = v; return x; }
  static GgufValue of_f32(float v) { GgufValue x; x.type = GgufType::F32; x.f = v; return x; }
  static GgufValue of_bool(bool v) { GgufValue x; x.type = GgufType::BOOL; x.u = v; return x; }
  static GgufValue of_str(std::string v) {
    GgufValue x; x.type = GgufType::STRING; x.str = std::move(v); return x;
  }
  static GgufValue of_array(GgufType elem, std::vector<GgufValue> items) {
    GgufValue x; x.type = GgufType::ARRAY; x.elem_type = elem; x.arr = std::move(items); return x;
  }
  static GgufValue of_strs(const std::vector<std::string>& v);
  static GgufValue of_f32s(const std::vector<float>& v);
  static GgufValue of_i32s(const std::vector<int32_t>& v);

  bool is_int() const;
  bool is_float() const { return type == GgufType::F32 || type == GgufType::F64; }
  // Numeric value as double / int64 (bools as 0/1); 0 for non-numbers.
  double as_double() const;
  int64_t as_int() const;
  std::string to_string(size_t max_items = 8) const;
};

struct Metadata {
  std::vector<std::pair<std::string, GgufValue>> kv;

  const GgufValue* find(const std::string& key) const;
  void set(const std::string& key, GgufValue v);
  void erase(const std::string& key);
  std::optional<int64_t> get_int(const std::string& key) const;
  std::optional<double> get_float(const std::string& key) const;
  std::optional<std::string> get_str(const std::string& key) const;
  std::optional<bool> get_bool(const std::string& key) const;
  const std::vector<GgufValue>* get_arr(const std::string& key) const;
  // "llama", "llama4", ... (general.architecture), "" if absent.
  std::string arch() const { return get_str("general.architecture").value_or(""); }
  // arch-prefixed lookup: akey("context_length") -> "llama.context_length"
  std::string akey(const std::string& suffix) const { return arch() + "." + suffix; }
};

}  // namespace corral
