// llama2.c checkpoints (legacy .bin): 7 int32 of header, then f32 weights in a fixed order.
#pragma once
#include <string>

#include "core/status.h"
#include "format/model_file.h"

namespace corral {

Expected<LoadedModel> load_llama2c(const std::string& path);
// On bytes already in memory (fuzzing); tensors point into `data`.
Expected<LoadedModel> parse_llama2c(const uint8_t* data, size_t size, const std::string& name);

}  // namespace corral
