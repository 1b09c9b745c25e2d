// ECMA-262 regular expressions (JSON Schema's `pattern`, and the formats) as grammar expressions,
// either over raw UTF-8 or over the contents of a JSON string (each character as
// json.dumps(ensure_ascii=False) writes it). Unsupported constructs (lookaround,
// backreferences, anchors inside the pattern) are errors naming the offset.
#pragma once
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "grammar/grammar.h"

namespace corral::grammar {

using CharRanges = std::vector<std::pair<uint32_t, uint32_t>>;  // sorted, disjoint code points

CharRanges normalize(CharRanges r);
CharRanges complement(const CharRanges& r);

// Characters as an expression: raw UTF-8 (json = false) or JSON-escaped (json = true).
int32_t char_set(Grammar& g, const CharRanges& r, bool json);

// A pattern with search semantics (unanchored unless it starts with ^ / ends with $), as a
// JSON string's contents.
Expected<int32_t> pattern_to_grammar(Grammar& g, std::string_view pattern);

// A pattern matched in full (for formats), as a JSON string's contents.
Expected<int32_t> full_regex_to_grammar(Grammar& g, std::string_view pattern);

// Decodes UTF-8 into code points; false on invalid input.
bool decode_utf8(std::string_view s, std::vector<uint32_t>* out);

}  // namespace corral::grammar
