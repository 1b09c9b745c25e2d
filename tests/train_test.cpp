// Each layer's backward against central finite differences of its forward (in double over the
// float forward: loss = sum w_i y_i for random w), the adapter file formats round-tripping, and
// the data pipeline's packing and micro-batches.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "core/context.h"
#include "format/lora.h"
#include "model/layers/causal_attention.h"
#include "model/layers/lora.h"
#include "model/layers/mlp.h"
#include "model/layers/norm.h"
#include "model/layers/rope.h"
#include "test_util.h"
#include "train/data.h"
#include "train/optimizer.h"
#include "template/chat.h"
#include "tokenizer/tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>

using namespace corral;

namespace {

std::vector<float> randv(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// Checks grad (the backward's d loss / d x) against central differences of loss(x).
void expect_fd(const std::function<double(const std::vector<float>&)>& loss, std::vector<float> x,
               const std::vector<float>& grad, const char* what, float h = 1e-2f, double tol = 2e-3) {
  double worst = 0, mag = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const float x0 = x[i];
    x[i] = x0 + h;
    const double lp = loss(x);
    x[i] = x0 - h;
    const double lm = loss(x);
    x[i] = x0;
    const double fd = (lp - lm) / (2.0 * double(h));
    worst = std::max(worst, std::fabs(fd - double(grad[i])));
    mag = std::max(mag, std::fabs(fd));
  }
  EXPECT_LE(worst, tol * std::max(mag, 1e-3)) << what << ": max |fd - grad| " << worst << " of " << mag;
}

double weighted(const std::vector<float>& y, const std::vector<float>& w) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += double(y[i]) * w[i];
  return s;
}

}  // namespace

TEST(Backward, RmsNorm) {
  const int64_t n = 24;
  const auto x = randv(n, 1), g = randv(n, 2, 0.5f, 1.5f), w = randv(n, 3);
  auto f = [&](const std::vector<float>& xv) {
    std::vector<float> y(n);
    rms_norm(xv.data(), g.data(), n, 1e-5f, y.data());
    return weighted(y, w);
  };
  std::vector<float> dx(n, 0.f);
  rms_norm_backward(x.data(), g.data(), n, 1e-5f, w.data(), dx.data());
  expect_fd(f, x, dx, "rms_norm");
}

TEST(Backward, RopeWithLlama31Scaling) {
  const int64_t hd = 16, heads = 3;
  std::vector<float> div(hd / 2);
  for (int64_t i = 0; i < hd / 2; ++i) div[size_t(i)] = 1.f + float(i);
  const Rope r = Rope::make(hd, 500000.f, div, 1.f);
  const auto x = randv(hd * heads, 4), w = randv(hd * heads, 5);
  auto f = [&](const std::vector<float>& xv) {
    std::vector<float> y = xv;
    r.apply(y.data(), heads, hd, 37);
    return weighted(y, w);
  };
  std::vector<float> dx = w;
  r.apply_backward(dx.data(), heads, hd, 37);
  expect_fd(f, x, dx, "rope");
}

TEST(Backward, SwiGlu) {
  const int64_t n = 20;
  const auto gu = randv(2 * n, 6, -3.f, 3.f), w = randv(n, 7);
  auto f = [&](const std::vector<float>& v) {
    std::vector<float> a(n);
    for (int64_t i = 0; i < n; ++i) a[size_t(i)] = silu(v[size_t(i)]) * v[size_t(n + i)];
    return weighted(a, w);
  };
  std::vector<float> d(2 * n);
  Context ctx(1);
  swiglu_backward(ctx, gu.data(), gu.data() + n, w.data(), n, d.data(), d.data() + n);
  expect_fd(f, gu, d, "swiglu");
}

