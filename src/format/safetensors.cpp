#include "format/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/checked.h"

namespace corral {

using json = nlohmann::json;

Expected<std::vector<SafeTensor>> parse_safetensors(const uint8_t* data, size_t size,
                                                    const std::string& name) {
  if (size < 8) return make_error(name + ": offset 0: truncated file (no safetensors header)");
  uint64_t hlen;
  std::memcpy(&hlen, data, 8);
  if (hlen > size - 8)
    return make_error(name + ": offset 0: header length " + std::to_string(hlen) +
                      " runs past the end of the file (" + std::to_string(size) + " bytes)");
  json h = json::parse(data + 8, data + 8 + hlen, nullptr, /*allow_exceptions=*/false);
  if (h.is_discarded() || !h.is_object())
    return make_error(name + ": offset 8: header is not a valid JSON object");
  const size_t data_start = 8 + size_t(hlen);
  const size_t data_size = size - data_start;
  std::vector<SafeTensor> out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [key, v] : h.items()) {
    if (key == "__metadata__") continue;
    const std::string where = name + ": tensor '" + key + "'";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets") || !v["dtype"].is_string() || !v["shape"].is_array() ||
        !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      return make_error(where + ": entry needs dtype, shape and data_offsets [begin, end]");
    const std::string dt = v["dtype"];
    SafeTensor t;
    t.name = key;
    size_t esize;
    if (dt == "F32")
      t.type = DType::F32, esize = 4;
    else if (dt == "F16")
      t.type = DType::F16, esize = 2;
    else if (dt == "BF16")
      t.type = DType::BF16, esize = 2;
    else
      return make_error(where + ": unsupported dtype " + dt + " (supported: F32, F16, BF16)");
    for (auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) return make_error(where + ": shape entries must be >= 0");
      const uint64_t x = d.get<uint64_t>();
      if (x > (uint64_t(1) << 60)) return make_error(where + ": shape too large");
      t.shape.push_back(int64_t(x));
    }
    const auto extent = checked_extent(t.shape);
    if (!extent || *extent > (int64_t(1) << 60)) return make_error(where + ": shape too large");
    const uint64_t n = uint64_t(*checked_elements(t.shape));
    auto& off = v["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      return make_error(where + ": data_offsets must be non-negative integers");
    const uint64_t b = off[0], e = off[1];
    if (b > e || e > data_size)
      return make_error(where + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                        "] run past the end of the data (" + std::to_string(data_size) + " bytes)");
    if (e - b != n * esize)
      return make_error(where + ": data_offsets span " + std::to_string(e - b) +
                        " bytes but shape and dtype need " + std::to_string(n * esize));
    t.data = data + data_start + b;
    t.nbytes = size_t(e - b);
    ranges.push_back({b, e});
    out.push_back(std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t k = 1; k < ranges.size(); ++k)
    if (ranges[k].first < ranges[k - 1].second && ranges[k].first < ranges[k].second)
      return make_error(name + ": tensors overlap at data offset " +
                        std::to_string(ranges[k].first));
  return out;
}

static Status add_file(const std::string& path, SafetensorsFile* f) {
  CORRAL_ASSIGN_OR_RETURN(auto mf, MappedFile::open(path));
  CORRAL_ASSIGN_OR_RETURN(auto ts, parse_safetensors(mf->data(), mf->size(), path));
  f->maps.push_back(mf);
  for (auto& t : ts) f->tensors.push_back(std::move(t));
  return Status::ok();
}

Expected<SafetensorsFile> load_safetensors(const std::string& path) {
  SafetensorsFile f;
  if (!is_directory(path)) {
    CORRAL_RETURN_IF_ERROR(add_file(path, &f));
    return f;
  }
  const std::string index = path + "/model.safetensors.index.json";
  if (file_exists(index)) {
    CORRAL_ASSIGN_OR_RETURN(std::string text, read_text_file(index));
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.contains("weight_map") || !j["weight_map"].is_object())
      return make_error(index + ": field weight_map: missing or not an object");
    std::set<std::string> shards;
    for (auto& [k, v] : j["weight_map"].items()) {
      if (!v.is_string()) return make_error(index + ": weight_map['" + k + "'] is not a string");
      const std::string s = v;
      if (s.find('/') != std::string::npos || s.find("..") != std::string::npos)
        return make_error(index + ": weight_map['" + k + "']: shard name '" + s + "' not allowed");
      shards.insert(s);
    }
    for (auto& s : shards) CORRAL_RETURN_IF_ERROR(add_file(path + "/" + s, &f));
    std::set<std::string> seen;
    for (auto& t : f.tensors)
      if (!seen.insert(t.name).second)
        return make_error(path + ": tensor '" + t.name + "' appears in more than one shard");
    return f;
  }
  const std::string single = path + "/model.safetensors";
  if (!file_exists(single))
    return make_error(path + ": no model.safetensors or model.safetensors.index.json");
  CORRAL_RETURN_IF_ERROR(add_file(single, &f));
  return f;
}

}  // namespace corral
