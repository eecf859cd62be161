"""Several steps of one model three ways (one rank; SP 2 with the local backend on one GPU; SP 2
over NCCL, one process per GPU), all from the same seeded init and tokens through `fpdtc run`:
  - the loss changes from step to step (the update reaches the next step, the token window moves);
  - the per-step losses and printed global gradient norms agree across the three (5e-3 relative);
  - the last step's gradients agree with one rank's (2e-2 per tensor);
  - every tensor moved from its initial value (each rank's ZeRO-3 shard was updated), and the
    weights after the last step agree within 0.1 of their change per tensor. AdamW's first steps
    move each weight by about lr*sign(g), so where |g| is below bf16 noise the sign differs between
    any two bf16 runs (transformers under bf16 autocast is 6-15% off float32 per tensor after one
    step, test/gpu/hf); the gate catches an update that is missing or wrong, not that noise. The
    key bias gets no gradient in exact arithmetic (softmax ignores a shift of every score of a
    row): its update is noise and it is only reported.
Usage: check_steps.py [--labels A,B,C] NAME INIT LOG1 G1 W1 LOG2 G2 W2 [LOG3 G3 W3]   (logs of `fpdtc run`; safetensors;
the NCCL run is left out on a machine of one GPU)
Prints one JSON line; exit 1 on failure, naming the tensor or step."""
import json, re, sys
from safetensors.torch import load_file


def losses(log):
    return [float(x) for x in re.findall(r"step \d+\s+loss ([-\d.e+]+|nan)", open(log).read())]


def grad_norms(log):
    """The global gradient norm each step printed (gnorm), when the program reports it."""
    return [float(x) for x in re.findall(r"gnorm ([-\d.e+]+)", open(log).read())]


def rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


NOISE_ONLY = ("self_attn.k_proj.bias",)


def main(*args):
    labels = ["one rank", "sp 2 local", "sp 2 nccl"]
    if args[0] == "--labels":
        labels, args = args[1].split(","), args[2:]
    name, init, runs = args[0], args[1], args[2:]
    w0 = load_file(init)
    got = [(losses(runs[i]), load_file(runs[i + 1]), load_file(runs[i + 2])) for i in range(0, len(runs), 3)]
    fails, out = [], {"model": name}
    for lab, (ls, _, _) in zip(labels, got):
        out[f"losses {lab}"] = ls
        if len(ls) < 2:
            fails.append(f"{lab}: {len(ls)} steps printed")
        for k in range(1, len(ls)):
            if not abs(ls[k] - ls[k - 1]) > 1e-4 * abs(ls[k - 1]):
                fails.append(f"{lab}: loss did not change from step {k} to {k + 1} ({ls[k - 1]} -> {ls[k]})")
    # the global gradient norm (all ranks' shards, all-reduced on the GPU) is the same however the
    # model is split; with --clip-grad-norm it sets every rank's update
    norms = [grad_norms(runs[i]) for i in range(0, len(runs), 3)]
    for lab, ns in zip(labels, norms):
        out[f"grad norms {lab}"] = ns
    for lab, ns in zip(labels[1:], norms[1:]):
        for k, (a, b) in enumerate(zip(ns, norms[0])):
            if not abs(a - b) <= 5e-3 * abs(b):
                fails.append(f"{lab}: step {k + 1} gradient norm {a} vs one rank {b}")
    ref_l, ref_g, ref_w = got[0]
    for lab, (ls, g, w) in zip(labels[1:], got[1:]):
        for k, (a, b) in enumerate(zip(ls, ref_l)):
            if not abs(a - b) <= 5e-3 * abs(b):
                fails.append(f"{lab}: step {k + 1} loss {a} vs one rank {b}")
        gw = max(((rel(g[n], ref_g[n]), n) for n in ref_g), default=(0.0, ""))
        moved = {n: (ref_w[n] - w0[n]).norm().clamp_min(1e-30) for n in ref_w}
        ww = max((((w[n].double() - ref_w[n].double()).norm() / moved[n]).item(), n) for n in ref_w if not n.endswith(NOISE_ONLY))
        out[f"grad worst {lab}"], out[f"weights worst {lab}"] = gw, ww
        if not gw[0] <= 2e-2:
            fails.append(f"{lab}: gradient {gw[1]} off by {gw[0]:.3e} from one rank")
        if not ww[0] <= 0.1:
            fails.append(f"{lab}: weights {ww[1]} off by {ww[0]:.3e} (relative to their change) from one rank")
        still = [n for n in w0 if rel(w[n], w0[n]) < 1e-6]
        if still:
            fails.append(f"{lab}: {len(still)} tensors did not move, e.g. {still[:3]}")
    out["failures"], out["pass"] = fails, not fails
    print(json.dumps(out))
    sys.exit(0 if not fails else 1)


main(*sys.argv[1:])
