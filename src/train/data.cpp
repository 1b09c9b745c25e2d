#include "train/data.h"

#include "core/apportion.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "template/chat.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace corral {

namespace {

using ojson = nlohmann::ordered_json;

void append(Example& e, const std::vector<int32_t>& ids, bool loss) {
  e.tokens.insert(e.tokens.end(), ids.begin(), ids.end());
  e.loss.insert(e.loss.end(), ids.size(), loss ? 1 : 0);
}

std::vector<int32_t> encode(const Tokenizer& tok, const std::string& s, bool special) {
  EncodeOptions eo;
  eo.parse_special = special;
  return tok.encode(s, eo);
}

Expected<std::string> render(const ChatFormat& chat, const ojson& msgs, const ojson& tools, bool gen) {
  ChatInput in;
  in.messages = prepare_messages(msgs);
  in.tools = tools;
  in.add_generation_prompt = gen;
  return render_chat(chat, in);
}

// A conversation: the whole rendering W, with assistant turn i from where the rendering of turns
// [0, i) with the generation prompt ends (a prefix of W) to the end of the turn: where the
// rendering of turns [0, i] stops agreeing with W, or earlier, just after the first end-of-turn
// token there (templates such as Llama 3's first one add the assistant header even without the
// generation prompt). Each piece is tokenized on its own, special tokens parsed.
Status conversation(const Tokenizer& tok, const ChatFormat& chat, const ojson& rec, bool all, Example& e,
                    const std::string& where) {
  const ojson& msgs = rec["messages"];
  if (!msgs.is_array() || msgs.empty()) return make_error(where + ": field messages: not a non-empty array");
  const ojson tools = rec.contains("tools") ? rec["tools"] : ojson();
  auto whole = render(chat, msgs, tools, false);
  if (!whole) return make_error(where + ": the chat template failed: " + whole.message());
  const std::string& W = *whole;
  std::vector<std::string> stops;
  for (int32_t id : tok.vocab().stop_ids()) {
    const std::string t = tok.token_bytes(id, true);
    if (!t.empty()) stops.push_back(t);
  }
  std::vector<std::pair<size_t, size_t>> spans;
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (!msgs[i].is_object() || !msgs[i].contains("role") || !msgs[i]["role"].is_string())
      return make_error(where + ": messages[" + std::to_string(i) + "]: no role");
    if (msgs[i]["role"] != "assistant") continue;
    ojson before = ojson::array();
    for (size_t j = 0; j < i; ++j) before.push_back(msgs[j]);
    ojson with = before;
    with.push_back(msgs[i]);
    auto pre = render(chat, before, tools, true);
    if (!pre) return make_error(where + ": the chat template failed: " + pre.message());
    auto full = render(chat, with, tools, false);
    if (!full) return make_error(where + ": the chat template failed: " + full.message());
    if (W.compare(0, pre->size(), *pre) != 0)
      return make_error(where + ": messages[" + std::to_string(i) + "]: the chat template's rendering up to this turn "
                        "is not a prefix of the whole conversation's, so the turn cannot be located");
    const size_t b = pre->size();
    size_t en = b;
    while (en < W.size() && en < full->size() && W[en] == (*full)[en]) ++en;
    for (const std::string& st : stops) {
      const size_t at = W.find(st, b);
      if (at != std::string::npos && at + st.size() <= en) en = at + st.size();
    }
    if (en <= b) return make_error(where + ": messages[" + std::to_string(i) + "]: the assistant turn renders empty");
    if (!spans.empty() && b < spans.back().second)
      return make_error(where + ": messages[" + std::to_string(i) + "]: assistant turns overlap in the rendering");
    spans.push_back({b, en});
  }
  if (spans.empty() && !all) return make_error(where + ": no assistant message to learn from");
  size_t at = 0;
  for (auto [b, en] : spans) {
    append(e, encode(tok, W.substr(at, b - at), true), all);
    append(e, encode(tok, W.substr(b, en - b), true), true);
    at = en;
  }
  append(e, encode(tok, W.substr(at), true), all);
  const Vocab& v = tok.vocab();
  if (v.add_bos && v.bos >= 0 && (e.tokens.empty() || e.tokens[0] != v.bos)) {
    e.tokens.insert(e.tokens.begin(), v.bos);
    e.loss.insert(e.loss.begin(), 0);
  }
  return Status::ok();
}

}  // namespace

