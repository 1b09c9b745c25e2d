#include "format/gguf.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "core/checked.h"
#include "core/mapped_file.h"

namespace corral {
namespace {

// Bounds-checked little-endian cursor; every failure names the file and byte offset.
struct Cursor {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
  const std::string& name;

  Error fail(const std::string& what) const {
    return make_error(name + ": offset " + std::to_string(pos) + ": " + what);
  }
  size_t remaining() const { return size - pos; }
  template <class T>
  Status read(T* out, const char* what) {
    if (remaining() < sizeof(T)) return fail(std::string("truncated file while reading ") + what);
    std::memcpy(out, data + pos, sizeof(T));
    pos += sizeof(T);
    return Status::ok();
  }
  Status read_string(std::string* out, const char* what) {
    uint64_t len;
    CORRAL_RETURN_IF_ERROR(read(&len, what));
    if (len > remaining())
      return fail(std::string(what) + ": string length " + std::to_string(len) +
                  " runs past the end of the file");
    out->assign(reinterpret_cast<const char*>(data + pos), size_t(len));
    pos += size_t(len);
    return Status::ok();
  }
};

size_t min_value_size(GgufType t) {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::BOOL:
      return 1;
    case GgufType::U16:
    case GgufType::I16:
      return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32:
      return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64:
    case GgufType::STRING:
      return 8;
    case GgufType::ARRAY:
      return 12;
  }
  return 1;
}

Status read_value(Cursor& c, GgufType type, GgufValue* v, const std::string& key, int depth) {
  v->type = type;
  switch (type) {
    case GgufType::U8: {
      uint8_t x;
      CORRAL_RETURN_IF_ERROR(c.read(&x, key.c_str()));
      v->u = x;
      break;
    }
    case GgufType::I8: {
      int8_t x;
      CORRAL_RETURN_IF_ERROR(c.read(&x, key.c_str()));
      v->i = x;
      break;
    }
    case GgufType::U16: {
      uint16_t x;
      CORRAL_RETURN_IF_ERROR(c.read(&x, key.c_str()));
      v->u = x;
      break;
    }
    case GgufType::I16: {
      int16_t x;
      CORRAL_RETURN_IF_ERROR(c.read(&x, key.c_str()));
      v->i = x;
      break;
    }
    case GgufType::U32: {
      uint32_t x;
      CORRAL_RETURN_IF_ERROR(c.read(&x, key.c_str()));
      v->u = x;
      break;
    }
    case GgufType::I32: {
      int32_t x;
      CORRAL_RETURN_IF_ERROR(c.read(&x, key.c_str()));
      v->i = x;
      break;
    }
    case GgufType::U64: {
      uint64_t x;
      CORRAL_RETURN_IF_ERROR(c.read(&x, key.c_str()));
      v->u = x;
      break;
    }
    case GgufType::I64: {
      int64_t x;
      CORRAL_RETURN_IF_ERROR(c.read(&x, key.c_str()));
      v->i = x;
      break;
    }
    case GgufType::F32: {
      float x;
      CORRAL_RETURN_IF_ERROR(c.read(&x, key.c_str()));
      v->f = x;
      break;
    }
    case GgufType::F64: {
      double x;
      CORRAL_RETURN_IF_ERROR(c.read(&x, key.c_str()));
      v->f = x;
      break;
    }
    case GgufType::BOOL: {
      uint8_t x;
      CORRAL_RETURN_IF_ERROR(c.read(&x, key.c_str()));
      if (x > 1)
        return c.fail("key '" + key + "': bool value " + std::to_string(x) + " is not 0 or 1");
      v->u = x;
      break;
    }
    case GgufType::STRING:
      return c.read_string(&v->str, ("value of key '" + key + "'").c_str());
    case GgufType::ARRAY: {
      if (depth >= 4) return c.fail("key '" + key + "': arrays nested too deeply");
      uint32_t et;
      uint64_t n;
      CORRAL_RETURN_IF_ERROR(c.read(&et, key.c_str()));
      if (et > uint32_t(GgufType::F64))
        return c.fail("key '" + key + "': unknown array element type " + std::to_string(et));
      CORRAL_RETURN_IF_ERROR(c.read(&n, key.c_str()));
      v->elem_type = GgufType(et);
      // Reject counts the remaining bytes cannot hold before allocating anything.
      if (n > c.remaining() / min_value_size(v->elem_type))
        return c.fail("key '" + key + "': array of " + std::to_string(n) +
                      " elements runs past the end of the file");
      v->arr.resize(size_t(n));
      for (auto& item : v->arr)
        CORRAL_RETURN_IF_ERROR(read_value(c, v->elem_type, &item, key, depth + 1));
      break;
    }
    default:
      return c.fail("key '" + key + "': unknown value type " + std::to_string(uint32_t(type)));
  }
  return Status::ok();
}

}  // namespace

