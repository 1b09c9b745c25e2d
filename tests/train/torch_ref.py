#!/usr/bin/python3
"""LoRA fine-tuning against an independent float64 reference (Debian's python3-torch, autograd).

For each shared HF fixture (its config.json and model.safetensors, read here without Corral):
  1. a straightforward float64 Llama forward (HF's rotate-half RoPE, llama3 rope scaling, GQA,
     tied embeddings) is checked against the fixture's own reference logits;
  2. a random PEFT adapter (B non-zero, so every gradient is) is written, converted with
     `corral convert PEFT ADAPTER.gguf --base`, and the loss and every LoRA gradient of one batch
     (three documents packed in one sequence, positions restarting, no attention across them)
     from `corral finetune --dump-grads` are compared: relative error <= 1e-4;
  3. three SGD steps and three AdamW steps (warmup, cosine, weight decay, clipping) from that
     adapter: the adapter Corral writes (converted back with --format peft) against torch's.
Usage: torch_ref.py CORRAL_BIN FIXTURES_DIR WORK_DIR
"""
import json, math, os, struct, subprocess, sys

try:
    import torch
except ImportError:
    print("python3-torch is not installed (make deps installs it)")
    sys.exit(77)

torch.set_default_dtype(torch.float64)
BIN, FIX, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(WORK, exist_ok=True)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torch_llama import Llama4, load, read_st, write_st  # noqa: E402


MODS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def mods(model, l):
    """The PEFT modules of layer l: Llama 4's FFN is feed_forward, or on a MoE layer its shared expert."""
    if not isinstance(model, Llama4):
        return MODS
    ffn = "feed_forward.shared_expert" if l in model.moe else "feed_forward"
    return MODS[:4] + [f"{ffn}.{p}" for p in ("gate_proj", "up_proj", "down_proj")]
PEFT = "base_model.model.model.layers.{}.{}.lora_{}.weight"


def run(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"corral {' '.join(args)} failed:\n{r.stderr}")
    return r


def rel(a, b):
    return (a - b).abs().max().item() / max(b.abs().max().item(), 1e-30)


failures = []


def check(what, err, tol):
    ok = err <= tol
    print(f"  {'ok ' if ok else 'BAD'} {what}: relative error {err:.2e} (limit {tol:g})")
    if not ok:
        failures.append(what)


def loss_of(model, docs, lora, scale, embed=None):
    ids, pos, doc = [], [], []
    for di, d in enumerate(docs):
        ids += d
        pos += list(range(len(d)))
        doc += [di] * len(d)
    logits = model.forward(ids, pos, doc, lora, scale, embed=embed)
    tgt, rows = [], []
    o = 0
    for d in docs:
        for j in range(len(d) - 1):
            rows.append(o + j)
            tgt.append(d[j + 1])
        o += len(d)
    return torch.nn.functional.cross_entropy(logits[torch.tensor(rows)], torch.tensor(tgt))


def read_adapter(d, model):
    st = read_st(os.path.join(d, "adapter_model.safetensors"))
    return {(l, m): (st[PEFT.format(l, m, "A")], st[PEFT.format(l, m, "B")]) for l in range(model.L) for m in mods(model, l)}


