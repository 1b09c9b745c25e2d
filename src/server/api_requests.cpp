// Request bodies of /v1/embeddings and /v1/responses, validated (and the latter turned into the
// chat request it stands for) before anything reaches a model; kept free of HTTP so that they
// are fuzzed on their own (fuzz/api_requests_fuzz.cpp).
#include "server/api_requests.h"

#include <map>

namespace corral {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

std::optional<ApiError> bad(const std::string& msg, const std::string& param,
                            const std::string& code = "invalid_value") {
  return ApiError{400, msg, "invalid_request_error", param, code};
}

}  // namespace

std::optional<ApiError> parse_embed_request(const json& b, EmbedRequest* r) {
  if (b.contains("model") && !b["model"].is_null()) {
    if (!b["model"].is_string()) return bad("'model' must be a string.", "model", "invalid_type");
    r->model = b["model"];
  }
  if (!b.contains("input"))
    return bad("'input' is required.", "input", "missing_required_parameter");
  const json& in = b["input"];
  auto ids_of = [&](const json& a, const std::string& where,
                    std::vector<int32_t>* out) -> std::optional<ApiError> {
    for (size_t k = 0; k < a.size(); ++k) {
      if (!a[k].is_number_integer() || a[k].get<int64_t>() < 0 || a[k].get<int64_t>() > INT32_MAX)
        return bad(
            "'" + where + "[" + std::to_string(k) + "]' must be a token id (an integer >= 0).",
            "input", "invalid_type");
      out->push_back(a[k].get<int32_t>());
    }
    if (out->empty()) return bad("'" + where + "' is an empty list of tokens.", "input");
    return std::nullopt;
  };
  if (in.is_string()) {
    r->texts.push_back(in);
  } else if (in.is_array() && !in.empty()) {
    if (in[0].is_number_integer()) {
      r->ids.emplace_back();
      if (auto e = ids_of(in, "input", &r->ids.back())) return e;
    } else {
      for (size_t i = 0; i < in.size(); ++i) {
        const std::string where = "input[" + std::to_string(i) + "]";
        if (in[i].is_string() && r->ids.empty()) {
          r->texts.push_back(in[i]);
        } else if (in[i].is_array() && r->texts.empty()) {
          r->ids.emplace_back();
          if (auto e = ids_of(in[i], where, &r->ids.back())) return e;
        } else {
          return bad("'" + where +
                         "' must be of the same kind as the others: 'input' is a string, a list "
                         "of strings, a list of token ids or a list of lists of token ids.",
                     "input", "invalid_type");
        }
      }
    }
  } else {
    return bad(
        "'input' must be a non-empty string, list of strings, list of token ids or list of "
        "lists of token ids.",
        "input", "invalid_type");
  }
  for (size_t i = 0; i < r->texts.size(); ++i)
    if (r->texts[i].empty())
      return bad(r->texts.size() == 1 && in.is_string()
                     ? std::string("'input' is an empty string.")
                     : "'input[" + std::to_string(i) + "]' is an empty string.",
                 "input");
  if (b.contains("encoding_format") && !b["encoding_format"].is_null()) {
    const json& f = b["encoding_format"];
    if (!f.is_string() || (f != "float" && f != "base64"))
      return bad("'encoding_format' must be 'float' or 'base64'.", "encoding_format");
    r->base64 = f == "base64";
  }
  if (b.contains("dimensions") && !b["dimensions"].is_null()) {
    if (!b["dimensions"].is_number_integer() || b["dimensions"].get<int64_t>() < 1)
      return bad("'dimensions' must be an integer of at least 1.", "dimensions");
    r->dimensions = b["dimensions"];
  }
  if (b.contains("user") && !b["user"].is_null() && !b["user"].is_string())
    return bad("'user' must be a string.", "user", "invalid_type");
  if (b.contains("truncate_prompt_tokens") && !b["truncate_prompt_tokens"].is_null()) {
    const json& t = b["truncate_prompt_tokens"];
    if (!t.is_number_integer() || (t.get<int64_t>() < 1 && t.get<int64_t>() != -1))
      return bad("'truncate_prompt_tokens' must be an integer of at least 1 (or -1: the context).",
                 "truncate_prompt_tokens");
    r->truncate = t;
  }
  return std::nullopt;
}

