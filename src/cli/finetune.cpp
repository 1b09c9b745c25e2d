// corral finetune -m BASE --data TRAIN.jsonl [--val VAL.jsonl] -o ADAPTER.gguf: LoRA training.
#include <malloc.h>

#include <filesystem>

#include "cli/engine_flags.h"
#include "cli/hosting_flags.h"
#include "hosting/consortium.h"
#include "template/chat.h"
#include "train/collective.h"
#include "train/trainer.h"

namespace corral::cli {

namespace {

struct FinetuneArgs {
  EngineFlags ef;
  TrainOptions o;
  std::string targets = "q,k,v,o,gate,up,down", chat_template;
  bool no_progress = false;
  std::string consortium, member, job, ledger, register_id, register_base;
};

Status run_ranked(FinetuneArgs& a, Collective& coll);

Status run_finetune(FinetuneArgs& a) {
  // A step allocates and frees the same per-layer activations (tens of MiB each) every time:
  // keep them on the heap instead of glibc handing them back and the kernel zeroing fresh pages
  // for the next step (2-3% of a step, measured with perf).
  mallopt(M_MMAP_THRESHOLD, 512 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  CORRAL_ASSIGN_OR_RETURN(auto coll, make_collective());
  Status st = run_ranked(a, *coll);
  if (!st.is_ok() && coll->size() > 1) coll->abort(st.message(), 1);
  return st;
}

Status run_ranked(FinetuneArgs& a, Collective& coll_ref) {
  Collective* coll = &coll_ref;
  Logger log;
  CORRAL_ASSIGN_OR_RETURN(auto targets, parse_lora_targets(a.targets));
  a.o.targets = targets;
  a.o.progress = !a.no_progress;
  a.o.base_path = a.ef.opts.model_path;
  if (a.o.epochs > 0 && a.o.steps > 0) return make_error("give --epochs or --steps, not both");
  a.ef.opts.ctx_size = 16;  // the engine's KV cache is not used for training
  a.o.coll = coll;
  a.o.member = a.member;
  std::unique_ptr<Ledger> ledger;
  if (!a.consortium.empty()) {
    // Compute in kind: this rank's CPU time, FLOPs and energy, recorded as its member's
    // contribution to the job (after each checkpoint and at the end).
    if (a.member.empty() || a.job.empty())
      return make_error("--consortium: give this rank's --member ORG and the --job name");
    CORRAL_ASSIGN_OR_RETURN(ledger, open_ledger(a.ledger));
    CORRAL_ASSIGN_OR_RETURN(auto ev, ledger->consortium_events(a.consortium));
    CORRAL_ASSIGN_OR_RETURN(auto cs, fold_consortia(ev));
    if (!cs.count(a.consortium))
      return make_error("--consortium: no consortium named '" + a.consortium + "'");
    if (!cs.at(a.consortium).members.count(a.member))
      return make_error("--member: '" + a.member + "' is not a member of '" + a.consortium + "'");
    a.o.mix_share_bp = cs.at(a.consortium).members.at(a.member).share_at(now_ms());
    Ledger* lp = ledger.get();
    a.o.on_compute = [lp, &a, rank = coll->rank()](const ComputeReport& r) {
      return append_consortium(*lp, a.consortium, "compute",
                               {{"job", a.job},
                                {"org", a.member},
                                {"rank", rank},
                                {"cpu_us", r.cpu_us},
                                {"flops", r.flops},
                                {"energy_uj", r.energy_uj},
                                {"trained_tokens", r.trained_tokens},
                                {"final", r.final}},
                               now_ms());
    };
    if (!a.register_id.empty() && a.register_base.empty())
      return make_error("--register: give the served base model's id with --register-base");
  } else if (!a.member.empty() || !a.job.empty() || !a.register_id.empty()) {
    return make_error("--member and --job go with --consortium NAME");
  } else if (a.o.mix == "by-share") {
    return make_error("--mix by-share: the shares are the consortium members'; give --consortium NAME "
                      "and --member ORG");
  }
  CORRAL_ASSIGN_OR_RETURN(auto e, open_from_flags(a.ef, log));
  if (!e->tok) {
    CORRAL_RETURN_IF_ERROR(run_training(*e->ctx, *e->model, nullptr, nullptr, a.o, log));
  } else {
    CORRAL_ASSIGN_OR_RETURN(ChatFormat chat, load_chat_format(e->tok->vocab(), a.chat_template));
    CORRAL_RETURN_IF_ERROR(run_training(*e->ctx, *e->model, e->tok.get(), &chat, a.o, log));
  }
  // The job's adapter as the consortium's custom version (members only until made public).
  if (!a.register_id.empty() && coll->rank() == 0 && a.o.grads_out.empty()) {
    CORRAL_RETURN_IF_ERROR(
        append_consortium(*ledger, a.consortium, "model",
                          {{"model_id", a.register_id},
                           {"adapter", std::filesystem::absolute(a.o.out).string()},
                           {"base", a.register_base},
                           {"public", false}},
                          now_ms()));
    log.info("registered " + a.o.out + " as " + a.register_id + " of consortium " + a.consortium +
             " over " + a.register_base + " (members only)");
  }
  return Status::ok();
}

}  // namespace

Action add_finetune(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "finetune", "LoRA fine-tuning of a frozen base (any weight type) on JSONL data");
  auto a = std::make_shared<FinetuneArgs>();
  add_engine_flags(sub, a->ef);
  TrainOptions& o = a->o;
  sub->add_option("--data", o.data,
                  "training records (JSONL: messages, prompt/completion, text or ids)")
      ->required();
  sub->add_option("--val", o.val,
                  "validation records (JSONL), scored at the end and every --eval-every steps");
  sub->add_option("-o,--out", o.out, "the adapter to write (GGUF, llama.cpp's LoRA format)")
      ->required();
  sub->add_option("--rank", o.rank, "LoRA rank r (default 16)");
  sub->add_option("--alpha", o.alpha, "LoRA alpha: the update is scaled by alpha / r (default 32)");
  sub->add_option("--dropout", o.dropout, "dropout on the LoRA inputs (default 0)");
  sub->add_option("--targets", a->targets, "projections to adapt (default q,k,v,o,gate,up,down)");
  sub->add_option("--lr", o.opt.lr, "peak learning rate (default 2e-4)");
  sub->add_option("--schedule", o.opt.schedule, "cosine, linear or constant (default cosine)");
  sub->add_option("--warmup", o.opt.warmup, "warmup steps (default 0)");
  sub->add_option("--weight-decay", o.opt.weight_decay, "decoupled weight decay (default 0)");
  sub->add_option("--clip", o.opt.clip,
                  "clip the gradients' global norm to this (0: off; default 1)");
  sub->add_option("--optimizer", o.opt.kind, "adamw or sgd (plain p -= lr * grad) (default adamw)");
  sub->add_option("--epochs", o.epochs, "passes over the data (default 1)");
  sub->add_option("--steps", o.steps, "optimizer steps instead of epochs");
  sub->add_option("--batch-tokens", o.batch_tokens,
                  "tokens per step (records are whole; default 4096)");
  sub->add_option("--ctx", o.ctx,
                  "tokens per packed sequence; longer records are cut (default 1024)");
  sub->add_option("--grad-accum", o.grad_accum,
                  "micro-batches per step: record i goes to i mod N (default 1)");
  sub->add_option("--seed", o.seed,
                  "seed of the adapter's initialisation, dropout and --shuffle (default 0)");
  sub->add_flag("--shuffle", o.shuffle, "shuffle the records each epoch (seeded)");
  sub->add_flag("--train-on-prompt", o.train_on_prompt, "loss on prompt tokens too");
  sub->add_option("--checkpoint", o.checkpoint_dir, "write DIR/step-N/ checkpoints");
  sub->add_option("--checkpoint-every", o.checkpoint_every,
                  "steps between checkpoints (default: only the last)");
  sub->add_option("--resume", o.resume_dir, "continue from the newest checkpoint in DIR");
  sub->add_option("--init-adapter", o.init_adapter, "start from this adapter's A and B (GGUF)");
  sub->add_option("--log", o.log_path, "JSON-lines log, one line per step");
  sub->add_option("--eval-every", o.eval_every,
                  "steps between validation scores (default: the end only)");
  sub->add_option("--recompute", o.recompute,
                  "auto, on or off: recompute activations in the backward (default auto)");
  sub->add_option("--chat-template", a->chat_template,
                  "the template for messages records (default: the model's own)");
  sub->add_flag("--no-progress", a->no_progress, "no progress bar");
  sub->add_option("--consortium", a->consortium,
                  "meter this rank's compute as a contribution to consortium NAME");
  sub->add_option("--member", a->member,
                  "the consortium member this rank's machine and data belong to");
  sub->add_option("--job", a->job,
                  "the consortium job's name (its cost is split by the members' shares)");
  sub->add_option("--mix", o.mix,
                  "interleave (record i of the combined data on rank i mod N) or by-share (each "
                  "member's records sampled in proportion to its consortium share) (default "
                  "interleave)");
  sub->add_option("--register", a->register_id,
                  "at the end, register the adapter as consortium model MODEL_ID (members only)");
  sub->add_option("--register-base", a->register_base,
                  "the served base model's id, for --register");
  add_ledger_flag(sub, a->ledger);
  sub->add_option("--dump-grads", o.grads_out,
                  "write step 1's loss and gradients as a PEFT folder and stop (checks)");
  return [a] { return run_finetune(*a); };
}

}  // namespace corral::cli
