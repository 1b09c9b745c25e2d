// Random-weight models in real shapes (N(0, 0.02) weights, norms 1) with a real tokenizer, for
// speed work: performance does not depend on weight values. Written tensor by tensor, so a
// model never sits in memory whole.
#pragma once
#include <string>

#include "core/context.h"
#include "core/status.h"
#include "core/types.h"

namespace corral {

struct SynthOptions {
  std::string shape;  // llama3.2-1b, llama3.2-3b, llama3.1-8b, llama2-7b, llama4-scout
  DType type = DType::F16;
  std::string tokenizer;  // default: the shape's family tokenizer from ../shared/fixtures
  int64_t layers = 0;     // 0 = the shape's own count
  uint64_t seed = 1;
  std::string out;
  // general.license, general.license.name, general.license.link (empty: not written)
  std::string license, license_name, license_link;
};

Status synth_model(const SynthOptions& o, Context& ctx);

}  // namespace corral