Expected<LoadedModel> parse_gguf(const uint8_t* data, size_t size, const std::string& name) {
  Cursor c{data, size, 0, name};
  uint32_t magic, version;
  CORRAL_RETURN_IF_ERROR(c.read(&magic, "magic"));
  if (magic != kGgufMagic) return make_error(name + ": offset 0: bad magic (not a GGUF file)");
  CORRAL_RETURN_IF_ERROR(c.read(&version, "version"));
  if (version != 2 && version != 3)
    return make_error(name + ": offset 4: unsupported GGUF version " + std::to_string(version) +
                      " (supported: 2, 3)");
  uint64_t n_tensors, n_kv;
  CORRAL_RETURN_IF_ERROR(c.read(&n_tensors, "tensor count"));
  CORRAL_RETURN_IF_ERROR(c.read(&n_kv, "metadata count"));
  // Each kv needs >= 13 bytes and each tensor info >= 24: absurd counts fail here, unallocated.
  if (n_kv > c.remaining() / 13)
    return make_error(name + ": offset 16: metadata count " + std::to_string(n_kv) +
                      " is larger than the file can hold");
  if (n_tensors > c.remaining() / 24)
    return make_error(name + ": offset 8: tensor count " + std::to_string(n_tensors) +
                      " is larger than the file can hold");

  LoadedModel m;
  m.path = name;
  m.format = "gguf";
  m.gguf_version = version;
  std::unordered_set<std::string> keys;
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key;
    CORRAL_RETURN_IF_ERROR(c.read_string(&key, "metadata key"));
    if (!keys.insert(key).second) return c.fail("duplicate metadata key '" + key + "'");
    uint32_t t;
    CORRAL_RETURN_IF_ERROR(c.read(&t, "metadata value type"));
    if (t > uint32_t(GgufType::F64))
      return c.fail("key '" + key + "': unknown value type " + std::to_string(t));
    GgufValue v;
    CORRAL_RETURN_IF_ERROR(read_value(c, GgufType(t), &v, key, 0));
    m.meta.kv.emplace_back(std::move(key), std::move(v));
  }

  uint64_t alignment = kGgufDefaultAlignment;
  if (auto* a = m.meta.find("general.alignment")) {
    if (!a->is_int() || a->as_int() <= 0 || (a->as_int() & (a->as_int() - 1)) != 0 ||
        a->as_int() > (1 << 20))
      return make_error(name + ": field general.alignment: " + a->to_string() +
                        " is not a power of two");
    alignment = uint64_t(a->as_int());
  }

  struct Info {
    uint64_t offset;
    size_t index;
  };
  std::vector<Info> infos;
  std::unordered_set<std::string> names;
  std::vector<uint64_t> offsets;
  for (uint64_t ti = 0; ti < n_tensors; ++ti) {
    ModelTensor t;
    CORRAL_RETURN_IF_ERROR(c.read_string(&t.name, "tensor name"));
    const std::string where = "tensor '" + t.name + "'";
    if (!names.insert(t.name).second) return c.fail("duplicate " + where);
    uint32_t n_dims;
    CORRAL_RETURN_IF_ERROR(c.read(&n_dims, "tensor n_dims"));
    if (n_dims < 1 || n_dims > 4)
      return c.fail(where + ": n_dims " + std::to_string(n_dims) + " (must be 1..4)");
    for (uint32_t d = 0; d < n_dims; ++d) {
      int64_t ne;
      CORRAL_RETURN_IF_ERROR(c.read(&ne, "tensor dimension"));
      t.ne.push_back(ne);
      // Element counts stay below 2^60, so byte sizes and offsets below cannot wrap either.
      const auto total = checked_extent(t.ne);
      if (!total || *total > (int64_t(1) << 60))
        return c.fail(where + ": dimension " + std::to_string(d) + " = " + std::to_string(ne) +
                      " is negative or too large");
    }
    uint32_t type;
    CORRAL_RETURN_IF_ERROR(c.read(&type, "tensor type"));
    auto tr = type_traits(type);
    if (!tr) return c.fail(where + ": unknown tensor type " + std::to_string(type));
    t.type = DType(type);
    if (t.ne[0] % tr->block_size != 0)
      return c.fail(where + ": row length " + std::to_string(t.ne[0]) +
                    " is not a multiple of the " + std::string(tr->name) + " block size");
    uint64_t offset;
    CORRAL_RETURN_IF_ERROR(c.read(&offset, "tensor offset"));
    if (offset % alignment != 0)
      return c.fail(where + ": data offset " + std::to_string(offset) + " is not aligned to " +
                    std::to_string(alignment));
    const auto nb = checked_tensor_bytes(t.type, t.ne);
    if (!nb) return c.fail(where + ": byte size overflows 64 bits");
    t.nbytes = size_t(*nb);
    offsets.push_back(offset);
    m.tensors.push_back(std::move(t));
  }
  const uint64_t data_start = (c.pos + alignment - 1) / alignment * alignment;
  const uint64_t data_size = size >= data_start ? size - data_start : 0;
  for (size_t k = 0; k < m.tensors.size(); ++k) {
    auto& t = m.tensors[k];
    if (offsets[k] > data_size || t.nbytes > data_size - offsets[k])
      return make_error(name + ": tensor '" + t.name + "': data at offset " +
                        std::to_string(data_start + offsets[k]) + " + " + std::to_string(t.nbytes) +
                        " bytes runs past the end of the file (" + std::to_string(size) +
                        " bytes)");
    t.data = data + data_start + offsets[k];
    infos.push_back({offsets[k], k});
  }
  std::sort(infos.begin(), infos.end(), [](auto& a, auto& b) { return a.offset < b.offset; });
  for (size_t k = 1; k < infos.size(); ++k) {
    auto& prev = m.tensors[infos[k - 1].index];
    const auto prev_end = checked_add<uint64_t>(infos[k - 1].offset, prev.nbytes);
    if ((!prev_end || *prev_end > infos[k].offset) && prev.nbytes > 0)
      return make_error(name + ": tensor '" + m.tensors[infos[k].index].name + "' at offset " +
                        std::to_string(data_start + infos[k].offset) + " overlaps tensor '" +
                        prev.name + "'");
  }
  return m;
}

