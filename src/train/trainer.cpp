#include "train/trainer.h"

#include <malloc.h>
#include <climits>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <random>

#include "core/context.h"
#include "model/model.h"
#include "template/chat.h"
#include "tokenizer/tokenizer.h"
#include "train/backprop.h"
#include "train/checkpoint.h"
#include "train/collective.h"
#include "train/data.h"
#include "train/ranks.h"

namespace corral {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

void add_into(LoraAdapter& to, LoraAdapter& from) {
  auto a = adapter_tensors(to), b = adapter_tensors(from);
  for (size_t k = 0; k < a.size(); ++k)
    for (size_t i = 0; i < a[k]->size(); ++i) (*a[k])[i] += (*b[k])[i];
}

int64_t cpu_us_now() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return int64_t(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}

// Package energy from RAPL (/sys/class/powercap/intel-rapl:N/energy_uj), summed over packages;
// -1 where the machine does not expose it (or it is not readable).
int64_t rapl_energy_uj() {
  int64_t sum = -1;
  for (int pkg = 0; pkg < 16; ++pkg) {
    std::ifstream f("/sys/class/powercap/intel-rapl:" + std::to_string(pkg) + "/energy_uj");
    int64_t v = 0;
    if (!(f >> v)) break;
    sum = (sum < 0 ? 0 : sum) + v;
  }
  return sum;
}

// A micro-batch's gradients as one buffer (for the allgather) and back, added in.
std::vector<float> flatten(LoraAdapter& g) {
  std::vector<float> out;
  for (auto* t : adapter_tensors(g)) out.insert(out.end(), t->begin(), t->end());
  return out;
}
void add_flat(LoraAdapter& to, const float* flat) {
  size_t off = 0;
  for (auto* t : adapter_tensors(to))
    for (size_t i = 0; i < t->size(); ++i) (*t)[i] += flat[off++];
}

struct RankStats {  // one rank's micro-batch, gathered in rank order
  double loss_sum = 0, flops = 0;
  int64_t predicted = 0, correct = 0, tokens = 0;
};

std::string fmt_time(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char b[32];
  const long t = long(s + 0.5);
  if (t >= 3600)
    std::snprintf(b, sizeof b, "%ldh%02ldm", t / 3600, t / 60 % 60);
  else
    std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
  return b;
}

// What the run computes, so a resume with other data or options is refused.
std::string digest_of(const TrainOptions& o, const StepPlan& p, const DataSet& d, bool data_parallel) {
  uint64_t h = 1469598103934665603ull;
  auto add = [&](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
  for (auto& s : p.steps) {
    add(s.size());
    for (int64_t r : s) add(uint64_t(r));
  }
  // Data-parallel ranks hold only their own tokens: their digest (the same on every rank, so any
  // rank resumes from the checkpoint rank 0 wrote) covers every record's shape instead.
  for (auto& e : d.examples) {
    if (data_parallel) {
      uint64_t pred = 0;
      for (uint8_t l : e.loss) pred += l;
      add(e.tokens.size());
      add(pred);
    } else {
      for (int32_t t : e.tokens) add(uint32_t(t));
    }
  }
  add(uint64_t(o.rank));
  add(o.mix == "by-share");
  add(uint64_t(o.grad_accum));
  add(uint64_t(o.ctx));
  add(o.seed);
  char b[20];
  std::snprintf(b, sizeof b, "%016llx", (unsigned long long)h);
  return b;
}

}  // namespace

LoraAdapter init_adapter(const LoraBaseShape& base, const std::vector<int>& targets, int64_t rank, float alpha,
                         uint64_t seed) {
  const int64_t n_layer = int64_t(base.dims.size());
  LoraAdapter a;
  a.rank = rank;
  a.alpha = alpha;
  a.shexp = base.shexp;
  a.layers.resize(size_t(n_layer));
  std::mt19937_64 rng(seed ^ 0x10CA1ull);
  for (int64_t l = 0; l < n_layer; ++l)
    for (int t : targets) {
      LoraMatrix& m = a.layers[size_t(l)][size_t(t)];
      m.n_in = base.dims[size_t(l)][size_t(t)][0];
      m.n_out = base.dims[size_t(l)][size_t(t)][1];
      const double bound = 1.0 / std::sqrt(double(m.n_in));
      std::uniform_real_distribution<double> u(-bound, bound);
      m.a.resize(size_t(rank * m.n_in));
      for (float& x : m.a) x = float(u(rng));
      m.b.assign(size_t(m.n_out * rank), 0.f);
    }
  return a;
}

Status run_training(Context& ctx, const Model& m, const Tokenizer* tok, const ChatFormat* chat,
                    const TrainOptions& o, const Logger& log) {
  if (o.grad_accum < 1) return make_error("--grad-accum: must be at least 1");
  if (o.ctx < 2) return make_error("--ctx: must be at least 2");
  if (o.batch_tokens < 1) return make_error("--batch-tokens: must be positive");
  if (o.rank < 1) return make_error("--rank: must be positive");
  if (o.dropout < 0 || o.dropout >= 1) return make_error("--dropout: must be in [0, 1)");
  if (o.opt.kind != "adamw" && o.opt.kind != "sgd")
    return make_error("--optimizer: '" + o.opt.kind + "' (choose adamw or sgd)");
  if (o.opt.schedule != "cosine" && o.opt.schedule != "linear" && o.opt.schedule != "constant")
    return make_error("--schedule: '" + o.opt.schedule + "' (choose cosine, linear or constant)");
  // Each layer's activations and gradients are allocated and freed per sequence; above glibc's
  // default threshold they would be fresh mmaps each time, every page faulted in and zeroed by
  // the kernel again (measured: a third of a step on the 1B shape). Keep them in the heap.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
  const double t0 = now_s();
  log.info("preparing the base for training (transposed copies for the backward pass)");
  CORRAL_ASSIGN_OR_RETURN(auto base, prepare_train_base(m, ctx.pool.get()));
  DataOptions dop;
  dop.ctx = o.ctx;
  dop.train_on_prompt = o.train_on_prompt;
  CORRAL_ASSIGN_OR_RETURN(DataSet data, load_jsonl(o.data, tok, chat, m.hp.n_vocab, dop));
  DataSet val;
  if (!o.val.empty()) {
    CORRAL_ASSIGN_OR_RETURN(val, load_jsonl(o.val, tok, chat, m.hp.n_vocab, dop));
  }
  Collective single;
  Collective& coll = o.coll ? *o.coll : single;
  const int n_ranks = coll.size(), my_rank = coll.rank();
  if (o.mix != "interleave" && o.mix != "by-share")
    return make_error("--mix: '" + o.mix + "' (choose interleave or by-share)");
  // A checkpoint of a data-parallel job keeps its layout: the job may resume with fewer ranks
  // (those that remain), each standing for its member's slot; the absent slots' micro-batches
  // are skipped and each step's loss is normalised over the present ranks' predicted tokens.
  std::optional<Checkpoint> resumed;
  if (!o.resume_dir.empty() && n_ranks > 1) {
    // Rank 0's newest checkpoint, sent to every rank: the other ranks' machines need not hold it.
    std::vector<uint8_t> sent;
    if (my_rank == 0) {
      auto p = pack_latest_checkpoint(o.resume_dir);
      const std::string err = p.is_ok() ? "" : p.message();
      sent.push_back(p.is_ok() ? 1 : 0);
      if (p.is_ok()) sent.insert(sent.end(), p->begin(), p->end());
      else sent.insert(sent.end(), err.begin(), err.end());
    }
    std::vector<std::vector<uint8_t>> all;
    CORRAL_RETURN_IF_ERROR(coll.allgather_v(sent, &all));
    std::vector<uint8_t>& got = all[0];
    if (got.empty() || got[0] != 1)
      return make_error(got.empty() ? "rank 0 sent no checkpoint" : std::string(got.begin() + 1, got.end()));
    got.erase(got.begin());
    CORRAL_ASSIGN_OR_RETURN(Checkpoint c, unpack_checkpoint(got));
    resumed = std::move(c);
  } else if (!o.resume_dir.empty()) {
    CORRAL_ASSIGN_OR_RETURN(Checkpoint c, load_latest_checkpoint(o.resume_dir));
    resumed = std::move(c);
  }
  RankLayout layout;
  bool reduced = false;
  if (resumed && resumed->state.contains("layout")) {
    CORRAL_ASSIGN_OR_RETURN(layout, RankLayout::from_json(resumed->state["layout"]));
    reduced = int64_t(layout.slots.size()) != n_ranks;
    if (int64_t(layout.slots.size()) < n_ranks)
      return make_error("--resume " + o.resume_dir + ": its job ran on " + std::to_string(layout.slots.size()) +
                        " ranks; at most that many can resume it, not " + std::to_string(n_ranks));
  }
  const int n_slots = reduced ? int(layout.slots.size()) : n_ranks;
  const bool data_parallel = n_slots > 1;
  if (data_parallel && o.grad_accum != 1)
    return make_error("--grad-accum: in a job over several ranks the ranks are the micro-batches (leave it 1)");
  std::vector<std::string> members;  // every rank's member name, for the log
  if (n_ranks > 1) {
    std::vector<std::vector<uint8_t>> names;
    CORRAL_RETURN_IF_ERROR(coll.allgather_v(std::vector<uint8_t>(o.member.begin(), o.member.end()), &names));
    for (int r = 0; r < n_ranks; ++r) {
      std::string nm(names[size_t(r)].begin(), names[size_t(r)].end());
      members.push_back(nm.empty() ? "rank" + std::to_string(r) : nm);
    }
  } else if (reduced) {
    members.push_back(o.member.empty() ? "rank0" : o.member);
  }
  int my_slot = my_rank;
  std::vector<bool> present(size_t(n_slots), true);
  if (reduced) {
    CORRAL_ASSIGN_OR_RETURN(auto slot_of, assign_slots(layout, members));
    my_slot = slot_of[size_t(my_rank)];
    present.assign(size_t(n_slots), false);
    for (int s : slot_of) present[size_t(s)] = true;
    std::string absent;
    for (int s = 0; s < n_slots; ++s)
      if (!present[size_t(s)]) absent += (absent.empty() ? "" : ", ") + layout.slots[size_t(s)] + " (rank " + std::to_string(s) + ")";
    CORRAL_ASSIGN_OR_RETURN(data, rebuild_from_layout(layout, my_slot, data));
    log.info("resuming a job of " + std::to_string(n_slots) + " ranks with " + std::to_string(n_ranks) +
             ": the micro-batches of " + absent + " are skipped, each step's loss normalised over the "
             "present ranks' tokens");
  } else if (n_ranks > 1) {
    std::vector<int64_t> weights;
    if (o.mix == "by-share") {
      // A member's share, split evenly among its ranks: weight = share * L / its rank count.
      CORRAL_ASSIGN_OR_RETURN(auto bp, coll.gather_values(o.mix_share_bp));
      std::map<std::string, int64_t> ranks_of;
      for (auto& nm : members) ++ranks_of[nm];
      int64_t L = 1;
      for (auto& [_, k] : ranks_of) L = std::lcm(L, k);
      for (int r = 0; r < n_ranks; ++r) weights.push_back(bp[size_t(r)] * (L / ranks_of[members[size_t(r)]]));
    }
    layout.slots = members;
    CORRAL_ASSIGN_OR_RETURN(data, combine_ranks(coll, data, weights.empty() ? nullptr : &weights, &layout));
    int64_t held = 0;
    for (int32_t h : data.holder) held += h == my_rank;
    log.info("rank " + std::to_string(my_rank) + " of " + std::to_string(n_ranks) + ": " +
             std::to_string(held) + " of the " + std::to_string(data.examples.size()) + " records" +
             (o.mix == "by-share" ? " (mixed by the members' shares)" : ""));
  } else if (o.mix == "by-share") {
    return make_error("--mix by-share: mixes the members' data in a job over several ranks (mpirun)");
  }
  const bool lead = my_rank == 0;  // writes the log, checkpoints and the adapter
  if (data.truncated) log.info("notice: " + std::to_string(data.truncated) + " records cut to --ctx " + std::to_string(o.ctx) + " tokens");
  const int64_t epochs = o.steps > 0 ? 0 : std::max<int64_t>(1, o.epochs);
  const StepPlan plan = plan_steps(data, o.batch_tokens, epochs, o.steps, o.shuffle, o.seed);
  OptimizerConfig oc = o.opt;
  oc.total_steps = int64_t(plan.steps.size());
  const std::string digest = digest_of(o, plan, data, data_parallel);

  LoraAdapter ad;
  OptimizerState st;
  int64_t start = 0;
  if (resumed) {
    Checkpoint& c = *resumed;
    if (c.state.value("digest", std::string()) != digest)
      return make_error("--resume " + o.resume_dir + ": its checkpoint is of another run (other data, "
                        "--rank, --grad-accum, --ctx or --seed)");
    ad = std::move(c.adapter);
    st = std::move(c.opt);
    start = c.step;
    log.info("resuming from " + o.resume_dir + "/step-" + std::to_string(start));
  } else if (!o.init_adapter.empty()) {
    CORRAL_ASSIGN_OR_RETURN(ad, load_lora_gguf(o.init_adapter));
  } else {
    ad = init_adapter(base->shape(), o.targets, o.rank, o.alpha, o.seed);
  }
  ad.arch = m.hp.arch;
  ad.n_head = m.hp.n_head, ad.n_head_kv = m.hp.n_head_kv;
  if (ad.base_name.empty()) ad.base_name = m.file.meta.get_str("general.name").value_or("");
  CORRAL_RETURN_IF_ERROR(check_lora_shapes(ad, base->shape()));
  if (int64_t(ad.layers.size()) < m.hp.n_layer) ad.layers.resize(size_t(m.hp.n_layer));

  // Activations of a full --ctx sequence past 8 GiB: recompute each layer's in the backward.
  const size_t act = layer_activation_bytes(m.hp, ad, o.ctx, o.dropout > 0) * size_t(m.hp.n_layer);
  const bool recompute = o.recompute == "on" || (o.recompute == "auto" && act > (size_t(8) << 30));
  log.info("training " + std::to_string(ad.n_params()) + " LoRA parameters (rank " + std::to_string(ad.rank) +
           ") on " + std::to_string(data.examples.size()) + " records, " + std::to_string(plan.steps.size()) +
           " steps" + (recompute ? ", recomputing activations" : "") + "; ready in " +
           std::to_string(int(now_s() - t0)) + " s");

  std::ofstream logf;
  if (lead && !o.log_path.empty() && start > 0) {
    // A resumed run: lines of steps past the checkpoint (done before the kill) are written again.
    std::ifstream in(o.log_path);
    std::string kept, line;
    while (std::getline(in, line)) {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() <= start)
        kept += line + "\n";
    }
    std::ofstream(o.log_path, std::ios::trunc) << kept;
  }
  if (lead && !o.log_path.empty()) {
    logf.open(o.log_path, start > 0 ? std::ios::app : std::ios::trunc);
    if (!logf) return make_error("--log " + o.log_path + ": cannot open for writing");
  }
  const bool bar = lead && o.progress && isatty(2);
  // Compute given in kind: what this process ran since the last report.
  // From the process's start (loading the base and the data are part of the job's compute).
  int64_t rep_cpu = 0, rep_energy = rapl_energy_uj();
  double rep_flops = 0, rep_tokens = 0;
  auto report = [&](bool final) -> Status {
    if (!o.on_compute) return Status::ok();
    ComputeReport r;
    const int64_t cpu = cpu_us_now(), en = rapl_energy_uj();
    r.cpu_us = cpu - rep_cpu;
    r.energy_uj = en >= 0 && rep_energy >= 0 && en >= rep_energy ? en - rep_energy : 0;
    r.flops = int64_t(rep_flops);
    r.trained_tokens = int64_t(rep_tokens);
    r.final = final;
    rep_cpu = cpu, rep_energy = en, rep_flops = 0, rep_tokens = 0;
    return o.on_compute(r);
  };
  auto validate = [&]() -> Expected<double> {
    double loss = 0;
    int64_t n = 0;
    std::vector<int64_t> all(val.examples.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = int64_t(i);
    for (const PackedSequence& s : pack(val, all, o.ctx)) {
      CORRAL_ASSIGN_OR_RETURN(SeqStats vs, forward_loss(ctx, *base, ad, s));
      loss += vs.loss_sum;
      n += vs.predicted;
    }
    return n ? loss / double(n) : 0.0;
  };
  double flops_total = 0, tokens_total = 0;
  const double run_t0 = now_s(), cpu0 = cpu_seconds();
  for (int64_t step = start; step < int64_t(plan.steps.size()); ++step) {
    const double s0 = now_s();
    const std::vector<int64_t>& recs = plan.steps[size_t(step)];
    // With ranks absent, only the present ranks' tokens count.
    int64_t n_pred = reduced ? 0 : predicted_tokens(data, recs);
    for (int s = 0; reduced && s < n_slots; ++s)
      if (present[size_t(s)]) n_pred += predicted_tokens(data, micro_batch(data, recs, s, n_slots));
    const float scale = n_pred ? 1.f / float(n_pred) : 0.f;
    LoraAdapter grads = zeros_like(ad);
    std::map<int32_t, std::vector<float>> embed_rows;  // --dump-grads: the embedding rows' gradient
    SeqStats tot;
    int64_t step_tokens = 0;
    const Dropout drop{o.dropout, o.seed, step};
    // Micro-batch mb: the step's records i mod parts == mb. Each one's stats are summed whole,
    // in order, the same way whether the micro-batches run here or on the ranks.
    const int64_t parts = data_parallel ? n_slots : o.grad_accum;
    RankStats mine;
    for (int64_t mb = 0; mb < parts; ++mb) {
      if (data_parallel && mb != my_slot) continue;
      LoraAdapter g = zeros_like(ad);
      RankStats sub;
      for (const PackedSequence& s : pack(data, micro_batch(data, recs, mb, parts), o.ctx)) {
        CORRAL_ASSIGN_OR_RETURN(SeqStats ss, forward_backward(ctx, *base, ad, s, scale, drop, recompute, &g,
                                                              o.grads_out.empty() ? nullptr : &embed_rows));
        sub.loss_sum += ss.loss_sum;
        sub.predicted += ss.predicted;
        sub.correct += ss.correct;
        sub.flops += ss.flops;
        sub.tokens += int64_t(s.tokens.size());
      }
      mine = sub;
      if (n_ranks > 1) {
        // Every rank's gradients, summed in rank order onto zeros (as add_into does here).
        const std::vector<float> flat = flatten(g);
        std::vector<uint8_t> all;
        CORRAL_RETURN_IF_ERROR(coll.allgather(flat.data(), flat.size() * 4, &all));
        for (int r = 0; r < n_ranks; ++r) add_flat(grads, reinterpret_cast<const float*>(all.data()) + size_t(r) * flat.size());
        CORRAL_ASSIGN_OR_RETURN(auto st_all, coll.gather_values(sub));
        for (auto& x : st_all) {
          tot.loss_sum += x.loss_sum, tot.predicted += x.predicted, tot.correct += x.correct;
          tot.flops += x.flops, step_tokens += x.tokens;
        }
      } else {
        add_into(grads, g);
        tot.loss_sum += sub.loss_sum, tot.predicted += sub.predicted, tot.correct += sub.correct;
        tot.flops += sub.flops, step_tokens += sub.tokens;
      }
    }
    rep_flops += n_ranks > 1 ? mine.flops : tot.flops;
    rep_tokens += double(n_ranks > 1 ? mine.tokens : step_tokens);
    std::vector<int64_t> member_tokens;
    if (n_ranks > 1) {
      CORRAL_ASSIGN_OR_RETURN(member_tokens, coll.gather_values(mine.tokens));
    } else if (reduced) {
      member_tokens = {mine.tokens};
    }
    const double loss = tot.predicted ? tot.loss_sum / double(tot.predicted) : 0;
    if (!o.grads_out.empty()) {
      if (!lead) return Status::ok();
      LoraAdapter out = grads;
      out.alpha = ad.alpha;
      CORRAL_RETURN_IF_ERROR(write_peft(o.grads_out, out, m.hp.n_head, m.hp.n_head_kv));
      std::ofstream(o.grads_out + "/loss.json") << "{\"loss\": " << nlohmann::json(loss).dump() << ", \"predicted\": " << tot.predicted << "}\n";
      nlohmann::json eg = {{"rows", nlohmann::json::array()}, {"grad", nlohmann::json::array()}};
      for (auto& [id, row] : embed_rows) eg["rows"].push_back(id), eg["grad"].push_back(row);
      std::ofstream(o.grads_out + "/embedding_grad.json") << eg.dump() << "\n";
      log.info("wrote the loss and gradients of step 1 to " + o.grads_out);
      return Status::ok();
    }
    const double norm = grad_norm(grads);
    clip_grads(grads, norm, oc.clip);
    const double lr = lr_at(oc, step);
    optimizer_step(oc, lr, ad, grads, st);
    const double dt = now_s() - s0;
    flops_total += tot.flops;
    tokens_total += double(step_tokens);
    nlohmann::json rec = {{"step", step + 1},
                          {"loss", loss},
                          {"accuracy", tot.predicted ? double(tot.correct) / double(tot.predicted) : 0.0},
                          {"lr", lr},
                          {"grad_norm", norm},
                          {"tokens", step_tokens},
                          {"predicted", tot.predicted},
                          {"tok_s", dt > 0 ? double(step_tokens) / dt : 0.0},
                          {"flops", tot.flops},
                          {"cpu_seconds", cpu_seconds() - cpu0},
                          {"peak_rss_mib", peak_rss_mib()},
                          {"epoch", plan.epoch_of[size_t(step)]}};
    if (!member_tokens.empty()) {
      nlohmann::json per = nlohmann::json::object();
      for (int r = 0; r < n_ranks; ++r) per[members[size_t(r)]] = per.value(members[size_t(r)], int64_t(0)) + member_tokens[size_t(r)];
      rec["ranks"] = n_ranks;
      rec["member_tokens"] = per;  // each member's trained tokens this step
    }
    const bool last = step + 1 == int64_t(plan.steps.size());
    if (!val.examples.empty() && (last || (o.eval_every > 0 && (step + 1) % o.eval_every == 0))) {
      CORRAL_ASSIGN_OR_RETURN(double vl, validate());
      rec["val_loss"] = vl;
    }
    if (logf) logf << rec.dump() << "\n" << std::flush;
    if (bar) {
      const int64_t done = step + 1, total = int64_t(plan.steps.size());
      const int w = 24, fill = int(w * done / total);
      const double el = now_s() - run_t0;
      std::fprintf(stderr, "\r\033[Kstep %lld/%lld [%.*s%*s] loss %.4f lr %.2e %.0f tok/s ETA %s",
                   (long long)done, (long long)total, fill, "########################", w - fill, "", loss, lr,
                   tokens_total / std::max(el, 1e-9), fmt_time(el / double(done - start) * double(total - done)).c_str());
      std::fflush(stderr);
    } else if (lead) {
      char b[200];
      std::snprintf(b, sizeof b, "step %lld/%lld loss %.4f lr %.3g grad_norm %.3g %.0f tok/s",
                    (long long)(step + 1), (long long)plan.steps.size(), loss, lr, norm,
                    dt > 0 ? double(step_tokens) / dt : 0.0);
      log.info(std::string(b) + (rec.contains("val_loss") ? " val_loss " + std::to_string(rec["val_loss"].get<double>()) : ""));
    }
    if (!o.checkpoint_dir.empty() && ((o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0) || last)) {
      if (!last) CORRAL_RETURN_IF_ERROR(report(false));
      if (!lead) continue;
      Checkpoint c;
      c.step = step + 1;
      c.adapter = ad;
      c.opt = st;
      c.state = {{"digest", digest}, {"base", o.base_path}, {"data", o.data}};
      if (data_parallel) c.state["layout"] = layout.to_json();
      CORRAL_RETURN_IF_ERROR(save_checkpoint(o.checkpoint_dir, c));
    }
  }
  if (bar) std::fprintf(stderr, "\n");
  CORRAL_RETURN_IF_ERROR(report(true));
  if (!lead) return Status::ok();
  Metadata extra;
  extra.set("training.steps", GgufValue::of_u32(uint32_t(plan.steps.size())));
  extra.set("training.tokens", GgufValue::of_u64(uint64_t(data.tokens)));
  CORRAL_RETURN_IF_ERROR(write_lora_gguf(o.out, ad, extra));
  log.info("wrote " + o.out + " (" + std::to_string(plan.steps.size()) + " steps, " +
           std::to_string(int(now_s() - run_t0)) + " s, " + std::to_string(flops_total / 1e9) + " GFLOP)");
  return Status::ok();
}

}  // namespace corral
