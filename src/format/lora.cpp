#include "format/lora.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "format/gguf.h"
#include "format/convert.h"
#include "format/hf.h"
#include "format/model_file.h"
#include "format/quant.h"
#include "format/safetensors.h"

namespace corral {

namespace {

constexpr const char* kFlags[kLoraTargets] = {"q", "k", "v", "o", "gate", "up", "down"};
constexpr const char* kGguf[kLoraTargets] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                              "ffn_gate", "ffn_up", "ffn_down"};
constexpr const char* kPeft[kLoraTargets] = {"self_attn.q_proj", "self_attn.k_proj",
                                              "self_attn.v_proj", "self_attn.o_proj",
                                              "mlp.gate_proj",    "mlp.up_proj",
                                              "mlp.down_proj"};
// Llama 4's PEFT modules: the FFN is feed_forward (dense layers) or its shared expert (MoE layers).
constexpr const char* kPeftFfn4[3] = {"feed_forward.gate_proj", "feed_forward.up_proj", "feed_forward.down_proj"};
constexpr const char* kPeftShexp[3] = {"feed_forward.shared_expert.gate_proj", "feed_forward.shared_expert.up_proj",
                                       "feed_forward.shared_expert.down_proj"};

bool is_ffn(int t) { return t >= kLoraGate; }

// Tensor values as f32 (F32, F16 or BF16 stored).
Expected<std::vector<float>> to_f32(DType t, const uint8_t* data, int64_t n, const std::string& what) {
  if (t != DType::F32 && t != DType::F16 && t != DType::BF16)
    return make_error(what + ": type " + std::string(type_name(t)) + " (adapters hold F32, F16 or BF16)");
  std::vector<float> out(static_cast<size_t>(n));
  // Safetensors offsets need not be aligned: decode from an aligned copy.
  std::vector<uint16_t> aligned(t == DType::F32 ? 0 : size_t(n));
  if (!aligned.empty()) std::memcpy(aligned.data(), data, size_t(n) * 2);
  dequantize_row(t, aligned.empty() ? static_cast<const void*>(data) : aligned.data(), out.data(), n);
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(out[size_t(i)]))
      return make_error(what + ": value " + std::to_string(i) + " is not finite");
  return out;
}

// Whole rows of q/k B matrices ([n_out][r]) between HF and GGUF RoPE order.
void permute_b(LoraMatrix& m, int64_t heads, bool to_gguf) {
  std::vector<float> out(m.b.size());
  permute_qk_rows(reinterpret_cast<const uint8_t*>(m.b.data()), reinterpret_cast<uint8_t*>(out.data()),
                  m.n_out, heads, size_t(m.b.size() / size_t(m.n_out)) * 4, to_gguf);
  m.b = std::move(out);
}

Status check_rank(LoraAdapter& a, int64_t r, const std::string& what) {
  if (r <= 0 || r > 65536) return make_error(what + ": rank " + std::to_string(r) + " out of range");
  if (a.rank == 0) a.rank = r;
  if (a.rank != r)
    return make_error(what + ": rank " + std::to_string(r) + ", other matrices have " +
                      std::to_string(a.rank) + " (one rank per adapter)");
  return Status::ok();
}

LoraMatrix& slot(LoraAdapter& a, int64_t layer, int t) {
  if (int64_t(a.layers.size()) <= layer) a.layers.resize(size_t(layer + 1));
  return a.layers[size_t(layer)][size_t(t)];
}

// A layer's FFN matrices all name the shared expert or none does (seen: the form each layer's
// first FFN tensor had).
Status mark_shexp(LoraAdapter& a, int64_t layer, int t, bool shexp, std::map<int64_t, bool>& seen,
                  const std::string& what) {
  if (!is_ffn(t)) return Status::ok();
  auto [it, fresh] = seen.emplace(layer, shexp);
  if (!fresh && it->second != shexp)
    return make_error(what + ": layer " + std::to_string(layer) +
                      " mixes a shared expert's and a dense FFN's matrices");
  if (int64_t(a.shexp.size()) <= layer) a.shexp.resize(size_t(layer + 1), 0);
  a.shexp[size_t(layer)] = shexp;
  return Status::ok();
}

