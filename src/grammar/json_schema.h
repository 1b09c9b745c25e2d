// JSON Schema -> grammar over the JSON text of the instances it accepts. Exact or refused: every
// keyword is either enforced or a clear error naming it and its JSON pointer (never silently
// ignored). Properties come in the schema's order; whitespace between tokens is bounded.
#pragma once
#include <nlohmann/json.hpp>

#include "core/status.h"
#include "grammar/grammar.h"

namespace corral::grammar {

struct SchemaOptions {
  // Whitespace at each place JSON allows it: up to 2 spaces or tabs, or a newline and up to
  // max_indent of them (pretty printing); bounded, so no endless whitespace.
  int32_t max_indent = 16;
};

Expected<Grammar> schema_to_grammar(const nlohmann::ordered_json& schema, const SchemaOptions& o = {});

// Any JSON object (response_format json_object).
Grammar json_object_grammar(const SchemaOptions& o = {});

// A grammar matching exactly `text` (a literal), then whatever `rest` matches (used for the
// tool-call formats: a fixed prefix, then a schema-constrained value, then a suffix).
}  // namespace corral::grammar