Expected<LoadedModel> load_gguf(const std::string& path) {
  CORRAL_ASSIGN_OR_RETURN(auto mf, MappedFile::open(path));
  CORRAL_ASSIGN_OR_RETURN(LoadedModel m, parse_gguf(mf->data(), mf->size(), path));
  m.keep_alive.push_back(mf);
  return m;
}

// ---- writer ----
namespace {

struct ByteSink {
  std::vector<uint8_t> buf;
  template <class T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    buf.insert(buf.end(), p, p + sizeof(T));
  }
  void put_str(const std::string& s) {
    put(uint64_t(s.size()));
    buf.insert(buf.end(), s.begin(), s.end());
  }
  void put_value(const GgufValue& v) {
    switch (v.type) {
      case GgufType::U8:
        put(uint8_t(v.u));
        break;
      case GgufType::I8:
        put(int8_t(v.i));
        break;
      case GgufType::U16:
        put(uint16_t(v.u));
        break;
      case GgufType::I16:
        put(int16_t(v.i));
        break;
      case GgufType::U32:
        put(uint32_t(v.u));
        break;
      case GgufType::I32:
        put(int32_t(v.i));
        break;
      case GgufType::U64:
        put(uint64_t(v.u));
        break;
      case GgufType::I64:
        put(int64_t(v.i));
        break;
      case GgufType::F32:
        put(float(v.f));
        break;
      case GgufType::F64:
        put(double(v.f));
        break;
      case GgufType::BOOL:
        put(uint8_t(v.u ? 1 : 0));
        break;
      case GgufType::STRING:
        put_str(v.str);
        break;
      case GgufType::ARRAY:
        put(uint32_t(v.elem_type));
        put(uint64_t(v.arr.size()));
        for (auto& x : v.arr) put_value(x);
        break;
    }
  }
};

}  // namespace

