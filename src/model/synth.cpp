#include "model/synth.h"

#include <cmath>
#include <cstring>
#include <map>

#include "format/convert.h"
#include "format/gguf.h"
#include "format/hf.h"
#include "format/quant.h"
#include "format/tokenizer_files.h"

namespace corral {

namespace {

struct Shape {
  std::string arch;
  int64_t n_embd, n_layer, n_head, n_kv, head_dim, n_ff, n_ctx;
  float theta;
  bool tied;
  float rope_factor;  // llama3 scaling factor; 0 = none
  std::string tokenizer;
  // Llama 4
  int64_t n_expert = 0, n_ff_exp = 0;
};

const std::map<std::string, Shape>& shapes() {
  static const std::map<std::string, Shape> s = {
      {"llama3.2-1b", {"llama", 2048, 16, 32, 8, 64, 8192, 131072, 500000, true, 32, "llama3"}},
      {"llama3.2-3b", {"llama", 3072, 28, 24, 8, 128, 8192, 131072, 500000, true, 32, "llama3"}},
      {"llama3.1-8b", {"llama", 4096, 32, 32, 8, 128, 14336, 131072, 500000, false, 8, "llama3"}},
      {"llama2-7b", {"llama", 4096, 32, 32, 32, 128, 11008, 4096, 10000, false, 0, "llama2"}},
      // Small shapes for tests: real tokenizer, every row a multiple of 256 (all K-quants apply).
      {"tiny", {"llama", 256, 2, 4, 2, 64, 512, 4096, 500000, true, 0, "llama3"}},
      {"tiny-llama4", {"llama4", 256, 2, 4, 2, 64, 512, 4096, 500000, false, 0, "llama3", 4, 256}},
      {"llama4-scout",
       {"llama4", 5120, 48, 40, 8, 128, 16384, 262144, 500000, false, 16, "llama3", 16, 8192}},
  };
  return s;
}

// Fast deterministic normal samples (xorshift + Box-Muller), seeded per row.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  float uniform() { return float((next() >> 40) + 1) / float(1ull << 24); }
  void normal(float* out, int64_t n, float sigma) {
    for (int64_t i = 0; i < n; i += 2) {
      const float r = sigma * std::sqrt(-2.f * std::log(uniform())), a = 6.2831853f * uniform();
      out[i] = r * std::cos(a);
      if (i + 1 < n) out[i + 1] = r * std::sin(a);
    }
  }
};

}  // namespace

