#include "format/hf.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/mapped_file.h"
#include "format/safetensors.h"
#include "format/tokenizer_files.h"

namespace corral {

using json = nlohmann::json;

void permute_qk_rows(const uint8_t* src, uint8_t* dst, int64_t n_rows, int64_t n_head,
                     size_t rb, bool to_gguf) {
  const int64_t hd = n_rows / n_head, half = hd / 2;
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t s = 0; s < 2; ++s)
      for (int64_t i = 0; i < half; ++i) {
        const int64_t hf_row = h * hd + s * half + i, gg_row = h * hd + 2 * i + s;
        const int64_t from = to_gguf ? hf_row : gg_row, to = to_gguf ? gg_row : hf_row;
        std::memcpy(dst + size_t(to) * rb, src + size_t(from) * rb, rb);
      }
}

std::vector<float> llama3_rope_factors(int64_t head_dim, double theta, double factor,
                                       double low_ff, double high_ff, double orig_ctx) {
  std::vector<float> out(static_cast<size_t>(head_dim / 2));
  const double low_wavelen = orig_ctx / low_ff, high_wavelen = orig_ctx / high_ff;
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const double freq = std::pow(theta, -2.0 * double(i) / double(head_dim));
    const double wavelen = 2 * M_PI / freq;
    double div;
    if (wavelen < high_wavelen) div = 1;
    else if (wavelen > low_wavelen) div = factor;
    else {
      const double smooth = (orig_ctx / wavelen - low_ff) / (high_ff - low_ff);
      div = 1.0 / ((1 - smooth) / factor + smooth);
    }
    out[size_t(i)] = float(div);
  }
  return out;
}