// "PREFIX N.rest" -> N and rest (N: 1-6 digits); false otherwise.
bool split_layer(const std::string& n, const std::string& prefix, int64_t* layer, std::string* rest) {
  if (n.rfind(prefix, 0) != 0) return false;
  const size_t p = prefix.size(), q = n.find('.', p);
  if (q == std::string::npos || q == p || q - p > 6) return false;
  for (size_t i = p; i < q; ++i)
    if (n[i] < '0' || n[i] > '9') return false;
  *layer = std::stoll(n.substr(p, q - p));
  *rest = n.substr(q + 1);
  return true;
}

// "blk.N.attn_q.weight.lora_a" (or a shared expert's "blk.N.ffn_gate_shexp.weight.lora_a") ->
// (N, target, is_a, shexp); false when not an adapter tensor name.
bool parse_gguf_name(const std::string& n, int64_t* layer, int* t, bool* is_a, bool* shexp) {
  std::string rest;
  if (!split_layer(n, "blk.", layer, &rest)) return false;
  for (int k = 0; k < kLoraTargets; ++k)
    for (int sh = 0; sh < (is_ffn(k) ? 2 : 1); ++sh)
      for (int ab = 0; ab < 2; ++ab)
        if (rest == std::string(kGguf[k]) + (sh ? "_shexp" : "") + ".weight.lora_" + (ab ? "b" : "a")) {
          *t = k, *is_a = ab == 0, *shexp = sh == 1;
          return true;
        }
  return false;
}

// "base_model.model.model.layers.N.self_attn.q_proj.lora_A[.default].weight".
// Llama 4's FFN modules are feed_forward.gate_proj or feed_forward.shared_expert.gate_proj.
bool parse_peft_name(const std::string& n, int64_t* layer, int* t, bool* is_a, bool* shexp) {
  std::string rest;
  if (!split_layer(n, "base_model.model.model.layers.", layer, &rest)) return false;
  for (int k = 0; k < kLoraTargets; ++k)
    for (int form = 0; form < (is_ffn(k) ? 3 : 1); ++form)
      for (int ab = 0; ab < 2; ++ab)
        for (const char* mid : {"", ".default"}) {
          const char* mod = form == 0 ? kPeft[k] : form == 1 ? kPeftFfn4[k - kLoraGate] : kPeftShexp[k - kLoraGate];
          const std::string want = std::string(mod) + ".lora_" + (ab ? "B" : "A") + mid + ".weight";
          if (rest == want) {
            *t = k, *is_a = ab == 0, *shexp = form == 2;
            return true;
          }
        }
  return false;
}

// One half of a matrix: A (dim = n_in) or B (dim = n_out), each given once.
Status put_half(LoraAdapter& a, int64_t layer, int t, bool is_a, int64_t dim, std::vector<float> v,
                const std::string& what) {
  LoraMatrix& m = slot(a, layer, t);
  std::vector<float>& dst = is_a ? m.a : m.b;
  if (!dst.empty()) return make_error(what + ": appears twice");
  (is_a ? m.n_in : m.n_out) = dim;
  dst = std::move(v);
  return Status::ok();
}

// Every present matrix has both halves with agreeing ranks.
Status check_complete(const LoraAdapter& a) {
  if (a.rank == 0) return make_error(a.path + ": no LoRA tensors");
  for (size_t l = 0; l < a.layers.size(); ++l)
    for (int t = 0; t < kLoraTargets; ++t) {
      const LoraMatrix& m = a.layers[l][size_t(t)];
      const bool has_a = !m.a.empty(), has_b = !m.b.empty();
      if (has_a != has_b)
        return make_error(a.path + ": layer " + std::to_string(l) + " " + kGguf[t] + ": lora_" +
                          (has_a ? "a" : "b") + " without lora_" + (has_a ? "b" : "a"));
    }
  return Status::ok();
}

