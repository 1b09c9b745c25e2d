// libFuzzer target: request bodies of POST /v1/chat/completions and /v1/completions, through the
// same JSON parsing and schema validation the server runs before anything reaches the engine.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/openai.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  nlohmann::json j;
  if (corral::parse_json_body(body, &j)) return 0;
  for (bool chat : {true, false}) {
    corral::GenRequest g;
    if (auto e = corral::parse_gen_request(j, chat, &g)) {
      // Every error must serialise (it is sent as the response body).
      (void)e->body().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
  }
  return 0;
}