namespace {

// A string field, or `def` when absent or of another type (nlohmann's value() would throw).
std::string str_or(const ojson& o, const char* k, const std::string& def) {
  return o.is_object() && o.contains(k) && o[k].is_string() ? o[k].get<std::string>() : def;
}

std::optional<ApiError> rbad(const std::string& param, const std::string& msg,
                             const std::string& code = "invalid_value") {
  return ApiError{400, msg, "invalid_request_error", param, code};
}

// A message item's content: a string, or input_text / output_text parts joined.
std::optional<ApiError> item_text(const ojson& c, const std::string& at, std::string* out) {
  if (c.is_string()) {
    *out = c.get<std::string>();
    return std::nullopt;
  }
  if (!c.is_array()) return rbad(at, "'" + at + "' must be a string or a list of content parts.");
  for (size_t k = 0; k < c.size(); ++k) {
    const ojson& p = c[k];
    const std::string pat = at + "[" + std::to_string(k) + "]";
    if (!p.is_object() || !p.contains("type") || !p["type"].is_string())
      return rbad(pat, "'" + pat + "' must be an object with a 'type'.");
    const std::string t = p["type"];
    if (t != "input_text" && t != "output_text" && t != "text")
      return rbad(pat + ".type", "'" + pat + ".type' '" + t +
                                     "' is not supported (input_text and output_text are).");
    if (!p.contains("text") || !p["text"].is_string())
      return rbad(pat + ".text", "'" + pat + ".text' must be a string.");
    *out += p["text"].get<std::string>();
  }
  return std::nullopt;
}

// `input` (a string or items) appended to the chat messages.
std::optional<ApiError> input_messages(const ojson& in, ojson* msgs) {
  if (in.is_string()) {
    msgs->push_back({{"role", "user"}, {"content", in.get<std::string>()}});
    return std::nullopt;
  }
  if (!in.is_array() || in.empty())
    return rbad("input", "'input' must be a string or a non-empty list of items.");
  std::map<std::string, std::string> call_names;  // call_id -> function name
  for (auto& m : *msgs)
    if (m.contains("tool_calls"))
      for (auto& tc : m["tool_calls"]) call_names[tc["id"]] = tc["function"]["name"];
  for (size_t i = 0; i < in.size(); ++i) {
    const ojson& it = in[i];
    const std::string at = "input[" + std::to_string(i) + "]";
    if (!it.is_object()) return rbad(at, "'" + at + "' must be an object.");
    const std::string type =
        it.contains("type") && it["type"].is_string() ? it["type"].get<std::string>() : "message";
    if (type == "message") {
      if (!it.contains("role") || !it["role"].is_string())
        return rbad(at + ".role", "'" + at + ".role' is required.");
      std::string role = it["role"];
      if (role == "developer") role = "system";
      if (role != "user" && role != "system" && role != "assistant")
        return rbad(at + ".role",
                    "'" + at + ".role' must be user, system, developer or assistant.");
      if (!it.contains("content"))
        return rbad(at + ".content", "'" + at + ".content' is required.");
      std::string text;
      if (auto e = item_text(it["content"], at + ".content", &text)) return e;
      msgs->push_back({{"role", role}, {"content", text}});
    } else if (type == "function_call") {
      for (const char* k : {"call_id", "name", "arguments"})
        if (!it.contains(k) || !it[k].is_string())
          return rbad(at + "." + k, "'" + at + "." + k + "' must be a string.");
      ojson call = {{"id", it["call_id"]},
                    {"type", "function"},
                    {"function", {{"name", it["name"]}, {"arguments", it["arguments"]}}}};
      call_names[it["call_id"]] = it["name"];
      // Calls right after an assistant turn belong to it (as the model produced them).
      if (!msgs->empty() && msgs->back()["role"] == "assistant") {
        ojson& last = msgs->back();
        if (!last.contains("tool_calls")) last["tool_calls"] = ojson::array();
        if (last["content"].is_string() && last["content"].get<std::string>().empty())
          last["content"] = nullptr;
        last["tool_calls"].push_back(call);
      } else {
        msgs->push_back({{"role", "assistant"}, {"content", nullptr}, {"tool_calls", {call}}});
      }
    } else if (type == "function_call_output") {
      if (!it.contains("call_id") || !it["call_id"].is_string())
        return rbad(at + ".call_id", "'" + at + ".call_id' must be a string.");
      if (!it.contains("output")) return rbad(at + ".output", "'" + at + ".output' is required.");
      std::string out;
      if (auto e = item_text(it["output"], at + ".output", &out)) return e;
      const std::string cid = it["call_id"];
      ojson m = {{"role", "tool"}, {"tool_call_id", cid}, {"content", out}};
      if (auto n = call_names.find(cid); n != call_names.end()) m["name"] = n->second;
      msgs->push_back(std::move(m));
    } else if (type == "reasoning") {
      continue;  // these models do not reason in separate items: nothing to replay
    } else {
      return rbad(at + ".type", "'" + at + ".type' '" + type +
                                    "' is not supported (message, function_call and "
                                    "function_call_output are).");
    }
  }
  return std::nullopt;
}

// The chat request a Responses request stands for. `conversation` gets the messages without the
// instructions (they hold for one request only, as OpenAI's API says).
}  // namespace

