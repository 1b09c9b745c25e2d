// libFuzzer target: tokenizer file parsers (SentencePiece protobuf, llama2.c tokenizer.bin,
// HF tokenizer.json) on arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "format/tokenizer_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  corral::Metadata m1, m2, m3;
  (void)corral::parse_sentencepiece_model(bytes, "fuzz.model", &m1);
  (void)corral::parse_llama2c_tokenizer(bytes, "fuzz.bin", 0, &m2);
  if (size < 4096) (void)corral::parse_hf_tokenizer_json(bytes, "fuzz.json", &m3);
  return 0;
}
