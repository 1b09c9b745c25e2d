#include "model/model.h"

#include <cstdlib>
#include <cstring>

#include "backend/cpu/kernels.h"
#include "backend/cpu/repack.h"
#include "core/mapped_file.h"
#include "format/hf.h"
#include "format/quant.h"

namespace corral {

Expected<TensorView> bind_matrix(Model& m, const std::string& name, std::vector<int64_t> ne,
                                 bool required) {
  const ModelTensor* t = m.file.find(name);
  if (!t) {
    if (!required) return TensorView{};
    return make_error(m.file.path + ": tensor '" + name + "' is missing");
  }
  if (t->ne != ne) {
    std::string want, got;
    for (auto x : ne) want += (want.empty() ? "" : ", ") + std::to_string(x);
    for (auto x : t->ne) got += (got.empty() ? "" : ", ") + std::to_string(x);
    return make_error(m.file.path + ": tensor '" + name + "' has shape {" + got + "}, expected {" +
                      want + "}");
  }
  TensorView v = t->view();
  if (!kernel_supports(t->type)) {
    // Types without a CPU kernel are expanded once at load.
    if (!can_dequantize(t->type))
      return make_error(m.file.path + ": tensor '" + name + "': type " +
                        std::string(type_name(t->type)) + " is not supported");
    const int64_t rows = t->nelements() / ne[0];
    float* buf = reinterpret_cast<float*>(m.file.alloc(size_t(t->nelements()) * 4));
    for (int64_t r = 0; r < rows; ++r)
      dequantize_row(t->type, t->data + size_t(r) * row_bytes(t->type, ne[0]), buf + r * ne[0],
                     ne[0]);
    v.data = buf;
    v.type = DType::F32;
    m.dequantized_bytes += size_t(t->nelements()) * 4;
  }
  return v;
}

Expected<std::vector<float>> bind_vector(Model& m, const std::string& name, int64_t n) {
  const ModelTensor* t = m.file.find(name);
  if (!t) return make_error(m.file.path + ": tensor '" + name + "' is missing");
  if (t->nelements() != n || !can_dequantize(t->type))
    return make_error(m.file.path + ": tensor '" + name + "' has " +
                      std::to_string(t->nelements()) + " values of type " +
                      std::string(type_name(t->type)) + ", expected " + std::to_string(n));
  std::vector<float> v(static_cast<size_t>(n));
  dequantize_row(t->type, t->data, v.data(), n);
  return v;
}

Status bind_head(Model& m) {
  const HParams& hp = m.hp;
  CORRAL_ASSIGN_OR_RETURN(m.token_embd,
                          bind_matrix(m, "token_embd.weight", {hp.n_embd, hp.n_vocab}));
  CORRAL_ASSIGN_OR_RETURN(m.output_norm, bind_vector(m, "output_norm.weight", hp.n_embd));
  CORRAL_ASSIGN_OR_RETURN(m.output,
                          bind_matrix(m, "output.weight", {hp.n_embd, hp.n_vocab}, false));
  if (!m.output.valid()) m.output = m.token_embd;  // tied embeddings
  return Status::ok();
}

Status bind_attention(Model& m, LayerWeights& w, const std::string& b) {
  const HParams& hp = m.hp;
  const int64_t E = hp.n_embd, q_dim = hp.n_head * hp.head_dim, kv_dim = hp.n_head_kv * hp.head_dim;
  CORRAL_ASSIGN_OR_RETURN(w.attn_norm, bind_vector(m, b + "attn_norm.weight", E));
  CORRAL_ASSIGN_OR_RETURN(w.ffn_norm, bind_vector(m, b + "ffn_norm.weight", E));
  CORRAL_ASSIGN_OR_RETURN(w.wq, bind_matrix(m, b + "attn_q.weight", {E, q_dim}));
  CORRAL_ASSIGN_OR_RETURN(w.wk, bind_matrix(m, b + "attn_k.weight", {E, kv_dim}));
  CORRAL_ASSIGN_OR_RETURN(w.wv, bind_matrix(m, b + "attn_v.weight", {E, kv_dim}));
  CORRAL_ASSIGN_OR_RETURN(w.wo, bind_matrix(m, b + "attn_output.weight", {q_dim, E}));
  return Status::ok();
}

Status bind_dense_ffn(Model& m, LayerWeights& w, const std::string& b, int64_t n_ff) {
  const int64_t E = m.hp.n_embd;
  CORRAL_ASSIGN_OR_RETURN(w.ffn_gate, bind_matrix(m, b + "ffn_gate.weight", {E, n_ff}));
  CORRAL_ASSIGN_OR_RETURN(w.ffn_up, bind_matrix(m, b + "ffn_up.weight", {E, n_ff}));
  CORRAL_ASSIGN_OR_RETURN(w.ffn_down, bind_matrix(m, b + "ffn_down.weight", {n_ff, E}));
  return Status::ok();
}

Status read_common_hparams(Model& m) {
  const Metadata& md = m.file.meta;
  HParams& hp = m.hp;
  const std::string& where = m.file.path;
  hp.arch = md.arch();
  auto need = [&](const std::string& key, int64_t* out) -> Status {
    auto v = md.get_int(md.akey(key));
    if (!v || *v <= 0)
      return make_error(where + ": field " + md.akey(key) + ": missing or not positive");
    *out = *v;
    return Status::ok();
  };
  CORRAL_RETURN_IF_ERROR(need("embedding_length", &hp.n_embd));
  CORRAL_RETURN_IF_ERROR(need("block_count", &hp.n_layer));
  CORRAL_RETURN_IF_ERROR(need("attention.head_count", &hp.n_head));
  CORRAL_RETURN_IF_ERROR(need("feed_forward_length", &hp.n_ff));
  hp.n_head_kv = md.get_int(md.akey("attention.head_count_kv")).value_or(hp.n_head);
  hp.head_dim = md.get_int(md.akey("attention.key_length")).value_or(hp.n_embd / hp.n_head);
  hp.n_ctx_train = md.get_int(md.akey("context_length")).value_or(2048);
  hp.eps = float(md.get_float(md.akey("attention.layer_norm_rms_epsilon")).value_or(1e-5));
  hp.rope_theta = float(md.get_float(md.akey("rope.freq_base")).value_or(10000.0));
  hp.rope_freq_bf16 = md.get_bool(md.akey("rope.freq_bf16")).value_or(false);
  if (hp.n_layer > 4096 || hp.n_head_kv <= 0 || hp.n_head % hp.n_head_kv != 0 || hp.head_dim <= 0 ||
      hp.head_dim % 2 != 0 || hp.head_dim > 4096)
    return make_error(where + ": head counts / head_dim are inconsistent");
  const ModelTensor* emb = m.file.find("token_embd.weight");
  if (!emb || emb->ne.size() != 2)
    return make_error(where + ": tensor 'token_embd.weight' is missing or not 2-d");
  hp.n_vocab = emb->ne[1];
  // RoPE scaling: llama.cpp stores llama3 factors as rope_freqs.weight; HF-derived metadata
  // keeps the parameters, from which the same factors are computed.
  hp.rope_freq_div.assign(size_t(hp.head_dim / 2), 1.f);
  const auto rtype = md.get_str(md.akey("rope.scaling.type")).value_or("none");
  const double factor = md.get_float(md.akey("rope.scaling.factor")).value_or(1.0);
  if (const ModelTensor* rf = m.file.find("rope_freqs.weight")) {
    CORRAL_ASSIGN_OR_RETURN(hp.rope_freq_div, bind_vector(m, "rope_freqs.weight", hp.head_dim / 2));
    (void)rf;
  } else if (rtype == "llama3") {
    hp.rope_freq_div = llama3_rope_factors(
        hp.head_dim, hp.rope_theta, factor,
        md.get_float(md.akey("rope.scaling.low_freq_factor")).value_or(1.0),
        md.get_float(md.akey("rope.scaling.high_freq_factor")).value_or(4.0),
        double(md.get_int(md.akey("rope.scaling.original_context_length")).value_or(8192)));
  } else if (rtype == "linear" && factor > 0) {
    hp.rope_linear_factor = float(factor);
  }
  return Status::ok();
}

namespace {

// Regroups the weights the CPU decode kernels read faster in another layout (Q4_0, Q8_0, Q4_K). The
// copies replace the mapped pages, which are released, so resident memory stays ~ file size.
void repack_weights(Model& m, ThreadPool* pool) {
  if (std::getenv("CORRAL_NO_REPACK")) return;
  std::vector<TensorView*> todo;
  for (auto& l : m.layers)
    for (TensorView* v :
         {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down, &l.gate_exps, &l.up_exps,
          &l.down_exps, &l.gate_shexp, &l.up_shexp, &l.down_shexp})
      if (v->valid() && repack_supported(*v)) todo.push_back(v);
  // A tied head gets its own copy; the embedding keeps the plain rows.
  if (m.output.valid() && repack_supported(m.output)) todo.push_back(&m.output);
  if (todo.empty()) return;
  // One arena for all copies (64-byte aligned pieces).
  auto piece = [](const TensorView* v) { return (repacked_bytes(*v) + 63) / 64 * 64; };
  size_t total = 0;
  for (const TensorView* v : todo) total += piece(v);
  uint8_t* arena = m.file.alloc(total);
  for (TensorView* v : todo) {
    // Mapped file pages fault back in if read again, so even a tied embedding's can go (only
    // the rows a prompt looks up return); an anonymous copy (CORRAL_NO_MMAP) would read zeros.
    const bool release = !m.file.keep_alive.empty() &&
                         (v->data != m.token_embd.data || !std::getenv("CORRAL_NO_MMAP"));
    // Each slice's source pages go as soon as it is copied: peak memory ~ file size + a slice.
    repack_weight(*v, arena, pool, [&](const TensorView& part) {
      if (release) release_pages(part.data, part.nbytes());
    });
    v->data = arena;
    v->repacked = true;
    arena += piece(v);
  }
}

}  // namespace

Expected<std::unique_ptr<Model>> make_model(LoadedModel file, const Logger& log, ThreadPool* pool) {
  auto m = std::make_unique<Model>();
  m->file = std::move(file);
  const std::string arch = m->file.meta.arch();
  if (arch == "llama")
    m->arch = &arch_llama();
  else if (arch == "llama4")
    m->arch = &arch_llama4();
  else
    return make_error(m->file.path + ": field general.architecture: unsupported '" + arch +
                      "' (supported: llama, llama4)");
  CORRAL_RETURN_IF_ERROR(read_common_hparams(*m));
  CORRAL_RETURN_IF_ERROR(m->arch->bind(*m));
  repack_weights(*m, pool);
  if (m->dequantized_bytes)
    log.info("notice: " + std::to_string(m->dequantized_bytes >> 20) +
             " MiB of weights in types without a CPU kernel were dequantized to F32 at load");
  return m;
}

}  // namespace corral