Status synth_model(const SynthOptions& o, Context& ctx) {
  auto it = shapes().find(o.shape);
  if (it == shapes().end()) {
    std::string names;
    for (auto& [k, v] : shapes()) names += (names.empty() ? "" : ", ") + k;
    return make_error("--shape: unknown shape '" + o.shape + "' (choose from " + names + ")");
  }
  const Shape& s = it->second;
  const int64_t n_layer = o.layers > 0 ? std::min(o.layers, s.n_layer) : s.n_layer;
  Metadata meta;
  const std::string tok =
      !o.tokenizer.empty() ? o.tokenizer
      : s.tokenizer == "llama3"
          ? std::string(CORRAL_DEFAULT_SHARED) + "/fixtures/tokenizers/llama3/tokenizer.json"
          : std::string(CORRAL_DEFAULT_SHARED) + "/fixtures/tokenizers/llama2/tokenizer.model";
  CORRAL_RETURN_IF_ERROR(load_tokenizer_into(tok, &meta));
  const int64_t n_vocab = int64_t(meta.get_arr("tokenizer.ggml.tokens")->size());
  const std::string& a = s.arch;
  meta.kv.insert(meta.kv.begin(), {"general.architecture", GgufValue::of_str(a)});
  meta.set("general.name",
           GgufValue::of_str("synth-" + o.shape +
                             (o.layers ? "-" + std::to_string(n_layer) + "l" : "")));
  if (!o.license.empty()) meta.set("general.license", GgufValue::of_str(o.license));
  if (!o.license_name.empty()) meta.set("general.license.name", GgufValue::of_str(o.license_name));
  if (!o.license_link.empty()) meta.set("general.license.link", GgufValue::of_str(o.license_link));
  meta.set("general.file_type", GgufValue::of_u32(file_type_for(o.type)));
  if (type_traits(o.type)->quantized)
    meta.set("general.quantization_version", GgufValue::of_u32(2));
  meta.set(a + ".vocab_size", GgufValue::of_u32(uint32_t(n_vocab)));
  meta.set(a + ".context_length", GgufValue::of_u32(uint32_t(s.n_ctx)));
  meta.set(a + ".embedding_length", GgufValue::of_u32(uint32_t(s.n_embd)));
  meta.set(a + ".block_count", GgufValue::of_u32(uint32_t(n_layer)));
  meta.set(a + ".feed_forward_length", GgufValue::of_u32(uint32_t(s.n_ff)));
  meta.set(a + ".attention.head_count", GgufValue::of_u32(uint32_t(s.n_head)));
  meta.set(a + ".attention.head_count_kv", GgufValue::of_u32(uint32_t(s.n_kv)));
  meta.set(a + ".attention.key_length", GgufValue::of_u32(uint32_t(s.head_dim)));
  meta.set(a + ".attention.value_length", GgufValue::of_u32(uint32_t(s.head_dim)));
  meta.set(a + ".rope.dimension_count", GgufValue::of_u32(uint32_t(s.head_dim)));
  meta.set(a + ".rope.freq_base", GgufValue::of_f32(s.theta));
  meta.set(a + ".attention.layer_norm_rms_epsilon", GgufValue::of_f32(1e-5f));
  if (a == "llama4") {
    meta.set(a + ".expert_count", GgufValue::of_u32(uint32_t(s.n_expert)));
    meta.set(a + ".expert_used_count", GgufValue::of_u32(1));
    meta.set(a + ".expert_feed_forward_length", GgufValue::of_u32(uint32_t(s.n_ff_exp)));
    meta.set(a + ".expert_shared_feed_forward_length", GgufValue::of_u32(uint32_t(s.n_ff_exp)));
    meta.set(a + ".interleave_moe_layer_step", GgufValue::of_u32(1));
  }
  struct Spec {
    std::string name;
    std::vector<int64_t> ne;
    bool norm;
  };
  std::vector<Spec> specs;
  const int64_t E = s.n_embd, q = s.n_head * s.head_dim, kv = s.n_kv * s.head_dim;
  specs.push_back({"token_embd.weight", {E, n_vocab}, false});
  if (s.rope_factor > 0) specs.push_back({"rope_freqs.weight", {s.head_dim / 2}, true});
  for (int64_t l = 0; l < n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    specs.push_back({b + "attn_norm.weight", {E}, true});
    specs.push_back({b + "attn_q.weight", {E, q}, false});
    specs.push_back({b + "attn_k.weight", {E, kv}, false});
    specs.push_back({b + "attn_v.weight", {E, kv}, false});
    specs.push_back({b + "attn_output.weight", {q, E}, false});
    specs.push_back({b + "ffn_norm.weight", {E}, true});
    if (a == "llama4") {
      specs.push_back({b + "ffn_gate_inp.weight", {E, s.n_expert}, false});
      specs.push_back({b + "ffn_gate_exps.weight", {E, s.n_ff_exp, s.n_expert}, false});
      specs.push_back({b + "ffn_up_exps.weight", {E, s.n_ff_exp, s.n_expert}, false});
      specs.push_back({b + "ffn_down_exps.weight", {s.n_ff_exp, E, s.n_expert}, false});
      specs.push_back({b + "ffn_gate_shexp.weight", {E, s.n_ff_exp}, false});
      specs.push_back({b + "ffn_up_shexp.weight", {E, s.n_ff_exp}, false});
      specs.push_back({b + "ffn_down_shexp.weight", {s.n_ff_exp, E}, false});
    } else {
      specs.push_back({b + "ffn_gate.weight", {E, s.n_ff}, false});
      specs.push_back({b + "ffn_up.weight", {E, s.n_ff}, false});
      specs.push_back({b + "ffn_down.weight", {s.n_ff, E}, false});
    }
  }
  specs.push_back({"output_norm.weight", {E}, true});
  if (!s.tied) specs.push_back({"output.weight", {E, n_vocab}, false});

  std::vector<float> rope_div;
  if (s.rope_factor > 0)
    rope_div = llama3_rope_factors(s.head_dim, s.theta, s.rope_factor, 1, 4, 8192);
  std::vector<GgufWriteTensor> wts;
  for (size_t k = 0; k < specs.size(); ++k) {
    const Spec sp = specs[k];
    ModelTensor probe;
    probe.name = sp.name;
    probe.ne = sp.ne;
    const DType t = sp.norm ? DType::F32 : choose_tensor_type(probe, o.type, nullptr);
    const uint64_t seed = o.seed * 1000003ull + k;
    wts.push_back({sp.name, t, sp.ne, [sp, t, seed, &ctx, &rope_div](uint8_t* dst) -> Status {
                     const int64_t n0 = sp.ne[0];
                     int64_t rows = 1;
                     for (size_t d = 1; d < sp.ne.size(); ++d) rows *= sp.ne[d];
                     if (sp.name == "rope_freqs.weight") {
                       std::memcpy(dst, rope_div.data(), rope_div.size() * 4);
                       return Status::ok();
                     }
                     if (sp.norm) {
                       for (int64_t i = 0; i < n0 * rows; ++i)
                         reinterpret_cast<float*>(dst)[i] = 1.f;
                       return Status::ok();
                     }
                     const size_t rb = row_bytes(t, n0);
                     const int64_t chunk = 64;
                     ctx.pool->parallel_for((rows + chunk - 1) / chunk, [&](int64_t c) {
                       std::vector<float> row(static_cast<size_t>(n0));
                       for (int64_t r = c * chunk; r < std::min(rows, (c + 1) * chunk); ++r) {
                         Rng rng(seed * 0x100000001B3ull + uint64_t(r));
                         rng.normal(row.data(), n0, 0.02f);
                         quantize_row(t, row.data(), dst + size_t(r) * rb, n0);
                       }
                     });
                     return Status::ok();
                   }});
  }
  GgufWriteOptions wo;
  wo.log = &ctx.log;
  return write_gguf(o.out, meta, wts, wo);
}

}  // namespace corral
