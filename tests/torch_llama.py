"""A float64 Llama (1-3.x) in PyTorch, written from the HF reference's definitions, shared by the
tests that need an independent oracle (LoRA gradients, embeddings). Reads config.json and
model.safetensors itself, without Corral."""
import json, math, os, struct

import torch

torch.set_default_dtype(torch.float64)
DT = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:e]), dtype=DT[v["dtype"]]).reshape(v["shape"])
        out[k] = t.to(torch.float64)
    return out


def write_st(path, tensors):
    hdr, blob = {}, b""
    for k, t in tensors.items():
        raw = t.to(torch.float32).contiguous().numpy().tobytes()
        hdr[k] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + blob)


class Llama:
    def __init__(self, d):
        c = json.load(open(os.path.join(d, "config.json")))
        self.c = c
        self.w = read_st(os.path.join(d, "model.safetensors"))
        self.E, self.H, self.L = c["hidden_size"], c["num_attention_heads"], c["num_hidden_layers"]
        self.KV = c.get("num_key_value_heads", self.H)
        self.hd = c.get("head_dim") or self.E // self.H
        self.eps = c["rms_norm_eps"]
        rp = c.get("rope_parameters") or c.get("rope_scaling") or {}
        theta = rp.get("rope_theta", c.get("rope_theta", 10000.0))
        inv = 1.0 / (theta ** (torch.arange(0, self.hd, 2, dtype=torch.float64) / self.hd))
        if rp.get("rope_type") == "llama3":
            f, lo, hi, old = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"], rp["original_max_position_embeddings"]
            wl = 2 * math.pi / inv
            scaled = torch.where(wl > old / lo, inv / f, inv)
            sm = (old / wl - lo) / (hi - lo)
            smoothed = (1 - sm) * scaled / f + sm * scaled
            med = ~(wl < old / hi) & ~(wl > old / lo)
            inv = torch.where(med, smoothed, scaled)
        if c.get("dtype", c.get("torch_dtype")) == "bfloat16":  # HF's buffer follows the model's dtype
            inv = inv.to(torch.bfloat16).to(torch.float64)
        self.inv = inv
        self.tied = c.get("tie_word_embeddings", False)

    def norm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, pos):  # x [T, heads, hd]
        f = pos[:, None].to(torch.float64) * self.inv[None, :]
        emb = torch.cat([f, f], -1)
        cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
        x1, x2 = x[..., : self.hd // 2], x[..., self.hd // 2 :]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def forward(self, ids, pos, doc, lora=None, scale=0.0, causal=True, head=True, embed=None):
        """embed: the table the tokens are looked up in (default the model's; a separate leaf
        gives the lookup's gradient alone, apart from a tied head's)."""
        w, T = self.w, len(ids)
        x = (w["model.embed_tokens.weight"] if embed is None else embed)[torch.tensor(ids)]
        pos, doc = torch.tensor(pos), torch.tensor(doc)
        i = torch.arange(T)
        mask = ((i[None, :] <= i[:, None]) | (not causal)) & (doc[None, :] == doc[:, None])

        def lin(name, l, x):
            y = x @ w[f"model.layers.{l}.{name}.weight"].T
            if lora is not None and (l, name) in lora:
                A, B = lora[(l, name)]
                y = y + scale * ((x @ A.T) @ B.T)
            return y

        for l in range(self.L):
            h = self.norm(x, w[f"model.layers.{l}.input_layernorm.weight"])
            q = lin("self_attn.q_proj", l, h).view(T, self.H, self.hd)
            k = lin("self_attn.k_proj", l, h).view(T, self.KV, self.hd)
            v = lin("self_attn.v_proj", l, h).view(T, self.KV, self.hd)
            q, k = self.rope(q, pos), self.rope(k, pos)
            g = self.H // self.KV
            k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
            s = torch.einsum("thd,shd->hts", q, k) / math.sqrt(self.hd)
            s = s.masked_fill(~mask[None], float("-inf"))
            a = torch.einsum("hts,shd->thd", s.softmax(-1), v).reshape(T, self.H * self.hd)
            x = x + lin("self_attn.o_proj", l, a)
            h = self.norm(x, w[f"model.layers.{l}.post_attention_layernorm.weight"])
            m = torch.nn.functional.silu(lin("mlp.gate_proj", l, h)) * lin("mlp.up_proj", l, h)
            x = x + lin("mlp.down_proj", l, m)
        x = self.norm(x, w["model.norm.weight"])
        if not head:
            return x  # the last hidden state [T, E] (embeddings)
        head = w["model.embed_tokens.weight"] if self.tied else w["lm_head.weight"]
        return x @ head.T




class Llama4(Llama):
    """Llama 4's text model (HF's Llama4ForCausalLM): RoPE on interleaved pairs on the layers
    no_rope_layers marks, then the weightless L2 norm of q and k (use_qk_norm); attention
    temperature tuning of q on the NoPE layers; chunked attention (the same attention_chunk_size
    window of positions) on the chunked_attention layers; on the MoE layers a shared expert plus
    the top-k routed experts, each fed its input scaled by the sigmoid of its router score.
    LoRA keys: (layer, "self_attn.q_proj"...), (layer, "feed_forward.shared_expert.gate_proj")
    on MoE layers, (layer, "feed_forward.gate_proj") on dense ones."""

    def __init__(self, d):
        super().__init__(d)
        c = self.c
        self.moe = set(c.get("moe_layers") or [l for l in range(self.L) if (l + 1) % c.get("interleave_moe_layer_step", 1) == 0])
        self.use_rope = [bool(x) for x in c.get("no_rope_layers") or [(l + 1) % 4 != 0 for l in range(self.L)]]
        types = c.get("layer_types") or ["chunked_attention" if self.use_rope[l] else "full_attention" for l in range(self.L)]
        self.chunked = [t == "chunked_attention" for t in types]
        self.chunk = c.get("attention_chunk_size", 8192)
        self.k_top = c.get("num_experts_per_tok", 1)
        self.qk_norm = c.get("use_qk_norm", True)
        self.temp = c.get("attn_temperature_tuning", True)
        self.floor_scale, self.attn_scale = c.get("floor_scale", 8192), c.get("attn_scale", 0.1)

    def rope(self, x, pos):  # interleaved pairs (2i, 2i + 1), as complex numbers
        f = pos[:, None].to(torch.float64) * self.inv[None, :]
        cos, sin = f.cos()[:, None, :], f.sin()[:, None, :]
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack([a * cos - b * sin, a * sin + b * cos], -1).flatten(-2)

    def l2(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, ids, pos, doc, lora=None, scale=0.0, causal=True, head=True, embed=None):
        w, T = self.w, len(ids)
        x = (w["model.embed_tokens.weight"] if embed is None else embed)[torch.tensor(ids)]
        pos, doc = torch.tensor(pos), torch.tensor(doc)
        i = torch.arange(T)
        base_mask = (i[None, :] <= i[:, None]) & (doc[None, :] == doc[:, None])
        chunk_mask = base_mask & ((pos[None, :] // self.chunk) == (pos[:, None] // self.chunk))

        def lin(name, l, x, weight=None):
            y = x @ (w[f"model.layers.{l}.{name}.weight"] if weight is None else weight).T
            if lora is not None and (l, name) in lora:
                A, B = lora[(l, name)]
                y = y + scale * ((x @ A.T) @ B.T)
            return y

        def mlp(prefix, l, h):
            return lin(prefix + ".down_proj", l, torch.nn.functional.silu(lin(prefix + ".gate_proj", l, h)) * lin(prefix + ".up_proj", l, h))

        for l in range(self.L):
            h = self.norm(x, w[f"model.layers.{l}.input_layernorm.weight"])
            q = lin("self_attn.q_proj", l, h).view(T, self.H, self.hd)
            k = lin("self_attn.k_proj", l, h).view(T, self.KV, self.hd)
            v = lin("self_attn.v_proj", l, h).view(T, self.KV, self.hd)
            if self.use_rope[l]:
                q, k = self.rope(q, pos), self.rope(k, pos)
                if self.qk_norm:
                    q, k = self.l2(q), self.l2(k)
            elif self.temp:
                sc = torch.log(torch.floor((pos.to(torch.float64) + 1.0) / self.floor_scale) + 1.0) * self.attn_scale + 1.0
                q = q * sc[:, None, None]
            g = self.H // self.KV
            k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
            s = torch.einsum("thd,shd->hts", q, k) / math.sqrt(self.hd)
            mask = chunk_mask if self.chunked[l] else base_mask
            s = s.masked_fill(~mask[None], float("-inf"))
            a = torch.einsum("hts,shd->thd", s.softmax(-1), v).reshape(T, self.H * self.hd)
            x = x + lin("self_attn.o_proj", l, a)
            h = self.norm(x, w[f"model.layers.{l}.post_attention_layernorm.weight"])
            if l in self.moe:
                p = f"model.layers.{l}.feed_forward"
                out = mlp("feed_forward.shared_expert", l, h)
                logits = h @ w[p + ".router.weight"].T  # [T, NE]
                top_v, top_i = torch.topk(logits, self.k_top, dim=1)
                gu, down = w[p + ".experts.gate_up_proj"], w[p + ".experts.down_proj"]
                F = down.shape[1]
                for t in range(T):
                    for j in range(self.k_top):
                        e = int(top_i[t, j])
                        xin = h[t] * torch.sigmoid(top_v[t, j])
                        z = xin @ gu[e]
                        out = out.index_add(0, torch.tensor([t]), ((torch.nn.functional.silu(z[:F]) * z[F:]) @ down[e])[None])
                x = x + out
            else:
                x = x + mlp("feed_forward", l, h)
        x = self.norm(x, w["model.norm.weight"])
        if not head:
            return x
        return x @ (w["model.embed_tokens.weight"] if self.tied else w["lm_head.weight"]).T


def load(d):
    """The reference model for the fixture folder d: Llama4 for Llama 4's configs, else Llama."""
    c = json.load(open(os.path.join(d, "config.json")))
    arch = (c.get("architectures") or [""])[0]
    return Llama4(d) if arch.startswith("Llama4") or c.get("model_type", "").startswith("llama4") else Llama(d)