namespace {

struct HfParams {
  std::string arch;  // llama / llama4
  int64_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0,
          n_vocab = 0, n_ctx = 0;
  bool tied = false;
};

Expected<int64_t> need_int(const json& c, const char* key, const std::string& file) {
  if (!c.contains(key) || !c[key].is_number_integer() || c[key].get<int64_t>() <= 0)
    return make_error(file + ": field " + key + ": missing or not a positive integer");
  return c[key].get<int64_t>();
}

// config.json -> llama.cpp metadata keys.
Expected<HfParams> read_config(const std::string& file, Metadata* meta) {
  CORRAL_ASSIGN_OR_RETURN(std::string text, read_text_file(file));
  json root = json::parse(text, nullptr, false);
  if (root.is_discarded() || !root.is_object()) return make_error(file + ": not valid JSON");
  std::string arch_name;
  if (root.contains("architectures") && root["architectures"].is_array() &&
      !root["architectures"].empty() && root["architectures"][0].is_string())
    arch_name = root["architectures"][0];
  json c = root;
  if (root.contains("text_config") && root["text_config"].is_object()) c = root["text_config"];
  const std::string model_type = c.value("model_type", root.value("model_type", std::string()));
  HfParams p;
  // LlamaModel: the bare decoder (no head), as embedding models are saved.
  if (arch_name == "LlamaForCausalLM" || arch_name == "LlamaModel" || model_type == "llama")
    p.arch = "llama";
  else if (arch_name.rfind("Llama4", 0) == 0 || model_type.rfind("llama4", 0) == 0) p.arch = "llama4";
  else
    return make_error(file + ": field architectures: unsupported '" + arch_name +
                      "' (supported: LlamaForCausalLM, LlamaModel, Llama4ForCausalLM, "
                      "Llama4ForConditionalGeneration)");
  CORRAL_ASSIGN_OR_RETURN(p.n_embd, need_int(c, "hidden_size", file));
  CORRAL_ASSIGN_OR_RETURN(p.n_layer, need_int(c, "num_hidden_layers", file));
  CORRAL_ASSIGN_OR_RETURN(p.n_head, need_int(c, "num_attention_heads", file));
  CORRAL_ASSIGN_OR_RETURN(p.n_vocab, need_int(c, "vocab_size", file));
  CORRAL_ASSIGN_OR_RETURN(p.n_ff, need_int(c, "intermediate_size", file));
  p.n_head_kv = c.value("num_key_value_heads", p.n_head);
  p.head_dim = c.contains("head_dim") && c["head_dim"].is_number_integer()
                   ? c["head_dim"].get<int64_t>()
                   : p.n_embd / p.n_head;
  if (p.n_head_kv <= 0 || p.n_head % p.n_head_kv != 0 || p.head_dim <= 0 || p.head_dim % 2)
    return make_error(file + ": fields num_attention_heads / num_key_value_heads / head_dim "
                      "are inconsistent");
  p.n_ctx = c.value("max_position_embeddings", int64_t(4096));
  p.tied = c.value("tie_word_embeddings", root.value("tie_word_embeddings", false));

  const std::string& a = p.arch;
  meta->set("general.architecture", GgufValue::of_str(a));
  // Bidirectional embedding models (Llama-Nemotron-Embed, LLM2Vec) say so here.
  if (c.contains("is_causal") && c["is_causal"].is_boolean())
    meta->set(a + ".attention.causal", GgufValue::of_bool(c["is_causal"]));
  meta->set(a + ".vocab_size", GgufValue::of_u32(uint32_t(p.n_vocab)));
  meta->set(a + ".context_length", GgufValue::of_u32(uint32_t(p.n_ctx)));
  meta->set(a + ".embedding_length", GgufValue::of_u32(uint32_t(p.n_embd)));
  meta->set(a + ".block_count", GgufValue::of_u32(uint32_t(p.n_layer)));
  meta->set(a + ".attention.head_count", GgufValue::of_u32(uint32_t(p.n_head)));
  meta->set(a + ".attention.head_count_kv", GgufValue::of_u32(uint32_t(p.n_head_kv)));
  meta->set(a + ".attention.key_length", GgufValue::of_u32(uint32_t(p.head_dim)));
  meta->set(a + ".attention.value_length", GgufValue::of_u32(uint32_t(p.head_dim)));
  meta->set(a + ".rope.dimension_count", GgufValue::of_u32(uint32_t(p.head_dim)));
  meta->set(a + ".attention.layer_norm_rms_epsilon",
            GgufValue::of_f32(c.value("rms_norm_eps", 1e-5f)));
  // Rope: transformers 5 nests it in rope_parameters, older files use rope_theta/rope_scaling.
  json rp = c.contains("rope_parameters") && c["rope_parameters"].is_object() ? c["rope_parameters"]
            : c.contains("rope_scaling") && c["rope_scaling"].is_object() ? c["rope_scaling"]
                                                                           : json::object();
  const double theta = rp.value("rope_theta", c.value("rope_theta", 10000.0));
  meta->set(a + ".rope.freq_base", GgufValue::of_f32(float(theta)));
  const std::string dtype = c.value("dtype", c.value("torch_dtype", root.value("dtype", root.value("torch_dtype", std::string()))));
  if (dtype == "bfloat16") meta->set(a + ".rope.freq_bf16", GgufValue::of_bool(true));
  std::string rtype = rp.value("rope_type", rp.value("type", std::string("default")));
  if (rtype == "llama3" || rtype == "linear") {
    const double factor = rp.value("factor", 1.0);
    meta->set(a + ".rope.scaling.type", GgufValue::of_str(rtype));
    meta->set(a + ".rope.scaling.factor", GgufValue::of_f32(float(factor)));
    if (rtype == "llama3") {
      meta->set(a + ".rope.scaling.original_context_length",
                GgufValue::of_u32(uint32_t(rp.value("original_max_position_embeddings", 8192))));
      meta->set(a + ".rope.scaling.low_freq_factor",
                GgufValue::of_f32(float(rp.value("low_freq_factor", 1.0))));
      meta->set(a + ".rope.scaling.high_freq_factor",
                GgufValue::of_f32(float(rp.value("high_freq_factor", 4.0))));
    }
  } else if (rtype != "default") {
    return make_error(file + ": field rope_type: unsupported '" + rtype +
                      "' (supported: default, linear, llama3)");
  }
  if (a == "llama") {
    meta->set(a + ".feed_forward_length", GgufValue::of_u32(uint32_t(p.n_ff)));
  } else {
    const int64_t n_ff_mlp = c.value("intermediate_size_mlp", p.n_ff);
    meta->set(a + ".feed_forward_length", GgufValue::of_u32(uint32_t(n_ff_mlp)));
    meta->set(a + ".expert_feed_forward_length", GgufValue::of_u32(uint32_t(p.n_ff)));
    meta->set(a + ".expert_count", GgufValue::of_u32(uint32_t(c.value("num_local_experts", 1))));
    meta->set(a + ".expert_used_count",
              GgufValue::of_u32(uint32_t(c.value("num_experts_per_tok", 1))));
    const int64_t step = c.value("interleave_moe_layer_step", int64_t(1));
    meta->set(a + ".interleave_moe_layer_step", GgufValue::of_u32(uint32_t(step)));
    // Per-layer flags, explicit so every variant of the config maps to one representation.
    std::vector<int32_t> moe(size_t(p.n_layer), 0), rope(size_t(p.n_layer), 1),
        chunked(size_t(p.n_layer), 0);
    if (c.contains("moe_layers") && c["moe_layers"].is_array()) {
      for (auto& l : c["moe_layers"])
        if (l.is_number_integer() && l.get<int64_t>() >= 0 && l.get<int64_t>() < p.n_layer)
          moe[size_t(l.get<int64_t>())] = 1;
    } else {
      for (int64_t l = step - 1; step > 0 && l < p.n_layer; l += step) moe[size_t(l)] = 1;
    }
    if (c.contains("no_rope_layers") && c["no_rope_layers"].is_array() &&
        int64_t(c["no_rope_layers"].size()) == p.n_layer) {
      for (size_t l = 0; l < rope.size(); ++l) rope[l] = c["no_rope_layers"][l].get<int>() ? 1 : 0;
    } else {
      const int64_t iv = c.value("no_rope_layer_interval", int64_t(4));
      for (int64_t l = 0; l < p.n_layer; ++l) rope[size_t(l)] = (l + 1) % iv != 0;
    }
    const int64_t chunk = c.contains("attention_chunk_size") && c["attention_chunk_size"].is_number()
                              ? c["attention_chunk_size"].get<int64_t>()
                              : 0;
    if (c.contains("layer_types") && c["layer_types"].is_array() &&
        int64_t(c["layer_types"].size()) == p.n_layer) {
      for (size_t l = 0; l < chunked.size(); ++l)
        chunked[l] = c["layer_types"][l] == "chunked_attention" && chunk > 0;
    } else {
      for (size_t l = 0; l < chunked.size(); ++l) chunked[l] = rope[l] && chunk > 0;
    }
    meta->set(a + ".moe_layers", GgufValue::of_i32s(moe));
    meta->set(a + ".rope_layers", GgufValue::of_i32s(rope));
    meta->set(a + ".chunked_layers", GgufValue::of_i32s(chunked));
    meta->set(a + ".attention.chunk_size", GgufValue::of_u32(uint32_t(chunk)));
    meta->set(a + ".use_qk_norm", GgufValue::of_bool(c.value("use_qk_norm", false)));
    meta->set(a + ".attention.temperature_tuning",
              GgufValue::of_bool(c.value("attn_temperature_tuning", false)));
    meta->set(a + ".attention.temperature_floor_scale",
              GgufValue::of_f32(float(c.value("floor_scale", 8192.0))));
    meta->set(a + ".attention.temperature_scale",
              GgufValue::of_f32(float(c.value("attn_scale", 0.1))));
  }
  return p;
}

// HF tensor name -> llama.cpp name ("" when the tensor is not part of the text model).
std::string map_name(std::string n) {
  if (n.rfind("language_model.", 0) == 0) n = n.substr(15);
  // A bare LlamaModel's tensors have no "model." prefix.
  if (n.rfind("layers.", 0) == 0 || n == "embed_tokens.weight" || n == "norm.weight")
    n = "model." + n;
  if (n.rfind("vision_model.", 0) == 0 || n.rfind("multi_modal_projector.", 0) == 0) return "";
  static const std::map<std::string, std::string> top = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"}};
  if (auto it = top.find(n); it != top.end()) return it->second;
  static const std::regex layer_re(R"(model\.layers\.(\d+)\.(.+))");
  std::smatch m;
  if (!std::regex_match(n, m, layer_re)) return "";
  static const std::map<std::string, std::string> sub = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
      {"feed_forward.gate_proj.weight", "ffn_gate.weight"},
      {"feed_forward.up_proj.weight", "ffn_up.weight"},
      {"feed_forward.down_proj.weight", "ffn_down.weight"},
      {"feed_forward.router.weight", "ffn_gate_inp.weight"},
      {"feed_forward.experts.gate_up_proj", "ffn_gate_up_exps.weight"},  // split below
      {"feed_forward.experts.down_proj", "ffn_down_exps.weight"},
      {"feed_forward.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight"},
      {"feed_forward.shared_expert.up_proj.weight", "ffn_up_shexp.weight"},
      {"feed_forward.shared_expert.down_proj.weight", "ffn_down_shexp.weight"}};
  auto it = sub.find(m[2].str());
  if (it == sub.end()) return "";
  return "blk." + m[1].str() + "." + it->second;
}

