// What the generating routes share (chat and legacy completions, the Responses API, embeddings):
// the choices a request submitted, its ledger row (Meter), and the request admitted as far as
// its sequences running (start_generation in completions.cpp). Each route then writes its own
// output shape.
#pragma once
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/scheduler.h"
#include "hosting/checkpoints.h"
#include "hosting/ledger.h"
#include "server/chat_tools.h"
#include "server/openai.h"

namespace httplib {
struct Response;
}

namespace corral {

std::string random_id(const char* prefix);  // prefix + 24 hex digits

struct Choice {
  std::shared_ptr<SeqHandle> h;
  size_t prompt;  // index into the request's prompts
  std::string text;
  std::vector<TokenLogprob> lps;
  bool role_sent = false, finished = false;
  int64_t sent_tokens = 0;               // token chunks written (streams)
  std::shared_ptr<ChatToolState> tools;  // chat: tool-call parsing of this choice's output
};

// usage: prompt tokens once per prompt (its first choice), completion tokens of every choice.
nlohmann::json usage_json(const std::vector<Choice>& chs, int64_t n);

// The request's ledger row: admitted before generation; before any token's text is written to
// the client, the tokens written so far plus those being written are committed (group commit,
// one transaction for all streams' writes of the moment); settled once at the end. A kill -9 so
// leaves each record at what its client received, plus at most the chunk being written.
struct Meter {
  std::shared_ptr<Ledger> ledger;  // null: not metered
  std::shared_ptr<CheckpointBatcher> batcher;
  UsageRecord rec;
  std::mutex mu;
  bool settled = false;
  int64_t recorded = 0;

  static int64_t generated(const std::vector<Choice>& chs);
  // At least `tokens` completion tokens in the ledger before they are written.
  Status record(int64_t tokens);
  // n: choices per prompt (prompt tokens are counted once per prompt).
  Status settle(const std::vector<Choice>& chs, int64_t n, const std::string& status);
};

void set_ratelimit_headers(httplib::Response& res, const AdmitResult& r);

// A whole JSON answer whose record is settled "completed" once its last byte is written, or
// "cancelled" when the client goes away before (a kill -9 in between leaves the admitted row,
// billed in full as interrupted). n: choices per prompt.
void reply_metered(httplib::Response& res, std::string body, std::shared_ptr<Meter> meter,
                   const std::vector<Choice>& choices, int64_t n);

// A generation request admitted (license, key, quota) and submitted to its model's scheduler.
struct Generation {
  GenRequest g;
  ServedModel* m = nullptr;
  std::string model_id;  // as the client named it (an adapter's id, or the model's)
  std::string id;        // the response id (chatcmpl-..., resp_...), also the ledger's request id
  const Tokenizer* tok = nullptr;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> prompt_texts;  // completions: for echo
  std::vector<Choice> choices;
  std::shared_ptr<Meter> meter = std::make_shared<Meter>();
};

}  // namespace corral
