#include "server/openai.h"

#include <cmath>

namespace corral {

using json = nlohmann::json;

json ApiError::body() const {
  json e = {{"message", message},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}};
  return json{{"error", e}};
}

std::optional<ApiError> chat_template_input(const std::string& body_text, GenRequest* g) {
  using ojson = nlohmann::ordered_json;
  ojson b = ojson::parse(body_text, nullptr, false);
  if (!b.is_object() || !b.contains("messages") || !b["messages"].is_array())
    return ApiError{400, "'messages' must be an array.", "invalid_request_error", "messages", ""};
  ChatInput& in = g->chat_input;
  in.messages = ojson::array();
  for (const ojson& m : b["messages"]) {
    ojson cm = m;
    if (cm.value("role", "") == "developer") cm["role"] = "system";
    if (cm.contains("content") && cm["content"].is_array()) {  // text parts, joined
      std::string text;
      for (auto& part : cm["content"])
        if (part.is_object() && part.contains("text") && part["text"].is_string())
          text += part["text"].get<std::string>();
      cm["content"] = text;
    }
    in.messages.push_back(std::move(cm));
  }
  in.tools = b.contains("tools") && b["tools"].is_array() && !b["tools"].empty() ? b["tools"] : ojson();
  if (b.contains("chat_template_kwargs") && b["chat_template_kwargs"].is_object())
    for (auto it = b["chat_template_kwargs"].begin(); it != b["chat_template_kwargs"].end(); ++it)
      if (it.key() != "messages" && it.key() != "tools" && it.key() != "bos_token" && it.key() != "eos_token")
        in.vars.emplace_back(it.key(), it.value());  // the conversation itself is not a kwarg
  return std::nullopt;
}

std::optional<ApiError> parse_json_body(const std::string& text, json* out) {
  if (text.empty())
    return ApiError{400, "The request body is empty; expected a JSON object.",
                    "invalid_request_error", "", ""};
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded())
    return ApiError{400, "The request body is not valid JSON.", "invalid_request_error", "",
                    "invalid_json"};
  if (!j.is_object())
    return ApiError{400, "The request body must be a JSON object.", "invalid_request_error", "",
                    "invalid_json"};
  *out = std::move(j);
  return std::nullopt;
}

namespace {

ApiError bad(const std::string& param, const std::string& msg, const std::string& code = "") {
  return ApiError{400, msg, "invalid_request_error", param, code.empty() ? "invalid_value" : code};
}

const char* type_word(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "a number";
  }
}

ApiError wrong_type(const std::string& param, const json& v, const char* want) {
  return bad(param, "'" + param + "' must be " + want + ", got " + type_word(v) + ".",
             "invalid_type");
}

// Optional fields: absent or null leaves the default.
std::optional<ApiError> get_number(const json& b, const char* k, double lo, double hi,
                                   double* out) {
  auto it = b.find(k);
  if (it == b.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) return wrong_type(k, *it, "a number");
  const double v = it->get<double>();
  if (!(v >= lo && v <= hi))
    return bad(k, "'" + std::string(k) + "' must be between " + json(lo).dump() + " and " +
                      json(hi).dump() + ", got " + it->dump() + ".");
  *out = v;
  return std::nullopt;
}

std::optional<ApiError> get_int(const json& b, const char* k, int64_t lo, int64_t hi,
                                std::optional<int64_t>* out) {
  auto it = b.find(k);
  if (it == b.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) return wrong_type(k, *it, "an integer");
  // Integers beyond 64 bits arrive as doubles: range-check before any conversion (casting an
  // out-of-range double to int64 is undefined; found by openai_request_fuzz).
  const bool too_large = (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX)) ||
                         (it->is_number_float() && !(std::fabs(it->get<double>()) < 9.2e18));
  if (too_large) return bad(k, "'" + std::string(k) + "' is too large.");
  if (it->is_number_float() && it->get<double>() != std::floor(it->get<double>()))
    return wrong_type(k, *it, "an integer");
  const int64_t v = it->is_number_float() ? int64_t(it->get<double>()) : it->get<int64_t>();
  if (v < lo || v > hi)
    return bad(k, "'" + std::string(k) + "' must be between " + std::to_string(lo) + " and " +
                      std::to_string(hi) + ", got " + std::to_string(v) + ".");
  *out = v;
  return std::nullopt;
}

