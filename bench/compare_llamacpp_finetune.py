#!/usr/bin/python3
"""Fine-tuning side by side: llama.cpp's `llama-finetune` (a full fine-tune of an F32 model, the
only mode it has) and `corral finetune` (LoRA) on the same model file, the same tokens and the
same machine, alternated. Prints time per epoch and peak memory for each.

Same data: llama-finetune tokenizes --file and cuts it into datapoints of n_ctx tokens with a
stride of n_ctx / 2 (common_opt_dataset_init), each predicting its n_ctx next tokens; Corral gets
exactly those windows as {"ids": [...]} records of n_ctx + 1 tokens (the same n_ctx predicted
tokens each), one record per step. Both run one epoch, AdamW, -t THREADS; llama.cpp with
--val-split 0. Wall time is the whole process (load included) and peak RSS from wait4.

usage: bench/compare_llamacpp_finetune.py MODEL_F32.gguf TEXT [--ctx 256] [-t 2] [--rank 16]
       [--repeat 2] [--llama-finetune PATH] [--corral PATH]
"""
import argparse, json, os, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("text")
ap.add_argument("--ctx", type=int, default=256)
ap.add_argument("-t", "--threads", type=int, default=2)
ap.add_argument("--rank", type=int, default=16)
ap.add_argument("--repeat", type=int, default=2)
ap.add_argument("--llama-finetune", default=os.environ.get("LLAMA_FINETUNE", ""))
ap.add_argument("--corral", default=os.environ.get("CORRAL_BIN", os.path.join(here, "..", "build", "corral")))
a = ap.parse_args()
if not a.llama_finetune or not os.access(a.llama_finetune, os.X_OK):
    sys.exit("give --llama-finetune PATH (`bench/build-llamacpp finetune` builds it from node-llama-cpp's "
             "llama.cpp source and prints its folder; run it with LD_LIBRARY_PATH set to that folder)")
work = tempfile.mkdtemp(prefix="corral-ft-compare-")


def timed(cmd):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.monotonic() - t0
    if status != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return dt, ru.ru_maxrss / 1024.0, ru.ru_utime + ru.ru_stime


# The same windows as llama.cpp's dataset, from Corral's tokenizer of the same file (its
# tokenizer agrees with llama.cpp's: tests/llamacpp_load.sh).
text = open(a.text).read()
ids = json.loads(subprocess.run([a.corral, "tokenize", "--model", a.model, "--text", text, "--bos", "--json"],
                                capture_output=True, text=True, check=True).stdout)
stride = a.ctx // 2
ndata = (len(ids) - a.ctx - 1) // stride
if ndata < 1:
    sys.exit(f"{a.text}: {len(ids)} tokens, too few for --ctx {a.ctx}")
data = os.path.join(work, "windows.jsonl")
with open(data, "w") as f:
    for i in range(ndata):
        f.write(json.dumps({"ids": ids[i * stride: i * stride + a.ctx + 1]}) + "\n")
tokens = ndata * a.ctx
llama = [a.llama_finetune, "-m", a.model, "--file", a.text, "-c", str(a.ctx), "-b", str(a.ctx), "-ub", str(a.ctx),
         "-t", str(a.threads), "--epochs", "1", "-val-split", "0", "-o", os.path.join(work, "llama-out.gguf")]
corral = [a.corral, "finetune", "-m", a.model, "--data", data, "--ctx", str(a.ctx + 1), "--batch-tokens", str(a.ctx + 1),
          "--epochs", "1", "--rank", str(a.rank), "-t", str(a.threads), "--no-progress", "-o", os.path.join(work, "corral.gguf")]
rows = {"llama.cpp llama-finetune (full, F32)": [], f"corral finetune (LoRA r{a.rank})": []}
for _ in range(a.repeat):  # alternated
    rows["llama.cpp llama-finetune (full, F32)"].append(timed(llama))
    rows[f"corral finetune (LoRA r{a.rank})"].append(timed(corral))
print(f"model {os.path.basename(a.model)}, {ndata} windows of {a.ctx} predicted tokens ({tokens} per epoch), "
      f"{a.threads} threads, {a.repeat} runs each, alternated")
print(f"{'engine':40} {'s/epoch':>9} {'tok/s':>8} {'CPU s':>8} {'peak MiB':>9}")
best = {}
for name, rs in rows.items():
    dt = min(r[0] for r in rs)
    best[name] = dt
    print(f"{name:40} {dt:9.2f} {tokens / dt:8.1f} {min(r[2] for r in rs):8.1f} {max(r[1] for r in rs):9.0f}")
names = list(best)
print(f"time per epoch, llama.cpp / corral: {best[names[0]] / best[names[1]]:.2f}x")
