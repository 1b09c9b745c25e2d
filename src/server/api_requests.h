// Request bodies of /v1/embeddings and /v1/responses: validation with errors naming the field,
// and the Responses request as the chat request it stands for.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "server/openai.h"

namespace corral {

struct EmbedRequest {
  std::string model;
  std::vector<std::string> texts;         // input as text ...
  std::vector<std::vector<int32_t>> ids;  // ... or as token ids
  bool base64 = false;
  int64_t dimensions = 0;  // 0: the model's width
  int64_t truncate = 0;    // truncate_prompt_tokens (0: none; -1: the context)
};

// POST /v1/embeddings: input (a string, strings, ids, lists of ids), encoding_format,
// dimensions, user, truncate_prompt_tokens.
std::optional<ApiError> parse_embed_request(const nlohmann::json& b, EmbedRequest* r);

// POST /v1/responses as a chat completions body (keys in order: templates print them): the
// history's messages (a stored conversation), then the input's items; instructions first, for
// this request only, so `conversation` gets the messages without them. Tools, tool_choice,
// text.format and the sampling fields are translated; errors name the Responses field.
std::optional<ApiError> responses_to_chat(const nlohmann::ordered_json& b,
                                          const nlohmann::ordered_json& history,
                                          nlohmann::ordered_json* chat,
                                          nlohmann::ordered_json* conversation);

}  // namespace corral
