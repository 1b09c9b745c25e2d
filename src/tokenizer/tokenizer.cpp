#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <queue>

#include "format/tokenizer_files.h"
#include "tokenizer/pretokenize.h"

namespace corral {

namespace {

// Byte length of the UTF-8 sequence a lead byte announces (1 for invalid lead bytes).
size_t utf8_len(uint8_t c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return 4;
  return 1;
}

// Decodes one code point of a valid-looking sequence (used for the byte-level reverse map).
uint32_t decode_cp(const std::string& s, size_t* i) {
  const uint8_t c = uint8_t(s[*i]);
  const size_t n = std::min(utf8_len(c), s.size() - *i);
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (uint8_t(s[*i + k]) & 0x3F);
  *i += n;
  return cp;
}

}  // namespace

size_t utf8_complete_prefix(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose sequence is not complete yet.
  const size_t n = s.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const uint8_t c = uint8_t(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    const size_t need = utf8_len(c);
    return need > back ? n - back : n;
  }
  return n;
}

Expected<std::unique_ptr<Tokenizer>> Tokenizer::create(std::shared_ptr<Vocab> vocab) {
  std::unique_ptr<Tokenizer> t(new Tokenizer(std::move(vocab)));
  if (t->vocab_->kind == VocabKind::kBpe) {
    CORRAL_ASSIGN_OR_RETURN(t->pre_, PreTokenizer::create(t->vocab_->pre));
    for (int b = 0; b < 256; ++b) {
      const std::string& u = byte_to_unicode(uint8_t(b));
      size_t i = 0;
      t->unicode_to_byte_[decode_cp(u, &i)] = uint8_t(b);
    }
  }
  return t;
}

Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, const EncodeOptions& opts) const {
  const Vocab& v = *vocab_;
  std::vector<int32_t> out;
  if (opts.add_bos && v.bos >= 0) out.push_back(v.bos);
  // First bytes of the special tokens that may be split out, to skip most positions quickly.
  bool first_byte[256] = {};
  std::vector<int32_t> specials;
  for (int32_t id : v.special_ids)
    if (opts.parse_special || v.types[size_t(id)] == kTokUserDefined) {
      specials.push_back(id);
      first_byte[uint8_t(v.tokens[size_t(id)][0])] = true;
    }
  size_t start = 0;
  bool first = true;
  for (size_t i = 0; i < text.size() && !specials.empty(); ++i) {
    if (!first_byte[uint8_t(text[i])]) continue;
    for (int32_t id : specials) {  // longest first
      const std::string& s = v.tokens[size_t(id)];
      if (text.compare(i, s.size(), s) == 0) {
        if (i > start) encode_fragment(text.substr(start, i - start), first, &out);
        first = false;
        out.push_back(id);
        i += s.size() - 1;
        start = i + 1;
        break;
      }
    }
  }
  if (start < text.size()) encode_fragment(text.substr(start), first, &out);
  return out;
}

void Tokenizer::encode_fragment(std::string_view text, bool first, std::vector<int32_t>* out) const {
  if (vocab_->kind == VocabKind::kSpm) {
    // SentencePiece: dummy-prefix space on the first piece of text, spaces become U+2581.
    std::string s;
    s.reserve(text.size() + 8);
    if (first && vocab_->add_space_prefix) s += "\xe2\x96\x81";
    for (char c : text) {
      if (c == ' ') s += "\xe2\x96\x81";
      else s += c;
    }
    if (!vocab_->spm_word_split) {
      encode_spm(s, out);
      return;
    }
    // Word by word: a new word starts at U+2581 after any other character.
    size_t start = 0;
    for (size_t i = 3; i + 3 <= s.size(); ++i)
      if (s.compare(i, 3, "\xe2\x96\x81") == 0 && s.compare(i - 3, 3, "\xe2\x96\x81") != 0) {
        encode_spm(std::string_view(s).substr(start, i - start), out);
        start = i;
      }
    encode_spm(std::string_view(s).substr(start), out);
    return;
  }
  pre_->split(text, [&](std::string_view word) { encode_bpe_word(word, out); });
}

void Tokenizer::encode_spm(std::string_view text, std::vector<int32_t>* out) const {
  const Vocab& v = *vocab_;
  struct Sym {
    int prev, next;
    size_t off, n;
  };
  std::vector<Sym> sym;
  for (size_t off = 0; off < text.size();) {
    const size_t n = std::min(utf8_len(uint8_t(text[off])), text.size() - off);
    sym.push_back({int(sym.size()) - 1, int(sym.size()) + 1, off, n});
    off += n;
  }
  if (sym.empty()) return;
  sym.back().next = -1;
  struct Bigram {
    float score;
    int left, right;
    size_t size;
    bool operator<(const Bigram& o) const {
      return score < o.score || (score == o.score && left > o.left);
    }
  };
  std::priority_queue<Bigram> q;
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    auto it = v.token_to_id.find(text.substr(sym[size_t(l)].off, sym[size_t(l)].n + sym[size_t(r)].n));
    if (it == v.token_to_id.end()) return;
    q.push({v.scores[size_t(it->second)], l, r, sym[size_t(l)].n + sym[size_t(r)].n});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_add(int(i) - 1, int(i));
  while (!q.empty()) {
    const Bigram b = q.top();
    q.pop();
    Sym& L = sym[size_t(b.left)];
    Sym& R = sym[size_t(b.right)];
    if (L.n == 0 || R.n == 0 || L.n + R.n != b.size || L.next != b.right) continue;
    L.n += R.n;
    R.n = 0;
    L.next = R.next;
    if (R.next >= 0) sym[size_t(R.next)].prev = b.left;
    try_add(L.prev, b.left);
    try_add(b.left, L.next);
  }
  for (int i = 0; i >= 0; i = sym[size_t(i)].next) {
    const std::string_view piece = text.substr(sym[size_t(i)].off, sym[size_t(i)].n);
    auto it = v.token_to_id.find(piece);
    if (it != v.token_to_id.end()) {
      out->push_back(it->second);
      continue;
    }
    for (char c : piece) {  // byte fallback
      const int32_t id = v.byte_ids[uint8_t(c)];
      out->push_back(id >= 0 ? id : v.unk);
    }
  }
}

