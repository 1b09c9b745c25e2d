// libFuzzer target: request bodies of POST /v1/embeddings and /v1/responses, through the parsing
// and validation the server runs before anything reaches a model; a Responses body that passes
// is turned into its chat request, which must then parse as the chat route parses it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/api_requests.h"

namespace {
void serialise(const corral::ApiError& e) {  // every error is sent as a body
  (void)e.body().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  nlohmann::json j;
  if (corral::parse_json_body(body, &j)) return 0;
  corral::EmbedRequest er;
  if (auto e = corral::parse_embed_request(j, &er)) serialise(*e);
  nlohmann::ordered_json o = nlohmann::ordered_json::parse(body, nullptr, false);
  if (o.is_discarded() || !o.is_object()) return 0;
  nlohmann::ordered_json chat, conv;
  // The body's own "history" field stands in for a stored conversation.
  nlohmann::ordered_json history = o.contains("history") && o["history"].is_array()
                                       ? o["history"]
                                       : nlohmann::ordered_json::array();
  if (auto e = corral::responses_to_chat(o, history, &chat, &conv)) return serialise(*e), 0;
  const std::string text =
      chat.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  nlohmann::json cj = nlohmann::json::parse(text, nullptr, false);
  if (cj.is_discarded()) __builtin_trap();  // what we built must be JSON
  corral::GenRequest g;
  if (auto e = corral::parse_gen_request(cj, true, &g))
    serialise(*e);
  else if (auto e2 = corral::chat_template_input(text, &g))
    serialise(*e2);
  return 0;
}