size_t elem_size(DType t) { return t == DType::F32 ? 4 : 2; }

// A sentence-transformers folder: modules.json lists the modules (Transformer, Pooling,
// Normalize); the Pooling module's config.json names its mode. Sets {arch}.pooling_type and
// corral.embedding.normalize; a folder without modules.json is left as it is.
Status read_sentence_transformers(const std::string& dir, const std::string& arch, Metadata* meta) {
  const std::string mfile = dir + "/modules.json";
  if (!file_exists(mfile)) return Status::ok();
  CORRAL_ASSIGN_OR_RETURN(std::string text, read_text_file(mfile));
  json mods = json::parse(text, nullptr, false);
  if (mods.is_discarded() || !mods.is_array())
    return make_error(mfile + ": not a JSON array of modules");
  bool normalize = false;
  for (size_t i = 0; i < mods.size(); ++i) {
    const json& m = mods[i];
    const std::string where = mfile + ": [" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("type") || !m["type"].is_string())
      return make_error(where + ": a module needs a string 'type'");
    const std::string type = m["type"];
    const std::string path = m.contains("path") && m["path"].is_string() ? m["path"].get<std::string>() : "";
    if (path.find("..") != std::string::npos)
      return make_error(where + ": path '" + path + "' leaves the folder");
    if (type.find("Normalize") != std::string::npos) normalize = true;
    if (type.find("Pooling") == std::string::npos) continue;
    const std::string pfile = dir + "/" + path + "/config.json";
    CORRAL_ASSIGN_OR_RETURN(std::string ptext, read_text_file(pfile));
    json pc = json::parse(ptext, nullptr, false);
    if (pc.is_discarded() || !pc.is_object()) return make_error(pfile + ": not valid JSON");
    auto on = [&](const char* k) { return pc.contains(k) && pc[k].is_boolean() && pc[k].get<bool>(); };
    int chosen = 0;
    int32_t type_id = 0;
    for (auto [k, id] : {std::pair<const char*, int32_t>{"pooling_mode_mean_tokens", 1},
                         {"pooling_mode_cls_token", 2},
                         {"pooling_mode_lasttoken", 3}})
      if (on(k)) ++chosen, type_id = id;
    for (const char* k : {"pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                          "pooling_mode_weightedmean_tokens"})
      if (on(k))
        return make_error(pfile + ": field " + k + ": this pooling is not supported (mean, cls, "
                          "lasttoken are)");
    if (chosen != 1)
      return make_error(pfile + ": exactly one of pooling_mode_mean_tokens, "
                        "pooling_mode_cls_token, pooling_mode_lasttoken must be true");
    meta->set(arch + ".pooling_type", GgufValue::of_u32(uint32_t(type_id)));
  }
  meta->set("corral.embedding.normalize", GgufValue::of_bool(normalize));
  return Status::ok();
}

}  // namespace