// The pooled, vector-exp silu_mul and swiglu_backward against the formulas with std::exp, on
// enough values to take the parallel path (and a tail piece).
TEST(Backward, SwiGluElementwiseMatchesScalarFormulas) {
  Context ctx(2);
  const int64_t n = 200003;
  const auto g = randv(n, 8, -12.f, 12.f), u = randv(n, 9), da = randv(n, 10);
  std::vector<float> a(n), dg(n), du(n);
  silu_mul(ctx, g.data(), u.data(), n, a.data());
  swiglu_backward(ctx, g.data(), u.data(), da.data(), n, dg.data(), du.data());
  for (int64_t i = 0; i < n; ++i) {
    const double x = g[size_t(i)], sg = 1.0 / (1.0 + std::exp(-x));
    const double ra = x * sg * u[size_t(i)], rdu = da[size_t(i)] * x * sg,
                 rdg = da[size_t(i)] * u[size_t(i)] * sg * (1.0 + x * (1.0 - sg));
    ASSERT_NEAR(a[size_t(i)], ra, 1e-6 * std::fabs(ra) + 1e-12) << i;
    ASSERT_NEAR(du[size_t(i)], rdu, 1e-6 * std::fabs(rdu) + 1e-12) << i;
    ASSERT_NEAR(dg[size_t(i)], rdg, 2e-6 * std::fabs(rdg) + 1e-6 * std::fabs(da[size_t(i)] * u[size_t(i)])) << i;
  }
}

TEST(Backward, CausalAttentionGqaPackedDocuments) {
  Context ctx(2);
  const DenseAttention p{4, 2, 8, 1.f / std::sqrt(8.f)};
  const int64_t T = 7, qd = p.n_head * p.hd, kvd = p.n_kv * p.hd;
  const std::vector<int32_t> start = {0, 0, 0, 3, 3, 3, 3};  // two documents
  const auto q = randv(size_t(T * qd), 8), k = randv(size_t(T * kvd), 9), v = randv(size_t(T * kvd), 10);
  const auto w = randv(size_t(T * qd), 11);
  auto run = [&](const std::vector<float>& qq, const std::vector<float>& kk, const std::vector<float>& vv,
                 std::vector<float>* out, std::vector<float>* lse) {
    out->assign(size_t(T * qd), 0.f);
    lse->assign(size_t(p.n_head * T), 0.f);
    causal_attention_forward(ctx, p, T, start.data(), qq.data(), kk.data(), vv.data(), out->data(), lse->data());
  };
  std::vector<float> out, lse;
  run(q, k, v, &out, &lse);
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  causal_attention_backward(ctx, p, T, start.data(), q.data(), k.data(), v.data(), out.data(), lse.data(), w.data(),
                            dq.data(), dk.data(), dv.data());
  std::vector<float> o2, l2;
  expect_fd([&](const std::vector<float>& x) { run(x, k, v, &o2, &l2); return weighted(o2, w); }, q, dq, "dq");
  expect_fd([&](const std::vector<float>& x) { run(q, x, v, &o2, &l2); return weighted(o2, w); }, k, dk, "dk");
  expect_fd([&](const std::vector<float>& x) { run(q, k, x, &o2, &l2); return weighted(o2, w); }, v, dv, "dv");
  // The second document does not see the first: its outputs ignore the first's keys.
  std::vector<float> k2 = k;
  for (int64_t i = 0; i < 3 * kvd; ++i) k2[size_t(i)] += 1.f;
  run(q, k2, v, &o2, &l2);
  EXPECT_EQ(std::memcmp(out.data() + 3 * qd, o2.data() + 3 * qd, size_t(4 * qd) * 4), 0);
}

