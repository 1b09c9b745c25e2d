#include "format/tokenizer_files.h"

#include <cstring>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/mapped_file.h"
#include "format/gguf.h"

namespace corral {

using json = nlohmann::json;

namespace {

void set_spm_common(Metadata* meta, const std::vector<std::string>& tokens,
                    const std::vector<float>& scores, const std::vector<int32_t>& types) {
  meta->set("tokenizer.ggml.model", GgufValue::of_str("llama"));
  meta->set("tokenizer.ggml.tokens", GgufValue::of_strs(tokens));
  meta->set("tokenizer.ggml.scores", GgufValue::of_f32s(scores));
  meta->set("tokenizer.ggml.token_type", GgufValue::of_i32s(types));
}

int32_t spm_type_for(const std::string& piece) {
  if (piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece.back() == '>') return kTokByte;
  return kTokNormal;
}

// Minimal protobuf wire reader for sentencepiece's ModelProto.
struct Pb {
  const uint8_t* p;
  const uint8_t* end;
  bool ok = true;
  uint64_t varint() {
    uint64_t v = 0;
    for (int s = 0; s < 64; s += 7) {
      if (p >= end) { ok = false; return 0; }
      const uint8_t b = *p++;
      v |= uint64_t(b & 0x7f) << s;
      if (!(b & 0x80)) return v;
    }
    ok = false;
    return 0;
  }
  // Skips a field of the given wire type; false on malformed input.
  bool skip(uint32_t wt) {
    switch (wt) {
      case 0: varint(); return ok;
      case 1: if (end - p < 8) return ok = false; p += 8; return true;
      case 5: if (end - p < 4) return ok = false; p += 4; return true;
      case 2: {
        uint64_t n = varint();
        if (!ok || n > uint64_t(end - p)) return ok = false;
        p += n;
        return true;
      }
      default: return ok = false;
    }
  }
};

}  // namespace

Status parse_sentencepiece_model(const std::string& bytes, const std::string& name, Metadata* meta) {
  Pb pb{reinterpret_cast<const uint8_t*>(bytes.data()),
        reinterpret_cast<const uint8_t*>(bytes.data()) + bytes.size()};
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  int64_t unk = 0, bos = 1, eos = 2, pad = -1;
  bool add_dummy_prefix = true;
  auto fail = [&](const char* what) {
    return make_error(name + ": offset " +
                      std::to_string(pb.p - reinterpret_cast<const uint8_t*>(bytes.data())) +
                      ": malformed SentencePiece model (" + what + ")");
  };
  while (pb.p < pb.end) {
    const uint64_t key = pb.varint();
    if (!pb.ok) return fail("field key");
    const uint32_t field = uint32_t(key >> 3), wt = uint32_t(key & 7);
    if (wt == 2 && (field == 1 || field == 2 || field == 3)) {
      const uint64_t n = pb.varint();
      if (!pb.ok || n > uint64_t(pb.end - pb.p)) return fail("length");
      Pb sub{pb.p, pb.p + n};
      pb.p += n;
      if (field == 1) {  // SentencePiece {piece=1, score=2, type=3}
        std::string piece;
        float score = 0;
        int32_t type = 1;
        while (sub.p < sub.end) {
          const uint64_t k = sub.varint();
          const uint32_t f = uint32_t(k >> 3), w = uint32_t(k & 7);
          if (!sub.ok) return fail("piece");
          if (f == 1 && w == 2) {
            const uint64_t l = sub.varint();
            if (!sub.ok || l > uint64_t(sub.end - sub.p)) return fail("piece string");
            piece.assign(reinterpret_cast<const char*>(sub.p), l);
            sub.p += l;
          } else if (f == 2 && w == 5) {
            if (sub.end - sub.p < 4) return fail("score");
            std::memcpy(&score, sub.p, 4);
            sub.p += 4;
          } else if (f == 3 && w == 0) {
            type = int32_t(sub.varint());
          } else if (!sub.skip(w)) {
            return fail("piece field");
          }
        }
        tokens.push_back(piece);
        scores.push_back(score);
        types.push_back(type >= 1 && type <= 6 ? type : kTokNormal);
      } else if (field == 2) {  // TrainerSpec: unk_id=40, bos_id=41, eos_id=42, pad_id=43
        while (sub.p < sub.end) {
          const uint64_t k = sub.varint();
          const uint32_t f = uint32_t(k >> 3), w = uint32_t(k & 7);
          if (!sub.ok) return fail("trainer spec");
          if (w == 0 && f >= 40 && f <= 43) {
            const int64_t v = int64_t(int32_t(uint32_t(sub.varint())));
            (f == 40 ? unk : f == 41 ? bos : f == 42 ? eos : pad) = v;
          } else if (!sub.skip(w)) {
            return fail("trainer spec field");
          }
        }
      } else {  // NormalizerSpec: add_dummy_prefix=3
        while (sub.p < sub.end) {
          const uint64_t k = sub.varint();
          const uint32_t f = uint32_t(k >> 3), w = uint32_t(k & 7);
          if (!sub.ok) return fail("normalizer spec");
          if (f == 3 && w == 0) add_dummy_prefix = sub.varint() != 0;
          else if (!sub.skip(w)) return fail("normalizer spec field");
        }
      }
    } else if (!pb.skip(wt)) {
      return fail("top-level field");
    }
  }
  if (tokens.empty()) return make_error(name + ": SentencePiece model has no pieces");
  set_spm_common(meta, tokens, scores, types);
  const int64_t n = int64_t(tokens.size());
  if (unk >= 0 && unk < n) meta->set("tokenizer.ggml.unknown_token_id", GgufValue::of_u32(uint32_t(unk)));
  if (bos >= 0 && bos < n) meta->set("tokenizer.ggml.bos_token_id", GgufValue::of_u32(uint32_t(bos)));
  if (eos >= 0 && eos < n) meta->set("tokenizer.ggml.eos_token_id", GgufValue::of_u32(uint32_t(eos)));
  if (pad >= 0 && pad < n) meta->set("tokenizer.ggml.padding_token_id", GgufValue::of_u32(uint32_t(pad)));
  meta->set("tokenizer.ggml.add_bos_token", GgufValue::of_bool(true));
  meta->set("tokenizer.ggml.add_eos_token", GgufValue::of_bool(false));
  meta->set("tokenizer.ggml.add_space_prefix", GgufValue::of_bool(add_dummy_prefix));
  return Status::ok();
}

Status parse_llama2c_tokenizer(const std::string& bytes, const std::string& name,
                               int64_t vocab_size, Metadata* meta) {
  size_t pos = 0;
  auto rd = [&](void* dst, size_t n) {
    if (bytes.size() - pos < n) return false;
    std::memcpy(dst, bytes.data() + pos, n);
    pos += n;
    return true;
  };
  int32_t max_len;
  if (!rd(&max_len, 4)) return make_error(name + ": offset 0: truncated llama2.c tokenizer");
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  while (pos < bytes.size() && (vocab_size <= 0 || int64_t(tokens.size()) < vocab_size)) {
    float score;
    int32_t len;
    const size_t at = pos;
    if (!rd(&score, 4) || !rd(&len, 4))
      return make_error(name + ": offset " + std::to_string(at) + ": truncated token entry");
    if (len < 0 || size_t(len) > bytes.size() - pos)
      return make_error(name + ": offset " + std::to_string(at) + ": token length " +
                        std::to_string(len) + " runs past the end of the file");
    std::string s = bytes.substr(pos, size_t(len));
    pos += size_t(len);
    // llama2.c's export writes BOS/EOS as "\n<s>\n" and the SentencePiece space as ' '.
    if (s == "\n<s>\n") s = "<s>";
    else if (s == "\n</s>\n") s = "</s>";
    std::string piece;
    for (char c : s) piece += (c == ' ') ? std::string("\xe2\x96\x81") : std::string(1, c);
    const int64_t id = int64_t(tokens.size());
    int32_t type = spm_type_for(piece);
    if (id == 0) type = kTokUnknown;
    if (id == 1 || id == 2) type = kTokControl;
    tokens.push_back(piece);
    scores.push_back(score);
    types.push_back(type);
  }
  if (vocab_size > 0 && int64_t(tokens.size()) != vocab_size)
    return make_error(name + ": has " + std::to_string(tokens.size()) +
                      " tokens, the model's vocab_size is " + std::to_string(vocab_size));
  if (tokens.size() < 3) return make_error(name + ": too few tokens for a llama2.c tokenizer");
  set_spm_common(meta, tokens, scores, types);
  meta->set("tokenizer.ggml.unknown_token_id", GgufValue::of_u32(0));
  meta->set("tokenizer.ggml.bos_token_id", GgufValue::of_u32(1));
  meta->set("tokenizer.ggml.eos_token_id", GgufValue::of_u32(2));
  meta->set("tokenizer.ggml.add_bos_token", GgufValue::of_bool(true));
  meta->set("tokenizer.ggml.add_eos_token", GgufValue::of_bool(false));
  return Status::ok();
}

namespace {

std::string token_string(const json& v) {
  if (v.is_string()) return v;
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"];
  return "";
}

// `chat_template`: a string, or a list of {name, template} (the one named "default" is
// tokenizer.chat_template, the others tokenizer.chat_template.NAME, as llama.cpp names them).
void apply_chat_template_field(const json& cfg, const std::string& origin, Metadata* meta) {
  if (!cfg.contains("chat_template")) return;
  const json& ct = cfg["chat_template"];
  if (ct.is_string()) {
    meta->set("tokenizer.chat_template", GgufValue::of_str(ct));
  } else if (ct.is_array()) {
    for (auto& t : ct) {
      if (!t.is_object() || !t.contains("template") || !t["template"].is_string()) continue;
      std::string name = t.value("name", "default");
      meta->set(name == "default" ? "tokenizer.chat_template" : "tokenizer.chat_template." + name,
                GgufValue::of_str(t["template"]));
    }
  } else {
    return;
  }
  meta->set("corral.chat_template.source", GgufValue::of_str(origin));
}

void apply_tokenizer_config(const json& cfg, Metadata* meta,
                            const std::unordered_map<std::string, int64_t>& ids) {
  if (!cfg.is_object()) return;
  apply_chat_template_field(cfg, "tokenizer_config.json chat_template", meta);
  auto set_id = [&](const char* cfg_key, const char* meta_key) {
    if (!cfg.contains(cfg_key)) return;
    auto it = ids.find(token_string(cfg[cfg_key]));
    if (it != ids.end()) meta->set(meta_key, GgufValue::of_u32(uint32_t(it->second)));
  };
  set_id("bos_token", "tokenizer.ggml.bos_token_id");
  set_id("eos_token", "tokenizer.ggml.eos_token_id");
  set_id("unk_token", "tokenizer.ggml.unknown_token_id");
  set_id("pad_token", "tokenizer.ggml.padding_token_id");
  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean())
    meta->set("tokenizer.ggml.add_bos_token", GgufValue::of_bool(cfg["add_bos_token"]));
  if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean())
    meta->set("tokenizer.ggml.add_eos_token", GgufValue::of_bool(cfg["add_eos_token"]));
}

}  // namespace

