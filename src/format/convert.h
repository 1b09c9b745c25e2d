// Writing any loaded model out as GGUF, optionally re-encoding its weights to one type.
#pragma once
#include <optional>
#include <string>

#include "core/logger.h"
#include "core/status.h"
#include "format/model_file.h"

namespace corral {

struct ConvertOptions {
  std::optional<DType> type;  // nullopt: keep each tensor's type
  const Logger* log = nullptr;
};

// Type a tensor gets when the model is converted to `target`: 1-d tensors, routers and
// rope factors stay F32; rows that do not fit the block size fall back to a smaller block.
DType choose_tensor_type(const ModelTensor& t, DType target, std::string* note);
// llama.cpp's general.file_type for a whole-model type.
uint32_t file_type_for(DType t);

Status write_model_gguf(const LoadedModel& m, const std::string& out, const ConvertOptions& opts);

}  // namespace corral
