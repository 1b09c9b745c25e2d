// Batch invariance: a sequence's logits are bitwise identical whatever else is in the batch,
// however its prompt is chunked, and whether its prefix came from the prefix cache. Each weight
// type runs random mixtures of sequences (prompts of 1 to 300 tokens, random chunks, decode
// steps interleaved, some prefixes shared) against each sequence run alone in one call.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>

#include "backend/cpu/kernels.h"
#include "engine/generator.h"
#include "model/layers/lora.h"
#include "model/synth.h"
#include "train/trainer.h"
#include "test_util.h"

using namespace corral;

namespace {

std::unique_ptr<Engine> open_model(const std::string& path) {
  EngineOptions o;
  o.model_path = path;
  o.threads = 2;
  o.ctx_size = 320;
  Logger quiet;
  quiet.level = LogLevel::kError;
  auto e = open_engine(o, quiet);
  EXPECT_TRUE(e.is_ok()) << e.message();
  return e.is_ok() ? std::move(e.value()) : nullptr;
}

std::string synth(const std::string& shape, DType t) {
  const std::string out =
      test::tmp_path("inv_" + shape + "_" + std::string(type_name(t)) + ".gguf");
  SynthOptions o;
  o.shape = shape;
  o.type = t;
  o.out = out;
  o.seed = 3;
  Context ctx(2);
  ctx.log.level = LogLevel::kError;
  Status st = synth_model(o, ctx);
  EXPECT_TRUE(st.is_ok()) << st.message();
  return out;
}

struct Seq {
  std::vector<int32_t> tokens;  // prompt followed by the tokens fed as decode steps
  int64_t n_prompt = 0;
  int64_t shared_with = -1;  // starts with this earlier sequence's first blocks
};

// Positions whose logits are compared (every 5th, the last prompt position, every decode step).
bool wanted(const Seq& s, int64_t p) {
  return p % 5 == 0 || p >= s.n_prompt - 1;
}

using Logits = std::map<std::pair<int, int64_t>, std::vector<float>>;

// adapters (optional): sequence i runs through adapter i % (n + 1) - 1 (-1: the base alone), a
// sequence that shares a prefix through its source's, so that its blocks may be reused.
void check_invariance(Engine& e, uint32_t seed_base,
                      const std::vector<std::shared_ptr<const LoraAdapter>>* adapters = nullptr) {
  const int64_t V = e.model->hp.n_vocab, max_prompt = std::min<int64_t>(300, e.ctx_size - 12);
  const KvCacheConfig base{e.model->hp.n_layer, e.model->hp.n_head_kv * e.model->hp.head_dim, 16,
                           256, e.kv->type()};
  for (uint32_t round = 0; round < 2; ++round) {
    std::mt19937 rng(seed_base + round);
    std::vector<Seq> seqs(5);
    for (size_t i = 0; i < seqs.size(); ++i) {
      Seq& s = seqs[i];
      s.n_prompt = i == 0 ? 1 : int64_t(rng() % uint32_t(max_prompt)) + 1;  // one 1-token prompt
      if (i == seqs.size() - 1) s.n_prompt = max_prompt;
      if (i >= 2 && i % 2 == 0) s.shared_with = int64_t(i) - 1;  // reuses a prefix
      for (int64_t p = 0; p < s.n_prompt + 6; ++p) s.tokens.push_back(int32_t(rng() % uint32_t(V)));
      if (s.shared_with >= 0) {
        const Seq& o = seqs[size_t(s.shared_with)];
        const int64_t k = std::min<int64_t>(o.n_prompt, s.n_prompt) / 16 * 16;
        std::copy(o.tokens.begin(), o.tokens.begin() + k, s.tokens.begin());
      }
    }
    std::vector<int32_t> ad(seqs.size(), -1);
    e.scratch.adapters.clear();
    if (adapters) {
      for (auto& a : *adapters) e.scratch.adapters.push_back(a.get());
      for (size_t i = 0; i < seqs.size(); ++i)
        ad[i] = seqs[i].shared_with >= 0 ? ad[size_t(seqs[i].shared_with)]
                                         : int32_t(i % (adapters->size() + 1)) - 1;
    }
    // Alone: each sequence in one forward call, all wanted positions.
    Logits ref;
    for (size_t i = 0; i < seqs.size(); ++i) {
      PagedKvCache kv(base);
      std::vector<BatchToken> b;
      for (int64_t p = 0; p < int64_t(seqs[i].tokens.size()); ++p)
        b.push_back({1, int32_t(p), seqs[i].tokens[size_t(p)], wanted(seqs[i], p), ad[i]});
      std::vector<float> out;
      ASSERT_TRUE(e.model->forward(*e.ctx, kv, b, e.scratch, &out).is_ok());
      size_t r = 0;
      for (auto& t : b)
        if (t.logits)
          ref[{int(i), t.pos}].assign(out.begin() + long(r * V), out.begin() + long((r + 1) * V)),
              ++r;
    }
    // Mixed: random batches of random chunks; a shared sequence starts once its source is done
    // and takes the source's full blocks from the prefix cache.
    PagedKvCache kv(base);
    std::vector<int64_t> done(seqs.size(), 0);
    std::vector<bool> started(seqs.size(), false), finished(seqs.size(), false);
    int64_t cached_positions = 0;
    Logits got;
    for (int guard = 0; guard < 10000; ++guard) {
      std::vector<size_t> ready;
      for (size_t i = 0; i < seqs.size(); ++i)
        if (!finished[i] && (seqs[i].shared_with < 0 || finished[size_t(seqs[i].shared_with)]))
          ready.push_back(i);
      if (ready.empty()) break;
      std::vector<BatchToken> b;
      for (size_t i : ready) {
        if (rng() % 3 == 0 && b.size() > 0) continue;  // not in this step
        Seq& s = seqs[i];
        if (!started[i]) {
          started[i] = true;
          done[i] = kv.attach_prefix(int32_t(i + 1), s.tokens, s.n_prompt - 1, ad[i] + 1);
          cached_positions += done[i];
        }
        const int64_t left = int64_t(s.tokens.size()) - done[i];
        const int64_t n =
            done[i] >= s.n_prompt ? 1 : std::min<int64_t>(left, int64_t(rng() % 97) + 1);
        for (int64_t p = done[i]; p < done[i] + n; ++p)
          b.push_back({int32_t(i + 1), int32_t(p), s.tokens[size_t(p)], wanted(s, p), ad[i]});
        done[i] += n;
      }
      if (b.empty()) continue;
      std::shuffle(b.begin(), b.end(), rng);
      // Tokens of one sequence stay in position order (the forward pass stores K/V in order).
      std::stable_sort(b.begin(), b.end(), [](auto& x, auto& y) { return x.seq < y.seq; });
      for (auto& t : b) ASSERT_TRUE(kv.reserve(t.seq, t.pos + 1));
      std::vector<float> out;
      ASSERT_TRUE(e.model->forward(*e.ctx, kv, b, e.scratch, &out).is_ok());
      size_t r = 0;
      for (auto& t : b)
        if (t.logits)
          got[{t.seq - 1, t.pos}].assign(out.begin() + long(r * V),
                                         out.begin() + long((r + 1) * V)),
              ++r;
      for (size_t i : ready)
        if (started[i] && done[i] == int64_t(seqs[i].tokens.size()) && !finished[i]) {
          finished[i] = true;
          kv.publish(int32_t(i + 1), seqs[i].tokens, done[i], ad[i] + 1);
          kv.release(int32_t(i + 1));
        }
    }
    EXPECT_GT(cached_positions, 0) << "no prefix came from the cache";
    int64_t compared = 0;
    for (auto& [k, v] : got) {
      auto it = ref.find(k);
      ASSERT_NE(it, ref.end());
      ASSERT_EQ(std::memcmp(v.data(), it->second.data(), v.size() * 4), 0)
          << "sequence " << k.first << " position " << k.second << " differs (round " << round
          << ")";
      ++compared;
    }
    EXPECT_GT(compared, 40);
  }
  e.scratch.adapters.clear();
}

// Random adapters (B non-zero) on every projection.
std::vector<std::shared_ptr<const LoraAdapter>> random_adapters(const Engine& e, int n) {
  const LoraBaseShape shape = lora_base_shape(*e.model);
  std::vector<std::shared_ptr<const LoraAdapter>> out;
  for (int k = 0; k < n; ++k) {
    LoraAdapter a = init_adapter(shape, {0, 1, 2, 3, 4, 5, 6}, 4 + 4 * k, 8, uint64_t(k));
    std::mt19937 rng(uint32_t(100 + k));
    std::uniform_real_distribution<float> u(-0.05f, 0.05f);
    for (auto& l : a.layers)
      for (auto& m : l)
        for (float& x : m.b) x = u(rng);
    a.prepare_for_serving();
    out.push_back(std::make_shared<const LoraAdapter>(std::move(a)));
  }
  return out;
}

TEST(BatchInvariance, LoraAdaptersMixedInOneBatch) {
  // Dense Llama in two types; Llama 4 (adapters on attention and the MoE layers' shared expert).
  for (const std::string& path : {synth("tiny", DType::Q8_0), synth("tiny", DType::BF16),
                                  test::fixture("hf/llama4_moe_f32"), synth("tiny-llama4", DType::Q8_0)}) {
    SCOPED_TRACE(path);
    auto e = open_model(path);
    ASSERT_TRUE(e);
    const auto ads = random_adapters(*e, 3);
    // The adapters change the logits (else the check below could not fail).
    PagedKvCache kv({e->model->hp.n_layer, e->model->hp.n_head_kv * e->model->hp.head_dim, 16, 8, e->kv->type()});
    std::vector<float> base, with;
    ASSERT_TRUE(e->model->forward(*e->ctx, kv, {{1, 0, 42, true}}, e->scratch, &base).is_ok());
    e->scratch.adapters = {ads[0].get()};
    ASSERT_TRUE(e->model->forward(*e->ctx, kv, {{1, 0, 42, true, 0}}, e->scratch, &with).is_ok());
    e->scratch.adapters.clear();
    ASSERT_NE(std::memcmp(base.data(), with.data(), base.size() * 4), 0) << "the adapter changed nothing";
    check_invariance(*e, 71, &ads);
  }
}

TEST(BatchInvariance, F32) {
  auto e = open_model(test::fixture("hf/llama31_gqa_f32"));
  ASSERT_TRUE(e);
  check_invariance(*e, 1);
}
TEST(BatchInvariance, BF16) {
  test::ScopedEnv env("CORRAL_AMX_BF16", "0");  // the vector kernels, also on an AMX machine
  auto e = open_model(test::fixture("hf/llama32_tied_bf16"));
  ASSERT_TRUE(e);
  check_invariance(*e, 2);
}
// BF16 through the AMX tiles (the AMX table's default): every path of the type goes through them.
TEST(BatchInvariance, BF16AmxTiles) {
  if (!kernels_best().amx_bf16) GTEST_SKIP() << "no AMX-BF16 on " << kernels_isa_name();
  test::ScopedEnv env("CORRAL_AMX_BF16", "1");
  auto e = open_model(test::fixture("hf/llama32_tied_bf16"));
  ASSERT_TRUE(e);
  check_invariance(*e, 12);
}
TEST(BatchInvariance, Llama4MoeF32) {
  auto e = open_model(test::fixture("hf/llama4_moe_f32"));
  ASSERT_TRUE(e);
  check_invariance(*e, 3);
}
TEST(BatchInvariance, F16) {
  auto e = open_model(synth("tiny", DType::F16));
  ASSERT_TRUE(e);
  check_invariance(*e, 4);
}
TEST(BatchInvariance, Q8_0) {
  auto e = open_model(synth("tiny", DType::Q8_0));
  ASSERT_TRUE(e);
  check_invariance(*e, 5);
}
TEST(BatchInvariance, Q4_0) {
  auto e = open_model(synth("tiny", DType::Q4_0));
  ASSERT_TRUE(e);
  check_invariance(*e, 6);
}
TEST(BatchInvariance, Q4_K) {
  auto e = open_model(synth("tiny", DType::Q4_K));
  ASSERT_TRUE(e);
  check_invariance(*e, 7);
}
TEST(BatchInvariance, Q6_K) {
  auto e = open_model(synth("tiny", DType::Q6_K));
  ASSERT_TRUE(e);
  check_invariance(*e, 8);
}
TEST(BatchInvariance, Llama4MoeQ4_0) {
  auto e = open_model(synth("tiny-llama4", DType::Q4_0));
  ASSERT_TRUE(e);
  check_invariance(*e, 9);
}

}  // namespace