Status parse_hf_tokenizer_json(const std::string& text, const std::string& name, Metadata* meta) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error(name + ": not valid JSON");
  if (!j.contains("model") || !j["model"].is_object() || !j["model"].contains("vocab") ||
      !j["model"]["vocab"].is_object())
    return make_error(name + ": field model.vocab: missing or not an object");
  const json& model = j["model"];
  if (model.value("type", "") != "BPE")
    return make_error(name + ": field model.type: only BPE tokenizers are supported");
  std::unordered_map<std::string, int64_t> ids;
  int64_t n = 0;
  for (auto& [tok, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > (1 << 24))
      return make_error(name + ": field model.vocab['" + tok + "']: bad id");
    ids[tok] = id.get<int64_t>();
    n = std::max(n, id.get<int64_t>() + 1);
  }
  std::vector<std::pair<int64_t, json>> added;
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (auto& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
          a["id"].get<int64_t>() < 0 || a["id"].get<int64_t>() > (1 << 24) || !a.contains("content"))
        return make_error(name + ": field added_tokens: entry needs id and content");
      added.push_back({a["id"].get<int64_t>(), a});
      n = std::max(n, a["id"].get<int64_t>() + 1);
      ids[token_string(a["content"])] = a["id"].get<int64_t>();
    }
  const bool spm = model.value("byte_fallback", false);
  std::vector<std::string> tokens(static_cast<size_t>(n));
  std::vector<int32_t> types(size_t(n), kTokUnused);
  std::vector<float> scores(size_t(n), 0.f);
  for (auto& [tok, id] : model["vocab"].items()) {
    tokens[size_t(id.get<int64_t>())] = tok;
    types[size_t(id.get<int64_t>())] = spm ? spm_type_for(tok) : kTokNormal;
    // SentencePiece pieces are ordered by score; -id preserves that order for the merges.
    scores[size_t(id.get<int64_t>())] = -float(id.get<int64_t>());
  }
  for (size_t k = 0; k < tokens.size(); ++k)
    if (types[k] == kTokUnused && tokens[k].empty()) tokens[k] = "[PAD" + std::to_string(k) + "]";
  for (auto& [id, a] : added) {
    tokens[size_t(id)] = token_string(a["content"]);
    types[size_t(id)] = a.value("special", false) ? kTokControl : kTokUserDefined;
  }
  if (spm) {
    // HF applies the merges by rank: the token each merge produces scores -rank, so the
    // score-driven SentencePiece algorithm merges in the same order.
    if (model.contains("merges") && model["merges"].is_array()) {
      std::vector<bool> seen(tokens.size(), false);
      int64_t rank = 0;
      for (auto& mg : model["merges"]) {
        std::string merged;
        if (mg.is_string()) {
          const std::string m = mg;
          const size_t sp = m.find(' ', 1);
          if (sp != std::string::npos) merged = m.substr(0, sp) + m.substr(sp + 1);
        } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
          merged = mg[0].get<std::string>() + mg[1].get<std::string>();
        }
        auto it = ids.find(merged);
        if (it != ids.end() && !seen[size_t(it->second)]) {
          seen[size_t(it->second)] = true;
          scores[size_t(it->second)] = -float(rank);
        }
        ++rank;
      }
    }
    if (model.contains("unk_token") && ids.count(token_string(model["unk_token"])))
      types[size_t(ids[token_string(model["unk_token"])])] = kTokUnknown;
    set_spm_common(meta, tokens, scores, types);
    meta->set("tokenizer.ggml.add_bos_token", GgufValue::of_bool(true));
    meta->set("tokenizer.ggml.add_eos_token", GgufValue::of_bool(false));
    if (ids.count("<s>")) meta->set("tokenizer.ggml.bos_token_id", GgufValue::of_u32(uint32_t(ids["<s>"])));
    if (ids.count("</s>")) meta->set("tokenizer.ggml.eos_token_id", GgufValue::of_u32(uint32_t(ids["</s>"])));
    if (ids.count("<unk>")) meta->set("tokenizer.ggml.unknown_token_id", GgufValue::of_u32(uint32_t(ids["<unk>"])));
    return Status::ok();
  }
  // Byte-level BPE: merges as "a b" strings or [a, b] pairs.
  std::vector<std::string> merges;
  if (model.contains("merges") && model["merges"].is_array())
    for (auto& mg : model["merges"]) {
      if (mg.is_string()) merges.push_back(mg);
      else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string())
        merges.push_back(mg[0].get<std::string>() + " " + mg[1].get<std::string>());
      else return make_error(name + ": field model.merges: bad entry");
    }
  meta->set("tokenizer.ggml.model", GgufValue::of_str("gpt2"));
  // The Llama 3 and Llama 4 pre-tokenizer regexes are recognised by content.
  std::string pre = "llama-bpe";
  const std::string dump = j.contains("pre_tokenizer") ? j["pre_tokenizer"].dump() : "";
  if (dump.find("\\\\p{Lu}") != std::string::npos || dump.find("\\p{Lu}") != std::string::npos)
    pre = "llama4";
  meta->set("tokenizer.ggml.pre", GgufValue::of_str(pre));
  meta->set("tokenizer.ggml.tokens", GgufValue::of_strs(tokens));
  meta->set("tokenizer.ggml.token_type", GgufValue::of_i32s(types));
  meta->set("tokenizer.ggml.merges", GgufValue::of_strs(merges));
  meta->set("tokenizer.ggml.ignore_merges", GgufValue::of_bool(model.value("ignore_merges", false)));
  for (const char* b : {"<|begin_of_text|>"})
    if (ids.count(b)) meta->set("tokenizer.ggml.bos_token_id", GgufValue::of_u32(uint32_t(ids[b])));
  for (const char* e : {"<|end_of_text|>"})
    if (ids.count(e)) meta->set("tokenizer.ggml.eos_token_id", GgufValue::of_u32(uint32_t(ids[e])));
  for (const char* e : {"<|eot_id|>", "<|eot|>"})
    if (ids.count(e)) meta->set("tokenizer.ggml.eot_token_id", GgufValue::of_u32(uint32_t(ids[e])));
  meta->set("tokenizer.ggml.add_bos_token", GgufValue::of_bool(true));
  meta->set("tokenizer.ggml.add_eos_token", GgufValue::of_bool(false));
  return Status::ok();
}

