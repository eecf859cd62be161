"""`fpdtc run --accumulate 2` against transformers on the batch of both windows.

For each case (built by test/gpu/hf/build-cases.sh into CARRY/<case>/), transformers builds the
model as test/gpu/hf/parity.py does, saves it with save_pretrained, and computes in float32 (and
under bf16 autocast, the yardstick of bf16 noise) the loss and gradients of ONE batch holding two
windows: HF's loss is then the mean over the labels of both windows, which is what fpdtc's
accumulated step must give (token-weighted; every window here counts S - 1 labels). fpdtc runs:
  - one optimizer step of 2 windows with lr 0, gradients dumped: loss within 5e-3, every tensor
    within max(2e-2, 3 x bf16 autocast's error) of transformers' batch gradients;
  - the same against its own unaccumulated runs: the mean of the gradients of window 0 alone and
    window 1 alone (two --steps 1 runs) within 1e-2 (bf16 atomics' run-to-run noise);
  - 2 optimizer steps of 2 windows each with lr > 0 (4 windows): the saved weights against
    torch.optim.AdamW stepping on transformers' batches of 2 windows, the whole model within
    max(2e-2, 3 x bf16 autocast's), and the log says 2 steps, not 4.
Prints one JSON line per case.  Usage: check_accumulate.py CARRY NODE [case ...]
"""
import json, os, shutil, sys
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hf"))
import parity as P  # noqa: E402  (the models, references and the fpdtc runner of the parity suite)

WORK = os.environ.get("ACCUMULATE_WORK", "/tmp/fpdt-accumulate")
K = 2


def batch_loss_and_grads(model, windows, autocast):
    model.zero_grad(set_to_none=True)
    ids = torch.stack(windows)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    return float(out.loss), P.named_values(model, "grads", P.llama_values)


def adamw_batches(model, batches, lr, autocast):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=P.BETAS, eps=P.EPS, weight_decay=P.WD)
    for windows in batches:
        opt.zero_grad(set_to_none=True)
        ids = torch.stack(windows)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
    return P.named_values(model, "params", P.llama_values)


def whole(d, keys):
    return torch.cat([d[k].double().flatten() for k in keys])


