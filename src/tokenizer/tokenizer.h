// Text <-> token ids. Encoding splits out special tokens, then runs SentencePiece BPE or the
// Llama 3 pre-tokenizer + byte-level BPE; both are O(n log n) in the input (heap-driven merges).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/vocab.h"

namespace corral {

struct EncodeOptions {
  bool add_bos = false;
  bool parse_special = false;  // recognise control tokens like <|eot_id|> inside the text
};


class Tokenizer {
 public:
  static Expected<std::unique_ptr<Tokenizer>> create(std::shared_ptr<Vocab> vocab);
  ~Tokenizer();
  const Vocab& vocab() const { return *vocab_; }

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& opts = {}) const;
  // Bytes of one token; control tokens give "" unless render_special.
  std::string token_bytes(int32_t id, bool render_special) const;
  // Whole-sequence decode (SentencePiece's leading dummy-prefix space is removed).
  std::string decode(const std::vector<int32_t>& ids, bool render_special = true) const;

 private:
  explicit Tokenizer(std::shared_ptr<Vocab> v) : vocab_(std::move(v)) {}
  void encode_fragment(std::string_view text, bool first, std::vector<int32_t>* out) const;
  void encode_spm(std::string_view text, std::vector<int32_t>* out) const;
  void encode_bpe_word(std::string_view word, std::vector<int32_t>* out) const;

  std::shared_ptr<Vocab> vocab_;
  std::unique_ptr<PreTokenizer> pre_;
  std::unordered_map<uint32_t, uint8_t> unicode_to_byte_;
};

// Turns ids into text as they arrive, never emitting half a UTF-8 character.
class StreamDecoder {
 public:
  // prev_token: the token before the first one fed (SentencePiece drops the leading space of
  // a piece that follows BOS, i.e. starts the text). Default: the start of the text.
  explicit StreamDecoder(const Tokenizer& tok, bool render_special = false, int32_t prev_token = -2)
      : tok_(tok), render_special_(render_special), prev_(prev_token == -2 ? tok.vocab().bos : prev_token) {}
  std::string feed(int32_t id);
  std::string flush();  // whatever is held back (an incomplete character at the very end)

 private:
  const Tokenizer& tok_;
  bool render_special_;
  int32_t prev_;
  std::string pending_;
};

// Length of the longest prefix of s made of complete UTF-8 sequences (invalid bytes count as
// complete, so they are passed on rather than held forever).
size_t utf8_complete_prefix(std::string_view s);

// Load a tokenizer from a GGUF, HF folder, tokenizer.json, tokenizer.model or tokenizer.bin.
Expected<std::unique_ptr<Tokenizer>> load_tokenizer(const std::string& path);

}  // namespace corral
