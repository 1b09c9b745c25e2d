#include "format/llama2c.h"

#include <cstring>

#include "core/checked.h"
#include "core/mapped_file.h"

namespace corral {

namespace {
std::string shape_text(const std::vector<int64_t>& ne) {
  std::string s;
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? " x " : "") + std::to_string(ne[i]);
  return s;
}
}  // namespace

Expected<LoadedModel> parse_llama2c(const uint8_t* data, size_t size, const std::string& name) {
  if (size < 28) return make_error(name + ": offset 0: truncated llama2.c header (need 28 bytes)");
  int32_t h[7];
  std::memcpy(h, data, 28);
  const int64_t dim = h[0], hidden = h[1], n_layer = h[2], n_head = h[3], n_kv = h[4],
                seq_len = h[6];
  const bool shared = h[5] > 0;
  const int64_t vocab = h[5] < 0 ? -int64_t(h[5]) : h[5];
  const char* fields[7] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                           "n_kv_heads", "vocab_size", "seq_len"};
  for (int k = 0; k < 7; ++k)
    if (h[k] == 0 || (k != 5 && h[k] < 0) || (h[k] > (1 << 24) || h[k] < -(1 << 24)))
      return make_error(name + ": offset " + std::to_string(4 * k) + ": field " + fields[k] +
                        " = " + std::to_string(h[k]) +
                        " is out of range (is this a llama2.c .bin?)");
  if (dim % n_head != 0 || n_head % n_kv != 0 || (dim / n_head) % 2 != 0)
    return make_error(name + ": fields dim / n_heads / n_kv_heads are inconsistent");
  const int64_t hs = dim / n_head, kv_dim = n_kv * hs;
  LoadedModel m;
  m.path = name;
  m.format = "llama2c";
  size_t pos = 28;
  Status bad;
  auto take = [&](const std::string& tname, const std::vector<int64_t>& ne) -> const uint8_t* {
    if (!bad.is_ok()) return nullptr;
    // Three header fields of up to 2^24 each multiply to 2^72: checked, never wrapped.
    const auto nb = checked_tensor_bytes(DType::F32, ne);
    if (!nb) {
      bad =
          make_error(name + ": offset " + std::to_string(pos) + ": tensor '" + tname + "': size " +
                     shape_text(ne) + " x 4 bytes overflows 64 bits (header fields " +
                     "dim/hidden_dim/n_layers/vocab_size/seq_len)");
      return nullptr;
    }
    if (*nb > size - pos) {
      bad = make_error(name + ": offset " + std::to_string(pos) + ": tensor '" + tname + "' (" +
                       std::to_string(*nb) + " bytes) runs past the end of the file (" +
                       std::to_string(size) + " bytes)");
      return nullptr;
    }
    const uint8_t* p = data + pos;
    pos += size_t(*nb);
    return p;
  };
  auto add = [&](const std::string& tname, std::vector<int64_t> ne, const uint8_t* p) {
    ModelTensor t;
    t.name = tname;
    t.ne = std::move(ne);
    t.data = p;
    t.nbytes = size_t(t.nelements()) * 4;
    m.tensors.push_back(std::move(t));
  };
  // Each group holds all layers back to back: [n_layer][out][in].
  const uint8_t* emb = take("token_embd", {dim, vocab});
  const uint8_t* att_norm = take("attn_norm", {dim, n_layer});
  const uint8_t* wq = take("attn_q", {dim, dim, n_layer});
  const uint8_t* wk = take("attn_k", {dim, kv_dim, n_layer});
  const uint8_t* wv = take("attn_v", {dim, kv_dim, n_layer});
  const uint8_t* wo = take("attn_output", {dim, dim, n_layer});
  const uint8_t* ffn_norm = take("ffn_norm", {dim, n_layer});
  const uint8_t* w1 = take("ffn_gate", {dim, hidden, n_layer});
  const uint8_t* w2 = take("ffn_down", {hidden, dim, n_layer});
  const uint8_t* w3 = take("ffn_up", {dim, hidden, n_layer});
  const uint8_t* out_norm = take("output_norm", {dim});
  take("freq_cis", {hs, seq_len});  // real and imag halves: unused, RoPE is computed
  const uint8_t* wcls = shared ? emb : take("output", {dim, vocab});
  CORRAL_RETURN_IF_ERROR(bad);
  add("token_embd.weight", {dim, vocab}, emb);
  for (int64_t l = 0; l < n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    const size_t L = size_t(l);
    add(b + "attn_norm.weight", {dim}, att_norm + L * size_t(dim) * 4);
    add(b + "attn_q.weight", {dim, dim}, wq + L * size_t(dim * dim) * 4);
    add(b + "attn_k.weight", {dim, kv_dim}, wk + L * size_t(dim * kv_dim) * 4);
    add(b + "attn_v.weight", {dim, kv_dim}, wv + L * size_t(dim * kv_dim) * 4);
    add(b + "attn_output.weight", {dim, dim}, wo + L * size_t(dim * dim) * 4);
    add(b + "ffn_norm.weight", {dim}, ffn_norm + L * size_t(dim) * 4);
    add(b + "ffn_gate.weight", {dim, hidden}, w1 + L * size_t(dim * hidden) * 4);
    add(b + "ffn_down.weight", {hidden, dim}, w2 + L * size_t(dim * hidden) * 4);
    add(b + "ffn_up.weight", {dim, hidden}, w3 + L * size_t(dim * hidden) * 4);
  }
  add("output_norm.weight", {dim}, out_norm);
  if (!shared) add("output.weight", {dim, vocab}, wcls);

  auto& md = m.meta;
  std::string base = name.substr(name.find_last_of('/') + 1);
  if (base.size() > 4 && base.compare(base.size() - 4, 4, ".bin") == 0)
    base.resize(base.size() - 4);
  md.set("general.architecture", GgufValue::of_str("llama"));
  md.set("general.name", GgufValue::of_str(base));
  md.set("general.file_type", GgufValue::of_u32(0));
  md.set("llama.vocab_size", GgufValue::of_u32(uint32_t(vocab)));
  md.set("llama.context_length", GgufValue::of_u32(uint32_t(seq_len)));
  md.set("llama.embedding_length", GgufValue::of_u32(uint32_t(dim)));
  md.set("llama.feed_forward_length", GgufValue::of_u32(uint32_t(hidden)));
  md.set("llama.block_count", GgufValue::of_u32(uint32_t(n_layer)));
  md.set("llama.attention.head_count", GgufValue::of_u32(uint32_t(n_head)));
  md.set("llama.attention.head_count_kv", GgufValue::of_u32(uint32_t(n_kv)));
  md.set("llama.rope.dimension_count", GgufValue::of_u32(uint32_t(hs)));
  md.set("llama.rope.freq_base", GgufValue::of_f32(10000.f));
  md.set("llama.attention.layer_norm_rms_epsilon", GgufValue::of_f32(1e-5f));
  return m;
}

Expected<LoadedModel> load_llama2c(const std::string& path) {
  CORRAL_ASSIGN_OR_RETURN(auto mf, MappedFile::open(path));
  CORRAL_ASSIGN_OR_RETURN(LoadedModel m, parse_llama2c(mf->data(), mf->size(), path));
  m.keep_alive.push_back(mf);
  return m;
}

}  // namespace corral