Expected<DataSet> load_jsonl(const std::string& path, const Tokenizer* tokp, const ChatFormat* chatp,
                             int64_t n_vocab, const DataOptions& o) {
  std::ifstream in(path);
  if (!in) return make_error(path + ": cannot open");
  DataSet d;
  static const Vocab none{};
  const Vocab& v = tokp ? tokp->vocab() : none;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(lineno);
    const ojson rec = ojson::parse(line, nullptr, false);
    if (rec.is_discarded() || !rec.is_object()) return make_error(where + ": not a JSON object");
    Example e;
    e.index = int64_t(d.examples.size());
    if (!rec.contains("ids") && (!tokp || !chatp))
      return make_error(where + ": the model has no tokenizer, so only {\"ids\": [...]} records can be used (or give --tokenizer)");
    const Tokenizer& tok = *tokp;
    const ChatFormat& chat = *chatp;
    auto bos = [&] {
      if (v.add_bos && v.bos >= 0) append(e, {v.bos}, false);
    };
    if (rec.contains("messages")) {
      CORRAL_RETURN_IF_ERROR(conversation(tok, chat, rec, o.train_on_prompt, e, where));
    } else if (rec.contains("prompt") || rec.contains("completion")) {
      if (!rec.contains("prompt") || !rec["prompt"].is_string())
        return make_error(where + ": field prompt: missing or not a string");
      if (!rec.contains("completion") || !rec["completion"].is_string())
        return make_error(where + ": field completion: missing or not a string");
      bos();
      append(e, encode(tok, rec["prompt"].get<std::string>(), false), o.train_on_prompt);
      append(e, encode(tok, rec["completion"].get<std::string>(), false), true);
      if (v.eos >= 0) append(e, {v.eos}, true);
    } else if (rec.contains("text")) {
      if (!rec["text"].is_string()) return make_error(where + ": field text: not a string");
      bos();
      append(e, encode(tok, rec["text"].get<std::string>(), false), true);
      if (v.eos >= 0) append(e, {v.eos}, true);
    } else if (rec.contains("ids")) {
      if (!rec["ids"].is_array()) return make_error(where + ": field ids: not an array");
      for (size_t i = 0; i < rec["ids"].size(); ++i) {
        const ojson& x = rec["ids"][i];
        if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= n_vocab)
          return make_error(where + ": ids[" + std::to_string(i) + "]: not a token id of this model (" +
                            std::to_string(n_vocab) + " tokens)");
        append(e, {x.get<int32_t>()}, true);
      }
    } else {
      return make_error(where + ": a record needs messages, prompt and completion, text, or ids");
    }
    if (e.tokens.size() < 2) return make_error(where + ": fewer than 2 tokens: nothing to predict");
    if (int64_t(e.tokens.size()) > o.ctx) {
      e.tokens.resize(size_t(o.ctx));
      e.loss.resize(size_t(o.ctx));
      ++d.truncated;
    }
    e.loss[0] = 0;  // the first token is never predicted
    if (std::find(e.loss.begin(), e.loss.end(), 1) == e.loss.end())
      return make_error(where + ": no token to learn from within the first " + std::to_string(o.ctx) + " tokens");
    d.tokens += int64_t(e.tokens.size());
    d.examples.push_back(std::move(e));
  }
  if (d.examples.empty()) return make_error(path + ": no records");
  return d;
}

