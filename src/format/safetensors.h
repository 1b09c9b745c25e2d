// Safetensors reader: single files and sharded checkpoints (model.safetensors.index.json).
// Header offsets and shapes are validated against each other and the file size.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"
#include "core/types.h"

namespace corral {

struct SafeTensor {
  std::string name;
  DType type;
  std::vector<int64_t> shape;  // as stored (row-major, outermost first)
  const uint8_t* data;
  size_t nbytes;
};

struct SafetensorsFile {
  std::vector<SafeTensor> tensors;
  std::vector<std::shared_ptr<MappedFile>> maps;
};

// Parses one safetensors image held in memory (the fuzz target calls this directly).
Expected<std::vector<SafeTensor>> parse_safetensors(const uint8_t* data, size_t size,
                                                    const std::string& name);
// A .safetensors file, or a folder holding model.safetensors or an index with shards.
Expected<SafetensorsFile> load_safetensors(const std::string& path);

}  // namespace corral
