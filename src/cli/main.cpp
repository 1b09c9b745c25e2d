// The corral binary: parses the command line, runs one subcommand, maps errors to exit codes.
#include <cstdio>
#include <map>

#include "cli/commands.h"

namespace corral::cli {

Expected<std::vector<int32_t>> parse_id_list(const std::string& s, const std::string& flag) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    std::string item = s.substr(pos, end - pos);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) {
      char* e = nullptr;
      errno = 0;
      const long long v = std::strtoll(item.c_str(), &e, 10);
      if (*e != '\0' || errno != 0 || v < 0 || v > INT32_MAX)
        return make_error(flag + ": '" + item + "' is not a token id");
      ids.push_back(int32_t(v));
    }
    pos = end + 1;
  }
  return ids;
}

}  // namespace corral::cli

int main(int argc, char** argv) {
  using namespace corral::cli;
  CLI::App app{"corral: run, serve and host Llama-family models"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all subcommands");
  std::map<std::string, Action> actions;
  actions["info"] = add_info(app);
  actions["convert"] = add_convert(app);
  actions["quantize"] = add_quantize(app);
  actions["tokenize"] = add_tokenize(app);
  actions["run"] = add_run(app);
  actions["logits"] = add_logits(app);
  actions["chat"] = add_chat(app);
  actions["bench"] = add_bench(app);
  actions["synth"] = add_synth(app);
  actions["serve"] = add_serve(app);
  actions["bench-serve"] = add_bench_serve(app);
  actions["tenant"] = add_tenant(app);
  actions["key"] = add_key(app);
  actions["usage"] = add_usage(app);
  actions["ledger"] = add_ledger(app);
  actions["price"] = add_price(app);
  actions["share"] = add_share(app);
  actions["statement"] = add_statement(app);
  actions["license"] = add_license(app);
  actions["template"] = add_template(app);
  actions["grammar"] = add_grammar(app);
  actions["finetune"] = add_finetune(app);
  actions["merge"] = add_merge(app);
  actions["embed"] = add_embed(app);
  actions["consortium"] = add_consortium(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    // Usage of the subcommand in use, if any.
    CLI::App* sub = nullptr;
    for (auto* s : app.get_subcommands()) sub = s;
    std::fprintf(stderr, "%s", (sub ? sub : &app)->help().c_str());
    return 1;
  }
  for (auto* sub : app.get_subcommands()) {
    corral::Status st = corral::Status::ok();
    try {
      st = actions[sub->get_name()]();
    } catch (const std::exception& e) {  // a bug or an input no check caught: still an error line
      st = corral::make_error(sub->get_name() + ": unexpected failure: " + e.what());
    }
    if (!st.is_ok()) {
      std::fflush(stdout);
      std::fprintf(stderr, "error: %s\n", st.message().c_str());
      return 1;
    }
  }
  return 0;
}
