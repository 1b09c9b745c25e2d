// The Responses API: POST /v1/responses (the request turned into the chat request it stands for,
// run through the same admission, template, tool calling, structured output and scheduler as
// /v1/chat/completions), GET and DELETE /v1/responses/{id}. Stored responses keep the
// conversation so far (bounded, per tenant; only the tenant that made one reads it), so that
// previous_response_id continues it and the prefix cache serves the repeated turns.
#include <httplib.h>

#include <deque>
#include <map>

#include "server/api_requests.h"
#include "server/generation.h"
#include "server/http_server.h"

namespace corral {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

struct ResponseStore {
  struct Entry {
    std::string owner;  // tenant ("" on a server without tenants)
    json response;
    ojson conversation;  // chat messages up to and including this response's output
  };
  static constexpr size_t kPerOwner = 1000, kTotal = 20000;
  std::mutex mu;
  std::map<std::string, Entry> byid;
  std::map<std::string, std::deque<std::string>> order;  // per owner, oldest first
  std::deque<std::string> all;

  void put(const std::string& id, Entry e) {
    std::lock_guard<std::mutex> lk(mu);
    auto& q = order[e.owner];
    q.push_back(id);
    all.push_back(id);
    byid[id] = std::move(e);
    while (q.size() > kPerOwner) byid.erase(q.front()), q.pop_front();
    while (byid.size() > kTotal && !all.empty()) byid.erase(all.front()), all.pop_front();
    while (!all.empty() && !byid.count(all.front())) all.pop_front();
  }
  // nullopt when absent or another owner's (the same answer, so ids cannot be probed).
  std::optional<Entry> get(const std::string& id, const std::string& owner) {
    std::lock_guard<std::mutex> lk(mu);
    auto it = byid.find(id);
    if (it == byid.end() || it->second.owner != owner) return std::nullopt;
    return it->second;
  }
  bool erase(const std::string& id, const std::string& owner) {
    std::lock_guard<std::mutex> lk(mu);
    auto it = byid.find(id);
    if (it == byid.end() || it->second.owner != owner) return false;
    byid.erase(it);
    auto& q = order[owner];
    q.erase(std::remove(q.begin(), q.end(), id), q.end());
    return true;
  }
};

namespace {

struct OutCall {
  std::string call_id, name, arguments;
};

json usage_of(const SeqHandle& h) {
  return {{"input_tokens", h.prompt_tokens},
          {"input_tokens_details", {{"cached_tokens", h.cached_tokens}}},
          {"output_tokens", h.completion_tokens},
          {"output_tokens_details", {{"reasoning_tokens", 0}}},
          {"total_tokens", h.prompt_tokens + h.completion_tokens}};
}

json message_item(const std::string& id, const std::string& text, const char* status) {
  return {
      {"type", "message"},
      {"id", id},
      {"status", status},
      {"role", "assistant"},
      {"content",
       json::array({{{"type", "output_text"}, {"text", text}, {"annotations", json::array()}}})}};
}

json call_item(const std::string& id, const OutCall& c, const char* status) {
  return {{"type", "function_call"},  {"id", id},        {"call_id", c.call_id}, {"name", c.name},
          {"arguments", c.arguments}, {"status", status}};
}

}  // namespace

void HttpServer::handle_responses(const httplib::Request& req, httplib::Response& res) {
  const std::string route = "/v1/responses";
  auto fail = [&](const ApiError& e) {
    reply_error(res, e);
    metrics_.count(route, e.status);
    log_request(req, e.status, e.message);
  };
  {
    std::lock_guard<std::mutex> lk(models_mu_);
    if (!responses_) responses_ = std::make_shared<ResponseStore>();
  }
  std::shared_ptr<ResponseStore> store = responses_;
  ojson b = ojson::parse(req.body, nullptr, false);
  if (b.is_discarded() || !b.is_object())
    return fail(ApiError{400, "The body must be a JSON object.", "invalid_request_error", "", ""});
  const std::string owner = current_auth().tenant;
  ojson history = ojson::array();
  std::string previous;
  if (b.contains("previous_response_id") && !b["previous_response_id"].is_null()) {
    if (!b["previous_response_id"].is_string())
      return fail(ApiError{400, "'previous_response_id' must be a string.", "invalid_request_error",
                           "previous_response_id", "invalid_type"});
    previous = b["previous_response_id"];
    auto prev = store->get(previous, owner);
    if (!prev)
      return fail(ApiError{404, "Previous response with id '" + previous + "' not found.",
                           "invalid_request_error", "previous_response_id",
                           "previous_response_not_found"});
    history = prev->conversation;
  }
  const bool keep = !b.contains("store") || !b["store"].is_boolean() || b["store"].get<bool>();
  ojson chat, conversation;
  if (auto e = responses_to_chat(b, history, &chat, &conversation)) return fail(*e);
  const std::string chat_text = chat.dump();
  json chat_body = json::parse(chat_text);
  Generation gen;
  if (auto e = start_generation(chat_text, chat_body, true, "resp_", res, gen)) return fail(*e);
  const GenRequest& g = gen.g;
  const std::string id = gen.id;
  const int64_t created = int64_t(std::time(nullptr));
  // The response object, before and after its output (the request's settings echoed).
  json base = {{"id", id},
               {"object", "response"},
               {"created_at", created},
               {"status", "in_progress"},
               {"error", nullptr},
               {"incomplete_details", nullptr},
               {"instructions",
                b.contains("instructions") ? json::parse(b["instructions"].dump()) : json(nullptr)},
               {"max_output_tokens", g.max_tokens ? json(*g.max_tokens) : json(nullptr)},
               {"model", gen.model_id},
               {"output", json::array()},
               {"parallel_tool_calls", g.parallel_tool_calls},
               {"previous_response_id", previous.empty() ? json(nullptr) : json(previous)},
               {"store", keep},
               {"temperature", g.temperature},
               {"top_p", g.top_p},
               {"tool_choice",
                b.contains("tool_choice") ? json::parse(b["tool_choice"].dump()) : json("auto")},
               {"tools", b.contains("tools") ? json::parse(b["tools"].dump()) : json::array()},
               {"text", b.contains("text") ? json::parse(b["text"].dump())
                                           : json{{"format", {{"type", "text"}}}}},
               {"usage", nullptr},
               {"metadata", b.contains("metadata") && b["metadata"].is_object()
                                ? json::parse(b["metadata"].dump())
                                : json::object()}};
  auto meter = gen.meter;
  Choice ch = gen.choices[0];
  // The finished response: its output items, status and usage; stored with the conversation.
  auto complete = [store, keep, owner, id, conversation](
                      json r, const SeqHandle& h, const std::string& raw_text,
                      std::vector<OutCall> calls, std::string msg_id) {
    // The model's bytes may hold invalid UTF-8 (a byte token out of place): what is kept must be
    // valid, since a follow-up (previous_response_id) sends it through the template again.
    const std::string text = valid_utf8(raw_text);
    for (auto& c : calls) c.arguments = valid_utf8(c.arguments), c.name = valid_utf8(c.name);
    const bool cut = h.finish == "length";
    r["status"] = cut ? "incomplete" : "completed";
    if (cut) r["incomplete_details"] = {{"reason", "max_output_tokens"}};
    json out = json::array();
    ojson reply = {{"role", "assistant"}, {"content", text}};
    if (!text.empty() || calls.empty()) out.push_back(message_item(msg_id, text, "completed"));
    if (!calls.empty()) {
      ojson tcs = ojson::array();
      for (auto& c : calls) {
        out.push_back(call_item("fc_" + c.call_id.substr(c.call_id.find('_') + 1), c, "completed"));
        tcs.push_back({{"id", c.call_id},
                       {"type", "function"},
                       {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
      }
      reply["tool_calls"] = tcs;
      if (text.empty()) reply["content"] = nullptr;
    }
    r["output"] = out;
    r["usage"] = usage_of(h);
    if (keep) {
      ojson conv = conversation;
      conv.push_back(reply);
      store->put(id, {owner, r, conv});
    }
    return r;
  };

  if (!g.stream) {
    {
      std::unique_lock<std::mutex> lk(ch.h->mu);
      ch.h->cv.wait(lk, [&] { return ch.h->done; });
    }
    if (ch.h->finish == "error" || ch.h->finish == "cancelled") {
      (void)meter->settle(gen.choices, 1, "error");
      return fail(
          ApiError{500, "Generation failed: " + (ch.h->error.empty() ? ch.h->finish : ch.h->error),
                   "server_error", "", "internal_error"});
    }
    ch.h->take(&ch.text, &ch.lps, 0);
    bool has_calls = false;
    json msg = ch.tools->message(ch.text, ch.h->finish == "length", &has_calls);
    std::vector<OutCall> calls;
    if (has_calls)
      for (auto& tc : msg["tool_calls"])
        calls.push_back({tc["id"], tc["function"]["name"], tc["function"]["arguments"]});
    const std::string text = msg["content"].is_string() ? msg["content"].get<std::string>() : "";
    json r = complete(base, *ch.h, text, calls, random_id("msg_"));
    if (Status st = meter->record(Meter::generated(gen.choices)); !st.is_ok())
      return fail(ApiError{503, "The ledger is unavailable: " + st.message(), "service_unavailable",
                           "", "ledger_unavailable"});
    reply_metered(res, dump(r), meter, gen.choices, 1);
    metrics_.count(route, 200);
    log_request(
        req, 200,
        "model=" + gen.model_id + " json completion=" + std::to_string(ch.h->completion_tokens));
    return;
  }

  // Streaming: typed events, each with its sequence number; no [DONE].
  struct StreamState {
    Choice ch;
    std::vector<Choice> all;
    int64_t seq = 0;
    bool started = false, msg_open = false;
    std::string msg_id, text;
  };
  auto st = std::make_shared<StreamState>();
  st->ch = ch;
  st->all = gen.choices;
  st->msg_id = random_id("msg_");
  streams_++;
  metrics_.count(route, 200);
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [st, base, meter, complete](size_t, httplib::DataSink& sink) mutable {
        auto event = [&](const std::string& type, json j) {
          j["type"] = type;
          j["sequence_number"] = st->seq++;
          const std::string s = "event: " + type + "\ndata: " + dump(j) + "\n\n";
          return sink.write(s.data(), s.size());
        };
        auto open_message = [&]() {
          if (st->msg_open) return true;
          st->msg_open = true;
          json item = message_item(st->msg_id, "", "in_progress");
          item["content"] = json::array();
          return event("response.output_item.added", {{"output_index", 0}, {"item", item}}) &&
                 event("response.content_part.added",
                       {{"item_id", st->msg_id},
                        {"output_index", 0},
                        {"content_index", 0},
                        {"part",
                         {{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}}}});
        };
        auto ledger_down = [&](const Status& s) {
          event("error", {{"code", "ledger_unavailable"},
                          {"message", "The ledger is unavailable: " + s.message()},
                          {"param", nullptr}});
          return false;
        };
        Choice& ch = st->ch;
        if (!st->started) {
          st->started = true;
          if (!event("response.created", {{"response", base}})) return false;
          if (!event("response.in_progress", {{"response", base}})) return false;
        }
        std::string piece;
        const SeqHandle::Take got = ch.h->take_piece(&piece, nullptr);
        if (got == SeqHandle::Take::kNone) {
          std::unique_lock<std::mutex> lk(ch.h->mu);
          ch.h->cv.wait_for(lk, std::chrono::milliseconds(50),
                            [&] { return ch.h->has_piece_or_done(); });
          return true;
        }
        if (got == SeqHandle::Take::kPiece) ++ch.sent_tokens;
        const int64_t covered =
            got == SeqHandle::Take::kTail ? Meter::generated(st->all) : ch.sent_tokens;
        if (Status s = meter->record(covered); !s.is_ok()) return ledger_down(s);
        std::string text = ch.tools->feed(piece);
        auto delta = [&](const std::string& d) {
          if (d.empty()) return true;
          if (!open_message()) return false;
          st->text += d;
          return event(
              "response.output_text.delta",
              {{"item_id", st->msg_id}, {"output_index", 0}, {"content_index", 0}, {"delta", d}});
        };
        if (!delta(text)) return false;
        if (got == SeqHandle::Take::kPiece) return true;
        // Done: the rest the tool-call parser held, the calls, then the whole response.
        if (ch.h->finish == "error" || ch.h->finish == "cancelled") {
          (void)meter->settle(st->all, 1, "error");
          event("error", {{"code", "internal_error"},
                          {"message", "Generation failed: " +
                                          (ch.h->error.empty() ? ch.h->finish : ch.h->error)},
                          {"param", nullptr}});
          json r = base;
          r["status"] = "failed";
          r["error"] = {{"code", "server_error"}, {"message", ch.h->error}};
          event("response.failed", {{"response", r}});
          sink.done();
          return true;
        }
        bool has_calls = false;
        std::vector<OutCall> calls;
        for (auto& d : ch.tools->finish(ch.h->finish == "length", &has_calls)) {
          if (d.contains("content") && !delta(d["content"].get<std::string>())) return false;
          if (d.contains("tool_calls"))
            for (auto& tc : d["tool_calls"]) {
              const size_t k = tc["index"].get<size_t>();
              if (k >= calls.size()) calls.resize(k + 1);
              if (tc.contains("id")) calls[k].call_id = tc["id"];
              if (tc["function"].contains("name")) calls[k].name = tc["function"]["name"];
              calls[k].arguments += tc["function"]["arguments"].get<std::string>();
            }
        }
        if (calls.empty()) open_message();  // a response always has its message, even empty
        int64_t index = 0;
        if (st->msg_open) {
          json part = {{"type", "output_text"}, {"text", st->text}, {"annotations", json::array()}};
          if (!event("response.output_text.done", {{"item_id", st->msg_id},
                                                   {"output_index", 0},
                                                   {"content_index", 0},
                                                   {"text", st->text}}) ||
              !event("response.content_part.done", {{"item_id", st->msg_id},
                                                    {"output_index", 0},
                                                    {"content_index", 0},
                                                    {"part", part}}) ||
              !event(
                  "response.output_item.done",
                  {{"output_index", 0}, {"item", message_item(st->msg_id, st->text, "completed")}}))
            return false;
          index = 1;
        }
        for (auto& c : calls) {
          const std::string fid = "fc_" + c.call_id.substr(c.call_id.find('_') + 1);
          OutCall empty = c;
          empty.arguments.clear();
          if (!event("response.output_item.added",
                     {{"output_index", index}, {"item", call_item(fid, empty, "in_progress")}}) ||
              !event("response.function_call_arguments.delta",
                     {{"item_id", fid}, {"output_index", index}, {"delta", c.arguments}}) ||
              !event("response.function_call_arguments.done",
                     {{"item_id", fid}, {"output_index", index}, {"arguments", c.arguments}}) ||
              !event("response.output_item.done",
                     {{"output_index", index}, {"item", call_item(fid, c, "completed")}}))
            return false;
          ++index;
        }
        json r = complete(base, *ch.h, st->msg_open ? st->text : "", calls, st->msg_id);
        if (Status s = meter->settle(st->all, 1, "completed"); !s.is_ok()) return ledger_down(s);
        event(r["status"] == "completed" ? "response.completed" : "response.incomplete",
              {{"response", r}});
        sink.done();
        return true;
      },
      [this, st, meter, model_id = gen.model_id, req_path = req.path](bool ok) {
        if (!st->ch.h->done) st->ch.h->cancel = true;
        if (!ok) {
          std::unique_lock<std::mutex> lk(st->ch.h->mu);
          st->ch.h->cv.wait_for(lk, std::chrono::seconds(5), [&] { return st->ch.h->done; });
          lk.unlock();
          (void)meter->settle(st->all, 1, "cancelled");
        }
        httplib::Request r;
        r.method = "POST";
        r.path = req_path;
        log_request(r, 200,
                    "model=" + model_id + " stream completion=" +
                        std::to_string(st->ch.h->completion_tokens) + (ok ? "" : " (client gone)"));
        streams_--;
      });
}

void HttpServer::handle_response_get(const httplib::Request& req, httplib::Response& res,
                                     bool del) {
  const std::string route = "/v1/responses/{id}";
  const std::string id = req.matches[1];
  std::shared_ptr<ResponseStore> store;
  {
    std::lock_guard<std::mutex> lk(models_mu_);
    store = responses_;
  }
  const std::string owner = current_auth().tenant;
  const bool found = store && (del ? store->erase(id, owner) : store->get(id, owner).has_value());
  if (!found) {
    ApiError e{404, "No response found with id '" + id + "'.", "invalid_request_error", "id",
               "not_found"};
    reply_error(res, e);
    metrics_.count(route, 404);
    log_request(req, 404, e.message);
    return;
  }
  json out = del ? json{{"id", id}, {"object", "response.deleted"}, {"deleted", true}}
                 : store->get(id, owner)->response;
  res.set_content(dump(out), "application/json");
  metrics_.count(route, 200);
  log_request(req, 200, "");
}

}  // namespace corral
