// The byte-level BPE pre-tokenizer: splits text into words with the model's Unicode regex
// (PCRE2 with JIT, UCP so \p{L}/\p{N}/\s follow Unicode categories as the reference does).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace corral {

class PreTokenizer {
 public:
  // name: "llama-bpe" (Llama 3) or "llama4".
  static Expected<std::unique_ptr<PreTokenizer>> create(const std::string& name);
  ~PreTokenizer();
  // Calls fn(piece) for each piece in order; bytes no pattern matches (invalid UTF-8) become
  // pieces of their own, so nothing is dropped.
  template <class F>
  void split(std::string_view text, F&& fn) const {
    std::vector<std::pair<size_t, size_t>> spans;
    split_spans(text, &spans);
    for (auto [b, e] : spans) fn(text.substr(b, e - b));
  }
  void split_spans(std::string_view text, std::vector<std::pair<size_t, size_t>>* spans) const;

 private:
  PreTokenizer() = default;
  void* code_ = nullptr;        // pcre2_code*
  void* match_data_ = nullptr;  // pcre2_match_data* (one per tokenizer; encode is not reentrant)
};

}  // namespace corral
