// corral convert INPUT OUTPUT.gguf [--type T] [--tokenizer PATH]
// corral quantize IN.gguf OUT.gguf TYPE
#include "format/convert.h"

#include "cli/commands.h"
#include "core/logger.h"
#include "format/gguf.h"
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

}  // namespace

Action add_convert(CLI::App& app) {
  auto* sub = app.add_subcommand("convert", "Convert an HF folder, llama2.c .bin or GGUF to GGUF");
  struct Args {
    std::string in, out, type, tok, license, chat_template;
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
  return [=] { return convert(a->in, a->out, a->type, a->tok, false, a->license, a->chat_template); };
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
