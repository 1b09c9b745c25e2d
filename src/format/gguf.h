// GGUF v2/v3 reader (bounds-checked, tensor data by mmap) and a streaming writer using
// llama.cpp's key and tensor naming conventions.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/logger.h"
#include "core/status.h"
#include "format/model_file.h"

namespace corral {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t kGgufDefaultAlignment = 32;

// Parses a GGUF held in memory (the fuzz target calls this directly). `name` is used in errors.
// Tensor data pointers point into `data`.
Expected<LoadedModel> parse_gguf(const uint8_t* data, size_t size, const std::string& name);
Expected<LoadedModel> load_gguf(const std::string& path);

// One tensor to write: its bytes are produced on demand so a whole model is never held in memory.
struct GgufWriteTensor {
  std::string name;
  DType type;
  std::vector<int64_t> ne;
  // Fills dst (exactly row_bytes(type, ne[0]) * rows bytes).
  std::function<Status(uint8_t* dst)> fill;
};

struct GgufWriteOptions {
  uint64_t alignment = kGgufDefaultAlignment;
  const Logger* log = nullptr;  // progress when set
};

// Writes to path + ".tmp" and renames on success, so a failed write never leaves a half file.
Status write_gguf(const std::string& path, const Metadata& meta,
                  const std::vector<GgufWriteTensor>& tensors, const GgufWriteOptions& opts = {});

}  // namespace corral
