// Embedding pieces on their own: EOS appended for text inputs exactly when the tokenizer's
// config asks (the known bug of last-token models embedded without it), the metadata's pooling
// keys, and pooling/normalisation arithmetic against hand-computed values.
#include "engine/embed.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "format/tokenizer_files.h"
#include "test_util.h"

using namespace corral;
using corral::test::fixture;
using corral::test::tmp_path;

namespace {

std::unique_ptr<Tokenizer> llama3_with_config(const std::string& name, const std::string& config) {
  const std::string dir = tmp_path(name);
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(fixture("tokenizers/llama3/tokenizer.json"), dir + "/tokenizer.json",
                             std::filesystem::copy_options::overwrite_existing);
  std::ofstream(dir + "/tokenizer_config.json") << config;
  Metadata meta;
  Status st = load_tokenizer_dir_into(dir, &meta, true);
  EXPECT_TRUE(st.is_ok()) << st.message();
  auto v = vocab_from_metadata(meta, dir);
  EXPECT_TRUE(v.is_ok()) << v.message();
  auto t = Tokenizer::create(*v);
  EXPECT_TRUE(t.is_ok()) << t.message();
  return std::move(*t);
}

}  // namespace

TEST(Embed, EosAppendedOnlyWhenTheTokenizerAsks) {
  auto with = llama3_with_config(
      "emb_eos",
      R"({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "add_eos_token": true})");
  auto without = llama3_with_config(
      "emb_noeos", R"({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"})");
  const auto a = encode_for_embedding(*with, "Hello world");
  const auto b = encode_for_embedding(*without, "Hello world");
  ASSERT_EQ(a.size(), b.size() + 1);
  EXPECT_EQ(a.front(), 128000);  // BOS
  EXPECT_EQ(a.back(), 128001);   // <|end_of_text|>
  EXPECT_NE(b.back(), 128001);
  EXPECT_EQ(std::vector<int32_t>(a.begin(), a.end() - 1), b);
}

TEST(Embed, SpecFromMetadata) {
  Metadata m;
  m.set("general.architecture", GgufValue::of_str("llama"));
  auto s = embedding_spec_from_metadata(m);
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(s->pooling, Pooling::kLast);  // a generative Llama: its last token
  EXPECT_TRUE(s->causal && s->normalize);
  m.set("llama.pooling_type", GgufValue::of_u32(1));
  m.set("llama.attention.causal", GgufValue::of_bool(false));
  m.set("corral.embedding.normalize", GgufValue::of_bool(false));
  s = embedding_spec_from_metadata(m);
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(s->pooling, Pooling::kMean);
  EXPECT_FALSE(s->causal || s->normalize);
  m.set("llama.pooling_type", GgufValue::of_u32(2));
  EXPECT_EQ(embedding_spec_from_metadata(m)->pooling, Pooling::kCls);
  m.set("llama.pooling_type", GgufValue::of_u32(4));  // rank: a reranker's head, not served
  auto r = embedding_spec_from_metadata(m);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.message().find("llama.pooling_type"), std::string::npos) << r.message();
  EXPECT_FALSE(parse_pooling("max").is_ok());
}

TEST(Embed, PoolingAndNormalisation) {
  const float rows[] = {1, 2, 3, 4, 5, 6};  // 3 rows of 2
  EXPECT_EQ(pool_rows(Pooling::kMean, rows, 3, 2), (std::vector<float>{3, 4}));
  EXPECT_EQ(pool_rows(Pooling::kCls, rows, 1, 2), (std::vector<float>{1, 2}));
  EXPECT_EQ(pool_rows(Pooling::kLast, rows + 4, 1, 2), (std::vector<float>{5, 6}));
  EXPECT_TRUE(pooling_reads(Pooling::kMean, 1, 3));
  EXPECT_TRUE(pooling_reads(Pooling::kCls, 0, 3) && !pooling_reads(Pooling::kCls, 2, 3));
  EXPECT_TRUE(pooling_reads(Pooling::kLast, 2, 3) && !pooling_reads(Pooling::kLast, 0, 3));
  std::vector<float> v = {3, 4, 12};
  finalize_embedding(v, 2, true);  // Matryoshka: [3, 4] then / 5
  ASSERT_EQ(v.size(), 2u);
  EXPECT_FLOAT_EQ(v[0], 0.6f);
  EXPECT_FLOAT_EQ(v[1], 0.8f);
  std::vector<float> z = {0, 0};
  finalize_embedding(z, 0, true);  // a zero vector stays zero, no NaN
  EXPECT_EQ(z, (std::vector<float>{0, 0}));
}
