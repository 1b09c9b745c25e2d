// The tokenizer's data, built from GGUF-style metadata (tokenizer.ggml.*), whichever file it
// came from. Two kinds: SentencePiece BPE (score-driven, byte fallback) for Llama 1/2, and
// byte-level BPE (rank-driven merges, Llama 3 pre-tokenizer) for Llama 3/4.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "format/metadata.h"

namespace corral {

enum class VocabKind { kSpm, kBpe };

// string -> id map that also takes string_view keys without allocating (hot in encoding).
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct Vocab {
  VocabKind kind = VocabKind::kSpm;
  std::string pre;  // byte-level pre-tokenizer name: "llama-bpe", "llama4"
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  TokenMap token_to_id;
  // Byte-level BPE: (left id, right id) -> (rank, merged id).
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;
  bool ignore_merges = false;
  int32_t bos = -1, eos = -1, eot = -1, unk = -1, pad = -1;
  bool add_bos = true;
  bool add_eos = false;  // EOS appended to encoded text (last-token embedding models ask for it)
  bool add_space_prefix = true;
  // SentencePiece: no token holds U+2581 after another character, so text can be encoded word
  // by word (split before each U+2581 that follows a non-U+2581) with the same result.
  bool spm_word_split = false;
  std::string chat_template;  // tokenizer.chat_template (Jinja), empty when the model has none
  std::string chat_template_source;  // where it came from (corral.chat_template.source)
  std::vector<std::pair<std::string, std::string>> named_chat_templates;  // .NAME -> text
  // Tokens that are split out of text before the model's algorithm runs, longest first.
  std::vector<int32_t> special_ids;
  int32_t byte_ids[256];  // SPM: <0xNN> ids; BPE: id of each byte's unicode character

  int32_t n_tokens() const { return int32_t(tokens.size()); }
  bool is_control(int32_t id) const;
  // Ids that end generation (EOS, EOT and friends).
  std::vector<int32_t> stop_ids() const;
};

Expected<std::shared_ptr<Vocab>> vocab_from_metadata(const Metadata& meta, const std::string& where);

// GPT-2 byte <-> unicode mapping used by byte-level BPE.
const std::string& byte_to_unicode(uint8_t b);

}  // namespace corral
