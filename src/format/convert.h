// Writing any loaded model out as GGUF, optionally re-encoding its weights to one type.
#pragma once
#include <functional>
#include <optional>
#include <string>

#include "core/logger.h"
#include "core/status.h"
#include "format/model_file.h"

namespace corral {

// Rows of one tensor edited on the way out (values in f32): e.g. a LoRA adapter merged in.
using RowEdit = std::function<void(int64_t row, float* values)>;

struct ConvertOptions {
  std::optional<DType> type;  // nullopt: keep each tensor's type
  const Logger* log = nullptr;
  // Optional: the edit for a tensor (empty: written as it is); an edited tensor is re-encoded.
  std::function<RowEdit(const ModelTensor&)> edit;
};

// Type a tensor gets when the model is converted to `target`: 1-d tensors, routers and
// rope factors stay F32; rows that do not fit the block size fall back to a smaller block.
DType choose_tensor_type(const ModelTensor& t, DType target, std::string* note);
// llama.cpp's general.file_type for a whole-model type.
uint32_t file_type_for(DType t);

Status write_model_gguf(const LoadedModel& m, const std::string& out, const ConvertOptions& opts);

}  // namespace corral