Status write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return make_error(path + ": cannot open for writing");
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  if (std::fclose(f) != 0 || !ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return make_error(path + ": write failed");
  }
  return Status::ok();
}

}  // namespace

const char* lora_target_flag(int t) { return kFlags[t]; }
const char* lora_target_gguf(int t) { return kGguf[t]; }

std::string lora_tensor_name(const LoraAdapter& a, int64_t l, int t) {
  return "blk." + std::to_string(l) + "." + kGguf[t] + (is_ffn(t) && a.is_shexp(l) ? "_shexp" : "") + ".weight";
}

std::string peft_module(const LoraAdapter& a, int64_t l, int t) {
  if (!is_ffn(t)) return kPeft[t];
  if (a.is_shexp(l)) return kPeftShexp[t - kLoraGate];
  return a.arch == "llama4" ? kPeftFfn4[t - kLoraGate] : kPeft[t];
}
const char* lora_target_peft(int t) { return kPeft[t]; }

Expected<std::vector<int>> parse_lora_targets(const std::string& s) {
  std::vector<int> out;
  auto add = [&](int t) {
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  };
  size_t p = 0;
  while (p <= s.size()) {
    size_t q = s.find(',', p);
    if (q == std::string::npos) q = s.size();
    const std::string item = s.substr(p, q - p);
    bool found = false;
    if (item == "all" || item == "attn" || item == "mlp") {
      for (int t = 0; t < kLoraTargets; ++t)
        if (item == "all" || (item == "attn") == (t <= kLoraO)) add(t);
      found = true;
    }
    for (int t = 0; t < kLoraTargets && !found; ++t)
      if (item == kFlags[t] || item == std::string(kPeft[t]).substr(std::string(kPeft[t]).find('.') + 1))
        add(t), found = true;
    if (!found)
      return make_error("--targets: '" + item + "' is not a projection (choose from q,k,v,o,gate,up,down)");
    p = q + 1;
  }
  std::sort(out.begin(), out.end());
  return out;
}

void LoraAdapter::prepare_for_serving() {
  for (auto& l : layers)
    for (auto& m : l) {
      if (!m.present()) continue;
      m.bt.assign(m.b.size(), 0.f);
      for (int64_t o = 0; o < m.n_out; ++o)
        for (int64_t j = 0; j < rank; ++j) m.bt[size_t(j * m.n_out + o)] = m.b[size_t(o * rank + j)];
    }
}

int64_t LoraAdapter::n_params() const {
  int64_t n = 0;
  for (auto& l : layers)
    for (auto& m : l) n += int64_t(m.a.size() + m.b.size());
  return n;
}

std::vector<int> LoraAdapter::targets() const {
  std::vector<int> out;
  for (int t = 0; t < kLoraTargets; ++t)
    for (auto& l : layers)
      if (l[size_t(t)].present()) {
        out.push_back(t);
        break;
      }
  return out;
}

bool is_lora_gguf(const std::string& path) {
  if (is_directory(path)) return false;
  auto m = load_gguf(path);
  return m.is_ok() && m->meta.get_str("general.type").value_or("") == "adapter";
}

bool is_peft_dir(const std::string& path) {
  return is_directory(path) && file_exists(path + "/adapter_config.json");
}

Expected<LoraAdapter> load_lora_gguf(const std::string& path) {
  CORRAL_ASSIGN_OR_RETURN(auto f, load_gguf(path));
  return lora_from_gguf(f, path);
}

Expected<LoraAdapter> parse_lora_gguf(const uint8_t* data, size_t size, const std::string& name) {
  CORRAL_ASSIGN_OR_RETURN(auto f, parse_gguf(data, size, name));
  return lora_from_gguf(f, name);
}

