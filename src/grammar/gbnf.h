// llama.cpp's GBNF grammar syntax (so llama.cpp users' grammars work unchanged): rules
// `name ::= ...` with "literals", [character classes], `.`, groups, * + ? {m,n}, # comments;
// the start rule is `root`. Errors name the line and column.
#pragma once
#include <string_view>

#include "core/status.h"
#include "grammar/grammar.h"

namespace corral::grammar {

Expected<Grammar> parse_gbnf(std::string_view text);

}  // namespace corral::grammar
