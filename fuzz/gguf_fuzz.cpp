// libFuzzer target: the GGUF parser on arbitrary bytes must return a value or an error,
// never crash, hang or allocate without bound.
#include <cstddef>
#include <cstdint>

#include "format/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = corral::parse_gguf(data, size, "fuzz.gguf");
  if (r.is_ok()) {
    // Touch every tensor's bytes: their ranges were validated against the buffer.
    volatile uint8_t sink = 0;
    for (auto& t : r->tensors)
      if (t.nbytes) sink = sink ^ t.data[0] ^ t.data[t.nbytes - 1];
  }
  return 0;
}