Expected<LoraAdapter> lora_from_gguf(const LoadedModel& f, const std::string& path) {
  LoraAdapter a;
  a.path = path;
  const std::string type = f.meta.get_str("general.type").value_or("");
  if (type != "adapter")
    return make_error(path + ": field general.type: '" + type + "', expected 'adapter' (is this a model, not a LoRA adapter?)");
  const std::string at = f.meta.get_str("adapter.type").value_or("");
  if (at != "lora") return make_error(path + ": field adapter.type: '" + at + "', expected 'lora'");
  a.arch = f.meta.arch();
  if (a.arch.empty()) return make_error(path + ": field general.architecture: missing");
  a.base_name = f.meta.get_str("general.name").value_or("");
  const auto alpha = f.meta.get_float("adapter.lora.alpha");
  if (!alpha) return make_error(path + ": field adapter.lora.alpha: missing");
  if (!std::isfinite(*alpha)) return make_error(path + ": field adapter.lora.alpha: not finite");
  a.alpha = float(*alpha);
  a.n_head = f.meta.get_int("adapter.lora.head_count").value_or(0);
  a.n_head_kv = f.meta.get_int("adapter.lora.head_count_kv").value_or(0);
  std::map<int64_t, bool> seen;
  for (const ModelTensor& t : f.tensors) {
    int64_t layer;
    int tg;
    bool is_a, shexp;
    if (!parse_gguf_name(t.name, &layer, &tg, &is_a, &shexp))
      return make_error(path + ": tensor '" + t.name + "': not a LoRA tensor name (blk.N.attn_q.weight.lora_a ...)");
    if (layer > 4096) return make_error(path + ": tensor '" + t.name + "': layer out of range");
    if (t.ne.size() != 2) return make_error(path + ": tensor '" + t.name + "': must be 2-d");
    const std::string what = path + ": tensor '" + t.name + "'";
    CORRAL_RETURN_IF_ERROR(mark_shexp(a, layer, tg, shexp, seen, what));
    // lora_a ne = [n_in, r]; lora_b ne = [r, n_out].
    const int64_t r = is_a ? t.ne[1] : t.ne[0];
    CORRAL_RETURN_IF_ERROR(check_rank(a, r, what));
    if (t.ne[0] <= 0 || t.ne[1] <= 0 || t.ne[0] > (int64_t(1) << 20) || t.ne[1] > (int64_t(1) << 20))
      return make_error(what + ": shape out of range");
    CORRAL_ASSIGN_OR_RETURN(auto v, to_f32(t.type, t.data, t.ne[0] * t.ne[1], what));
    CORRAL_RETURN_IF_ERROR(put_half(a, layer, tg, is_a, is_a ? t.ne[0] : t.ne[1], std::move(v), what));
  }
  CORRAL_RETURN_IF_ERROR(check_complete(a));
  return a;
}

Status write_lora_gguf(const std::string& path, const LoraAdapter& a, const Metadata& extra) {
  Metadata meta;
  meta.set("general.architecture", GgufValue::of_str(a.arch));
  meta.set("general.type", GgufValue::of_str("adapter"));
  if (!a.base_name.empty()) meta.set("general.name", GgufValue::of_str(a.base_name));
  meta.set("adapter.type", GgufValue::of_str("lora"));
  meta.set("adapter.lora.alpha", GgufValue::of_f32(a.alpha));
  if (a.n_head > 0) meta.set("adapter.lora.head_count", GgufValue::of_u32(uint32_t(a.n_head)));
  if (a.n_head_kv > 0) meta.set("adapter.lora.head_count_kv", GgufValue::of_u32(uint32_t(a.n_head_kv)));
  for (auto& [k, v] : extra.kv) meta.set(k, v);
  std::vector<GgufWriteTensor> ts;
  for (size_t l = 0; l < a.layers.size(); ++l)
    for (int t = 0; t < kLoraTargets; ++t) {
      const LoraMatrix& m = a.layers[l][size_t(t)];
      if (!m.present()) continue;
      const std::string base = lora_tensor_name(a, int64_t(l), t) + ".lora_";
      const std::vector<float>* pa = &m.a;
      const std::vector<float>* pb = &m.b;
      ts.push_back({base + "a", DType::F32, {m.n_in, a.rank}, [pa](uint8_t* dst) {
                      std::memcpy(dst, pa->data(), pa->size() * 4);
                      return Status::ok();
                    }});
      ts.push_back({base + "b", DType::F32, {a.rank, m.n_out}, [pb](uint8_t* dst) {
                      std::memcpy(dst, pb->data(), pb->size() * 4);
                      return Status::ok();
                    }});
    }
  if (ts.empty()) return make_error(path + ": the adapter has no matrices to write");
  return write_gguf(path, meta, ts);
}