Status write_gguf(const std::string& path, const Metadata& meta_in,
                  const std::vector<GgufWriteTensor>& tensors, const GgufWriteOptions& opts) {
  Metadata meta = meta_in;
  // corral.* keys describe where a loaded model's data came from; a written GGUF is its own source.
  std::erase_if(meta.kv, [](const auto& kv) { return kv.first.rfind("corral.", 0) == 0; });
  const uint64_t align = opts.alignment;
  if (align != kGgufDefaultAlignment)
    meta.set("general.alignment", GgufValue::of_u32(uint32_t(align)));
  ByteSink h;
  h.put(kGgufMagic);
  h.put(uint32_t(3));
  h.put(uint64_t(tensors.size()));
  h.put(uint64_t(meta.kv.size()));
  for (auto& [k, v] : meta.kv) {
    h.put_str(k);
    h.put(uint32_t(v.type));
    h.put_value(v);
  }
  uint64_t offset = 0;
  std::vector<size_t> sizes;
  size_t max_size = 0;
  for (auto& t : tensors) {
    auto tr = type_traits(t.type);
    if (!tr || t.ne.empty() || t.ne[0] % tr->block_size != 0)
      return make_error(path + ": tensor '" + t.name + "': shape does not fit type " +
                        std::string(type_name(t.type)));
    int64_t rows = 1;
    for (size_t d = 1; d < t.ne.size(); ++d) rows *= t.ne[d];
    const size_t nb = row_bytes(t.type, t.ne[0]) * size_t(rows);
    h.put_str(t.name);
    h.put(uint32_t(t.ne.size()));
    for (auto x : t.ne) h.put(int64_t(x));
    h.put(uint32_t(t.type));
    h.put(offset);
    sizes.push_back(nb);
    max_size = std::max(max_size, nb);
    offset += (nb + align - 1) / align * align;
  }
  while (h.buf.size() % align) h.buf.push_back(0);

  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return make_error(path + ": cannot open for writing");
  auto fail = [&](const std::string& msg) {
    std::fclose(f);
    std::remove(tmp.c_str());
    return make_error(path + ": " + msg);
  };
  if (std::fwrite(h.buf.data(), 1, h.buf.size(), f) != h.buf.size()) return fail("write failed");
  std::vector<uint8_t> buf(max_size + align);
  Progress prog{opts.log, "writing " + path, int64_t(tensors.size())};
  for (size_t k = 0; k < tensors.size(); ++k) {
    const size_t padded = (sizes[k] + align - 1) / align * align;
    std::memset(buf.data() + sizes[k], 0, padded - sizes[k]);
    Status st = tensors[k].fill(buf.data());
    if (!st.is_ok()) return fail("tensor '" + tensors[k].name + "': " + st.message());
    if (std::fwrite(buf.data(), 1, padded, f) != padded) return fail("write failed (disk full?)");
    prog.update(int64_t(k + 1));
  }
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    return make_error(path + ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return make_error(path + ": cannot rename from " + tmp);
  }
  return Status::ok();
}

}  // namespace corral
