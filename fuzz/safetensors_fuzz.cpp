// libFuzzer target: safetensors headers (and the llama2.c reader on the same bytes).
#include <cstddef>
#include <cstdint>

#include "format/llama2c.h"
#include "format/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = corral::parse_safetensors(data, size, "fuzz.safetensors");
  if (r.is_ok()) {
    volatile uint8_t sink = 0;
    for (auto& t : *r)
      if (t.nbytes) sink = sink ^ t.data[0] ^ t.data[t.nbytes - 1];
  }
  auto l = corral::parse_llama2c(data, size, "fuzz.bin");
  (void)l;
  return 0;
}