Expected<LoraAdapter> load_peft(const std::string& dir, int64_t n_head, int64_t n_head_kv) {
  const std::string cfg_path = dir + "/adapter_config.json";
  CORRAL_ASSIGN_OR_RETURN(std::string text, read_text_file(cfg_path));
  std::string st = dir + "/adapter_model.safetensors";
  if (!file_exists(st)) return make_error(dir + ": no adapter_model.safetensors");
  CORRAL_ASSIGN_OR_RETURN(auto sf, load_safetensors(st));
  return parse_peft(text, sf.tensors, n_head, n_head_kv, dir);
}

Expected<LoraAdapter> parse_peft(const std::string& text, const std::vector<SafeTensor>& tensors, int64_t n_head,
                                 int64_t n_head_kv, const std::string& dir) {
  const std::string cfg_path = dir + "/adapter_config.json";
  const std::string st = dir + "/adapter_model.safetensors";
  const auto cfg = nlohmann::json::parse(text, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) return make_error(cfg_path + ": not a JSON object");
  const std::string pt = cfg.contains("peft_type") && cfg["peft_type"].is_string() ? cfg["peft_type"].get<std::string>() : "LORA";
  if (pt != "LORA") return make_error(cfg_path + ": field peft_type: '" + pt + "', only LORA is supported");
  if (!cfg.contains("r") || !cfg["r"].is_number_integer())
    return make_error(cfg_path + ": field r: missing or not an integer");
  if (!cfg.contains("lora_alpha") || !cfg["lora_alpha"].is_number())
    return make_error(cfg_path + ": field lora_alpha: missing or not a number");
  if (cfg.contains("fan_in_fan_out") && cfg["fan_in_fan_out"].is_boolean() && cfg["fan_in_fan_out"].get<bool>())
    return make_error(cfg_path + ": field fan_in_fan_out: true is not supported (Conv1D bases)");
  if (cfg.contains("bias") && cfg["bias"].is_string() && cfg["bias"] != "none")
    return make_error(cfg_path + ": field bias: '" + cfg["bias"].get<std::string>() + "', only 'none' is supported");
  LoraAdapter a;
  a.path = dir;
  a.rank = 0;
  const int64_t r = cfg["r"].get<int64_t>();
  a.alpha = cfg["lora_alpha"].get<float>();
  if (!std::isfinite(a.alpha)) return make_error(cfg_path + ": field lora_alpha: not finite");
  // rsLoRA scales by alpha / sqrt(r): the same product with alpha' = alpha sqrt(r).
  if (cfg.contains("use_rslora") && cfg["use_rslora"].is_boolean() && cfg["use_rslora"].get<bool>())
    a.alpha *= std::sqrt(float(std::max<int64_t>(r, 1)));
  if (cfg.contains("base_model_name_or_path") && cfg["base_model_name_or_path"].is_string())
    a.base_name = cfg["base_model_name_or_path"];
  std::map<int64_t, bool> seen;
  for (const SafeTensor& t : tensors) {
    int64_t layer;
    int tg;
    bool is_a, shexp;
    const std::string what = st + ": tensor '" + t.name + "'";
    if (!parse_peft_name(t.name, &layer, &tg, &is_a, &shexp))
      return make_error(what + ": not a LoRA tensor of a Llama projection (base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight ...)");
    if (layer > 4096) return make_error(what + ": layer out of range");
    CORRAL_RETURN_IF_ERROR(mark_shexp(a, layer, tg, shexp, seen, what));
    if (t.shape.size() != 2) return make_error(what + ": must be 2-d");
    // lora_A [r, n_in]; lora_B [n_out, r].
    CORRAL_RETURN_IF_ERROR(check_rank(a, is_a ? t.shape[0] : t.shape[1], what));
    if (a.rank != r)
      return make_error(what + ": rank " + std::to_string(a.rank) + " but adapter_config.json says r = " + std::to_string(r));
    CORRAL_ASSIGN_OR_RETURN(auto v, to_f32(t.type, t.data, t.shape[0] * t.shape[1], what));
    CORRAL_RETURN_IF_ERROR(put_half(a, layer, tg, is_a, is_a ? t.shape[1] : t.shape[0], std::move(v), what));
  }
  CORRAL_RETURN_IF_ERROR(check_complete(a));
  a.n_head = n_head, a.n_head_kv = n_head_kv;
  for (auto& l : a.layers)
    for (int t : {int(kLoraQ), int(kLoraK)}) {
      LoraMatrix& m = l[size_t(t)];
      if (!m.present()) continue;
      const int64_t heads = t == kLoraQ ? n_head : n_head_kv;
      if (n_head == 0) continue;  // the rows as stored (corral info)
      if (heads <= 0 || m.n_out % heads != 0 || (m.n_out / heads) % 2 != 0)
        return make_error(dir + ": " + kPeft[t] + ": " + std::to_string(m.n_out) +
                          " outputs do not split into " + std::to_string(heads) + " heads");
      permute_b(m, heads, true);
    }
  return a;
}

