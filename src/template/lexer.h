// Jinja source to tokens, with jinja2's whitespace rules applied here, once: trim_blocks (the
// newline after a block or comment tag), lstrip_blocks (spaces before a block or comment tag on
// its own line), `-` and `+` markers, newlines normalised and one trailing newline dropped.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace corral::jinja {

enum class Tok { kData, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };

struct Token {
  Tok type = Tok::kEof;
  std::string text;  // data, name, decoded string, operator
  int64_t i = 0;
  double f = 0;
  int line = 1;
};

struct LexOptions {
  bool trim_blocks = true, lstrip_blocks = true;
};

// `name` is used in error messages ("NAME:LINE: ...").
Expected<std::vector<Token>> lex(const std::string& source, const std::string& name,
                                 const LexOptions& o = {});

}  // namespace corral::jinja
