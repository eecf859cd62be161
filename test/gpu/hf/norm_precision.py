"""Where the AdamW weight error of norm weights comes from: transformers in float32 against itself
with the norm weights rounded to bf16 in the forward (as fpdtc's kernels read them), and against
bf16 autocast with and without that rounding. Prints, per variant, the worst norm-weight and the
worst other-tensor error after one AdamW step (relative to the reference's change in that step),
and the gradient errors. Usage: norm_precision.py CASES_JSON"""
import json, sys
import torch
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from parity import llama_model, perturb_norms, rel, BETAS, EPS, WD  # noqa: E402

torch.backends.cuda.matmul.allow_tf32 = False
spec = json.load(open(sys.argv[1]))
cfg = spec["llama"]["untied"]
S, lr = spec["seq"], spec["lr"]


def model_with(round_norms):
    m = llama_model(cfg, 11)
    perturb_norms(m, 11)
    if round_norms:
        for mod in m.modules():
            if type(mod).__name__.endswith("RMSNorm"):
                f = mod.forward

                def fwd(x, mod=mod, f=f):
                    w = mod.weight
                    eps = getattr(mod, "variance_epsilon", 1e-5)
                    h = x.float()
                    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
                    we = w + (w.to(torch.bfloat16).float() - w).detach()  # forward sees bf16, gradient reaches w
                    return (we * h).to(x.dtype)
                mod.forward = fwd
    return m.cuda()


def one_step(m, ids, autocast):
    opt = torch.optim.AdamW(m.parameters(), lr=lr, betas=BETAS, eps=EPS, weight_decay=WD)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        loss = m(input_ids=ids[None], labels=ids[None]).loss
    loss.backward()
    g = {n: p.grad.detach().clone() for n, p in m.named_parameters()}
    w0 = {n: p.detach().clone() for n, p in m.named_parameters()}
    opt.step()
    return g, w0, {n: p.detach().clone() for n, p in m.named_parameters()}


ids = torch.randint(0, cfg["vocab_size"], (S,), generator=torch.Generator().manual_seed(5)).cuda()
g_ref, w0, w_ref = one_step(model_with(False), ids, False)
for name, rn, ac in [("fp32, norm weights rounded to bf16", True, False), ("bf16 autocast", False, True), ("bf16 autocast, norm weights rounded", True, True)]:
    g, _, w = one_step(model_with(rn), ids, ac)
    err = {n: float((w[n] - w_ref[n]).norm() / (w_ref[n] - w0[n]).norm()) for n in w}
    gerr = {n: rel(g[n], g_ref[n]) for n in g}
    norms = [n for n in err if "norm" in n]
    others = [n for n in err if "norm" not in n]
    print(json.dumps({"variant": name,
                      "norm_weight_step_worst": max((err[n], n) for n in norms), "other_step_worst": max((err[n], n) for n in others),
                      "norm_grad_worst": max((gerr[n], n) for n in norms), "other_grad_worst": max((gerr[n], n) for n in others)}))