for name in sorted(os.listdir(os.path.join(FIX, "hf"))):
    fx = os.path.join(FIX, "hf", name)
    print(name)
    model = load(fx)
    refs = json.load(open(os.path.join(fx, "refs.json")))
    long = refs["prompts"]["long"]
    ids = long["ids"]
    V = model.c["vocab_size"]
    ref = torch.frombuffer(bytearray(open(os.path.join(fx, os.path.basename(long["logits_file"])), "rb").read()), dtype=torch.float32)
    got = model.forward(ids, list(range(len(ids))), [0] * len(ids))
    check("reference forward vs the fixture's logits", rel(got.reshape(-1), ref.to(torch.float64)), 1e-4)

    g = torch.Generator().manual_seed(7)
    r, alpha = 4, 8.0
    scale = alpha / r
    lora = {}
    for l in range(model.L):
        for m in mods(model, l):
            W = model.w[f"model.layers.{l}.{m}.weight"]
            lora[(l, m)] = (torch.rand(r, W.shape[1], generator=g) * 0.4 - 0.2, torch.rand(W.shape[0], r, generator=g) * 0.2 - 0.1)
    wd = os.path.join(WORK, name)
    peft = os.path.join(wd, "init_peft")
    os.makedirs(peft, exist_ok=True)
    write_st(os.path.join(peft, "adapter_model.safetensors"), {PEFT.format(l, m, ab): t for (l, m), (A, B) in lora.items() for ab, t in (("A", A), ("B", B))})
    json.dump({"peft_type": "LORA", "r": r, "lora_alpha": alpha, "target_modules": [m.split(".")[-1] for m in MODS], "bias": "none"}, open(os.path.join(peft, "adapter_config.json"), "w"))
    init = os.path.join(wd, "init.gguf")
    run("convert", peft, init, "--base", fx)
    # Without --base: the config's base_model_name_or_path, a hub id found in the local Hugging
    # Face cache (only its config.json there; refs/main names the snapshot), converts the same.
    hub = os.path.join(wd, "hf-home")
    snap = os.path.join(hub, "hub", f"models--corral-test--{name}", "snapshots", "0123abc")
    os.makedirs(snap, exist_ok=True)
    os.makedirs(os.path.join(hub, "hub", f"models--corral-test--{name}", "refs"), exist_ok=True)
    open(os.path.join(hub, "hub", f"models--corral-test--{name}", "refs", "main"), "w").write("0123abc")
    open(os.path.join(snap, "config.json"), "w").write(open(os.path.join(fx, "config.json")).read())
    named = os.path.join(wd, "named_peft")
    os.makedirs(named, exist_ok=True)
    open(os.path.join(named, "adapter_model.safetensors"), "wb").write(open(os.path.join(peft, "adapter_model.safetensors"), "rb").read())
    cfg = json.load(open(os.path.join(peft, "adapter_config.json")))
    json.dump(dict(cfg, base_model_name_or_path=f"corral-test/{name}"), open(os.path.join(named, "adapter_config.json"), "w"))
    env = dict(os.environ, HF_HOME=hub, HF_HUB_CACHE="", HOME=wd)
    byname = os.path.join(wd, "by-name.gguf")
    r = subprocess.run([BIN, "convert", named, byname], capture_output=True, text=True, env=env)
    # The same tensors, q/k rows permuted by the same head counts: the files end with the same
    # tensor data (the GGUF also records the base's name here, so its header is longer).
    nbytes = 4 * sum(A.numel() + B.numel() for A, B in lora.values())
    same = r.returncode == 0 and open(byname, "rb").read()[-nbytes:] == open(init, "rb").read()[-nbytes:]
    check("convert PEFT without --base (its base from the HF cache) = with --base", 0.0 if same else 1.0, 0.0)
    json.dump(dict(cfg, base_model_name_or_path="corral-test/not-cached"), open(os.path.join(named, "adapter_config.json"), "w"))
    r = subprocess.run([BIN, "convert", named, byname], capture_output=True, text=True, env=env)
    check("an uncached base is a clear error naming it and where it looked", 0.0 if r.returncode != 0 and "'corral-test/not-cached'" in r.stderr and
          "models--corral-test--not-cached" in r.stderr and "--base" in r.stderr else 1.0, 0.0)
    # Float32 round trip of the adapter: the reference starts from the same values.
    lora = {k: (A.to(torch.float32).to(torch.float64), B.to(torch.float32).to(torch.float64)) for k, (A, B) in lora.items()}

    gen = torch.Generator().manual_seed(11)
    docs = [[1] + torch.randint(3, V, (n,), generator=gen).tolist() for n in (8, 16, 11)]
    data = os.path.join(wd, "train.jsonl")
    with open(data, "w") as f:
        for d in docs:
            f.write(json.dumps({"ids": d}) + "\n")
    common = ["-m", fx, "--data", data, "--ctx", "64", "--batch-tokens", "4096", "--no-progress", "-t", "2"]

    # 2. loss and gradients of one batch
    params = {k: (A.clone().requires_grad_(), B.clone().requires_grad_()) for k, (A, B) in lora.items()}
    table = model.w["model.embed_tokens.weight"].clone().requires_grad_()
    loss = loss_of(model, docs, params, scale, embed=table)
    loss.backward()
    gdir = os.path.join(wd, "grads")
    run("finetune", *common, "--init-adapter", init, "-o", os.path.join(wd, "unused.gguf"), "--dump-grads", gdir)
    lj = json.load(open(os.path.join(gdir, "loss.json")))
    check("loss", abs(lj["loss"] - loss.item()) / abs(loss.item()), 1e-5)
    cg = read_adapter(gdir, model)
    worst = max(max(rel(cg[k][0], A.grad), rel(cg[k][1], B.grad)) for k, (A, B) in params.items())
    check(f"every LoRA gradient ({len(params) * 2} matrices)", worst, 1e-4)
    # The embedding's backward: the gradient of the rows the batch used (the lookup alone).
    eg = json.load(open(os.path.join(gdir, "embedding_grad.json")))
    used = sorted({t for d in docs for t in d})
    got_rows = torch.tensor(eg["grad"], dtype=torch.float64)
    check(f"the embedding rows' gradient ({len(used)} rows)", rel(got_rows, table.grad[torch.tensor(used)]) if eg["rows"] == used else 1.0, 1e-4)
    # Recomputing the activations in the backward is the same arithmetic: the same bytes.
    rdir = os.path.join(wd, "grads_recompute")
    run("finetune", *common, "--init-adapter", init, "-o", os.path.join(wd, "unused.gguf"), "--dump-grads", rdir, "--recompute", "on")
    same = open(os.path.join(gdir, "adapter_model.safetensors"), "rb").read() == open(os.path.join(rdir, "adapter_model.safetensors"), "rb").read()
    check("--recompute on gives the same gradients, byte for byte", 0.0 if same else 1.0, 0.0)
    # Two micro-batches: the same mean over the step's tokens (summed in another order).
    adir = os.path.join(wd, "grads_accum")
    run("finetune", *common, "--init-adapter", init, "-o", os.path.join(wd, "unused.gguf"), "--dump-grads", adir, "--grad-accum", "2")
    ga = read_adapter(adir, model)
    worst = max(max(rel(ga[k][0], A.grad), rel(ga[k][1], B.grad)) for k, (A, B) in params.items())
    check("--grad-accum 2 gradients", worst, 1e-4)

    # 3. optimizer steps from the same adapter
    for opt in ("sgd", "adamw"):
        steps, lr = 3, 0.05 if opt == "sgd" else 0.01
        params = {k: (A.clone().requires_grad_(), B.clone().requires_grad_()) for k, (A, B) in lora.items()}
        flat = [t for AB in params.values() for t in AB]
        if opt == "sgd":
            o = torch.optim.SGD(flat, lr=lr)
            args = ["--optimizer", "sgd", "--schedule", "constant", "--clip", "0"]
            sched = lambda s: 1.0
        else:
            o = torch.optim.AdamW(flat, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
            args = ["--optimizer", "adamw", "--schedule", "cosine", "--warmup", "1", "--weight-decay", "0.01", "--clip", "0.5"]
            sched = lambda s: s / 1 if s < 1 else 0.5 * (1 + math.cos(math.pi * (s - 1) / (steps - 1)))
        for s in range(steps):
            for gr in o.param_groups:
                gr["lr"] = lr * sched(s)
            o.zero_grad()
            loss_of(model, docs, params, scale).backward()
            if opt == "adamw":
                torch.nn.utils.clip_grad_norm_(flat, 0.5)
            o.step()
        out = os.path.join(wd, f"{opt}.gguf")
        run("finetune", *common, "--init-adapter", init, "-o", out, "--steps", str(steps), "--lr", str(lr), *args)
        pd = os.path.join(wd, f"{opt}_peft")
        run("convert", out, pd, "--format", "peft")
        got = read_adapter(pd, model)
        worst = max(max(rel(got[k][0], A.detach()), rel(got[k][1], B.detach())) for k, (A, B) in params.items())
        # Adam divides by the root of the second moment, so near-zero gradients' rounding (about
        # 2e-5 relative on the BF16 base) moves their update by up to lr: a looser limit there.
        check(f"the adapter after {steps} {opt} steps", worst, 1e-4 if opt == "sgd" else 1e-3)
        if opt != "sgd":
            continue
        # 4. the trained adapter at inference: `--lora` on the base, and baked in by `corral merge`,
        # against the reference forward with the same A and B.
        want = model.forward(ids, list(range(len(ids))), [0] * len(ids), got, scale).reshape(-1)
        lf = os.path.join(wd, "lora_logits.f32")
        run("logits", "-m", fx, "--lora", out, "--prompt-ids", ",".join(map(str, ids)), "--out", lf)
        lg = torch.frombuffer(bytearray(open(lf, "rb").read()), dtype=torch.float32).to(torch.float64)
        check("logits with --lora against the reference with the adapter", rel(lg, want), 1e-4)
        merged = os.path.join(wd, "merged.gguf")
        run("merge", fx, out, "-o", merged, "--type", "f32")
        run("logits", "-m", merged, "--prompt-ids", ",".join(map(str, ids)), "--out", lf)
        lg = torch.frombuffer(bytearray(open(lf, "rb").read()), dtype=torch.float32).to(torch.float64)
        check("logits of the merged model against the reference with the adapter", rel(lg, want), 1e-4)

if failures:
    sys.exit("FAILED: " + "; ".join(failures))
print("all checks passed")
