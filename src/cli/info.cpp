// corral info MODEL [--json]: what a model file holds, for any supported format.
#include <map>
#include <nlohmann/json.hpp>

#include "format/lora.h"

#include "cli/commands.h"
#include "format/model_file.h"
#include "hosting/license.h"
#include "template/chat.h"
#include "tokenizer/vocab.h"

namespace corral::cli {

namespace {

nlohmann::json to_json(const GgufValue& v) {
  switch (v.type) {
    case GgufType::STRING:
      return v.str;
    case GgufType::BOOL:
      return v.u != 0;
    case GgufType::F32:
    case GgufType::F64:
      return v.f;
    case GgufType::ARRAY: {
      nlohmann::json a = nlohmann::json::array();
      for (auto& x : v.arr) a.push_back(to_json(x));
      return a;
    }
    default:
      return v.as_int();
  }
}

// The chat template `serve` would use, and where it came from (it must parse).
Expected<ChatFormat> chat_info(const Metadata& meta, const std::string& path) {
  CORRAL_ASSIGN_OR_RETURN(auto v, vocab_from_metadata(meta, path));
  return load_chat_format(*v, "");
}

// A LoRA adapter (GGUF or PEFT folder): what it targets, its rank, alpha and size.
Status adapter_info(const std::string& path, bool as_json) {
  LoraAdapter a;
  if (is_peft_dir(path)) {
    CORRAL_ASSIGN_OR_RETURN(a, load_peft(path, 0, 0));
  } else {
    CORRAL_ASSIGN_OR_RETURN(a, load_lora_gguf(path));
  }
  std::vector<std::string> targets;
  for (int t : a.targets()) targets.push_back(lora_target_flag(t));
  int64_t layers = 0;
  for (auto& l : a.layers)
    for (auto& m : l) layers += m.present() ? 1 : 0;
  nlohmann::json j = {{"file", path},
                      {"format", is_peft_dir(path) ? "peft" : "gguf"},
                      {"type", "lora"},
                      {"architecture", a.arch},
                      {"base", a.base_name},
                      {"rank", a.rank},
                      {"alpha", a.alpha},
                      {"scale", a.scale()},
                      {"targets", targets},
                      {"layers", a.layers.size()},
                      {"matrices", layers},
                      {"parameters", a.n_params()}};
  if (as_json) {
    std::printf("%s\n", j.dump(2).c_str());
    return Status::ok();
  }
  std::string tl;
  for (auto& t : targets) tl += (tl.empty() ? "" : ",") + t;
  std::printf("file:          %s\nformat:        %s LoRA adapter\narchitecture:  %s\nbase:          %s\n"
              "rank:          %lld\nalpha:         %g (scale alpha/r = %g)\ntargets:       %s\n"
              "layers:        %zu (%lld matrices)\nparameters:    %lld (%.2f MiB as F32)\n",
              path.c_str(), is_peft_dir(path) ? "PEFT" : "GGUF", a.arch.c_str(),
              a.base_name.empty() ? "(not recorded)" : a.base_name.c_str(), (long long)a.rank, a.alpha, a.scale(),
              tl.c_str(), a.layers.size(), (long long)layers, (long long)a.n_params(), double(a.n_params()) * 4 / (1 << 20));
  return Status::ok();
}

Status run_info(const std::string& path, bool as_json, const std::string& tokenizer) {
  if (is_peft_dir(path) || is_lora_gguf(path)) return adapter_info(path, as_json);
  LoadOptions lo;
  lo.tokenizer_path = tokenizer;
  CORRAL_ASSIGN_OR_RETURN(LoadedModel m, load_model(path, lo));
  const std::string arch = m.meta.arch();
  std::map<std::string, std::pair<int64_t, size_t>> by_type;  // type -> (tensors, bytes)
  int64_t n_params = 0;
  size_t n_bytes = 0;
  for (auto& t : m.tensors) {
    auto& e = by_type[std::string(type_name(t.type))];
    e.first++;
    e.second += t.nbytes;
    n_params += t.nelements();
    n_bytes += t.nbytes;
  }
  const std::string tok_model = m.meta.get_str("tokenizer.ggml.model").value_or("none");
  const std::string tok_pre = m.meta.get_str("tokenizer.ggml.pre").value_or("");
  auto* toks = m.meta.get_arr("tokenizer.ggml.tokens");
  const int64_t tok_n = toks ? int64_t(toks->size()) : 0;
  std::string tok_kind = tok_model == "llama"  ? "SentencePiece BPE"
                         : tok_model == "gpt2" ? "byte-level BPE"
                                               : tok_model;
  std::string license = m.meta.get_str("general.license").value_or("");
  if (license.empty()) license = hf_folder_license(path);
  const ModelLicense ml =
      model_license(license, m.meta.get_str("general.license.name").value_or(""),
                    m.meta.get_str("general.license.link").value_or(""), arch);
  const LicenseTerms* lt = find_license(ml.family);

  if (as_json) {
    nlohmann::json j;
    j["path"] = path;
    j["format"] = m.format;
    if (m.gguf_version) j["gguf_version"] = m.gguf_version;
    j["architecture"] = arch;
    nlohmann::json hp = nlohmann::json::object(), general = nlohmann::json::object();
    for (auto& [k, v] : m.meta.kv) {
      if (k.rfind("tokenizer.", 0) == 0 || k.rfind("corral.", 0) == 0) continue;
      if (k.rfind("general.", 0) == 0)
        general[k.substr(8)] = to_json(v);
      else if (!arch.empty() && k.rfind(arch + ".", 0) == 0)
        hp[k.substr(arch.size() + 1)] = to_json(v);
      else
        hp[k] = to_json(v);
    }
    j["general"] = general;
    j["hyperparameters"] = hp;
    j["tokenizer"] = {
        {"model", tok_model}, {"kind", tok_kind}, {"pre", tok_pre}, {"vocab_size", tok_n}};
    if (auto v = m.meta.get_str("tokenizer.chat_template")) j["tokenizer"]["chat_template"] = *v;
    if (auto cf = chat_info(m.meta, path)) {
      j["tokenizer"]["chat_template_in_use"] = cf->origin;
      j["tokenizer"]["tool_call_format"] = tool_format_name(cf->tools);
    } else if (!m.meta.get_str("tokenizer.ggml.model")) {
      j["tokenizer"]["chat_template_in_use"] = nullptr;
    } else {
      j["tokenizer"]["chat_template_error"] = cf.message();
    }
    for (const char* k : {"bos_token_id", "eos_token_id", "eot_token_id", "unknown_token_id"})
      if (auto v = m.meta.get_int(std::string("tokenizer.ggml.") + k)) j["tokenizer"][k] = *v;
    j["tensor_count"] = m.tensors.size();
    j["parameter_count"] = n_params;
    j["tensor_bytes"] = n_bytes;
    nlohmann::json bt = nlohmann::json::object();
    for (auto& [t, e] : by_type) bt[t] = {{"tensors", e.first}, {"bytes", e.second}};
    j["bytes_by_type"] = bt;
    j["license"] = license.empty() ? nlohmann::json(nullptr) : nlohmann::json(license);
    j["license_family"] = ml.family.empty() ? nlohmann::json(nullptr) : nlohmann::json(ml.family);
    j["license_name"] = ml.name.empty() ? nlohmann::json(nullptr) : nlohmann::json(ml.name);
    j["license_link"] = ml.link.empty() ? nlohmann::json(nullptr) : nlohmann::json(ml.link);
    j["attribution"] =
        lt && !lt->attribution.empty() ? nlohmann::json(lt->attribution) : nlohmann::json(nullptr);
    j["multimodal"] = ml.multimodal;
    std::printf("%s\n", j.dump(2).c_str());
    return Status::ok();
  }
  std::printf("file:          %s\n", path.c_str());
  std::printf("format:        %s%s\n", m.format.c_str(),
              m.gguf_version ? (" v" + std::to_string(m.gguf_version)).c_str() : "");
  std::printf("architecture:  %s\n", arch.empty() ? "(none)" : arch.c_str());
  if (auto n = m.meta.get_str("general.name")) std::printf("name:          %s\n", n->c_str());
  std::printf("license:       %s\n", license.empty() ? "(none)" : license.c_str());
  if (lt) {
    std::printf("  family       %s%s\n", ml.family.c_str(), ml.multimodal ? " (multimodal)" : "");
    std::printf("  name         %s\n  link         %s\n", ml.name.c_str(), ml.link.c_str());
    if (!lt->attribution.empty()) std::printf("  attribution  %s\n", lt->attribution.c_str());
  }
  std::printf("hyperparameters:\n");
  for (auto& [k, v] : m.meta.kv) {
    if (k.rfind("tokenizer.", 0) == 0 || k.rfind("general.", 0) == 0 || k.rfind("corral.", 0) == 0) continue;
    std::printf("  %-44s %s\n", k.c_str(), v.to_string().c_str());
  }
  std::printf("tokenizer:     %s%s, %lld tokens\n", tok_kind.c_str(),
              tok_pre.empty() ? "" : (" (pre: " + tok_pre + ")").c_str(), (long long)tok_n);
  for (const char* k : {"bos_token_id", "eos_token_id", "eot_token_id"})
    if (auto v = m.meta.get_int(std::string("tokenizer.ggml.") + k))
      std::printf("  %-13s %lld\n", k, (long long)*v);
  if (m.meta.get_str("tokenizer.ggml.model")) {
    auto cf = chat_info(m.meta, path);
    if (cf)
      std::printf("  chat template %s; tool calls: %s\n", cf->origin.c_str(), tool_format_name(cf->tools));
    else
      std::printf("  chat template: %s\n", cf.message().c_str());
    for (auto& [k, v] : m.meta.kv)
      if (k.rfind("tokenizer.chat_template.", 0) == 0)
        std::printf("  also ships   --chat-template %s\n", k.substr(24).c_str());
  }
  std::printf("tensors:       %zu\n", m.tensors.size());
  std::printf("parameters:    %lld (%.2fM)\n", (long long)n_params, double(n_params) / 1e6);
  std::printf("tensor bytes:  %zu (%.2f MiB)\n", n_bytes, double(n_bytes) / (1 << 20));
  for (auto& [t, e] : by_type)
    std::printf("  %-6s %5lld tensors %14zu bytes\n", t.c_str(), (long long)e.first, e.second);
  return Status::ok();
}

}  // namespace

Action add_info(CLI::App& app) {
  auto* sub = app.add_subcommand("info", "Describe a model file (GGUF, HF folder, llama2.c .bin)");
  auto path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  auto tok = std::make_shared<std::string>();
  sub->add_option("MODEL", *path, "model file or folder")->required();
  sub->add_flag("--json", *as_json, "machine-readable output");
  sub->add_option("--tokenizer", *tok, "tokenizer file (for llama2.c models)");
  return [=] { return run_info(*path, *as_json, *tok); };
}

}  // namespace corral::cli