static Status apply_config_file(const std::string& dir, Metadata* meta) {
  const std::string cfg_path = dir + "/tokenizer_config.json";
  if (!file_exists(cfg_path)) return Status::ok();
  CORRAL_ASSIGN_OR_RETURN(std::string text, read_text_file(cfg_path));
  json cfg = json::parse(text, nullptr, false);
  if (cfg.is_discarded()) return make_error(cfg_path + ": not valid JSON");
  std::unordered_map<std::string, int64_t> ids;
  if (auto* toks = meta->get_arr("tokenizer.ggml.tokens"))
    for (size_t k = 0; k < toks->size(); ++k) ids[(*toks)[k].str] = int64_t(k);
  apply_tokenizer_config(cfg, meta, ids);
  return Status::ok();
}

// Newer transformers save the template beside tokenizer_config.json: chat_template.jinja (one
// template) or chat_template.json ({"chat_template": ...}); either takes precedence over the
// config's field, as transformers reads them.
static Status apply_chat_template_files(const std::string& dir, Metadata* meta) {
  const std::string jinja_path = dir + "/chat_template.jinja", json_path = dir + "/chat_template.json";
  if (file_exists(jinja_path)) {
    CORRAL_ASSIGN_OR_RETURN(std::string text, read_text_file(jinja_path));
    meta->set("tokenizer.chat_template", GgufValue::of_str(text));
    meta->set("corral.chat_template.source", GgufValue::of_str("chat_template.jinja"));
  } else if (file_exists(json_path)) {
    CORRAL_ASSIGN_OR_RETURN(std::string text, read_text_file(json_path));
    json cfg = json::parse(text, nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object() || !cfg.contains("chat_template"))
      return make_error(json_path + ": not a JSON object with a \"chat_template\"");
    apply_chat_template_field(cfg, "chat_template.json", meta);
  }
  return Status::ok();
}

