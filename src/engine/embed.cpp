#include "engine/embed.h"

#include <cmath>

namespace corral {

std::vector<int32_t> encode_for_embedding(const Tokenizer& tok, const std::string& text) {
  const Vocab& v = tok.vocab();
  EncodeOptions eo;
  eo.add_bos = v.add_bos;
  std::vector<int32_t> ids = tok.encode(text, eo);
  if (v.add_eos && v.eos >= 0 && (ids.empty() || ids.back() != v.eos)) ids.push_back(v.eos);
  return ids;
}

Expected<Pooling> parse_pooling(const std::string& s) {
  if (s == "last") return Pooling::kLast;
  if (s == "mean") return Pooling::kMean;
  if (s == "cls") return Pooling::kCls;
  return make_error("pooling '" + s + "' is not one of last, mean, cls");
}

const char* pooling_name(Pooling p) {
  switch (p) {
    case Pooling::kMean:
      return "mean";
    case Pooling::kCls:
      return "cls";
    case Pooling::kLast:
      break;
  }
  return "last";
}

Expected<EmbeddingSpec> embedding_spec_from_metadata(const Metadata& meta) {
  EmbeddingSpec s;
  const std::string key = meta.akey("pooling_type");
  if (auto t = meta.get_int(key)) {
    switch (*t) {
      case 0:  // none: a generative model; its last token sees the whole input
      case 3:
        s.pooling = Pooling::kLast;
        break;
      case 1:
        s.pooling = Pooling::kMean;
        break;
      case 2:
        s.pooling = Pooling::kCls;
        break;
      default:
        return make_error(key + " = " + std::to_string(*t) +
                          ": only 1 (mean), 2 (cls) and 3 (last) are supported");
    }
  }
  if (auto c = meta.get_bool(meta.akey("attention.causal"))) s.causal = *c;
  if (auto n = meta.get_bool("corral.embedding.normalize")) s.normalize = *n;
  return s;
}

Status override_embedding_spec(EmbeddingSpec* spec, const std::string& pooling,
                               const std::string& pooling_flag, const std::string& attention,
                               const std::string& attention_flag) {
  if (!pooling.empty()) {
    auto p = parse_pooling(pooling);
    if (!p) return make_error(pooling_flag + ": " + p.message());
    spec->pooling = *p;
  }
  if (!attention.empty()) {
    if (attention != "causal" && attention != "bidirectional")
      return make_error(attention_flag + ": '" + attention + "' is not causal or bidirectional");
    spec->causal = attention == "causal";
  }
  return Status::ok();
}

std::vector<float> pool_rows(Pooling p, const float* rows, int64_t n_rows, int64_t dim) {
  std::vector<float> out(size_t(dim), 0.f);
  if (n_rows <= 0) return out;
  if (p != Pooling::kMean) {
    const float* r = rows + (p == Pooling::kCls ? 0 : (n_rows - 1) * dim);
    out.assign(r, r + dim);
    return out;
  }
  for (int64_t d = 0; d < dim; ++d) {
    double sum = 0;
    for (int64_t i = 0; i < n_rows; ++i) sum += double(rows[i * dim + d]);
    out[size_t(d)] = float(sum / double(n_rows));
  }
  return out;
}

void finalize_embedding(std::vector<float>& v, int64_t dims, bool normalize) {
  if (dims > 0 && size_t(dims) < v.size()) v.resize(size_t(dims));
  if (!normalize) return;
  double ss = 0;
  for (float x : v) ss += double(x) * double(x);
  if (ss <= 0) return;
  const double inv = 1.0 / std::sqrt(ss);
  for (float& x : v) x = float(double(x) * inv);
}

}  // namespace corral