Status write_peft(const std::string& dir, const LoraAdapter& in, int64_t n_head, int64_t n_head_kv) {
  LoraAdapter a = in;
  // Llama 4's HF checkpoints keep RoPE's interleaved pairs, as GGUF does: no q/k permutation.
  const bool permute = a.arch != "llama4";
  for (auto& l : a.layers)
    for (int t : {int(kLoraQ), int(kLoraK)}) {
      LoraMatrix& m = l[size_t(t)];
      if (!m.present() || !permute) continue;
      const int64_t heads = t == kLoraQ ? n_head : n_head_kv;
      if (heads <= 0 || m.n_out % heads != 0)
        return make_error(dir + ": " + kPeft[t] + ": " + std::to_string(m.n_out) +
                          " outputs do not split into " + std::to_string(heads) + " heads");
      permute_b(m, heads, false);
    }
  ::mkdir(dir.c_str(), 0755);
  if (!is_directory(dir)) return make_error(dir + ": cannot create the folder");
  // safetensors: u64 header length, the JSON header (padded with spaces to 8 bytes), the data.
  nlohmann::ordered_json hdr = nlohmann::ordered_json::object();
  hdr["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (size_t l = 0; l < a.layers.size(); ++l)
    for (int t = 0; t < kLoraTargets; ++t) {
      const LoraMatrix& m = a.layers[l][size_t(t)];
      if (!m.present()) continue;
      const std::string base = "base_model.model.model.layers." + std::to_string(l) + "." + peft_module(a, int64_t(l), t);
      for (int ab = 0; ab < 2; ++ab) {
        const std::vector<float>& v = ab ? m.b : m.a;
        const size_t b0 = data.size();
        data.append(reinterpret_cast<const char*>(v.data()), v.size() * 4);
        hdr[base + (ab ? ".lora_B.weight" : ".lora_A.weight")] = {
            {"dtype", "F32"},
            {"shape", ab ? std::vector<int64_t>{m.n_out, a.rank} : std::vector<int64_t>{a.rank, m.n_in}},
            {"data_offsets", {b0, data.size()}}};
      }
    }
  std::string h = hdr.dump();
  while (h.size() % 8) h += ' ';
  std::string file(8, '\0');
  const uint64_t n = h.size();
  std::memcpy(file.data(), &n, 8);
  file += h;
  file += data;
  CORRAL_RETURN_IF_ERROR(write_file_atomic(dir + "/adapter_model.safetensors", file));
  nlohmann::ordered_json cfg;
  std::vector<std::string> mods;
  for (int t : a.targets()) {
    const std::string p = kPeft[t];
    mods.push_back(p.substr(p.find('.') + 1));
  }
  cfg["peft_type"] = "LORA";
  cfg["task_type"] = "CAUSAL_LM";
  cfg["base_model_name_or_path"] = a.base_name;
  cfg["r"] = a.rank;
  cfg["lora_alpha"] = a.alpha;
  cfg["lora_dropout"] = 0.0;
  cfg["target_modules"] = mods;
  cfg["bias"] = "none";
  cfg["fan_in_fan_out"] = false;
  cfg["use_rslora"] = false;
  cfg["inference_mode"] = true;
  return write_file_atomic(dir + "/adapter_config.json", cfg.dump(2) + "\n");
}

Status check_lora_shapes(const LoraAdapter& a, const LoraBaseShape& b) {
  const int64_t n_layer = int64_t(b.dims.size());
  if (int64_t(a.layers.size()) > n_layer)
    return make_error(a.path + ": targets layer " + std::to_string(a.layers.size() - 1) +
                      " but the base has " + std::to_string(n_layer) + " layers");
  for (size_t l = 0; l < a.layers.size(); ++l)
    for (int t = 0; t < kLoraTargets; ++t) {
      const LoraMatrix& m = a.layers[l][size_t(t)];
      if (!m.present()) continue;
      const bool base_shexp = l < b.shexp.size() && b.shexp[l];
      if (is_ffn(t) && a.is_shexp(int64_t(l)) != base_shexp)
        return make_error(a.path + ": " + lora_tensor_name(a, int64_t(l), t) + ": the base's layer " +
                          std::to_string(l) + (base_shexp ? " is a mixture of experts (LoRA goes on its shared expert, "
                                                            "ffn_*_shexp)"
                                                          : " has a dense FFN (no shared expert)"));
      const auto& d = b.dims[l][size_t(t)];
      if (m.n_in != d[0] || m.n_out != d[1])
        return make_error(a.path + ": " + lora_tensor_name(a, int64_t(l), t) + ": " + std::to_string(m.n_in) +
                          " -> " + std::to_string(m.n_out) + ", the base's projection is " + std::to_string(d[0]) +
                          " -> " + std::to_string(d[1]));
    }
  return Status::ok();
}

}  // namespace corral

