// The structured-output fields of a request: response_format ({"type": "text" | "json_object" |
// "json_schema", "json_schema": {"name", "schema", "strict"}}), llama.cpp's GBNF `grammar`, and
// the tools' parameter schemas for forced calls; parsed from the raw body with keys in order.
#include "server/openai.h"

namespace corral {

namespace {
using ojson = nlohmann::ordered_json;

ApiError bad(const std::string& param, const std::string& msg, const std::string& code = "invalid_value") {
  return ApiError{400, msg, "invalid_request_error", param, code};
}
}  // namespace

std::optional<ApiError> parse_constraint(const std::string& body_text, GenRequest* g) {
  ojson b = ojson::parse(body_text, nullptr, false);
  if (!b.is_object()) return bad("", "The request body must be a JSON object.", "invalid_json");
  auto& c = g->constraint;
  if (auto it = b.find("response_format"); it != b.end() && !it->is_null()) {
    if (!it->is_object() || !it->contains("type") || !(*it)["type"].is_string())
      return bad("response_format", "'response_format' must be an object with a 'type'.");
    const std::string type = (*it)["type"].get<std::string>();
    if (type == "json_object") {
      c.kind = GenRequest::Constraint::Kind::kJsonObject;
    } else if (type == "json_schema") {
      auto js = it->find("json_schema");
      if (js == it->end() || !js->is_object())
        return bad("response_format.json_schema", "'response_format.json_schema' is required and must be an object.");
      if (!js->contains("name") || !(*js)["name"].is_string() || (*js)["name"].get<std::string>().empty())
        return bad("response_format.json_schema.name", "'response_format.json_schema.name' is required and must be a string.");
      if (js->contains("strict") && !(*js)["strict"].is_boolean() && !(*js)["strict"].is_null())
        return bad("response_format.json_schema.strict", "'response_format.json_schema.strict' must be a boolean.");
      auto sc = js->find("schema");
      if (sc == js->end() || sc->is_null()) {
        c.kind = GenRequest::Constraint::Kind::kJsonObject;  // no schema: any JSON object, as OpenAI does
      } else {
        if (!sc->is_object() && !sc->is_boolean())
          return bad("response_format.json_schema.schema", "'response_format.json_schema.schema' must be an object.");
        c.kind = GenRequest::Constraint::Kind::kJsonSchema;
        c.text = sc->dump();
      }
    } else if (type != "text") {
      return bad("response_format.type", "'response_format.type' must be \"text\", \"json_object\" or \"json_schema\".");
    }
    c.param = "response_format";
  }
  if (auto it = b.find("grammar"); it != b.end() && !it->is_null()) {
    if (!it->is_string()) return bad("grammar", "'grammar' must be a string (GBNF).", "invalid_type");
    if (c.kind != GenRequest::Constraint::Kind::kNone)
      return bad("grammar", "'grammar' and 'response_format' cannot both constrain the output.");
    c.kind = GenRequest::Constraint::Kind::kGbnf;
    c.text = it->get<std::string>();
    c.param = "grammar";
  }
  if (auto it = b.find("tools"); it != b.end() && it->is_array())
    for (auto& t : *it) {
      if (!t.is_object() || !t.contains("function") || !t["function"].is_object()) continue;
      const ojson& fn = t["function"];
      GenRequest::ToolSchema ts;
      ts.name = fn.value("name", "");
      ts.parameters = fn.contains("parameters") && !fn["parameters"].is_null() ? fn["parameters"].dump() : "{}";
      ts.strict = fn.contains("strict") && fn["strict"].is_boolean() && fn["strict"].get<bool>();
      g->tool_schemas.push_back(std::move(ts));
    }
  return std::nullopt;
}

}  // namespace corral