std::optional<ApiError> get_bool(const json& b, const char* k, bool* out) {
  auto it = b.find(k);
  if (it == b.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return wrong_type(k, *it, "a boolean");
  *out = it->get<bool>();
  return std::nullopt;
}

// An assistant turn's calls: [{id, type: "function", function: {name, arguments}}], arguments
// a JSON string (as the API sends them) or an object.
std::optional<ApiError> check_tool_calls(const json& tc, const std::string& at) {
  if (!tc.is_array()) return wrong_type(at, tc, "an array");
  for (size_t k = 0; k < tc.size(); ++k) {
    const std::string p = at + "[" + std::to_string(k) + "]";
    if (!tc[k].is_object()) return wrong_type(p, tc[k], "an object");
    auto fn = tc[k].find("function");
    if (fn == tc[k].end() || !fn->is_object())
      return bad(p + ".function", "'" + p + ".function' is required and must be an object.");
    if (!fn->contains("name") || !(*fn)["name"].is_string())
      return bad(p + ".function.name", "'" + p + ".function.name' is required and must be a string.");
    if (fn->contains("arguments") && !(*fn)["arguments"].is_string() && !(*fn)["arguments"].is_object())
      return wrong_type(p + ".function.arguments", (*fn)["arguments"], "a string");
  }
  return std::nullopt;
}

// tools: [{type: "function", function: {name, description?, parameters?}}]; tool_choice and
// parallel_tool_calls.
std::optional<ApiError> parse_tools(const json& b, GenRequest* g) {
  if (auto it = b.find("tools"); it != b.end() && !it->is_null()) {
    if (!it->is_array()) return wrong_type("tools", *it, "an array");
    for (size_t k = 0; k < it->size(); ++k) {
      const json& t = (*it)[k];
      const std::string p = "tools[" + std::to_string(k) + "]";
      if (!t.is_object()) return wrong_type(p, t, "an object");
      if (t.value("type", "function") != "function")
        return bad(p + ".type", "'" + p + ".type' must be \"function\".");
      auto fn = t.find("function");
      if (fn == t.end() || !fn->is_object())
        return bad(p + ".function", "'" + p + ".function' is required and must be an object.");
      if (!fn->contains("name") || !(*fn)["name"].is_string() || (*fn)["name"].get<std::string>().empty())
        return bad(p + ".function.name", "'" + p + ".function.name' is required and must be a string.");
      if (fn->contains("parameters") && !(*fn)["parameters"].is_object() && !(*fn)["parameters"].is_null())
        return wrong_type(p + ".function.parameters", (*fn)["parameters"], "an object");
    }
  }
  if (auto it = b.find("tool_choice"); it != b.end() && !it->is_null()) {
    if (it->is_string()) {
      const std::string c = it->get<std::string>();
      if (c != "auto" && c != "none" && c != "required")
        return bad("tool_choice", "'tool_choice' must be \"auto\", \"none\", \"required\" or a function.");
      g->tool_choice = c;
    } else if (it->is_object()) {
      if (it->value("type", "") != "function")
        return bad("tool_choice", "'tool_choice.type' must be \"function\".");
      auto fn = it->find("function");
      if (fn == it->end() || !fn->is_object() || !fn->contains("name") || !(*fn)["name"].is_string())
        return bad("tool_choice.function.name", "'tool_choice.function.name' is required and must be a string.");
      g->tool_choice = "function";
      g->forced_tool = (*fn)["name"].get<std::string>();
      bool found = false;
      if (auto t = b.find("tools"); t != b.end() && t->is_array())
        for (auto& x : *t) found = found || x["function"]["name"] == g->forced_tool;
      if (!found)
        return bad("tool_choice", "'tool_choice' names the function '" + g->forced_tool + "', which is not in 'tools'.");
    } else {
      return wrong_type("tool_choice", *it, "a string or an object");
    }
  }
  if (auto e = get_bool(b, "parallel_tool_calls", &g->parallel_tool_calls)) return e;
  if (g->tool_choice == "required" && (!b.contains("tools") || !b["tools"].is_array() || b["tools"].empty()))
    return bad("tool_choice", "'tool_choice': \"required\" needs at least one tool in 'tools'.");
  if (auto it = b.find("chat_template_kwargs"); it != b.end() && !it->is_null() && !it->is_object())
    return wrong_type("chat_template_kwargs", *it, "an object");
  return std::nullopt;
}

std::optional<ApiError> parse_messages(const json& b, std::vector<ChatMessage>* out) {
  auto it = b.find("messages");
  if (it == b.end() || it->is_null())
    return bad("messages", "'messages' is required.", "missing_required_parameter");
  if (!it->is_array()) return wrong_type("messages", *it, "an array");
  if (it->empty()) return bad("messages", "'messages' must contain at least one message.");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return wrong_type(at, m, "an object");
    auto r = m.find("role");
    if (r == m.end() || !r->is_string())
      return bad(at + ".role", "'" + at + ".role' is required and must be a string.");
    std::string role = r->get<std::string>();
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      return bad(
          at + ".role",
          "'" + at + ".role' must be one of system, user, assistant, tool; got '" + role + "'.");
    ChatMessage cm;
    cm.role = role;
    if (auto tc = m.find("tool_calls"); tc != m.end() && !tc->is_null()) {
      if (role != "assistant")
        return bad(at + ".tool_calls", "'" + at + ".tool_calls' is only for assistant messages.");
      if (auto e = check_tool_calls(*tc, at + ".tool_calls")) return e;
    }
    auto c = m.find("content");
    if (c == m.end() || c->is_null()) {
      if (role != "assistant") return bad(at + ".content", "'" + at + ".content' is required.");
    } else if (c->is_string()) {
      cm.content = c->get<std::string>();
    } else if (c->is_array()) {
      for (size_t k = 0; k < c->size(); ++k) {
        const json& part = (*c)[k];
        const std::string pat = at + ".content[" + std::to_string(k) + "]";
        if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
          return bad(pat, "'" + pat + "' must be an object with a 'type'.");
        if (part["type"] != "text")
          return bad(pat + ".type", "'" + pat + ".type' " + part["type"].dump() +
                                        " is not supported (only \"text\").");
        if (!part.contains("text") || !part["text"].is_string())
          return bad(pat + ".text", "'" + pat + ".text' must be a string.");
        cm.content += part["text"].get<std::string>();
      }
    } else {
      return wrong_type(at + ".content", *c, "a string or an array of content parts");
    }
    out->push_back(std::move(cm));
  }
  return std::nullopt;
}