namespace corral {

Status merge_lora_gguf(const LoadedModel& base, const LoraAdapter& a, const std::string& out,
                       std::optional<DType> type, const Logger* log) {
  if (base.meta.arch() != a.arch)
    return make_error(a.path + ": an adapter of a '" + a.arch + "' base, the model is '" + base.meta.arch() + "'");
  // Which tensor each matrix changes, checked against the base before anything is written.
  std::map<std::string, const LoraMatrix*> delta;
  for (size_t l = 0; l < a.layers.size(); ++l)
    for (int t = 0; t < kLoraTargets; ++t)
      if (a.layers[l][size_t(t)].present())
        delta[lora_tensor_name(a, int64_t(l), t)] = &a.layers[l][size_t(t)];
  for (auto& [name, m] : delta) {
    const ModelTensor* t = base.find(name);
    if (!t) return make_error(a.path + ": the base has no tensor '" + name + "'");
    if (t->ne.size() != 2 || t->ne[0] != m->n_in || t->ne[1] != m->n_out)
      return make_error(a.path + ": " + name + " is " + std::to_string(m->n_in) + " -> " +
                        std::to_string(m->n_out) + " in the adapter, the base's is another shape");
  }
  ConvertOptions co;
  co.type = type;
  co.log = log;
  const float s = a.scale();
  const int64_t r = a.rank;
  // Row o of W gains s * sum_j B[o][j] A[j].
  co.edit = [&delta, s, r](const ModelTensor& t) -> RowEdit {
    auto it = delta.find(t.name);
    if (it == delta.end()) return {};
    const LoraMatrix* m = it->second;
    return [m, s, r](int64_t o, float* row) {
      for (int64_t j = 0; j < r; ++j) {
        const float c = s * m->b[size_t(o * r + j)];
        const float* aj = m->a.data() + j * m->n_in;
        for (int64_t i = 0; i < m->n_in; ++i) row[i] += c * aj[i];
      }
    };
  };
  return write_model_gguf(base, out, co);
}

}  // namespace corral