std::string hf_cache_snapshot(const std::string& repo_id, std::vector<std::string>* searched) {
  const size_t slash = repo_id.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == repo_id.size() ||
      repo_id.find('/', slash + 1) != std::string::npos || repo_id.find("..") != std::string::npos)
    return "";
  std::vector<std::string> roots;
  if (const char* c = std::getenv("HF_HUB_CACHE"); c && *c) roots.push_back(c);
  if (const char* h = std::getenv("HF_HOME"); h && *h) roots.push_back(std::string(h) + "/hub");
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) roots.push_back(std::string(x) + "/huggingface/hub");
  if (const char* home = std::getenv("HOME"); home && *home) roots.push_back(std::string(home) + "/.cache/huggingface/hub");
  const std::string folder = "models--" + repo_id.substr(0, slash) + "--" + repo_id.substr(slash + 1);
  namespace fs = std::filesystem;
  for (const std::string& root : roots) {
    const fs::path repo = fs::path(root) / folder;
    if (searched) searched->push_back(repo.string());
    std::error_code ec;
    // The revision refs/main names, else the most recently written snapshot with a config.
    std::ifstream ref(repo / "refs" / "main");
    std::string rev;
    if (ref >> rev && fs::exists(repo / "snapshots" / rev / "config.json", ec))
      return (repo / "snapshots" / rev).string();
    fs::path best;
    fs::file_time_type best_t{};
    for (auto it = fs::directory_iterator(repo / "snapshots", ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
      const fs::path cfg = it->path() / "config.json";
      if (!fs::exists(cfg, ec)) continue;
      const auto t = fs::last_write_time(cfg, ec);
      if (best.empty() || t > best_t) best = it->path(), best_t = t;
    }
    if (!best.empty()) return best.string();
  }
  return "";
}

