#include "format/convert.h"

#include <cstring>
#include <vector>

#include "format/gguf.h"
#include "format/quant.h"

namespace corral {

DType choose_tensor_type(const ModelTensor& t, DType target, std::string* note) {
  if (t.ne.size() < 2 || t.name.find("ffn_gate_inp") != std::string::npos ||
      t.name.rfind("rope_freqs", 0) == 0)
    return DType::F32;
  auto tr = type_traits(target);
  if (t.ne[0] % tr->block_size == 0) return target;
  DType fb = t.ne[0] % 32 == 0 ? DType::Q8_0 : DType::F16;
  if (!tr->quantized) fb = target;
  if (note)
    *note = t.name + ": row length " + std::to_string(t.ne[0]) + " is not a multiple of " +
            std::to_string(tr->block_size) + ", stored as " + std::string(type_name(fb));
  return fb;
}

uint32_t file_type_for(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q4_1: return 3;
    case DType::Q8_0: return 7;
    case DType::Q5_0: return 8;
    case DType::Q5_1: return 9;
    case DType::Q2_K: return 10;
    case DType::Q3_K: return 12;
    case DType::Q4_K: return 14;
    case DType::Q5_K: return 16;
    case DType::Q6_K: return 18;
    case DType::BF16: return 32;
    default: return 0;
  }
}

Status write_model_gguf(const LoadedModel& m, const std::string& out, const ConvertOptions& opts) {
  if (m.meta.arch().empty())
    return make_error(m.path + ": field general.architecture: missing, nothing to convert");
  Metadata meta = m.meta;
  meta.erase("general.alignment");
  if (opts.type) {
    if (!can_quantize(*opts.type))
      return make_error("type " + std::string(type_name(*opts.type)) + " cannot be written");
    meta.set("general.file_type", GgufValue::of_u32(file_type_for(*opts.type)));
    if (type_traits(*opts.type)->quantized)
      meta.set("general.quantization_version", GgufValue::of_u32(2));
  }
  std::vector<GgufWriteTensor> wts;
  int n_fallback = 0;
  std::string first_note;
  for (const auto& t : m.tensors) {
    GgufWriteTensor w;
    w.name = t.name;
    w.ne = t.ne;
    std::string note;
    w.type = opts.type ? choose_tensor_type(t, *opts.type, &note) : t.type;
    if (!note.empty() && n_fallback++ == 0) first_note = note;
    RowEdit edit = opts.edit ? opts.edit(t) : RowEdit();
    if ((w.type != t.type || edit) && !can_dequantize(t.type))
      return make_error(m.path + ": tensor '" + t.name + "': cannot convert from type " +
                        std::string(type_name(t.type)));
    const ModelTensor* src = &t;
    const DType dst_type = w.type;
    w.fill = [src, dst_type, edit](uint8_t* dst) -> Status {
      if (src->type == dst_type && !edit) {
        std::memcpy(dst, src->data, src->nbytes);
        return Status::ok();
      }
      const int64_t n0 = src->ne[0], rows = src->nelements() / (n0 ? n0 : 1);
      const size_t sb = row_bytes(src->type, n0), db = row_bytes(dst_type, n0);
      std::vector<float> tmp(static_cast<size_t>(n0));
      for (int64_t r = 0; r < rows; ++r) {
        dequantize_row(src->type, src->data + size_t(r) * sb, tmp.data(), n0);
        if (edit) edit(r, tmp.data());
        quantize_row(dst_type, tmp.data(), dst + size_t(r) * db, n0);
      }
      return Status::ok();
    };
    wts.push_back(std::move(w));
  }
  if (n_fallback && opts.log)
    opts.log->info("note: " + std::to_string(n_fallback) + " tensor(s) kept a smaller block type, e.g. " + first_note);
  GgufWriteOptions wo;
  wo.log = opts.log;
  return write_gguf(out, meta, wts, wo);
}

}  // namespace corral