TEST(Backward, Lora) {
  Context ctx(2);
  const int64_t T = 3, n_in = 10, n_out = 6, r = 2;
  const auto x = randv(size_t(T * n_in), 12), a = randv(size_t(r * n_in), 13), b = randv(size_t(n_out * r), 14);
  const auto w = randv(size_t(T * n_out), 15);
  auto fwd = [&](const std::vector<float>& xx, const std::vector<float>& aa, const std::vector<float>& bb) {
    std::vector<float> ax(size_t(T * r)), y(size_t(T * n_out), 0.f);
    lora_forward(ctx, {aa.data(), bb.data(), n_in, n_out, r, 1.5f}, xx.data(), T, ax.data(), y.data());
    return weighted(y, w);
  };
  std::vector<float> ax(size_t(T * r)), y(size_t(T * n_out), 0.f);
  const LoraView v{a.data(), b.data(), n_in, n_out, r, 1.5f};
  lora_forward(ctx, v, x.data(), T, ax.data(), y.data());
  std::vector<float> dA(a.size(), 0.f), dB(b.size(), 0.f), dx(x.size(), 0.f), dax(size_t(T * r));
  lora_backward(ctx, v, x.data(), T, ax.data(), w.data(), dA.data(), dB.data(), dx.data(), dax.data());
  expect_fd([&](const std::vector<float>& z) { return fwd(z, a, b); }, x, dx, "dx");
  expect_fd([&](const std::vector<float>& z) { return fwd(x, z, b); }, a, dA, "dA");
  expect_fd([&](const std::vector<float>& z) { return fwd(x, a, z); }, b, dB, "dB");
}

TEST(LoraFiles, GgufAndPeftRoundTrip) {
  LoraAdapter a;
  a.alpha = 12;
  a.rank = 2;
  a.n_head = 2, a.n_head_kv = 1;
  a.layers.resize(2);
  uint32_t seed = 20;
  for (int t : {int(kLoraQ), int(kLoraK), int(kLoraDown)}) {
    LoraMatrix& m = a.layers[1][size_t(t)];
    m.n_in = 8, m.n_out = t == kLoraQ ? 8 : t == kLoraK ? 4 : 8;
    m.a = randv(size_t(2 * m.n_in), seed++);
    m.b = randv(size_t(m.n_out * 2), seed++);
  }
  const std::string g = test::tmp_path("rt_adapter.gguf"), d = test::tmp_path("rt_peft");
  ASSERT_TRUE(write_lora_gguf(g, a).is_ok());
  auto back = load_lora_gguf(g);
  ASSERT_TRUE(back.is_ok()) << back.message();
  ASSERT_TRUE(write_peft(d, *back, back->n_head, back->n_head_kv).is_ok());
  auto p = load_peft(d, 2, 1);
  ASSERT_TRUE(p.is_ok()) << p.message();
  EXPECT_EQ(p->rank, 2);
  EXPECT_FLOAT_EQ(p->alpha, 12);
  for (int t = 0; t < kLoraTargets; ++t) {
    const LoraMatrix &x = a.layers[1][size_t(t)], &y = p->layers[1][size_t(t)];
    ASSERT_EQ(x.present(), y.present()) << t;
    EXPECT_EQ(x.a, y.a) << t;
    EXPECT_EQ(x.b, y.b) << t;  // q/k rows permuted out and back
  }
  // Written as PEFT, the q rows are in HF order: not the GGUF order (else the permutation is lost).
  auto raw = load_peft(d, 0, 0);
  ASSERT_TRUE(raw.is_ok());
  EXPECT_NE(raw->layers[1][kLoraQ].b, a.layers[1][kLoraQ].b);
  EXPECT_EQ(raw->layers[1][kLoraDown].b, a.layers[1][kLoraDown].b);
}

TEST(LoraFiles, HostileAdaptersAreNamedErrors) {
  LoraAdapter a;
  a.alpha = 1, a.rank = 2;
  a.layers.resize(1);
  a.layers[0][kLoraV] = {4, 4, randv(8, 1), randv(8, 2), {}};
  const std::string g = test::tmp_path("hostile_adapter.gguf");
  ASSERT_TRUE(write_lora_gguf(g, a).is_ok());
  // A model is not an adapter; shapes that do not fit a base are refused with the tensor named.
  auto st = check_lora_shapes(*load_lora_gguf(g), LoraBaseShape{{{{{4, 4}, {4, 4}, {4, 8}, {4, 4}, {4, 4}, {4, 4}, {4, 4}}}}, {0}});
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("blk.0.attn_v"), std::string::npos) << st.message();
  auto t = parse_lora_targets("q,up,bogus");
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.message().find("'bogus'"), std::string::npos);
}