std::optional<ApiError> responses_to_chat(const ojson& b, const ojson& history, ojson* chat,
                                          ojson* conversation) {
  ojson c = ojson::object();
  if (b.contains("model")) c["model"] = b["model"];
  if (!b.contains("input"))
    return rbad("input", "'input' is required.", "missing_required_parameter");
  *conversation = history;
  if (auto e = input_messages(b["input"], conversation)) return e;
  ojson msgs = ojson::array();
  if (b.contains("instructions") && !b["instructions"].is_null()) {
    if (!b["instructions"].is_string())
      return rbad("instructions", "'instructions' must be a string.", "invalid_type");
    msgs.push_back({{"role", "system"}, {"content", b["instructions"]}});
  }
  for (auto& m : *conversation) msgs.push_back(m);
  c["messages"] = msgs;
  if (b.contains("max_output_tokens") && !b["max_output_tokens"].is_null()) {
    if (!b["max_output_tokens"].is_number_integer() || b["max_output_tokens"].get<int64_t>() < 1)
      return rbad("max_output_tokens", "'max_output_tokens' must be an integer of at least 1.");
    c["max_tokens"] = b["max_output_tokens"];
  }
  for (const char* k : {"temperature", "top_p", "parallel_tool_calls", "user", "seed"})
    if (b.contains(k) && !b[k].is_null()) c[k] = b[k];
  if (b.contains("tools") && !b["tools"].is_null()) {
    if (!b["tools"].is_array()) return rbad("tools", "'tools' must be a list.", "invalid_type");
    ojson tools = ojson::array();
    for (size_t i = 0; i < b["tools"].size(); ++i) {
      const ojson& t = b["tools"][i];
      const std::string at = "tools[" + std::to_string(i) + "]";
      if (!t.is_object() || str_or(t, "type", "") != "function")
        return rbad(at + ".type", "'" + at +
                                      ".type' must be \"function\" (the only tool type "
                                      "served here).");
      if (!t.contains("name") || !t["name"].is_string())
        return rbad(at + ".name", "'" + at + ".name' must be a string.");
      ojson f = {{"name", t["name"]}};
      for (const char* k : {"description", "parameters", "strict"})
        if (t.contains(k) && !t[k].is_null()) f[k] = t[k];
      tools.push_back({{"type", "function"}, {"function", f}});
    }
    if (!tools.empty()) c["tools"] = tools;
  }
  if (b.contains("tool_choice") && !b["tool_choice"].is_null()) {
    const ojson& tc = b["tool_choice"];
    if (tc.is_string()) {
      c["tool_choice"] = tc;
    } else if (tc.is_object() && str_or(tc, "type", "") == "function" && tc.contains("name")) {
      c["tool_choice"] = {{"type", "function"}, {"function", {{"name", tc["name"]}}}};
    } else {
      return rbad("tool_choice",
                  "'tool_choice' must be auto, none, required or {\"type\": "
                  "\"function\", \"name\": ...}.");
    }
  }
  if (b.contains("text") && b["text"].is_object() && b["text"].contains("format")) {
    const ojson& f = b["text"]["format"];
    const std::string t = str_or(f, "type", "");
    if (t == "json_object") {
      c["response_format"] = {{"type", "json_object"}};
    } else if (t == "json_schema") {
      ojson js = {{"name", str_or(f, "name", "response")}};
      if (f.contains("schema")) js["schema"] = f["schema"];
      if (f.contains("strict")) js["strict"] = f["strict"];
      c["response_format"] = {{"type", "json_schema"}, {"json_schema", js}};
    } else if (t != "text") {
      return rbad("text.format", "'text.format.type' must be text, json_object or json_schema.");
    }
  }
  if (b.contains("stream")) c["stream"] = b["stream"];
  *chat = std::move(c);
  return std::nullopt;
}

}  // namespace corral
