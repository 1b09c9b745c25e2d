// JSON Schema -> grammar over the JSON text of the instances it accepts. Exact or refused: every
// keyword is either enforced or a clear error naming it and its JSON pointer (never silently
// ignored). Properties come in the schema's order; whitespace between tokens is bounded.
#pragma once
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/status.h"
#include "grammar/grammar.h"

namespace corral::grammar {

struct SchemaOptions {
  // Whitespace at each place JSON allows it: up to 2 spaces or tabs, or a newline and up to
  // max_indent of them (pretty printing); bounded, so no endless whitespace.
  int32_t max_indent = 16;
  // Values as Python literals (True/False/None instead of true/false/null; strings, numbers,
  // lists and dicts as JSON writes them, which Python reads alike): pythonic tool calls.
  bool python = false;
};

Expected<Grammar> schema_to_grammar(const nlohmann::ordered_json& schema,
                                    const SchemaOptions& o = {});

// Any JSON object (response_format json_object).
Grammar json_object_grammar(const SchemaOptions& o = {});

// Python keyword arguments `k=v, k2=v2` for an object schema, values as Python literals (the
// arguments of a pythonic tool call, Llama 4's format). Only the schema's own properties are
// written (additional ones would need names that are Python identifiers); a property whose name
// is not an identifier, or a schema that is not an object schema, is an error.
// ASCII letters, digits and '_', not starting with a digit (what the pythonic call parser reads).
bool python_identifier(std::string_view s);

Expected<Grammar> kwargs_grammar(const nlohmann::ordered_json& schema, const SchemaOptions& o = {});

// A grammar matching exactly `text` (a literal), then whatever `rest` matches (used for the
// tool-call formats: a fixed prefix, then a schema-constrained value, then a suffix).
}  // namespace corral::grammar