Expected<Metadata> hf_config_metadata(const std::string& config_json) {
  Metadata meta;
  auto p = read_config(config_json, &meta);
  if (!p.is_ok()) return p.error();
  return meta;
}

Expected<LoadedModel> load_hf(const std::string& dir) {
  LoadedModel m;
  m.path = dir;
  m.format = "hf";
  const std::string cfg = dir + "/config.json";
  if (!file_exists(cfg)) return make_error(dir + ": no config.json (not a Hugging Face folder)");
  CORRAL_ASSIGN_OR_RETURN(HfParams p, read_config(cfg, &m.meta));
  std::string base = dir;
  while (!base.empty() && base.back() == '/') base.pop_back();
  m.meta.set("general.name", GgufValue::of_str(base.substr(base.find_last_of('/') + 1)));
  m.meta.set("general.file_type", GgufValue::of_u32(0));
  CORRAL_ASSIGN_OR_RETURN(SafetensorsFile st, load_safetensors(dir));
  for (auto& mp : st.maps) m.keep_alive.push_back(mp);

  for (auto& t : st.tensors) {
    const std::string name = map_name(t.name);
    if (name.empty()) continue;
    ModelTensor mt;
    mt.name = name;
    mt.type = t.type;
    mt.ne.assign(t.shape.rbegin(), t.shape.rend());
    mt.data = t.data;
    mt.nbytes = t.nbytes;
    // Safetensors offsets need not be aligned to the element size (a hostile file): reading
    // such data through typed pointers would be undefined, so it is copied to an aligned buffer.
    if (reinterpret_cast<uintptr_t>(mt.data) % elem_size(mt.type) != 0) {
      uint8_t* buf = m.alloc(mt.nbytes);
      std::memcpy(buf, mt.data, mt.nbytes);
      mt.data = buf;
    }
    if (mt.ne.empty()) return make_error(dir + ": tensor '" + t.name + "' is a scalar");
    const bool is_q = name.find(".attn_q.weight") != std::string::npos;
    const bool is_k = name.find(".attn_k.weight") != std::string::npos;
    if (p.arch == "llama" && (is_q || is_k) && mt.ne.size() == 2) {
      const int64_t heads = is_q ? p.n_head : p.n_head_kv;
      if (mt.ne[1] != heads * p.head_dim)
        return make_error(dir + ": tensor '" + t.name + "': " + std::to_string(mt.ne[1]) +
                          " rows, expected heads * head_dim = " + std::to_string(heads * p.head_dim));
      uint8_t* buf = m.alloc(mt.nbytes);
      permute_qk_rows(mt.data, buf, mt.ne[1], heads, size_t(mt.ne[0]) * elem_size(mt.type), true);
      mt.data = buf;
    }
    if (name.find("_exps.weight") != std::string::npos) {
      // HF experts are [E, in, out] used as x @ W; ggml wants per expert [out rows][in cols].
      if (t.shape.size() != 3) return make_error(dir + ": tensor '" + t.name + "' must be 3-d");
      const int64_t E = t.shape[0], in = t.shape[1], out = t.shape[2];
      const size_t es = elem_size(t.type);
      auto transpose = [&](int64_t col0, int64_t ncol, const std::string& nm) {
        ModelTensor x;
        x.name = nm;
        x.type = t.type;
        x.ne = {in, ncol, E};
        x.nbytes = size_t(E * in * ncol) * es;
        uint8_t* buf = m.alloc(x.nbytes);
        for (int64_t e = 0; e < E; ++e)
          for (int64_t i = 0; i < in; ++i)
            for (int64_t o = 0; o < ncol; ++o)
              std::memcpy(buf + size_t((e * ncol + o) * in + i) * es,
                          t.data + size_t((e * in + i) * out + col0 + o) * es, es);
        x.data = buf;
        return x;
      };
      if (name.find("gate_up_exps") != std::string::npos) {
        const std::string pre = name.substr(0, name.find("ffn_gate_up_exps"));
        m.tensors.push_back(transpose(0, out / 2, pre + "ffn_gate_exps.weight"));
        m.tensors.push_back(transpose(out / 2, out / 2, pre + "ffn_up_exps.weight"));
      } else {
        m.tensors.push_back(transpose(0, out, name));
      }
      continue;
    }
    m.tensors.push_back(std::move(mt));
  }
  if (p.tied) {
    // Tied head: llama.cpp reads token_embd when output.weight is absent.
    for (size_t k = 0; k < m.tensors.size(); ++k)
      if (m.tensors[k].name == "output.weight") m.tensors.erase(m.tensors.begin() + long(k));
  }
  if (!m.find("token_embd.weight"))
    return make_error(dir + ": tensor model.embed_tokens.weight is missing");
  if (auto rt = m.meta.get_str(p.arch + ".rope.scaling.type"); rt && *rt == "llama3") {
    auto f = llama3_rope_factors(p.head_dim, *m.meta.get_float(p.arch + ".rope.freq_base"),
                                 *m.meta.get_float(p.arch + ".rope.scaling.factor"),
                                 *m.meta.get_float(p.arch + ".rope.scaling.low_freq_factor"),
                                 *m.meta.get_float(p.arch + ".rope.scaling.high_freq_factor"),
                                 double(*m.meta.get_int(p.arch + ".rope.scaling.original_context_length")));
    ModelTensor rf;
    rf.name = "rope_freqs.weight";
    rf.type = DType::F32;
    rf.ne = {int64_t(f.size())};
    rf.nbytes = f.size() * 4;
    uint8_t* buf = m.alloc(rf.nbytes);
    std::memcpy(buf, f.data(), rf.nbytes);
    rf.data = buf;
    m.tensors.push_back(rf);
  }
  CORRAL_RETURN_IF_ERROR(read_sentence_transformers(dir, p.arch, &m.meta));
  // Tokenizer files beside the weights, if any.
  CORRAL_RETURN_IF_ERROR(load_tokenizer_dir_into(dir, &m.meta, /*required=*/false));
  return m;
}

}  // namespace corral
