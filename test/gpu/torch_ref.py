"""Float32 PyTorch implementation of the fpdtc test models (Llama-style and GPT-style), fed the
same safetensors weights and tokens as the GPU program; compares loss, every gradient and the
weights after one AdamW step. Usage: torch_ref.py DIR  (DIR holds init/grads/after.safetensors,
tokens.bin and meta.json written by step-entry). Prints one JSON line per model."""
import json, math, struct, sys
import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        assert e["dtype"] == "F32", e["dtype"]
        out[name] = torch.from_numpy(np.frombuffer(body[a:b], dtype=np.float32).copy().reshape(e["shape"]))
    return out


def rope(x, pos, rot, theta):
    # HF rotate-half on the first `rot` dims of each head; x [S, H, d]
    inv = theta ** (-torch.arange(0, rot, 2, dtype=torch.float64) / rot)
    ang = pos[:, None].double() * inv[None, :]
    cos = torch.cat([ang.cos(), ang.cos()], -1).float()[:, None, :]
    sin = torch.cat([ang.sin(), ang.sin()], -1).float()[:, None, :]
    xr, xp = x[..., :rot], x[..., rot:]
    x1, x2 = xr[..., : rot // 2], xr[..., rot // 2 :]
    rotated = torch.cat([-x2, x1], -1)
    return torch.cat([xr * cos + rotated * sin, xp], -1)


def forward(w, tokens, labels, m):
    S, Hq, Hkv, d = len(tokens), m["Hq"], m["Hkv"], m["Dh"]
    pos = torch.arange(S)
    g = lambda n: w[n]
    norm = (lambda x, p: F.rms_norm(x, (x.shape[-1],), g(p + ".weight"), eps=m["eps"])) if m["norm"] == "rms" else (
        lambda x, p: F.layer_norm(x, (x.shape[-1],), g(p + ".weight"), g(p + ".bias"), eps=m["eps"]))
    lin = lambda x, p: F.linear(x, g(p + ".weight"), w.get(p + ".bias"))
    x = g("model.embed_tokens.weight")[tokens]
    for l in range(m["L"]):
        P = f"model.layers.{l}."
        h = norm(x, P + "input_layernorm")
        q = rope(lin(h, P + "self_attn.q_proj").view(S, Hq, d), pos, m["rot"], m["theta"])
        k = rope(lin(h, P + "self_attn.k_proj").view(S, Hkv, d), pos, m["rot"], m["theta"])
        v = lin(h, P + "self_attn.v_proj").view(S, Hkv, d)
        k = k.repeat_interleave(Hq // Hkv, dim=1)
        v = v.repeat_interleave(Hq // Hkv, dim=1)
        a = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None], is_causal=True)
        x = x + lin(a[0].transpose(0, 1).reshape(S, Hq * d), P + "self_attn.o_proj")
        h = norm(x, P + "post_attention_layernorm")
        if m["mlp"] == "swiglu":
            y = lin(F.silu(lin(h, P + "mlp.gate_proj")) * lin(h, P + "mlp.up_proj"), P + "mlp.down_proj")
        else:
            y = lin(F.gelu(lin(h, P + "mlp.fc1"), approximate="tanh"), P + "mlp.fc2")
        x = x + y
    x = norm(x, "model.norm")
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["model.embed_tokens.weight"]
    logits = x @ head.T
    return F.cross_entropy(logits, labels, ignore_index=-100)


def rel(a, b):
    return float((a - b).norm() / max(b.norm(), 1e-30))


def check(d):
    meta = json.load(open(f"{d}/meta.json"))
    m = meta["model"]
    init = read_safetensors(f"{d}/init.safetensors")
    grads = read_safetensors(f"{d}/grads.safetensors")
    after = read_safetensors(f"{d}/after.safetensors")
    toks = torch.from_numpy(np.fromfile(f"{d}/tokens.bin", dtype=np.uint32).astype(np.int64))
    labels = torch.cat([toks[1:], torch.tensor([-100])])
    w = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    loss = forward(w, toks, labels, m)
    loss.backward()
    worst_g = max(((rel(grads[k], w[k].grad), k) for k in w))
    # one AdamW step (bias-corrected, decoupled decay) from zero moments
    lr, b1, b2, eps, wd = meta["lr"], 0.9, 0.95, 1e-8, 0.1
    worst_w = (0.0, "")
    worst_after = (0.0, "")
    for k in w:
        gk = w[k].grad
        mh = (1 - b1) * gk / (1 - b1)
        vh = (1 - b2) * gk * gk / (1 - b2)
        ref = init[k] * (1 - lr * wd) - lr * mh / (vh.sqrt() + eps)
        # compare the update itself: weights move by ~lr, so relative to the move
        e = rel(after[k] - init[k], ref - init[k])
        worst_w = max(worst_w, (e, k))
        # and the updated weights themselves, the figure the tolerance is set for
        worst_after = max(worst_after, (rel(after[k], ref), k))
    res = {
        "model": meta["name"], "loss_gpu": meta["loss"], "loss_torch": float(loss),
        "loss_rel": abs(meta["loss"] - float(loss)) / abs(float(loss)),
        "grad_worst_rel": worst_g[0], "grad_worst": worst_g[1],
        "update_worst_rel": worst_w[0], "update_worst": worst_w[1],
        "after_worst_rel": worst_after[0], "after_worst": worst_after[1],
        "grads": {k: round(rel(grads[k], w[k].grad), 5) for k in w},
    }
    res["pass"] = res["loss_rel"] < 5e-3 and res["grad_worst_rel"] < 2e-2 and res["after_worst_rel"] < 2e-2
    print(json.dumps(res))
    return res["pass"]


if __name__ == "__main__":
    ok = all([check(d) for d in sys.argv[1:]])
    sys.exit(0 if ok else 1)