StepPlan plan_steps(const DataSet& d, int64_t batch_tokens, int64_t epochs, int64_t steps, bool shuffle,
                    uint64_t seed) {
  StepPlan p;
  const int64_t n = int64_t(d.examples.size());
  for (int64_t ep = 0; steps > 0 ? int64_t(p.steps.size()) < steps : ep < epochs; ++ep) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
    if (shuffle) {
      std::mt19937_64 rng(seed * 1000003 + uint64_t(ep));
      for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(rng() % uint64_t(i + 1))]);
    }
    std::vector<int64_t> cur;
    int64_t tok = 0;
    for (int64_t i : order) {
      const int64_t len = int64_t(d.examples[size_t(i)].tokens.size());
      if (!cur.empty() && tok + len > batch_tokens) {
        p.steps.push_back(std::move(cur));
        p.epoch_of.push_back(ep);
        cur.clear();
        tok = 0;
        if (steps > 0 && int64_t(p.steps.size()) == steps) return p;
      }
      cur.push_back(i);
      tok += len;
    }
    if (!cur.empty()) {
      p.steps.push_back(std::move(cur));
      p.epoch_of.push_back(ep);
    }
  }
  if (steps > 0 && int64_t(p.steps.size()) > steps) {
    p.steps.resize(size_t(steps));
    p.epoch_of.resize(size_t(steps));
  }
  return p;
}

std::vector<int64_t> micro_batch(const DataSet& d, const std::vector<int64_t>& step, int64_t m, int64_t n) {
  std::vector<int64_t> out;
  for (int64_t r : step)
    if ((d.holder.empty() ? r % n : d.holder[size_t(r)]) == m) out.push_back(r);
  return out;
}

Expected<std::vector<std::pair<int32_t, int64_t>>> share_mix(const std::vector<int64_t>& counts,
                                                             const std::vector<int64_t>& weights) {
  int64_t E = 0, wsum = 0;
  for (int64_t c : counts) E += c;
  for (int64_t w : weights) {
    if (w < 0) return make_error("--mix by-share: a negative share");
    wsum += w;
  }
  if (wsum == 0) return make_error("--mix by-share: every member's share is 0");
  const std::vector<int64_t> quota = split_largest_remainder(E, weights);
  for (size_t r = 0; r < counts.size(); ++r)
    if (quota[r] > 0 && counts[r] == 0)
      return make_error("--mix by-share: rank " + std::to_string(r) + " is due " + std::to_string(quota[r]) +
                        " records by its share but its --data holds none");
  std::vector<std::pair<int32_t, int64_t>> out;
  out.reserve(size_t(E));
  std::vector<int64_t> taken(counts.size(), 0);
  for (int64_t i = 0; i < E; ++i) {
    int best = -1;
    __int128 best_due = 0;
    for (size_t r = 0; r < counts.size(); ++r) {
      if (taken[r] >= quota[r]) continue;
      const __int128 due = __int128(quota[r]) * (i + 1) - __int128(E) * taken[r];
      if (best < 0 || due > best_due) best = int(r), best_due = due;
    }
    out.push_back({int32_t(best), taken[size_t(best)] % counts[size_t(best)]});
    ++taken[size_t(best)];
  }
  return out;
}

int64_t predicted_tokens(const DataSet& d, const std::vector<int64_t>& records) {
  int64_t n = 0;
  for (int64_t r : records)
    for (uint8_t l : d.examples[size_t(r)].loss) n += l;
  return n;
}

std::vector<PackedSequence> pack(const DataSet& d, const std::vector<int64_t>& records, int64_t ctx) {
  std::vector<PackedSequence> out;
  PackedSequence cur;
  for (int64_t r : records) {
    const Example& e = d.examples[size_t(r)];
    const size_t n = e.tokens.size();
    if (!cur.tokens.empty() && int64_t(cur.tokens.size() + n) > ctx) {
      out.push_back(std::move(cur));
      cur = PackedSequence{};
    }
    const int32_t s0 = int32_t(cur.tokens.size());
    for (size_t i = 0; i < n; ++i) {
      cur.tokens.push_back(e.tokens[i]);
      cur.pos.push_back(int32_t(i));
      cur.start.push_back(s0);
      cur.target.push_back(i + 1 < n && e.loss[i + 1] ? e.tokens[i + 1] : -1);
      cur.doc.push_back(e.index);
    }
  }
  if (!cur.tokens.empty()) out.push_back(std::move(cur));
  return out;
}

}  // namespace corral