void Tokenizer::encode_bpe_word(std::string_view word, std::vector<int32_t>* out) const {
  const Vocab& v = *vocab_;
  std::string mapped;
  mapped.reserve(word.size() * 2);
  for (char c : word) mapped += byte_to_unicode(uint8_t(c));
  if (v.ignore_merges) {
    auto it = v.token_to_id.find(mapped);
    if (it != v.token_to_id.end()) {
      out->push_back(it->second);
      return;
    }
  }
  struct Sym {
    int prev, next;
    int32_t id;
  };
  std::vector<Sym> sym(word.size());
  for (size_t i = 0; i < word.size(); ++i)
    sym[i] = {int(i) - 1, i + 1 < word.size() ? int(i) + 1 : -1, v.byte_ids[uint8_t(word[i])]};
  struct Cand {
    int32_t rank;
    int left, right;
    int32_t lid, rid, merged;
    bool operator<(const Cand& o) const {
      return rank > o.rank || (rank == o.rank && left > o.left);
    }
  };
  std::priority_queue<Cand> q;
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const uint64_t key = (uint64_t(uint32_t(sym[size_t(l)].id)) << 32) | uint32_t(sym[size_t(r)].id);
    auto it = v.merges.find(key);
    if (it == v.merges.end()) return;
    q.push({it->second.first, l, r, sym[size_t(l)].id, sym[size_t(r)].id, it->second.second});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_add(int(i) - 1, int(i));
  while (!q.empty()) {
    const Cand c = q.top();
    q.pop();
    Sym& L = sym[size_t(c.left)];
    Sym& R = sym[size_t(c.right)];
    if (L.id != c.lid || R.id != c.rid || L.next != c.right || R.id < 0) continue;
    L.id = c.merged;
    L.next = R.next;
    R.id = -2;  // dead
    if (R.next >= 0) sym[size_t(R.next)].prev = c.left;
    try_add(L.prev, c.left);
    try_add(c.left, L.next);
  }
  for (int i = 0; i >= 0 && !sym.empty(); i = sym[size_t(i)].next)
    out->push_back(sym[size_t(i)].id);
}

std::string Tokenizer::token_bytes(int32_t id, bool render_special) const {
  const Vocab& v = *vocab_;
  if (id < 0 || id >= v.n_tokens()) return "";
  const std::string& t = v.tokens[size_t(id)];
  const int32_t type = v.types[size_t(id)];
  if (type == kTokControl || type == kTokUnknown) return render_special ? t : "";
  if (type == kTokUserDefined) return t;
  if (v.kind == VocabKind::kSpm) {
    if (type == kTokByte && t.size() == 6) return std::string(1, char(std::stoi(t.substr(3, 2), nullptr, 16)));
    std::string s;
    for (size_t i = 0; i < t.size(); ++i) {
      if (t.compare(i, 3, "\xe2\x96\x81") == 0) s += ' ', i += 2;
      else s += t[i];
    }
    return s;
  }
  std::string s;
  for (size_t i = 0; i < t.size();) {
    const uint32_t cp = decode_cp(t, &i);
    auto it = unicode_to_byte_.find(cp);
    if (it != unicode_to_byte_.end()) s += char(it->second);
  }
  return s;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string s;
  for (int32_t id : ids) s += token_bytes(id, render_special);
  if (vocab_->kind == VocabKind::kSpm && vocab_->add_space_prefix && !s.empty() && s[0] == ' ') {
    s.erase(0, 1);  // the dummy prefix SentencePiece added when encoding
  }
  return s;
}

std::string StreamDecoder::feed(int32_t id) {
  std::string piece = tok_.token_bytes(id, render_special_);
  const Vocab& v = tok_.vocab();
  if (v.kind == VocabKind::kSpm && v.add_space_prefix && prev_ == v.bos && v.bos >= 0 &&
      !piece.empty() && piece[0] == ' ')
    piece.erase(0, 1);
  prev_ = id;
  pending_ += piece;
  const size_t n = utf8_complete_prefix(pending_);
  std::string ready = pending_.substr(0, n);
  pending_.erase(0, n);
  return ready;
}

std::string StreamDecoder::flush() {
  std::string r;
  r.swap(pending_);
  return r;
}

Expected<std::unique_ptr<Tokenizer>> load_tokenizer(const std::string& path) {
  Metadata meta;
  CORRAL_RETURN_IF_ERROR(load_tokenizer_into(path, &meta));
  CORRAL_ASSIGN_OR_RETURN(auto v, vocab_from_metadata(meta, path));
  return Tokenizer::create(v);
}

}  // namespace corral