def run_case(case, spec, carry, fpdtc):
    name, sp, S = case["name"], case["sp"], spec["seq"]
    case_dir, work = os.path.join(carry, name), os.path.join(WORK, name)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    res = {"case": name, "sp": sp, "accumulate": K, "failures": []}
    fail = res["failures"].append
    model = P.llama_model(spec["llama"][case["model"]], case["seed"])
    P.perturb_norms(model, case["seed"])
    weights = os.path.join(work, "init")
    model.save_pretrained(weights, max_shard_size="4MB", safe_serialization=True)
    model = model.cuda()
    g = torch.Generator().manual_seed(1234 + case["seed"])
    tokens = torch.randint(0, model.config.vocab_size, (2 * K * S,), generator=g, dtype=torch.int64)
    windows = [tokens[k * S:(k + 1) * S].cuda() for k in range(2 * K)]

    def tok_file(fname, ws):
        path = os.path.join(work, fname)
        torch.cat([w.cpu() for w in ws]).to(torch.int32).numpy().astype("<u4").tofile(path)
        return path
    all_tokens = tok_file("tokens.bin", windows)
    state0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ref_loss, ref_g = batch_loss_and_grads(model, windows[:K], False)
    _, bf_g = batch_loss_and_grads(model, windows[:K], True)

    # (1) one accumulated step, lr 0, against transformers' batch of both windows
    gfile = os.path.join(work, "acc.safetensors")
    out = fpdtc.run_text(case_dir, sp, "--weights", weights, "--tokens", all_tokens, "--steps", "1", "--accumulate", str(K), "--lr", "0", "--dump-grads", gfile)
    loss = float(P.re.findall(r"step \d+\s+loss ([-\d.e+]+|nan)", out)[0])
    ours = load_file(gfile)
    res["loss_fpdtc"], res["loss_hf_fp32"] = loss, ref_loss
    res["loss_rel"] = abs(loss - ref_loss) / abs(ref_loss)
    if not res["loss_rel"] <= 5e-3:
        fail(f"loss {loss:.6f} vs transformers' batch {ref_loss:.6f} (rel {res['loss_rel']:.2e})")
    errs = {}
    for k in ref_g:
        e, bf = P.rel(ours[k].float(), ref_g[k]), P.rel(bf_g[k], ref_g[k])
        errs[k] = e
        if not e <= max(2e-2, 3 * bf):
            fail(f"gradient {k}: fpdtc {e:.3e}, transformers bf16 autocast {bf:.3e}")
    res["grad_worst"] = P.worst(errs)

    # (2) against fpdtc's own windows run one at a time: the mean of their gradients
    singles = []
    for k in range(K):
        f = os.path.join(work, f"one{k}.safetensors")
        fpdtc.run(case_dir, sp, "--weights", weights, "--tokens", tok_file(f"one{k}.bin", [windows[k]]), "--steps", "1", "--lr", "0", "--dump-grads", f)
        singles.append(load_file(f))
    mean_err = {k: P.rel(ours[k].float(), sum(s[k].float() for s in singles) / K) for k in ref_g}
    res["vs_single_windows_worst"] = P.worst(mean_err)
    if not res["vs_single_windows_worst"][1] <= 1e-2:
        fail(f"accumulated vs the mean of single-window gradients: {res['vs_single_windows_worst']}")

    # (3) two optimizer steps of K windows with lr > 0, against AdamW on transformers' batches
    lr, saved = spec["lr"], os.path.join(work, "after")
    out = fpdtc.run_text(case_dir, sp, "--weights", weights, "--tokens", all_tokens, "--steps", "2", "--accumulate", str(K), "--lr", str(lr), "--save", saved)
    res["steps_printed"] = len(P.re.findall(r"step \d+\s+loss", out))
    if res["steps_printed"] != 2:
        fail(f"{res['steps_printed']} steps printed for --steps 2 --accumulate {K}")
    files = [os.path.join(saved, f) for f in os.listdir(saved) if f.endswith(".safetensors")]
    after = {}
    for f in files:
        after.update(load_file(f))
    batches = [windows[0:K], windows[K:2 * K]]
    model.load_state_dict(state0)
    ref_after = adamw_batches(model, batches, lr, False)
    model.load_state_dict(state0)
    bf_after = adamw_batches(model, batches, lr, True)
    keys = sorted(k for k in ref_after if k in after)
    model.load_state_dict(state0)
    init = whole(P.named_values(model, "params", P.llama_values), keys)
    ref_w, ours_w, bf_w = whole(ref_after, keys), whole(after, keys), whole(bf_after, keys)
    # errors of the change over the two steps, whole model
    e, bf = float((ours_w - ref_w).norm() / (ref_w - init).norm()), float((bf_w - ref_w).norm() / (ref_w - init).norm())
    res["update_rel"], res["update_bf16_rel"] = e, bf
    if not e <= max(2e-2, 3 * bf):
        fail(f"weights after 2 accumulated steps: {e:.3e} of the update, bf16 autocast {bf:.3e}")
    return res


def main():
    carry, node = sys.argv[1], sys.argv[2]
    spec = json.load(open(os.path.join(carry, "cases.json")))
    wanted = sys.argv[3:] or ["llama-untied-sp1-recomputed", "llama-tied-sp2-gpu"]
    os.makedirs(WORK, exist_ok=True)
    log = open(os.path.join(P.OUT, "accumulate-runs.log"), "w")
    fpdtc = P.Fpdtc(node, os.path.join(carry, "run-entry.mjs"), log)
    bad = 0
    for case in spec["cases"]:
        if case["name"] not in wanted:
            continue
        try:
            res = run_case(case, spec, carry, fpdtc)
        except Exception as e:  # one line per broken case, then the others
            res = {"case": case["name"], "failures": [f"{type(e).__name__}: {e}"]}
        bad += bool(res["failures"])
        print(json.dumps(res), flush=True)
    print("accumulate: " + ("FAILED" if bad else "ok"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