// Llama 4: a MoE layer's FFN matrices are its shared expert's (ffn_*_shexp in GGUF), kept apart
// from dense FFN layers in the file and against the base.
TEST(LoraFiles, SharedExpertMatricesOfLlama4) {
  LoraAdapter a;
  a.arch = "llama4", a.alpha = 2, a.rank = 2;
  a.layers.resize(2);
  a.shexp = {0, 1};
  a.layers[0][kLoraGate] = {4, 6, randv(8, 3), randv(12, 4), {}};
  a.layers[1][kLoraGate] = {4, 5, randv(8, 5), randv(10, 6), {}};
  EXPECT_EQ(lora_tensor_name(a, 1, kLoraGate), "blk.1.ffn_gate_shexp.weight");
  EXPECT_EQ(peft_module(a, 1, kLoraGate), "feed_forward.shared_expert.gate_proj");
  EXPECT_EQ(peft_module(a, 0, kLoraGate), "feed_forward.gate_proj");
  const std::string g = test::tmp_path("llama4_adapter.gguf");
  ASSERT_TRUE(write_lora_gguf(g, a).is_ok());
  auto back = load_lora_gguf(g);
  ASSERT_TRUE(back.is_ok()) << back.message();
  EXPECT_FALSE(back->is_shexp(0));
  EXPECT_TRUE(back->is_shexp(1));
  EXPECT_EQ(back->layers[1][kLoraGate].b, a.layers[1][kLoraGate].b);
  std::array<std::array<int64_t, 2>, kLoraTargets> d0{}, d1{};
  d0[kLoraGate] = {4, 6}, d1[kLoraGate] = {4, 5};
  EXPECT_TRUE(check_lora_shapes(*back, LoraBaseShape{{d0, d1}, {0, 1}}).is_ok());
  auto st = check_lora_shapes(*back, LoraBaseShape{{d0, d1}, {0, 0}});  // layer 1 dense in this base
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("blk.1.ffn_gate_shexp"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("dense FFN"), std::string::npos) << st.message();
}

TEST(TrainData, PackingPositionsAndMicroBatches) {
  DataSet d;
  for (int i = 0; i < 5; ++i) {
    Example e;
    e.index = i;
    for (int k = 0; k < 3 + i; ++k) e.tokens.push_back(10 * i + k), e.loss.push_back(k > 0);
    d.examples.push_back(e);
  }
  const auto seqs = pack(d, {0, 1, 2}, 8);  // 3 + 4 fit in 8; 5 starts the next
  ASSERT_EQ(seqs.size(), 2u);
  EXPECT_EQ(seqs[0].pos, (std::vector<int32_t>{0, 1, 2, 0, 1, 2, 3}));
  EXPECT_EQ(seqs[0].start, (std::vector<int32_t>{0, 0, 0, 3, 3, 3, 3}));
  EXPECT_EQ(seqs[0].target, (std::vector<int32_t>{1, 2, -1, 11, 12, 13, -1}));
  EXPECT_EQ(micro_batch(DataSet{}, {7, 8, 9, 10, 11}, 1, 2), (std::vector<int64_t>{7, 9, 11}));  // record i: i mod 2
  EXPECT_EQ(predicted_tokens(d, {0, 1}), 2 + 3);
  const StepPlan p = plan_steps(d, 9, 2, 0, false, 0);
  ASSERT_EQ(p.steps.size(), 8u);  // per epoch [0, 1] (3 + 4 tokens), [2], [3], [4]
  EXPECT_EQ(p.steps[0], (std::vector<int64_t>{0, 1}));
  OptimizerConfig c;
  c.lr = 1, c.warmup = 2, c.total_steps = 6;
  EXPECT_DOUBLE_EQ(lr_at(c, 0), 0);
  EXPECT_DOUBLE_EQ(lr_at(c, 1), 0.5);
  EXPECT_DOUBLE_EQ(lr_at(c, 2), 1);
  EXPECT_NEAR(lr_at(c, 4), 0.5, 1e-12);
}

