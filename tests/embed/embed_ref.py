#!/usr/bin/python3
"""Embeddings against independent references.

1. Every shared HF fixture (Llama 2, 3.1, 3.2 tied BF16, Llama 4 MoE): Corral's last-token hidden
   state, unnormalised, times the model's head (float64, here) must give the fixture's own HF
   reference logits at that position (cosine >= 0.99999 and 1e-4 relative error), for prefixes of
   several lengths.
2. The dense fixtures: a float64 PyTorch reimplementation (tests/torch_llama.py) of the last
   hidden state with causal and bidirectional attention, pooled mean / cls / last and
   L2-normalised: cosine >= 0.99999 per input, through `corral embed`.
3. `corral serve`: /v1/embeddings of a batch of mixed lengths bitwise equal to each input sent
   alone and to `corral embed`; base64 equal to the floats; `dimensions` truncated and
   renormalised; errors (too long with the index and count, truncate_prompt_tokens, bad ids,
   empty input, bad dimensions).
4. A sentence-transformers folder (modules.json, 1_Pooling/config.json with mean pooling,
   2_Normalize, config.json with is_causal false) read with its pooling and attention, also after
   `corral convert` to GGUF.
Usage: embed_ref.py CORRAL_BIN FIXTURES_DIR WORK_DIR
"""
import base64, json, math, os, shutil, socket, struct, subprocess, sys, time, urllib.request, urllib.error

try:
    import torch
except ImportError:
    print("python3-torch is not installed (make deps installs it)")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torch_llama import Llama, read_st  # noqa: E402

torch.set_default_dtype(torch.float64)
BIN, FIX, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(WORK, exist_ok=True)
HF = os.path.join(FIX, "hf")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def embed(model, inputs, *flags):
    args = [BIN, "embed", "-m", model, "--json", *flags]
    for ids in inputs:
        args += ["--ids", ",".join(map(str, ids))]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{r.stderr}")
    return [torch.tensor(d["embedding"]) for d in json.loads(r.stdout)["data"]]


def cosine(a, b):
    return float((a @ b) / (a.norm() * b.norm()))


def pool(h, how):
    return {"mean": h.mean(0), "cls": h[0], "last": h[-1]}[how]


# 1. Against the fixtures' own HF logits, every architecture.
for case in sorted(os.listdir(HF)):
    d = os.path.join(HF, case)
    refs = json.load(open(os.path.join(d, "refs.json")))
    p = refs["prompts"]["long"]
    T, V = p["logits_shape"]
    logits = torch.frombuffer(bytearray(open(os.path.join(d, p["logits_file"]), "rb").read()), dtype=torch.float32)
    logits = logits.reshape(T, V).to(torch.float64)
    cfg = json.load(open(os.path.join(d, "config.json")))
    w = read_st(os.path.join(d, "model.safetensors"))
    pre = "language_model." if "language_model.model.embed_tokens.weight" in w else ""
    tied = cfg.get("tie_word_embeddings", cfg.get("text_config", {}).get("tie_word_embeddings", False))
    head = w[pre + "model.embed_tokens.weight"] if tied or pre + "lm_head.weight" not in w else w[pre + "lm_head.weight"]
    lens = [T, 17, 5, 1]
    embs = embed(d, [p["ids"][:n] for n in lens], "--pooling", "last", "--attention", "causal", "--no-normalize")
    for n, e in zip(lens, embs):
        got = e @ head.T
        want = logits[n - 1]
        err = (got - want).abs().max().item() / want.abs().max().item()
        check(cosine(got, want) >= 0.99999 and err < 1e-4,
              f"{case}: last hidden state x head = HF logits at position {n - 1} (cos {cosine(got, want):.7f}, rel {err:.1e})")

