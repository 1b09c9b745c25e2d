#include "format/metadata.h"

#include <cstdio>

namespace corral {

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"u8",  "i8",   "u16",    "i16",   "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  return uint32_t(t) < 13 ? names[uint32_t(t)] : "unknown";
}

GgufValue GgufValue::of_strs(const std::vector<std::string>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (auto& s : v) items.push_back(of_str(s));
  return of_array(GgufType::STRING, std::move(items));
}
GgufValue GgufValue::of_f32s(const std::vector<float>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (float f : v) items.push_back(of_f32(f));
  return of_array(GgufType::F32, std::move(items));
}
GgufValue GgufValue::of_i32s(const std::vector<int32_t>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (int32_t x : v) items.push_back(of_i32(x));
  return of_array(GgufType::I32, std::move(items));
}

bool GgufValue::is_int() const {
  switch (type) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
    case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64:
    case GgufType::BOOL:
      return true;
    default:
      return false;
  }
}

static bool is_signed(GgufType t) {
  return t == GgufType::I8 || t == GgufType::I16 || t == GgufType::I32 || t == GgufType::I64;
}

double GgufValue::as_double() const {
  if (is_float()) return f;
  if (is_signed(type)) return double(i);
  if (is_int()) return double(u);
  return 0;
}

int64_t GgufValue::as_int() const {
  if (is_float()) return int64_t(f);
  if (is_signed(type)) return i;
  if (is_int()) return int64_t(u);
  return 0;
}

std::string GgufValue::to_string(size_t max_items) const {
  char buf[64];
  switch (type) {
    case GgufType::STRING: return "\"" + str + "\"";
    case GgufType::BOOL: return u ? "true" : "false";
    case GgufType::F32: case GgufType::F64:
      std::snprintf(buf, sizeof buf, "%g", f);
      return buf;
    case GgufType::ARRAY: {
      std::string s = "[";
      for (size_t k = 0; k < arr.size() && k < max_items; ++k)
        s += (k ? ", " : "") + arr[k].to_string(max_items);
      if (arr.size() > max_items) s += ", ... (" + std::to_string(arr.size()) + " items)";
      return s + "]";
    }
    default:
      return is_signed(type) ? std::to_string(i) : std::to_string(u);
  }
}

const GgufValue* Metadata::find(const std::string& key) const {
  for (auto& [k, v] : kv)
    if (k == key) return &v;
  return nullptr;
}

void Metadata::set(const std::string& key, GgufValue v) {
  for (auto& [k, old] : kv)
    if (k == key) {
      old = std::move(v);
      return;
    }
  kv.emplace_back(key, std::move(v));
}

void Metadata::erase(const std::string& key) {
  for (auto it = kv.begin(); it != kv.end(); ++it)
    if (it->first == key) {
      kv.erase(it);
      return;
    }
}

std::optional<int64_t> Metadata::get_int(const std::string& key) const {
  auto* v = find(key);
  if (!v || !(v->is_int() || v->is_float())) return std::nullopt;
  return v->as_int();
}
std::optional<double> Metadata::get_float(const std::string& key) const {
  auto* v = find(key);
  if (!v || !(v->is_int() || v->is_float())) return std::nullopt;
  return v->as_double();
}
std::optional<std::string> Metadata::get_str(const std::string& key) const {
  auto* v = find(key);
  if (!v || v->type != GgufType::STRING) return std::nullopt;
  return v->str;
}
std::optional<bool> Metadata::get_bool(const std::string& key) const {
  auto* v = find(key);
  if (!v || !v->is_int()) return std::nullopt;
  return v->as_int() != 0;
}
const std::vector<GgufValue>* Metadata::get_arr(const std::string& key) const {
  auto* v = find(key);
  if (!v || v->type != GgufType::ARRAY) return nullptr;
  return &v->arr;
}

}  // namespace corral
