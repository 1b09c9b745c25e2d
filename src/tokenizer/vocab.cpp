#include "tokenizer/vocab.h"

#include <algorithm>
#include <array>

#include "format/tokenizer_files.h"

namespace corral {

namespace {

std::string utf8_of(uint32_t cp) {
  std::string s;
  if (cp < 0x80) s += char(cp);
  else if (cp < 0x800) s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
  else s += char(0xE0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
  return s;
}

const std::array<std::string, 256>& byte_table() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool direct = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      t[size_t(b)] = utf8_of(direct ? uint32_t(b) : uint32_t(256 + n++));
    }
    return t;
  }();
  return table;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t b) { return byte_table()[b]; }

bool Vocab::is_control(int32_t id) const {
  return id >= 0 && id < n_tokens() && (types[size_t(id)] == kTokControl);
}

std::vector<int32_t> Vocab::stop_ids() const {
  std::vector<int32_t> s;
  for (int32_t id : {eos, eot})
    if (id >= 0) s.push_back(id);
  for (const char* t : {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|eot|>", "<|eom|>"}) {
    auto it = token_to_id.find(t);
    if (it != token_to_id.end() && std::find(s.begin(), s.end(), it->second) == s.end())
      s.push_back(it->second);
  }
  return s;
}

Expected<std::shared_ptr<Vocab>> vocab_from_metadata(const Metadata& meta, const std::string& where) {
  auto v = std::make_shared<Vocab>();
  const auto model = meta.get_str("tokenizer.ggml.model");
  if (!model) return make_error(where + ": has no tokenizer (tokenizer.ggml.model missing)");
  if (*model == "llama") v->kind = VocabKind::kSpm;
  else if (*model == "gpt2") v->kind = VocabKind::kBpe;
  else return make_error(where + ": field tokenizer.ggml.model: unsupported '" + *model + "'");
  const auto* toks = meta.get_arr("tokenizer.ggml.tokens");
  if (!toks || toks->empty()) return make_error(where + ": field tokenizer.ggml.tokens: missing");
  const size_t n = toks->size();
  v->tokens.reserve(n);
  for (auto& t : *toks) v->tokens.push_back(t.str);
  v->scores.assign(n, 0.f);
  v->types.assign(n, kTokNormal);
  if (auto* s = meta.get_arr("tokenizer.ggml.scores"); s && s->size() == n)
    for (size_t k = 0; k < n; ++k) v->scores[k] = float((*s)[k].as_double());
  if (auto* t = meta.get_arr("tokenizer.ggml.token_type"); t && t->size() == n)
    for (size_t k = 0; k < n; ++k) v->types[k] = int32_t((*t)[k].as_int());
  v->token_to_id.reserve(n * 2);
  for (size_t k = 0; k < n; ++k) v->token_to_id.emplace(v->tokens[k], int32_t(k));
  auto id_key = [&](const char* key, int32_t* out) {
    if (auto x = meta.get_int(std::string("tokenizer.ggml.") + key); x && *x >= 0 && *x < int64_t(n))
      *out = int32_t(*x);
  };
  id_key("bos_token_id", &v->bos);
  id_key("eos_token_id", &v->eos);
  id_key("eot_token_id", &v->eot);
  id_key("unknown_token_id", &v->unk);
  id_key("padding_token_id", &v->pad);
  v->add_bos = meta.get_bool("tokenizer.ggml.add_bos_token").value_or(true);
  v->add_eos = meta.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  v->add_space_prefix = meta.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
  v->chat_template = meta.get_str("tokenizer.chat_template").value_or("");
  v->chat_template_source = meta.get_str("corral.chat_template.source").value_or("");
  for (auto& [k, val] : meta.kv)
    if (k.rfind("tokenizer.chat_template.", 0) == 0 && val.type == GgufType::STRING)
      v->named_chat_templates.emplace_back(k.substr(24), val.str);
  v->pre = meta.get_str("tokenizer.ggml.pre").value_or("llama-bpe");
  v->ignore_merges = meta.get_bool("tokenizer.ggml.ignore_merges").value_or(v->pre == "llama-bpe");
  std::fill(std::begin(v->byte_ids), std::end(v->byte_ids), -1);
  if (v->kind == VocabKind::kSpm) {
    if (v->unk < 0) {
      auto it = v->token_to_id.find("<unk>");
      if (it != v->token_to_id.end()) v->unk = it->second;
    }
    v->spm_word_split = true;
    const std::string sp = "\xe2\x96\x81";
    for (const std::string& t : v->tokens) {
      // Find U+2581 preceded by something other than U+2581.
      for (size_t pos = t.find(sp, 1); pos != std::string::npos; pos = t.find(sp, pos + 1))
        if (pos < 3 || t.compare(pos - 3, 3, sp) != 0) {
          v->spm_word_split = false;
          break;
        }
      if (!v->spm_word_split) break;
    }
    static const char* hex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const std::string name = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
      auto it = v->token_to_id.find(name);
      if (it != v->token_to_id.end()) v->byte_ids[b] = it->second;
    }
  } else {
    for (int b = 0; b < 256; ++b) {
      auto it = v->token_to_id.find(byte_to_unicode(uint8_t(b)));
      if (it != v->token_to_id.end()) v->byte_ids[b] = it->second;
    }
    const auto* merges = meta.get_arr("tokenizer.ggml.merges");
    if (!merges) return make_error(where + ": field tokenizer.ggml.merges: missing");
    v->merges.reserve(merges->size() * 2);
    for (size_t r = 0; r < merges->size(); ++r) {
      const std::string& m = (*merges)[r].str;
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) continue;
      auto a = v->token_to_id.find(m.substr(0, sp));
      auto b = v->token_to_id.find(m.substr(sp + 1));
      auto c = v->token_to_id.find(m.substr(0, sp) + m.substr(sp + 1));
      if (a == v->token_to_id.end() || b == v->token_to_id.end() || c == v->token_to_id.end())
        continue;
      const uint64_t key = (uint64_t(uint32_t(a->second)) << 32) | uint32_t(b->second);
      v->merges.emplace(key, std::make_pair(int32_t(r), c->second));
    }
  }
  for (size_t k = 0; k < n; ++k)
    if ((v->types[k] == kTokControl || v->types[k] == kTokUserDefined) && !v->tokens[k].empty())
      v->special_ids.push_back(int32_t(k));
  std::stable_sort(v->special_ids.begin(), v->special_ids.end(), [&](int32_t a, int32_t b) {
    return v->tokens[size_t(a)].size() > v->tokens[size_t(b)].size();
  });
  return v;
}

}  // namespace corral
