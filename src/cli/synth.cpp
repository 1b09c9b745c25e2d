// corral synth --shape NAME --type T [--tokenizer PATH] [--layers N] [--seed S] OUT.gguf
#include "model/synth.h"

#include "cli/commands.h"
#include "hosting/license.h"

namespace corral::cli {

Action add_synth(CLI::App& app) {
  auto* sub =
      app.add_subcommand("synth", "Write a random-weight model in a real shape (for benchmarks)");
  struct Args {
    SynthOptions o;
    std::string type = "f16";
    int threads = 0;
  };
  auto a = std::make_shared<Args>();
  sub->add_option(
         "--shape", a->o.shape,
         "llama3.2-1b, llama3.2-3b, llama3.1-8b, llama2-7b, llama4-scout, tiny, tiny-llama4")
      ->required();
  sub->add_option("--type", a->type, "f16|q8_0|q4_0|q4_k|q6_k (default f16)");
  sub->add_option("--tokenizer", a->o.tokenizer,
                  "tokenizer to embed (default: the family's fixture)");
  sub->add_option("--layers", a->o.layers, "keep only the first N layers");
  sub->add_option("--seed", a->o.seed, "random seed");
  sub->add_option("-t,--threads", a->threads, "threads");
  sub->add_option(
      "--license", a->o.license,
      "license family to record (llama2, llama3, llama3.1, llama3.2, llama3.3, llama4)");
  sub->add_option("OUT", a->o.out, "output .gguf")->required();
  return [a]() -> Status {
    auto t = type_from_name(a->type);
    if (!t || !(*t == DType::F16 || *t == DType::Q8_0 || *t == DType::Q4_0 || *t == DType::Q4_K ||
                *t == DType::Q6_K || *t == DType::BF16 || *t == DType::F32))
      return make_error("--type: '" + a->type + "' (choose f16, q8_0, q4_0, q4_k, q6_k)");
    a->o.type = *t;
    if (!a->o.license.empty()) {
      const LicenseTerms* lt = find_license(a->o.license);
      if (!lt) return make_error("--license: unknown family '" + a->o.license + "'");
      a->o.license_name = lt->name, a->o.license_link = lt->link;
    }
    Context ctx(a->threads > 0 ? a->threads : default_thread_count());
    return synth_model(a->o, ctx);
  };
}

}  // namespace corral::cli
