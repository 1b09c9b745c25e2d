// Subcommands whose issues are not done yet.
#include "cli/commands.h"

namespace corral::cli {
#define CORRAL_STUB(fn, name, desc)                                         \
  Action fn(CLI::App& app) {                                                \
    app.add_subcommand(name, desc)->allow_extras();                         \
    return [] { return Status(make_error(std::string(name) + ": not implemented yet")); }; \
  }
}  // namespace corral::cli
