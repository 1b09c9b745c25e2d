// corral merge BASE ADAPTER -o MERGED.gguf [--type T]: a LoRA adapter baked into its base.
#include "cli/commands.h"
#include "format/lora.h"
#include "format/model_file.h"
#include "format/quant.h"

namespace corral::cli {

namespace {

struct MergeArgs {
  std::string base, adapter, out, type;
};

Status run_merge(const MergeArgs& a) {
  Logger log;
  CORRAL_ASSIGN_OR_RETURN(auto base, load_model(a.base));
  CORRAL_ASSIGN_OR_RETURN(auto ad, load_lora_gguf(a.adapter));
  std::optional<DType> type;
  if (!a.type.empty()) {
    auto t = type_from_name(a.type);
    if (!t) return make_error("--type: unknown type '" + a.type + "'");
    type = *t;
  }
  CORRAL_RETURN_IF_ERROR(merge_lora_gguf(base, ad, a.out, type, &log));
  log.info("wrote " + a.out);
  return Status::ok();
}

}  // namespace

Action add_merge(CLI::App& app) {
  auto* sub = app.add_subcommand("merge", "Bake a LoRA adapter into its base model");
  auto a = std::make_shared<MergeArgs>();
  sub->add_option("base", a->base, "the base model (GGUF or HF folder)")->required();
  sub->add_option("adapter", a->adapter, "the adapter (GGUF)")->required();
  sub->add_option("-o,--out", a->out, "the merged model (GGUF)")->required();
  sub->add_option("--type", a->type, "re-encode every weight to this type (default: each keeps its own)");
  return [a] { return run_merge(*a); };
}

}  // namespace corral::cli
