// Each subcommand lives in its own file and registers itself on the CLI11 app. The returned
// action runs after parsing; it returns a Status that main() turns into "error: ..." and exit 1.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"

namespace corral::cli {

using Action = std::function<Status()>;

Action add_info(CLI::App& app);
Action add_convert(CLI::App& app);
Action add_quantize(CLI::App& app);
Action add_tokenize(CLI::App& app);
Action add_run(CLI::App& app);
Action add_logits(CLI::App& app);
Action add_chat(CLI::App& app);
Action add_bench(CLI::App& app);
Action add_synth(CLI::App& app);
Action add_serve(CLI::App& app);
Action add_bench_serve(CLI::App& app);
Action add_tenant(CLI::App& app);
Action add_key(CLI::App& app);
Action add_usage(CLI::App& app);
Action add_ledger(CLI::App& app);
Action add_price(CLI::App& app);
Action add_share(CLI::App& app);
Action add_statement(CLI::App& app);
Action add_license(CLI::App& app);
Action add_template(CLI::App& app);
Action add_grammar(CLI::App& app);
Action add_finetune(CLI::App& app);
Action add_merge(CLI::App& app);
Action add_embed(CLI::App& app);
Action add_consortium(CLI::App& app);

// "1,2,3" -> ids; error names the bad item.
Expected<std::vector<int32_t>> parse_id_list(const std::string& s, const std::string& flag);

}  // namespace corral::cli
