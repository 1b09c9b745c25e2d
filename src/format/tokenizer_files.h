// Tokenizer sources -> GGUF tokenizer metadata (tokenizer.ggml.*), the single representation the
// tokenizer module reads. Sources: HF tokenizer.json (+ tokenizer_config.json), SentencePiece
// tokenizer.model, llama2.c tokenizer.bin, or another GGUF's tokenizer keys.
#pragma once
#include <string>

#include "core/status.h"
#include "format/metadata.h"

namespace corral {

// Token types as GGUF stores them (tokenizer.ggml.token_type).
enum TokenType : int32_t {
  kTokNormal = 1, kTokUnknown = 2, kTokControl = 3, kTokUserDefined = 4, kTokUnused = 5, kTokByte = 6
};

// `path`: GGUF, folder, tokenizer.json, tokenizer.model or tokenizer.bin. `vocab_size` is only
// needed for tokenizer.bin (its count is the model's vocab size); 0 = read until the end.
Status load_tokenizer_into(const std::string& path, Metadata* meta, int64_t vocab_size = 0);
// Folder with tokenizer.model and/or tokenizer.json (+ tokenizer_config.json).
Status load_tokenizer_dir_into(const std::string& dir, Metadata* meta, bool required);
// Parsers on in-memory bytes (also used by fuzzing).
Status parse_sentencepiece_model(const std::string& bytes, const std::string& name, Metadata* meta);
Status parse_llama2c_tokenizer(const std::string& bytes, const std::string& name,
                               int64_t vocab_size, Metadata* meta);
Status parse_hf_tokenizer_json(const std::string& text, const std::string& name, Metadata* meta);

}  // namespace corral
