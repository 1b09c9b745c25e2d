// A model file in memory, whatever its format: llama.cpp-named metadata plus tensors with
// llama.cpp names and ggml shapes. Tensor data points into mmapped files where the layout
// already matches, and into owned buffers where a loader had to permute or transpose.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/checked.h"
#include "core/status.h"
#include "core/tensor.h"
#include "format/metadata.h"

namespace corral {

struct ModelTensor {
  std::string name;
  DType type = DType::F32;
  std::vector<int64_t> ne;  // ggml order: ne[0] contiguous
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  // The readers reject shapes whose extent passes 2^60, so this never fails on a loaded tensor.
  int64_t nelements() const { return checked_elements(ne).value_or(-1); }
  TensorView view() const;
};

struct LoadedModel {
  std::string path;
  std::string format;  // "gguf", "hf", "llama2c"
  uint32_t gguf_version = 0;
  Metadata meta;
  std::vector<ModelTensor> tensors;
  std::vector<std::shared_ptr<void>> keep_alive;  // mmaps and owned buffers

  const ModelTensor* find(const std::string& name) const;
  // Owned buffer of n bytes, kept alive with the model.
  uint8_t* alloc(size_t n);
};

struct LoadOptions {
  std::string tokenizer_path;  // llama2.c tokenizer.bin, or an override for any format
};

// Detects the format: a folder (HF), GGUF magic, else llama2.c .bin.
Expected<LoadedModel> load_model(const std::string& path, const LoadOptions& opts = {});

}  // namespace corral
