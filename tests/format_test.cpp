// Model file formats: round trips, the llama.cpp-written GGUF, and hostile files of every
// kind the foundation issue lists (each must fail with one clear error, never crash).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "format/convert.h"
#include "format/gguf.h"
#include "format/hf.h"
#include "format/llama2c.h"
#include "format/quant.h"
#include "format/safetensors.h"
#include "test_util.h"

using namespace corral;
using corral::test::fixture;

namespace {

// Little GGUF builder for hand-made (and deliberately broken) files.
struct Bytes {
  std::vector<uint8_t> b;
  template <class T>
  Bytes& put(T v) {
    auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& s) {
    put(uint64_t(s.size()));
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& pad(size_t align) {
    while (b.size() % align) b.push_back(0);
    return *this;
  }
};

struct TensorSpec {
  std::string name;
  std::vector<int64_t> ne;
  uint32_t type = 0;
  uint64_t offset = 0;
};

Bytes gguf_header(uint64_t n_tensors, uint64_t n_kv) {
  Bytes x;
  x.put(kGgufMagic).put(uint32_t(3)).put(n_tensors).put(n_kv);
  return x;
}

Bytes gguf_with(const std::vector<TensorSpec>& ts, size_t data_bytes) {
  Bytes x = gguf_header(ts.size(), 1);
  x.str("general.architecture").put(uint32_t(8)).str("llama");
  for (auto& t : ts) {
    x.str(t.name).put(uint32_t(t.ne.size()));
    for (auto n : t.ne) x.put(n);
    x.put(t.type).put(t.offset);
  }
  x.pad(32);
  x.b.resize(x.b.size() + data_bytes, 0);
  return x;
}

std::string expect_error(const Bytes& x, const char* what) {
  auto r = parse_gguf(x.b.data(), x.b.size(), "hostile.gguf");
  EXPECT_FALSE(r.is_ok()) << what;
  if (!r.is_ok()) {
    EXPECT_NE(r.message().find("hostile.gguf"), std::string::npos) << r.message();
  }
  return r.is_ok() ? "" : r.message();
}

std::string write_tmp(const std::string& name, const std::vector<uint8_t>& b) {
  const std::string p = test::tmp_path(name);
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  return p;
}

}  // namespace

TEST(Gguf, HandBuiltFileParses) {
  auto x = gguf_with({{"a", {32, 2}, 0, 0}, {"b", {32}, 8, 256}}, 512);
  auto r = parse_gguf(x.b.data(), x.b.size(), "ok.gguf");
  ASSERT_TRUE(r.is_ok()) << r.message();
  EXPECT_EQ(r->tensors.size(), 2u);
  EXPECT_EQ(r->tensors[1].nbytes, 34u);
  EXPECT_EQ(r->meta.arch(), "llama");
}

TEST(Gguf, LlamaCppVocabFileLoadsWithAllMetadata) {
  auto r = load_gguf(fixture("llamacpp-vocab/ggml-vocab-llama-spm.gguf"));
  ASSERT_TRUE(r.is_ok()) << r.message();
  EXPECT_EQ(r->gguf_version, 3u);
  EXPECT_EQ(r->meta.arch(), "llama");
  EXPECT_EQ(r->meta.get_str("tokenizer.ggml.model"), "llama");
  ASSERT_NE(r->meta.get_arr("tokenizer.ggml.tokens"), nullptr);
  EXPECT_EQ(r->meta.get_arr("tokenizer.ggml.tokens")->size(), 32000u);
  EXPECT_EQ(r->meta.get_arr("tokenizer.ggml.scores")->size(), 32000u);
  EXPECT_EQ(r->meta.get_arr("tokenizer.ggml.token_type")->size(), 32000u);
  EXPECT_EQ(r->meta.get_int("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(r->meta.get_int("llama.context_length"), 4096);
  // Every key survives a rewrite unchanged.
  const std::string out = test::tmp_path("vocab_rt.gguf");
  ASSERT_TRUE(write_model_gguf(*r, out, {}).is_ok());
  auto r2 = load_gguf(out);
  ASSERT_TRUE(r2.is_ok());
  ASSERT_EQ(r2->meta.kv.size(), r->meta.kv.size());
  for (size_t i = 0; i < r->meta.kv.size(); ++i) {
    EXPECT_EQ(r2->meta.kv[i].first, r->meta.kv[i].first);
    EXPECT_EQ(r2->meta.kv[i].second.to_string(1 << 20), r->meta.kv[i].second.to_string(1 << 20));
  }
  std::remove(out.c_str());
}

TEST(Gguf, EveryValueTypeAndNestedArrays) {
  Metadata m;
  m.set("general.architecture", GgufValue::of_str("llama"));
  GgufValue v;
  const GgufType scalar[] = {GgufType::U8, GgufType::I8, GgufType::U16, GgufType::I16, GgufType::U32, GgufType::I32,
                             GgufType::F32, GgufType::BOOL, GgufType::U64, GgufType::I64, GgufType::F64};
  for (GgufType t : scalar) {
    GgufValue x;
    x.type = t;
    x.u = 1;
    x.i = -1;
    x.f = 0.5;
    m.set(std::string("t.") + gguf_type_name(t), x);
  }
  m.set("t.strs", GgufValue::of_strs({"a", "", "ccc"}));
  m.set("t.nested", GgufValue::of_array(GgufType::ARRAY, {GgufValue::of_i32s({1, 2}), GgufValue::of_i32s({3})}));
  const std::string out = test::tmp_path("types.gguf");
  ASSERT_TRUE(write_gguf(out, m, {}).is_ok());
  auto r = load_gguf(out);
  ASSERT_TRUE(r.is_ok()) << r.message();
  EXPECT_EQ(r->meta.find("t.i8")->i, -1);
  EXPECT_EQ(r->meta.find("t.f64")->f, 0.5);
  EXPECT_EQ(r->meta.find("t.bool")->u, 1u);
  EXPECT_EQ(r->meta.get_arr("t.strs")->at(2).str, "ccc");
  EXPECT_EQ(r->meta.get_arr("t.nested")->at(0).arr.at(1).i, 2);
  std::remove(out.c_str());
}

TEST(Gguf, HostileFilesFailCleanly) {
  Bytes bad_magic;
  bad_magic.put(uint32_t(0x12345678)).put(uint32_t(3)).put(uint64_t(0)).put(uint64_t(0));
  EXPECT_NE(expect_error(bad_magic, "magic").find("magic"), std::string::npos);

  Bytes v1 = gguf_header(0, 0);
  v1.b[4] = 1;
  EXPECT_NE(expect_error(v1, "version").find("version"), std::string::npos);

  EXPECT_NE(expect_error(gguf_header(uint64_t(1) << 60, 0), "2^60 tensors").find("tensor count"), std::string::npos);
  EXPECT_NE(expect_error(gguf_header(0, uint64_t(1) << 60), "2^60 kv").find("metadata count"), std::string::npos);

  Bytes huge_str = gguf_header(0, 1);
  huge_str.put(uint64_t(1) << 40);
  huge_str.b.resize(huge_str.b.size() + 64, 'x');
  EXPECT_NE(expect_error(huge_str, "2^40 string").find("runs past"), std::string::npos);

  Bytes huge_arr = gguf_header(0, 1);
  huge_arr.str("k").put(uint32_t(9)).put(uint32_t(4)).put(uint64_t(1) << 61);
  huge_arr.b.resize(huge_arr.b.size() + 64, 0);
  EXPECT_NE(expect_error(huge_arr, "2^61 array").find("'k'"), std::string::npos);

  Bytes bad_type = gguf_header(0, 1);
  bad_type.str("k").put(uint32_t(99));
  bad_type.b.resize(bad_type.b.size() + 64, 0);
  EXPECT_NE(expect_error(bad_type, "value type").find("unknown value type"), std::string::npos);

  EXPECT_NE(expect_error(gguf_with({{"t", {32}, 77, 0}}, 64), "tensor type").find("unknown tensor type"),
            std::string::npos);
  EXPECT_NE(expect_error(gguf_with({{"t", {32, 1000}, 0, 0}}, 64), "past end").find("past the end"),
            std::string::npos);
  EXPECT_NE(expect_error(gguf_with({{"t", {32}, 0, 7}}, 256), "misaligned").find("aligned"), std::string::npos);
  EXPECT_NE(expect_error(gguf_with({{"a", {32}, 0, 0}, {"b", {32}, 0, 64}}, 256), "overlap").find("overlaps"),
            std::string::npos);
  EXPECT_NE(expect_error(gguf_with({{"a", {33}, 2, 0}}, 256), "block").find("block size"), std::string::npos);
  EXPECT_NE(expect_error(gguf_with({{"a", {int64_t(1) << 40, int64_t(1) << 40}, 0, 0}}, 64), "dims").find("too large"),
            std::string::npos);
  expect_error(gguf_with({{"a", {32}, 0, 0}, {"a", {32}, 0, 128}}, 256), "duplicate name");
  expect_error(gguf_with({{"a", {32, 1, 1, 1, 1}, 0, 0}}, 256), "5 dims");
}

TEST(Gguf, EveryTruncationFailsCleanly) {
  auto x = gguf_with({{"a", {32, 2}, 1, 0}, {"b", {64}, 8, 128}}, 256);
  for (size_t n = 0; n + 1 < x.b.size(); n += (n < 200 ? 1 : 37)) {
    // Tensor data ends exactly at 128 + 68; shorter files must all be rejected.
    auto r = parse_gguf(x.b.data(), n, "trunc.gguf");
    if (n < x.b.size() - 256 + 128 + 68) {
      EXPECT_FALSE(r.is_ok()) << n;
    }
  }
}

TEST(Cli, HostileFilesExitOneWithOneErrorLine) {
  auto check = [](const std::string& path, const char* what) {
    auto r = test::run_corral("info " + path);
    EXPECT_EQ(r.status, 1) << what << ": " << r.out << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << what;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << what << ": " << r.err;
    EXPECT_NE(r.err.find(path), std::string::npos) << what;
  };
  check(write_tmp("h1.gguf", gguf_header(uint64_t(1) << 60, 0).b), "2^60 tensors");
  check(write_tmp("h2.gguf", gguf_with({{"t", {32, 1000}, 0, 0}}, 64).b), "past end");
  auto good = gguf_with({{"a", {32, 2}, 0, 0}}, 256).b;
  good.resize(good.size() / 2);
  check(write_tmp("h3.gguf", good), "truncated");
  check(write_tmp("h4.bin", {1, 2, 3}), "tiny llama2.c");
  auto r = test::run_corral("info /nonexistent/model.gguf");
  EXPECT_EQ(r.status, 1);
}

TEST(Safetensors, HostileHeadersFailCleanly) {
  auto make = [](const std::string& header, size_t data) {
    std::vector<uint8_t> b(8);
    const uint64_t n = header.size();
    std::memcpy(b.data(), &n, 8);
    b.insert(b.end(), header.begin(), header.end());
    b.resize(b.size() + data, 0);
    return b;
  };
  auto err = [](const std::vector<uint8_t>& b) {
    auto r = parse_safetensors(b.data(), b.size(), "x.safetensors");
    EXPECT_FALSE(r.is_ok());
    return r.is_ok() ? std::string() : r.message();
  };
  auto ok = make(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", 16);
  ASSERT_TRUE(parse_safetensors(ok.data(), ok.size(), "x").is_ok());
  EXPECT_NE(err(make(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,32]}})", 16)).find("run past"), std::string::npos);
  EXPECT_NE(err(make(R"({"a":{"dtype":"F32","shape":[3,2],"data_offsets":[0,16]}})", 16)).find("need"), std::string::npos);
  EXPECT_NE(err(make(R"({"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}})", 16)).find("dtype"), std::string::npos);
  EXPECT_NE(err(make(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 16)).find("overlap"), std::string::npos);
  EXPECT_NE(err(make(R"({"a": nope)", 0)).find("JSON"), std::string::npos);
  EXPECT_NE(err(make(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)).find("shape"), std::string::npos);
  std::vector<uint8_t> lie(16, 0xff);
  EXPECT_NE(err(lie).find("header length"), std::string::npos);
}

TEST(HfToGguf, SameTensorsAfterRoundTrip) {
  for (const char* name : {"llama31_gqa_f32", "llama32_tied_bf16", "llama4_moe_f32"}) {
    const std::string dir = fixture(std::string("hf/") + name);
    auto hf = load_model(dir);
    ASSERT_TRUE(hf.is_ok()) << hf.message();
    const std::string out = test::tmp_path(std::string(name) + "_rt.gguf");
    ASSERT_TRUE(write_model_gguf(*hf, out, {}).is_ok());
    auto g = load_model(out);
    ASSERT_TRUE(g.is_ok()) << g.message();
    ASSERT_EQ(g->tensors.size(), hf->tensors.size());
    for (auto& t : hf->tensors) {
      const ModelTensor* u = g->find(t.name);
      ASSERT_NE(u, nullptr) << t.name;
      EXPECT_EQ(u->ne, t.ne) << t.name;
      EXPECT_EQ(u->type, t.type) << t.name;
      EXPECT_EQ(std::memcmp(u->data, t.data, t.nbytes), 0) << t.name;
    }
    std::remove(out.c_str());
  }
}

TEST(HfToGguf, QkPermutationMatchesLlamaCppConvention) {
  // Row r of HF head h: [half s][i] -> GGUF row h*hd + 2i + s; and back.
  const int64_t heads = 2, hd = 8, rows = heads * hd;
  std::vector<float> src(static_cast<size_t>(rows)), dst(static_cast<size_t>(rows)), back(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) src[size_t(r)] = float(r);
  permute_qk_rows(reinterpret_cast<uint8_t*>(src.data()), reinterpret_cast<uint8_t*>(dst.data()), rows, heads, 4, true);
  EXPECT_EQ(dst[0], 0.f);
  EXPECT_EQ(dst[1], 4.f);   // second element of pair 0 = first row of the second half
  EXPECT_EQ(dst[2], 1.f);
  EXPECT_EQ(dst[9], 12.f);  // head 1
  permute_qk_rows(reinterpret_cast<uint8_t*>(dst.data()), reinterpret_cast<uint8_t*>(back.data()), rows, heads, 4, false);
  EXPECT_EQ(back, src);
  // And the loaded HF q tensor is the permuted safetensors data.
  auto hf = load_model(fixture("hf/llama2_mha_f32"));
  auto st = load_safetensors(fixture("hf/llama2_mha_f32"));
  ASSERT_TRUE(hf.is_ok() && st.is_ok());
  const SafeTensor* q = nullptr;
  for (auto& t : st->tensors)
    if (t.name == "model.layers.0.self_attn.q_proj.weight") q = &t;
  ASSERT_NE(q, nullptr);
  const ModelTensor* gq = hf->find("blk.0.attn_q.weight");
  const float* a = reinterpret_cast<const float*>(q->data);
  const float* b = reinterpret_cast<const float*>(gq->data);
  const int64_t in = 64, hdim = 16;
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t i = 0; i < hdim / 2; ++i)
      for (int64_t s = 0; s < 2; ++s)
        EXPECT_EQ(b[(h * hdim + 2 * i + s) * in + 3], a[(h * hdim + s * hdim / 2 + i) * in + 3]);
}

TEST(Llama2c, ReaderAndTokenizer) {
  auto m = load_model(fixture("llama2c/aidreams260K.bin"), {fixture("llama2c/tok512.bin")});
  ASSERT_TRUE(m.is_ok()) << m.message();
  EXPECT_EQ(m->meta.get_int("llama.embedding_length"), 64);
  EXPECT_EQ(m->meta.get_int("llama.block_count"), 4);
  EXPECT_EQ(m->meta.get_int("llama.vocab_size"), 512);
  EXPECT_EQ(m->meta.get_arr("tokenizer.ggml.tokens")->size(), 512u);
  EXPECT_EQ(m->find("output.weight"), nullptr);  // shared classifier
  EXPECT_EQ(m->tensors.size(), 2u + 9u * 4u);
  // Truncated checkpoints fail with the offset.
  auto mf = MappedFile::open(fixture("llama2c/aidreams260K.bin"));
  ASSERT_TRUE(mf.is_ok());
  for (size_t n : {size_t(0), size_t(10), size_t(28), size_t(1000), (*mf)->size() - 4}) {
    auto r = parse_llama2c((*mf)->data(), n, "t.bin");
    EXPECT_FALSE(r.is_ok()) << n;
  }
}

TEST(Cli, InfoAndConvertOnEveryFixture) {
  const std::vector<std::string> inputs = {
      fixture("hf/llama2_mha_f32"), fixture("hf/llama31_gqa_f32"), fixture("hf/llama32_tied_bf16"),
      fixture("hf/llama4_moe_f32"), fixture("llamacpp-vocab/ggml-vocab-llama-spm.gguf")};
  for (auto& in : inputs) {
    auto r = test::run_corral("info " + in + " --json");
    ASSERT_EQ(r.status, 0) << in << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_FALSE(j["architecture"].get<std::string>().empty());
    EXPECT_TRUE(j.contains("parameter_count"));
  }
  for (const char* t : {"f16", "q8_0", "q4_0", "q4_k", "q6_k", "bf16"}) {
    const std::string out = test::tmp_path(std::string("cv_") + t + ".gguf");
    auto r = test::run_corral("convert " + fixture("hf/llama31_gqa_f32") + " " + out + " --type " + t);
    ASSERT_EQ(r.status, 0) << r.err;
    r = test::run_corral("info " + out + " --json");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["architecture"], "llama");
    std::remove(out.c_str());
  }
  const std::string out = test::tmp_path("l2c.gguf");
  auto r = test::run_corral("convert " + fixture("llama2c/aidreams260K.bin") + " " + out + " --tokenizer " +
                            fixture("llama2c/tok512.bin"));
  ASSERT_EQ(r.status, 0) << r.err;
  r = test::run_corral("info " + out + " --json");
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokenizer"]["vocab_size"], 512);
  for (const char* t : {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"}) {
    const std::string q = test::tmp_path(std::string("qz_") + t + ".gguf");
    auto rq = test::run_corral("quantize " + out + " " + q + " " + t);
    EXPECT_EQ(rq.status, 0) << t << rq.err;
    std::remove(q.c_str());
  }
  r = test::run_corral("quantize " + out + " " + out + ".x IQ2_XXS");
  EXPECT_EQ(r.status, 1);
  std::remove(out.c_str());
}

TEST(Gguf, Version2Parses) {
  auto x = gguf_with({{"a", {32, 2}, 0, 0}}, 256);
  x.b[4] = 2;  // version field: v2 has the same layout as v3 (64-bit counts)
  auto r = parse_gguf(x.b.data(), x.b.size(), "v2.gguf");
  ASSERT_TRUE(r.is_ok()) << r.message();
  EXPECT_EQ(r->gguf_version, 2u);
  EXPECT_EQ(r->tensors.size(), 1u);
}

// A checkpoint split into shards with model.safetensors.index.json loads the same tensors.
TEST(Safetensors, ShardedCheckpointMatchesSingleFile) {
  const std::string src = fixture("hf/llama2_mha_f32");
  auto single = load_safetensors(src);
  ASSERT_TRUE(single.is_ok()) << single.message();
  const std::string dir = test::tmp_path("sharded");
  std::system(("rm -rf " + dir + " && mkdir -p " + dir + " && cp " + src + "/config.json " + dir).c_str());
  // Two shards: even-indexed tensors in the first, odd in the second.
  nlohmann::json index;
  for (int shard = 0; shard < 2; ++shard) {
    nlohmann::json header = nlohmann::json::object();
    std::vector<uint8_t> data;
    for (size_t i = shard; i < single->tensors.size(); i += 2) {
      const SafeTensor& t = single->tensors[i];
      header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.nbytes}}};
      data.insert(data.end(), t.data, t.data + t.nbytes);
      index["weight_map"][t.name] = "model-0000" + std::to_string(shard + 1) + "-of-00002.safetensors";
    }
    const std::string h = header.dump();
    std::vector<uint8_t> file(8);
    const uint64_t n = h.size();
    std::memcpy(file.data(), &n, 8);
    file.insert(file.end(), h.begin(), h.end());
    file.insert(file.end(), data.begin(), data.end());
    std::ofstream f(dir + "/model-0000" + std::to_string(shard + 1) + "-of-00002.safetensors", std::ios::binary);
    f.write(reinterpret_cast<const char*>(file.data()), std::streamsize(file.size()));
  }
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
  auto a = load_model(src), b = load_model(dir);
  ASSERT_TRUE(a.is_ok() && b.is_ok()) << b.message();
  ASSERT_EQ(a->tensors.size(), b->tensors.size());
  for (auto& t : a->tensors) {
    const ModelTensor* u = b->find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    EXPECT_EQ(std::memcmp(u->data, t.data, t.nbytes), 0) << t.name;
  }
  // An index naming a shard outside the folder is refused.
  std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map":{"x":"../evil.safetensors"}})";
  auto c = load_model(dir);
  EXPECT_FALSE(c.is_ok());
  std::system(("rm -rf " + dir).c_str());
}
