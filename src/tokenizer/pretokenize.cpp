#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretokenize.h"

#include <pcre2.h>

namespace corral {

namespace {
// Llama 3 (tiktoken cl100k-style) pattern, as in the model's tokenizer.json.
const char* kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Llama 4 (o200k-style) pattern.
const char* kLlama4 =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}  // namespace

Expected<std::unique_ptr<PreTokenizer>> PreTokenizer::create(const std::string& name) {
  const char* pat = name == "llama4" ? kLlama4 : kLlama3;
  int err;
  PCRE2_SIZE off;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat), PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off,
                                   nullptr);
  if (!code) return make_error("pre-tokenizer '" + name + "': regex failed to compile");
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is absent
  std::unique_ptr<PreTokenizer> p(new PreTokenizer());
  p->code_ = code;
  p->match_data_ = pcre2_match_data_create_from_pattern(code, nullptr);
  return p;
}

PreTokenizer::~PreTokenizer() {
  if (match_data_) pcre2_match_data_free(static_cast<pcre2_match_data*>(match_data_));
  if (code_) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

void PreTokenizer::split_spans(std::string_view text,
                               std::vector<std::pair<size_t, size_t>>* spans) const {
  auto* code = static_cast<pcre2_code*>(code_);
  auto* md = static_cast<pcre2_match_data*>(match_data_);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    const int rc = pcre2_match(code, subject, text.size(), pos, 0, md, nullptr);
    if (rc < 0) {
      spans->push_back({pos, text.size()});
      break;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t b = ov[0], e = ov[1];
    if (b > pos) spans->push_back({pos, b});  // unmatched (invalid UTF-8) bytes
    if (e == b) {  // empty match: step one byte to guarantee progress
      e = b + 1;
    }
    spans->push_back({b, e});
    pos = e;
  }
}

}  // namespace corral