// --mix by-share worked by hand: ranks holding 4 and 2 records with shares 30% and 70% get
// quotas of 6 * 0.3 = 1.8 -> 2 and 6 * 0.7 = 4.2 -> 4 (largest remainder); rank 1 goes round its
// two records twice; each next position goes to the rank furthest behind quota * (i + 1) / 6.
TEST(TrainData, MixByShare) {
  auto mix = share_mix({4, 2}, {3000, 7000});
  ASSERT_TRUE(mix.is_ok()) << mix.message();
  using P = std::pair<int32_t, int64_t>;
  EXPECT_EQ(*mix, (std::vector<P>{{1, 0}, {0, 0}, {1, 1}, {1, 0}, {0, 1}, {1, 1}}));
  auto even = share_mix({2, 2, 2}, {1, 1, 1});  // equal shares: plain rank order
  ASSERT_TRUE(even.is_ok());
  EXPECT_EQ(*even, (std::vector<P>{{0, 0}, {1, 0}, {2, 0}, {0, 1}, {1, 1}, {2, 1}}));
  auto none = share_mix({3, 0}, {5000, 5000});
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.message().find("rank 1"), std::string::npos) << none.message();
  EXPECT_FALSE(share_mix({3, 1}, {0, 0}).is_ok());
  DataSet d;
  d.examples.resize(4);
  d.holder = {1, 0, 0, 1};  // where holder is set it decides, not i mod n
  EXPECT_EQ(micro_batch(d, {0, 1, 2, 3}, 1, 2), (std::vector<int64_t>{0, 3}));
}

// Assistant turns found in the rendering, for a template that honours add_generation_prompt (the
// built-in Llama 3 one) and for Meta's first Llama 3 template, which adds the assistant header
// after every conversation: the loss is on exactly the assistant contents and their <|eot_id|>.
TEST(TrainData, AssistantTurnsOfChatRecords) {
  auto tok = load_tokenizer(test::fixture("tokenizers/llama3/tokenizer.json"));
  ASSERT_TRUE(tok.is_ok()) << tok.message();
  std::ifstream cf(test::fixture("tokenizers/llama3/tokenizer_config.json"));
  const auto cfg = nlohmann::json::parse(cf);
  auto jinja = chat_format_from_text(cfg["chat_template"], "tokenizer_config.json", "<|begin_of_text|>", "<|eot_id|>");
  ASSERT_TRUE(jinja.is_ok()) << jinja.message();
  auto builtin = load_chat_format((*tok)->vocab(), "llama3");
  ASSERT_TRUE(builtin.is_ok()) << builtin.message();
  const std::string path = test::tmp_path("chat_records.jsonl");
  std::ofstream(path) << R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},)"
                      << R"( {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},)"
                      << R"( {"role": "assistant", "content": "Goodbye."}]})" << "\n";
  for (const ChatFormat* f : {&*jinja, &*builtin}) {
    DataOptions o;
    auto d = load_jsonl(path, tok->get(), f, 128256, o);
    ASSERT_TRUE(d.is_ok()) << f->origin << ": " << d.message();
    const Example& e = d->examples[0];
    std::vector<int32_t> learned;
    for (size_t i = 0; i < e.tokens.size(); ++i)
      if (e.loss[i]) learned.push_back(e.tokens[i]);
    EXPECT_EQ((*tok)->decode(learned, true), "Hello!<|eot_id|>Goodbye.<|eot_id|>") << f->origin;
    EXPECT_EQ(e.tokens[0], 128000) << "BOS once";
    EXPECT_NE(e.tokens[1], 128000);
  }
  std::ofstream(path) << R"({"messages": [{"role": "user", "content": "no answer"}]})" << "\n";
  auto none = load_jsonl(path, tok->get(), &*builtin, 128256, {});
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.message().find("chat_records.jsonl:1: no assistant message"), std::string::npos) << none.message();
}