std::optional<ApiError> parse_prompt(const json& b, GenRequest* g) {
  auto it = b.find("prompt");
  if (it == b.end() || it->is_null())
    return bad("prompt", "'prompt' is required.", "missing_required_parameter");
  auto ids_of = [](const json& a, std::vector<int32_t>* ids) {
    for (auto& x : a) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
        return false;
      ids->push_back(int32_t(x.get<int64_t>()));
    }
    return true;
  };
  if (it->is_string()) {
    g->prompts.push_back(it->get<std::string>());
  } else if (it->is_array() && !it->empty() && (*it)[0].is_number()) {
    std::vector<int32_t> ids;
    if (!ids_of(*it, &ids))
      return bad("prompt", "'prompt' as a list must hold token ids (integers >= 0).");
    g->prompt_ids.push_back(std::move(ids));
  } else if (it->is_array() && !it->empty()) {
    for (auto& p : *it) {
      if (p.is_string()) {
        g->prompts.push_back(p.get<std::string>());
      } else if (p.is_array() && !p.empty()) {
        std::vector<int32_t> ids;
        if (!ids_of(p, &ids))
          return bad("prompt", "'prompt' lists must hold token ids (integers >= 0).");
        g->prompt_ids.push_back(std::move(ids));
      } else {
        return bad("prompt",
                   "'prompt' must be a string, a list of strings or a list of token ids.");
      }
    }
    if (!g->prompts.empty() && !g->prompt_ids.empty())
      return bad("prompt", "'prompt' cannot mix strings and token-id lists.");
  } else if (it->is_array()) {
    return bad("prompt", "'prompt' must not be empty.");
  } else {
    return wrong_type("prompt", *it, "a string or an array");
  }
  if (g->prompts.size() + g->prompt_ids.size() > 16)
    return bad("prompt", "at most 16 prompts per request.");
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> parse_gen_request(const json& b, bool chat, GenRequest* g) {
  g->chat = chat;
  if (auto it = b.find("model"); it != b.end() && !it->is_null()) {
    if (!it->is_string()) return wrong_type("model", *it, "a string");
    g->model = it->get<std::string>();
  }
  if (chat) {
    if (auto e = parse_messages(b, &g->messages)) return e;
    if (auto e = parse_tools(b, g)) return e;
  } else {
    if (auto e = parse_prompt(b, g)) return e;
  }
  std::optional<int64_t> v;
  for (const char* k : {"max_tokens", "max_completion_tokens"}) {
    v.reset();
    if (auto e = get_int(b, k, 1, INT32_MAX, &v)) return e;
    if (v) g->max_tokens = v;
  }
  if (auto e = get_number(b, "temperature", 0, 2, &g->temperature)) return e;
  if (auto e = get_number(b, "top_p", 0, 1, &g->top_p)) return e;
  if (b.contains("top_p") && b["top_p"].is_number() && g->top_p <= 0)
    return bad("top_p", "'top_p' must be greater than 0.");
  if (auto e = get_number(b, "min_p", 0, 1, &g->min_p)) return e;
  v.reset();
  if (auto e = get_int(b, "top_k", -1, INT32_MAX, &v)) return e;
  if (v) g->top_k = *v < 0 ? 0 : *v;
  if (auto e = get_number(b, "frequency_penalty", -2, 2, &g->frequency_penalty)) return e;
  if (auto e = get_number(b, "presence_penalty", -2, 2, &g->presence_penalty)) return e;
  if (auto e = get_number(b, "repetition_penalty", 1e-6, 100, &g->repetition_penalty)) return e;
  if (auto e = get_int(b, "seed", INT64_MIN, INT64_MAX, &g->seed)) return e;
  v.reset();
  if (auto e = get_int(b, "n", 1, 16, &v)) return e;
  if (v) g->n = *v;
  if (auto it = b.find("stop"); it != b.end() && !it->is_null()) {
    if (it->is_string()) {
      g->stop.push_back(it->get<std::string>());
    } else if (it->is_array()) {
      if (it->size() > 16) return bad("stop", "'stop' may hold at most 16 strings.");
      for (auto& s : *it) {
        if (!s.is_string())
          return bad("stop", "'stop' must be a string or a list of strings.", "invalid_type");
        g->stop.push_back(s.get<std::string>());
      }
    } else {
      return wrong_type("stop", *it, "a string or a list of strings");
    }
    for (auto& s : g->stop)
      if (s.empty()) return bad("stop", "'stop' strings must not be empty.");
  }
  if (chat) {
    if (auto e = get_bool(b, "logprobs", &g->logprobs)) return e;
    v.reset();
    if (auto e = get_int(b, "top_logprobs", 0, 20, &v)) return e;
    if (v) {
      if (!g->logprobs)
        return bad("top_logprobs", "'top_logprobs' requires 'logprobs' to be true.");
      g->top_logprobs = *v;
    }
  } else {
    v.reset();
    if (auto e = get_int(b, "logprobs", 0, 5, &v)) return e;
    if (v) g->logprobs = true, g->top_logprobs = *v;
    if (auto e = get_bool(b, "echo", &g->echo)) return e;
  }
  if (auto e = get_bool(b, "stream", &g->stream)) return e;
  if (auto it = b.find("stream_options"); it != b.end() && !it->is_null()) {
    if (!it->is_object()) return wrong_type("stream_options", *it, "an object");
    if (!g->stream)
      return bad("stream_options", "'stream_options' is only allowed when 'stream' is true.");
    if (auto e = get_bool(*it, "include_usage", &g->include_usage)) {
      e->param = "stream_options.include_usage";
      return e;
    }
  }
  if (auto e = get_bool(b, "ignore_eos", &g->ignore_eos)) return e;
  if (auto it = b.find("user"); it != b.end() && !it->is_null()) {
    if (!it->is_string()) return wrong_type("user", *it, "a string");
    g->user = it->get<std::string>();
  }
  return std::nullopt;
}

}  // namespace corral
