// The generation loop shared by `run`, `chat` and (later) the server: evaluate the prompt
// (reusing whatever prefix the sequence already has in the KV cache), then sample, stream and
// stop at EOS/EOT, a stop string, the token limit, the context end or a caller's request.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "engine/sampler.h"

namespace corral {

struct GenerateRequest {
  int32_t seq = 0;
  std::vector<int32_t> prompt;          // the whole sequence so far
  std::vector<int32_t> cached;          // tokens already in this seq's KV cache (a prefix is reused)
  int64_t max_tokens = 256;
  SamplerParams sampling;
  std::vector<std::string> stop_strings;
  // Called with each new token and its decoded text (may be empty while a UTF-8 character is
  // incomplete); return false to stop.
  std::function<bool(int32_t id, const std::string& text)> on_token;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (stop token excluded)
  std::string text;
  std::string finish;           // "stop", "length", "context", "cancelled"
  double prompt_seconds = 0, gen_seconds = 0;
  int64_t prompt_evaluated = 0;  // prompt tokens actually run (the rest came from the cache)
  std::vector<int32_t> sequence;  // prompt + generated tokens now in the KV cache
};

Expected<GenerateResult> generate(Engine& e, const GenerateRequest& req);

}  // namespace corral
