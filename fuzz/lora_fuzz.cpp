// libFuzzer target: LoRA adapters. The bytes as a GGUF adapter; and, split at the first NUL, as a
// PEFT adapter_config.json followed by its adapter_model.safetensors (permuted for 2 and 4 heads
// when it parses), then written back out as GGUF metadata would hold it.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "format/lora.h"
#include "format/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto g = corral::parse_lora_gguf(data, size, "fuzz.gguf");
  if (g.is_ok()) {
    volatile float sink = 0;
    for (auto& l : g->layers)
      for (auto& m : l)
        if (!m.a.empty()) sink = sink + m.a[0] + m.b.back();
  }
  const uint8_t* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  if (!nul) return 0;
  const std::string cfg(reinterpret_cast<const char*>(data), size_t(nul - data));
  auto st = corral::parse_safetensors(nul + 1, size - size_t(nul - data) - 1, "fuzz.safetensors");
  if (!st.is_ok()) return 0;
  for (int64_t heads : {0, 2, 4}) {
    auto p = corral::parse_peft(cfg, *st, heads, heads / 2, "fuzz");
    if (p.is_ok()) (void)p->n_params();
  }
  return 0;
}