# 2. Pooling and attention against the float64 reimplementation (dense fixtures).
inputs = [[1, 496, 263, 188, 163, 182, 103, 275, 77, 220, 79, 422, 331, 353, 430, 454, 445, 48, 491, 369, 507], [1, 33, 7], [1]]
for case in ["llama2_mha_f32", "llama31_gqa_f32", "llama32_tied_bf16"]:
    d = os.path.join(HF, case)
    ref = Llama(d)
    for attention in ["causal", "bidirectional"]:
        hs = [ref.forward(ids, list(range(len(ids))), [0] * len(ids), causal=attention == "causal", head=False) for ids in inputs]
        for how in ["mean", "cls", "last"]:
            got = embed(d, inputs, "--pooling", how, "--attention", attention)
            for i, (h, g) in enumerate(zip(hs, got)):
                want = pool(h, how)
                want = want / want.norm()
                c = cosine(g, want)
                check(c >= 0.99999 and abs(g.norm().item() - 1) < 1e-5,
                      f"{case}: {how} pooling, {attention}, input {i} ({len(inputs[i])} tokens): cos {c:.7f}")


# 3. The server.
def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, *args):
        self.port = free_port()
        self.log = open(os.path.join(WORK, f"serve-{self.port}.log"), "w")
        self.proc = subprocess.Popen([BIN, "serve", "--port", str(self.port), "--ledger", f"sqlite:{WORK}/ledger-{self.port}.db", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1)
                return
            except Exception:
                if self.proc.poll() is not None:
                    sys.exit(f"server exited: {open(self.log.name).read()}")
                time.sleep(0.1)
        sys.exit("server did not start")

    def post(self, body, path="/v1/embeddings"):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


d = os.path.join(HF, "llama31_gqa_f32")
mixed = [[1, 496, 263, 188, 163, 182, 103, 275, 77, 220, 79, 422, 331, 353, 430, 454, 445, 48, 491, 369, 507, 125, 177, 459, 271, 190, 305, 8, 437, 407, 308, 204, 407, 218, 189, 433],
         [1, 5], [1, 44, 45, 46, 47, 48, 49, 50, 51], [1]]
for how, attention in [("last", "causal"), ("mean", "bidirectional")]:
    srv = Server("-m", f"emb={d}", "--pooling", how, "--embedding-attention", attention, "--step-tokens", "40", "--ctx-size", "64")
    try:
        st, batch = srv.post({"model": "emb", "input": mixed})
        check(st == 200 and batch["object"] == "list" and len(batch["data"]) == len(mixed), f"server {how}/{attention}: a batch of {len(mixed)}")
        total = sum(map(len, mixed))
        check(batch["usage"] == {"prompt_tokens": total, "total_tokens": total}, f"server {how}/{attention}: usage {batch['usage']}")
        alone = [srv.post({"model": "emb", "input": ids})[1]["data"][0]["embedding"] for ids in mixed]
        check(all(batch["data"][i]["embedding"] == alone[i] and batch["data"][i]["index"] == i for i in range(len(mixed))),
              f"server {how}/{attention}: batch of mixed lengths bitwise equal to each input alone")
        cli = embed(d, mixed, "--pooling", how, "--attention", attention)
        check(all(cli[i].tolist() == alone[i] for i in range(len(mixed))), f"server {how}/{attention}: equal to corral embed, bitwise")
        st, b64 = srv.post({"model": "emb", "input": mixed, "encoding_format": "base64"})
        dec = [list(struct.unpack(f"<{len(alone[i])}f", base64.b64decode(x["embedding"]))) for i, x in enumerate(b64["data"])]
        check(st == 200 and dec == [[float(torch.tensor(v, dtype=torch.float32)) for v in a] for a in alone],
              f"server {how}/{attention}: base64 decodes to the floats")
        st, dim = srv.post({"model": "emb", "input": mixed[0], "dimensions": 16})
        v = torch.tensor(dim["data"][0]["embedding"])
        full = torch.tensor(alone[0])[:16]
        check(st == 200 and len(v) == 16 and abs(v.norm().item() - 1) < 1e-6 and cosine(v, full) > 0.9999999,
              f"server {how}/{attention}: dimensions 16 truncated and renormalised")
    finally:
        srv.stop()

srv = Server("-m", f"emb={d}", "--ctx-size", "32", "--embedding-only")
try:
    st, e = srv.post({"model": "emb", "input": [[1, 2], list(range(1, 41))]})
    check(st == 400 and "Input 1 has 40 tokens" in e["error"]["message"] and e["error"]["code"] == "context_length_exceeded",
          f"too long: 400 naming the index and count ({e['error']['message']})")
    st, e = srv.post({"model": "emb", "input": [[1, 2], list(range(1, 41))], "truncate_prompt_tokens": 32})
    check(st == 200 and e["usage"]["prompt_tokens"] == 34, "truncate_prompt_tokens keeps the last 32")
    st, t = srv.post({"model": "emb", "input": list(range(9, 41))})
    check(st == 200 and t["data"][0]["embedding"] == e["data"][1]["embedding"], "truncation keeps the last tokens")
    for body, what in [({"input": []}, "empty list"), ({"input": ""}, "empty string"), ({"input": [[1, 2], []]}, "empty id list"),
                       ({"input": [1, 99999]}, "id outside the vocabulary"), ({"input": [1], "dimensions": 0}, "dimensions 0"),
                       ({"input": [1], "dimensions": 100000}, "dimensions over the width"), ({"input": [1], "encoding_format": "hex"}, "encoding"),
                       ({"input": ["a", [1]]}, "mixed kinds"), ({}, "no input"), ({"input": [1], "truncate_prompt_tokens": 100}, "truncate over the context")]:
        st, e = srv.post({"model": "emb", **body})
        check(st == 400 and e["error"]["message"], f"400 for {what}: {e['error']['message']}")
    st, e = srv.post({"model": "emb", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}, "/v1/chat/completions")
    check(st == 400 and "embeddings only" in e["error"]["message"], "--embedding-only: generation refused")
finally:
    srv.stop()

# 4. A sentence-transformers folder: mean pooling, Normalize, bidirectional (is_causal false).
st_dir = os.path.join(WORK, "st-model")
shutil.rmtree(st_dir, ignore_errors=True)
os.makedirs(os.path.join(st_dir, "1_Pooling"))
os.makedirs(os.path.join(st_dir, "2_Normalize"))
cfg = json.load(open(os.path.join(d, "config.json")))
cfg["architectures"] = ["LlamaModel"]
cfg["is_causal"] = False
json.dump(cfg, open(os.path.join(st_dir, "config.json"), "w"))
# A bare LlamaModel: tensor names without "model." and no head.
w = read_st(os.path.join(d, "model.safetensors"))
hdr, blob = {}, b""
for k, t in w.items():
    if k.startswith("lm_head"):
        continue
    raw = t.to(torch.float32).contiguous().numpy().tobytes()
    hdr[k[len("model."):]] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [len(blob), len(blob) + len(raw)]}
    blob += raw