Status load_tokenizer_dir_into(const std::string& dir, Metadata* meta, bool required) {
  // SentencePiece keeps real scores in tokenizer.model; prefer it when both exist.
  if (file_exists(dir + "/tokenizer.model")) {
    CORRAL_RETURN_IF_ERROR(load_tokenizer_into(dir + "/tokenizer.model", meta));
  } else if (file_exists(dir + "/tokenizer.json")) {
    CORRAL_RETURN_IF_ERROR(load_tokenizer_into(dir + "/tokenizer.json", meta));
  } else {
    if (required) return make_error(dir + ": no tokenizer.json or tokenizer.model");
    return Status::ok();
  }
  CORRAL_RETURN_IF_ERROR(apply_config_file(dir, meta));
  return apply_chat_template_files(dir, meta);
}

Status load_tokenizer_into(const std::string& path, Metadata* meta, int64_t vocab_size) {
  if (is_directory(path)) return load_tokenizer_dir_into(path, meta, true);
  CORRAL_ASSIGN_OR_RETURN(auto mf, MappedFile::open(path));
  const std::string bytes(reinterpret_cast<const char*>(mf->data()), mf->size());
  uint32_t magic = 0;
  if (bytes.size() >= 4) std::memcpy(&magic, bytes.data(), 4);
  if (magic == kGgufMagic) {
    CORRAL_ASSIGN_OR_RETURN(LoadedModel g, parse_gguf(mf->data(), mf->size(), path));
    bool any = false;
    for (auto& [k, v] : g.meta.kv)
      if (k.rfind("tokenizer.", 0) == 0) meta->set(k, v), any = true;
    if (!any) return make_error(path + ": GGUF has no tokenizer.* metadata");
    return Status::ok();
  }
  const auto ends_with = [&](const char* suf) {
    const size_t n = std::strlen(suf);
    return path.size() >= n && path.compare(path.size() - n, n, suf) == 0;
  };
  if (ends_with(".json")) {
    CORRAL_RETURN_IF_ERROR(parse_hf_tokenizer_json(bytes, path, meta));
    const std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
    return apply_config_file(dir, meta);
  }
  if (ends_with(".model")) return parse_sentencepiece_model(bytes, path, meta);
  // Otherwise llama2.c tokenizer.bin; a SentencePiece protobuf under another name is the fallback.
  Metadata tmp;
  Status st = parse_llama2c_tokenizer(bytes, path, vocab_size, &tmp);
  if (!st.is_ok()) {
    Metadata tmp2;
    if (parse_sentencepiece_model(bytes, path, &tmp2).is_ok()) tmp = std::move(tmp2);
    else return st;
  }
  for (auto& [k, v] : tmp.kv) meta->set(k, std::move(v));
  return Status::ok();
}

}  // namespace corral
