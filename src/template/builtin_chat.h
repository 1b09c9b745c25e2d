// Chat templates of the Llama families, rendered natively (no Jinja): Llama 2 ([INST], <<SYS>>),
// Llama 3.x (header ids, <|eot_id|>) and Llama 4 (<|header_start|> ... <|eot|>). The model's
// own tokenizer.chat_template is recognised by its content.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace corral {

struct ChatMessage {
  std::string role;  // system, user, assistant
  std::string content;
};

enum class ChatTemplate { kLlama2, kLlama3, kLlama4 };

// By name ("llama2", "llama3", "llama4"; "llama3.1" etc. accepted).
Expected<ChatTemplate> chat_template_by_name(const std::string& name);
// From a model's Jinja template text; nullopt when not recognised.
std::optional<ChatTemplate> chat_template_detect(const std::string& jinja);

// --chat-template NAME when given, else the model's own template recognised by content, else
// the family's default (SentencePiece: Llama 2; <|header_start|> in the vocab: Llama 4; Llama 3).
struct Vocab;
Expected<ChatTemplate> choose_chat_template(const Vocab& v, const std::string& name);

// The prompt text (special tokens written out; encode with parse_special). `bos` is the BOS
// token's text, written at the start as the reference templates do.
std::string chat_render(ChatTemplate t, const std::vector<ChatMessage>& msgs,
                        bool add_generation_prompt, const std::string& bos);

}  // namespace corral
