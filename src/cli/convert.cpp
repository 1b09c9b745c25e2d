// corral convert INPUT OUTPUT.gguf [--type T] [--tokenizer PATH]
// corral quantize IN.gguf OUT.gguf TYPE
#include "format/convert.h"

#include "cli/commands.h"
#include "core/logger.h"
#include "core/mapped_file.h"
#include "format/gguf.h"
#include "format/hf.h"
#include "format/lora.h"
#include <nlohmann/json.hpp>
#include "hosting/license.h"
#include "template/jinja.h"

#include <fstream>
#include <sstream>

namespace corral::cli {

namespace {

Expected<DType> parse_type(const std::string& s, const std::vector<DType>& allowed) {
  auto t = type_from_name(s);
  std::string names;
  for (DType a : allowed) {
    names += (names.empty() ? "" : ", ") + std::string(type_name(a));
    if (t && *t == a) return *t;
  }
  return make_error("unknown or unsupported type '" + s + "' (choose from " + names + ")");
}

Status convert(const std::string& in, const std::string& out, const std::string& type,
               const std::string& tokenizer, bool quantize_mode, const std::string& license,
               const std::string& chat_template = "") {
  Logger log;
  LoadOptions lo;
  lo.tokenizer_path = tokenizer;
  if (in == out) return make_error(out + ": output would overwrite the input");
  CORRAL_ASSIGN_OR_RETURN(LoadedModel m, load_model(in, lo));
  if (quantize_mode && m.format != "gguf") return make_error(in + ": quantize takes a GGUF file");
  // The license: --license, else what the model says (an HF folder's README front matter).
  std::string fam = license;
  if (fam.empty() && !m.meta.get_str("general.license"))
    fam = license_family_of(hf_folder_license(in));
  if (!fam.empty()) {
    const LicenseTerms* lt = find_license(fam);
    if (!lt) return make_error("--license: unknown family '" + fam + "'");
    m.meta.set("general.license", GgufValue::of_str(lt->family));
    m.meta.set("general.license.name", GgufValue::of_str(lt->name));
    m.meta.set("general.license.link", GgufValue::of_str(lt->link));
  }
  if (!chat_template.empty()) {  // written as tokenizer.chat_template, checked first
    std::ifstream f(chat_template, std::ios::binary);
    if (!f) return make_error("--chat-template: cannot read '" + chat_template + "'");
    std::stringstream ss;
    ss << f.rdbuf();
    auto t = jinja::parse(ss.str(), chat_template);
    if (!t) return make_error("--chat-template: " + t.message());
    m.meta.set("tokenizer.chat_template", GgufValue::of_str(ss.str()));
  }
  ConvertOptions co;
  co.log = &log;
  if (!type.empty()) {
    const std::vector<DType> allowed =
        quantize_mode ? std::vector<DType>{DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                                           DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K,
                                           DType::F16,  DType::BF16, DType::F32}
                      : std::vector<DType>{DType::F32,  DType::F16,  DType::BF16, DType::Q8_0,
                                           DType::Q4_0, DType::Q4_K, DType::Q6_K};
    CORRAL_ASSIGN_OR_RETURN(DType t, parse_type(type, allowed));
    co.type = t;
  }
  log.info("converting " + in + " (" + m.format + ", " + std::to_string(m.tensors.size()) +
           " tensors) -> " + out + (co.type ? " as " + std::string(type_name(*co.type)) : ""));
  return write_model_gguf(m, out, co);
}

// Head counts of a base model (for the q/k row order of PEFT adapters).
Status heads_of(const Metadata& meta, const std::string& base, int64_t* n_head, int64_t* n_head_kv) {
  *n_head = meta.get_int(meta.akey("attention.head_count")).value_or(0);
  *n_head_kv = meta.get_int(meta.akey("attention.head_count_kv")).value_or(*n_head);
  if (*n_head <= 0) return make_error(base + ": no attention.head_count");
  return Status::ok();
}

Status base_heads(const std::string& base, int64_t* n_head, int64_t* n_head_kv) {
  CORRAL_ASSIGN_OR_RETURN(LoadedModel m, load_model(base));
  return heads_of(m.meta, base, n_head, n_head_kv);
}

// The metadata of a PEFT adapter's base: --base, else the config's base_model_name_or_path when
// it is a local model, or a hub id whose config.json is in the local Hugging Face cache.
Expected<Metadata> peft_base_meta(const std::string& in, const std::string& base, std::string* named) {
  if (!base.empty()) {
    CORRAL_ASSIGN_OR_RETURN(LoadedModel m, load_model(base));
    *named = base;
    return m.meta;
  }
  const std::string give = ": a PEFT adapter's q/k rows depend on its base's attention heads: give --base MODEL";
  auto cfg = read_text_file(in + "/adapter_config.json");
  const auto j = cfg ? nlohmann::json::parse(*cfg, nullptr, false) : nlohmann::json();
  if (!j.is_object() || !j.contains("base_model_name_or_path") || !j["base_model_name_or_path"].is_string() ||
      j["base_model_name_or_path"].get<std::string>().empty())
    return make_error(in + "/adapter_config.json names no base_model_name_or_path" + give);
  const std::string id = j["base_model_name_or_path"];
  *named = id;
  if (file_exists(id)) {
    CORRAL_ASSIGN_OR_RETURN(LoadedModel m, load_model(id));
    return m.meta;
  }
  std::vector<std::string> searched;
  const std::string snap = hf_cache_snapshot(id, &searched);
  if (snap.empty()) {
    std::string where;
    for (auto& s : searched) where += (where.empty() ? "" : ", ") + s;
    return make_error(in + ": its base_model_name_or_path '" + id + "' is neither a local model nor in the "
                      "Hugging Face cache" + (where.empty() ? "" : " (looked in " + where + ")") + give);
  }
  return hf_config_metadata(snap + "/config.json");
}

// PEFT folder <-> GGUF adapter.
Status convert_adapter(const std::string& in, const std::string& out, const std::string& format,
                       const std::string& base) {
  Logger log;
  int64_t nh = 0, nkv = 0;
  if (is_peft_dir(in)) {
    if (format == "peft") return make_error("--format peft: the input is a PEFT folder already");
    std::string named;
    CORRAL_ASSIGN_OR_RETURN(Metadata bm, peft_base_meta(in, base, &named));
    CORRAL_RETURN_IF_ERROR(heads_of(bm, named, &nh, &nkv));
    // Llama 4's HF q/k rows already pair RoPE's dimensions as GGUF does: no permutation.
    const bool permute = bm.arch() != "llama4";
    CORRAL_ASSIGN_OR_RETURN(LoraAdapter a, load_peft(in, permute ? nh : 0, permute ? nkv : 0));
    a.n_head = nh, a.n_head_kv = nkv;
    a.arch = bm.arch();
    if (base.empty()) log.info(in + ": its base " + named + " (" + std::to_string(nh) + " heads, " + std::to_string(nkv) + " kv heads)");
    CORRAL_RETURN_IF_ERROR(write_lora_gguf(out, a));
    log.info("wrote " + out + " (LoRA rank " + std::to_string(a.rank) + ", alpha " + std::to_string(a.alpha) + ")");
    return Status::ok();
  }
  CORRAL_ASSIGN_OR_RETURN(LoraAdapter a, load_lora_gguf(in));
  if (format != "peft") return make_error(in + ": an adapter converts to --format peft (it is a GGUF already)");
  nh = a.n_head, nkv = a.n_head_kv;
  if (!base.empty()) CORRAL_RETURN_IF_ERROR(base_heads(base, &nh, &nkv));
  if (nh <= 0 && !a.targets().empty())
    return make_error(in + ": the adapter does not record its base's head counts: give --base MODEL");
  CORRAL_RETURN_IF_ERROR(write_peft(out, a, nh, nkv));
  log.info("wrote " + out + "/adapter_config.json and adapter_model.safetensors");
  return Status::ok();
}

}  // namespace

Action add_convert(CLI::App& app) {
  auto* sub = app.add_subcommand("convert", "Convert an HF folder, llama2.c .bin or GGUF to GGUF");
  struct Args {
    std::string in, out, type, tok, license, chat_template, format = "gguf", base;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("--chat-template", a->chat_template,
                  "a Jinja file written as tokenizer.chat_template (default: the model's own)");
  sub->add_option(
      "--license", a->license,
      "license family to record (llama2, llama3, llama3.1, llama3.2, llama3.3, llama4)");
  sub->add_option("INPUT", a->in, "HF folder, llama2.c .bin or GGUF")->required();
  sub->add_option("OUTPUT", a->out, "output .gguf")->required();
  sub->add_option("--type", a->type, "f32|f16|bf16|q8_0|q4_0|q4_k|q6_k (default: keep)");
  sub->add_option("--tokenizer", a->tok, "tokenizer file or folder to embed");
  sub->add_option("--format", a->format, "gguf, or peft for a LoRA adapter (a folder out)");
  sub->add_option("--base", a->base,
                  "a PEFT adapter's base model, for its q/k row order (default: its config's "
                  "base_model_name_or_path, a local model or a hub id in the Hugging Face cache)");
  return [=] {
    if (is_peft_dir(a->in) || is_lora_gguf(a->in) || a->format == "peft")
      return convert_adapter(a->in, a->out, a->format, a->base);
    if (a->format != "gguf") return Status(make_error("--format: '" + a->format + "' (choose gguf or peft)"));
    return convert(a->in, a->out, a->type, a->tok, false, a->license, a->chat_template);
  };
}

Action add_quantize(CLI::App& app) {
  auto* sub = app.add_subcommand("quantize", "Re-encode a GGUF's weights");
  struct Args {
    std::string in, out, type;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("IN", a->in, "input .gguf")->required();
  sub->add_option("OUT", a->out, "output .gguf")->required();
  sub->add_option("TYPE", a->type, "Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K")->required();
  return [=] { return convert(a->in, a->out, a->type, "", true, ""); };
}

}  // namespace corral::cli
