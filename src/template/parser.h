// Tokens to the node tree, with jinja2's grammar and operator precedence (parse_condexpr ->
// or -> and -> not -> compare -> + - -> ~ -> * / // % -> ** -> unary -> primary/postfix/filters).
#pragma once
#include <memory>
#include <string>

#include "core/status.h"
#include "template/ast.h"

namespace corral::jinja {

// A syntax error names the template and line: "NAME:LINE: ...".
Expected<std::shared_ptr<Program>> parse_template(const std::string& source, const std::string& name);

}  // namespace corral::jinja
