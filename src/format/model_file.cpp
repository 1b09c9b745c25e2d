#include "format/model_file.h"

#include <cstring>

#include "core/mapped_file.h"
#include "format/gguf.h"
#include "format/hf.h"
#include "format/llama2c.h"
#include "format/tokenizer_files.h"

namespace corral {

TensorView ModelTensor::view() const {
  TensorView v;
  v.data = data;
  v.type = type;
  v.n_dims = int(ne.size());
  for (size_t i = 0; i < ne.size() && i < 4; ++i) v.ne[i] = ne[i];
  return v;
}

const ModelTensor* LoadedModel::find(const std::string& name) const {
  for (auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

uint8_t* LoadedModel::alloc(size_t n) {
  std::shared_ptr<uint8_t[]> buf(new uint8_t[n + 64]);
  keep_alive.push_back(std::shared_ptr<void>(buf, buf.get()));
  return buf.get();
}

Expected<LoadedModel> load_model(const std::string& path, const LoadOptions& opts) {
  Expected<LoadedModel> m = make_error("");
  if (is_directory(path)) {
    m = load_hf(path);
  } else {
    if (!file_exists(path)) return make_error(path + ": no such file or directory");
    CORRAL_ASSIGN_OR_RETURN(auto mf, MappedFile::open(path));
    uint32_t magic = 0;
    if (mf->size() >= 4) std::memcpy(&magic, mf->data(), 4);
    if (magic == kGgufMagic) {
      m = parse_gguf(mf->data(), mf->size(), path);
    } else if (path.size() > 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0) {
      return make_error(path + ": a lone .safetensors file needs its folder (with config.json)");
    } else {
      m = parse_llama2c(mf->data(), mf->size(), path);
    }
    if (m.is_ok()) m->keep_alive.push_back(mf);
  }
  if (!m.is_ok()) return m;
  if (!opts.tokenizer_path.empty()) {
    const int64_t nv = m->meta.get_int(m->meta.akey("vocab_size")).value_or(0);
    CORRAL_RETURN_IF_ERROR(load_tokenizer_into(opts.tokenizer_path, &m->meta, nv));
  }
  return m;
}

}  // namespace corral