h = json.dumps(hdr).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(os.path.join(st_dir, "model.safetensors"), "wb").write(struct.pack("<Q", len(h)) + h + blob)
json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
           {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
           {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
          open(os.path.join(st_dir, "modules.json"), "w"))
json.dump({"word_embedding_dimension": cfg["hidden_size"], "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
           "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
           "pooling_mode_lasttoken": False, "include_prompt": True}, open(os.path.join(st_dir, "1_Pooling", "config.json"), "w"))
ref = Llama(d)
want = [pool(ref.forward(ids, list(range(len(ids))), [0] * len(ids), causal=False, head=False), "mean") for ids in inputs]
gguf = os.path.join(WORK, "st-model.gguf")
subprocess.run([BIN, "convert", st_dir, gguf], check=True, capture_output=True)
for model, what in [(st_dir, "folder"), (gguf, "converted to GGUF")]:
    got = embed(model, inputs)  # no flags: the model's own spec
    for i, (g, wv) in enumerate(zip(got, want)):
        c = cosine(g, wv)
        check(c >= 0.99999 and abs(g.norm().item() - 1) < 1e-5,
              f"sentence-transformers {what}: mean, bidirectional, normalised, input {i}: cos {c:.7f}")
# Unsupported pooling is an error naming the field.
pc = json.load(open(os.path.join(st_dir, "1_Pooling", "config.json")))
pc["pooling_mode_mean_tokens"], pc["pooling_mode_max_tokens"] = False, True
json.dump(pc, open(os.path.join(st_dir, "1_Pooling", "config.json"), "w"))
r = subprocess.run([BIN, "embed", "-m", st_dir, "--ids", "1,2"], capture_output=True, text=True)
check(r.returncode == 1 and "pooling_mode_max_tokens" in r.stderr, f"max pooling refused: {r.stderr.strip()}")

print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
