"""Packed documents against Hugging Face transformers run on each document on its own.

For each case of cases.json (built by build-cases.sh into CARRY/<case>/, compiled with --packed):
transformers builds the model from its config (norm weights perturbed away from 1) and saves it with
save_pretrained as a sharded folder; a token stream of documents of random lengths is written the
way the case's source says:
  idx        an indexed dataset (PREFIX.bin + PREFIX.idx, one sequence a document), --tokens PREFIX
  eod        a flat uint32 file whose documents each end with the token V-1, --eod-token V-1
  documents  a flat uint32 file, --documents starts.txt, and --loss-mask mask.bin that ignores the
             labels of each document's first fifth (a prompt)
The documents: one spans a chunk boundary and the rank boundary after it, one has length 1, one runs
across the first window's end (so the second window starts inside it: its tail trains from position
0), the rest are random. fpdtc runs two steps with lr 0 through its command line (`fpdtc run CASE
--weights FOLDER --tokens ... --steps 2 --lr 0 --dump-grads g{step}.safetensors`), twice.

The reference of a window: each of its documents run by transformers in float32 on its own (positions
0, 1, ...), the summed cross-entropy of its counted labels (the next token inside the document, not
masked; never across a document or past the window) divided by the window's counted labels: the loss
is the token-weighted mean, the gradients the sum over documents. Gates, as test/gpu/hf/parity.py:
loss within 5e-3; every gradient within max(2e-2, 3 x the error of the same reference under bf16
autocast); the two runs within 1e-2. Also: a packed program run without a document source stops
with one line before the GPU is touched.

Usage: packed_parity.py CARRY NODE [case ...]   (CARRY holds cases.json, run-entry.mjs and the cases)
"""
import json, os, shutil, subprocess, sys, time

import torch
import torch.nn.functional as Fn
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hf"))
from parity import Fpdtc, llama_model, llama_values, perturb_norms, rel, worst  # noqa: E402

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
WORK = os.environ.get("PACKED_PARITY_WORK", "/tmp/packed-parity")
OUT = os.environ.get("OUT", "/tmp")
IGNORE = -100


def document_lengths(total, S, chunk, sp, gen):
    """lengths filling `total` tokens: chunk + chunk/sp + 1 (across a chunk and a rank boundary), 1, then
    random 1..3000; none ends exactly at a window's end S, 2S, ... (a document runs across it)"""
    out = [chunk + chunk // sp + 1, 1]
    at = sum(out)
    while at < total:
        n = min(int(torch.randint(1, 3001, (1,), generator=gen)), total - at)
        if (at + n) % S == 0 and at + n < total:
            n += 1
        out.append(n)
        at += n
    out[-1] -= at - total
    return [n for n in out if n > 0]


def write_indexed(prefix, docs):
    """MMIDIDX, int32 tokens, one sequence a document"""
    import numpy as np
    n = len(docs)
    sizes = np.array([len(d) for d in docs], dtype="<i4")
    pointers = np.concatenate([[0], np.cumsum(sizes[:-1], dtype=np.int64) * 4]).astype("<i8")
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(np.array([1], dtype="<u8").tobytes())
        f.write(np.array([4], dtype="u1").tobytes())
        f.write(np.array([n, n + 1], dtype="<u8").tobytes())
        f.write(sizes.tobytes())
        f.write(pointers.tobytes())
        f.write(np.arange(n + 1, dtype="<i8").tobytes())
    torch.cat(docs).to(torch.int32).numpy().astype("<i4").tofile(prefix + ".bin")


def make_data(case, spec, V, steps, work, gen):
    """The token stream, its document starts and loss mask, and the fpdtc flags that describe them."""
    S, chunk, sp = spec["seq"], spec["chunk"], case["sp"]
    lengths = document_lengths(steps * S, S, chunk, sp, gen)
    src = case["source"]
    hi = V - 1 if src == "eod" else V
    docs = [torch.randint(0, hi, (n,), generator=gen, dtype=torch.int64) for n in lengths]
    if src == "eod":
        for d in docs:
            d[-1] = V - 1
    tokens = torch.cat(docs)
    starts = torch.tensor([0] + list(torch.cumsum(torch.tensor(lengths), 0)[:-1].tolist()))
    mask = torch.ones(tokens.numel(), dtype=torch.int64)
    if src == "idx":
        prefix = os.path.join(work, "data")
        write_indexed(prefix, docs)
        flags = ["--tokens", prefix]
    else:
        tok_file = os.path.join(work, "tokens.bin")
        tokens.to(torch.int32).numpy().astype("<u4").tofile(tok_file)
        flags = ["--tokens", tok_file]
        if src == "eod":
            flags += ["--eod-token", str(V - 1)]
        else:
            with open(os.path.join(work, "starts.txt"), "w") as f:
                f.write("\n".join(str(int(s)) for s in starts) + "\n")
            for s, n in zip(starts.tolist(), lengths):
                mask[s:s + max(1, n // 5)] = 0  # a prompt: its labels do not count
            mask.to(torch.int32).numpy().astype("<u4").tofile(os.path.join(work, "mask.bin"))
            flags += ["--documents", os.path.join(work, "starts.txt"), "--loss-mask", os.path.join(work, "mask.bin")]
    return tokens, starts, mask, lengths, flags


def window(tokens, starts, mask, w, S):
    """Window w as fpdtc cuts it (runtime/packed-window.ts): its documents as (start, end) inside it,
    and the labels: the next token of the same document inside the window where the mask is 1."""
    a = w * S
    inside = [int(s) - a for s in starts.tolist() if a < s < a + S]
    bounds = [0] + inside + [S]
    tok = tokens[a:a + S]
    labels = torch.full((S,), IGNORE, dtype=torch.int64)
    for b, e in zip(bounds[:-1], bounds[1:]):
        labels[b:e - 1] = tok[b + 1:e]
    labels[mask[a:a + S] == 0] = IGNORE
    return tok, labels, list(zip(bounds[:-1], bounds[1:]))


def reference(model, tok, labels, segments, autocast):
    """Each document on its own: loss = sum of its counted labels' cross-entropy / the window's count;
    the gradients accumulate over the documents. Returns (loss, grads by our names)."""
    model.zero_grad(set_to_none=True)
    total = int((labels != IGNORE).sum())
    loss = 0.0
    for b, e in segments:
        tg = labels[b:e].cuda()
        if int((tg != IGNORE).sum()) == 0:
            continue
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=tok[b:e].cuda()[None]).logits[0]
        part = Fn.cross_entropy(logits.float(), tg, ignore_index=IGNORE, reduction="sum") / total
        part.backward()
        loss += float(part)
    return loss, llama_values(model, "grads")


def run_case(case, spec, carry, fpdtc):
    name = case["name"]
    case_dir = os.path.join(carry, name)
    work = os.path.join(WORK, name)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    S, steps = spec["seq"], 2
    res = {"case": name, "sp": case["sp"], "offload": case["offload"], "keep_attention": case["keep"], "source": case["source"], "failures": []}
    fail = res["failures"].append
    # where the compiled schedule put the working stashes (the case may ask for one place)
    res["gpu_stashes"] = bool(json.load(open(os.path.join(case_dir, "schedule.json"))).get("gpuStashes", False))
    if case.get("stashes") and res["gpu_stashes"] != (case["stashes"] == "gpu"):
        fail(f"the case asks for the working stashes on the {case['stashes']}, the schedule has them elsewhere")
    model = llama_model(spec["llama"][case["model"]], case["seed"])
    perturb_norms(model, case["seed"])
    weights = os.path.join(work, "init")
    model.save_pretrained(weights, max_shard_size="4MB", safe_serialization=True)
    model = model.cuda()
    V = model.config.vocab_size
    gen = torch.Generator().manual_seed(97 + case["seed"])
    tokens, starts, mask, lengths, flags = make_data(case, spec, V, steps, work, gen)
    res["documents"] = len(lengths)

    # a packed program without a document source: one line, before the GPU
    if case["source"] != "idx":
        probe = subprocess.run([fpdtc.node, fpdtc.entry, case_dir, "--tokens", flags[1], "--steps", "1"]
                               + (["--ranks-per-gpu", str(case["sp"])] if case["sp"] > 1 else []), capture_output=True, text=True, timeout=120)
        lines = probe.stderr.strip().splitlines()
        if probe.returncode == 0 or len(lines) != 1 or "say where its documents start" not in lines[0]:
            fail(f"a run without a document source: rc {probe.returncode}, stderr {lines[:3]}")

    runs = []
    for r in range(2):
        gpat = os.path.join(work, f"r{r}-g{{step}}.safetensors")
        losses = fpdtc.run(case_dir, case["sp"], "--weights", weights, *flags, "--steps", str(steps), "--lr", "0", "--dump-grads", gpat)
        runs.append((losses, [load_file(gpat.replace("{step}", str(k + 1))) for k in range(steps)]))
    res["windows"] = []
    for w in range(steps):
        tok, labels, segments = window(tokens, starts, mask, w, S)
        ref_loss, ref_g = reference(model, tok, labels, segments, False)
        bf_loss, bf_g = reference(model, tok, labels, segments, True)
        ours_loss, ours_g = runs[0][0][w], runs[0][1][w]
        row = {"window": w, "documents": len(segments), "counted": int((labels != IGNORE).sum()),
               "first_doc_cut": w > 0 and int(starts[(starts >= w * S).nonzero()[0, 0]]) != w * S,
               "loss_fpdtc": ours_loss, "loss_hf_fp32": ref_loss, "loss_hf_bf16": bf_loss, "loss_rel": abs(ours_loss - ref_loss) / abs(ref_loss)}
        if not row["loss_rel"] <= 5e-3:
            fail(f"window {w}: loss {ours_loss:.6f} vs transformers per document {ref_loss:.6f} (rel {row['loss_rel']:.2e} > 5e-3)")
        grad_err, bf_err, repeat_err = {}, {}, {}
        for k in ref_g:
            if k not in ours_g:
                fail(f"window {w}: gradient {k} missing from the dump")
                continue
            grad_err[k] = rel(ours_g[k].float(), ref_g[k])
            bf_err[k] = rel(bf_g[k], ref_g[k])
            repeat_err[k] = rel(runs[1][1][w][k].float(), ours_g[k].float())
            tol = max(2e-2, 3 * bf_err[k])
            if not grad_err[k] <= tol:
                fail(f"window {w}: gradient {k}: fpdtc {grad_err[k]:.3e}, transformers bf16 autocast {bf_err[k]:.3e} (tolerance {tol:.3e})")
            if not repeat_err[k] <= 1e-2:
                fail(f"window {w}: gradient {k}: two runs differ by {repeat_err[k]:.3e} (> 1e-2)")
        row["grad_worst"], row["grad_bf16_worst"], row["repeat_worst"] = worst(grad_err), worst(bf_err), worst(repeat_err)
        res["windows"].append(row)
    res["ok"] = not res["failures"]
    return res


def main():
    carry, node = sys.argv[1], sys.argv[2]
    only = set(sys.argv[3:])
    spec = json.load(open(os.path.join(carry, "cases.json")))
    os.makedirs(WORK, exist_ok=True)
    log = open(os.path.join(OUT, "packed-parity-runs.log"), "w")
    fpdtc = Fpdtc(node, os.path.join(carry, "run-entry.mjs"), log)
    results = []
    for case in spec["cases"]:
        if only and case["name"] not in only:
            continue
        t = time.time()
        try:
            res = run_case(case, spec, carry, fpdtc)
        except Exception as e:  # one broken case must not hide the others
            res = {"case": case["name"], "ok": False, "failures": [f"exception: {e!r}"]}
        res["seconds"] = round(time.time() - t, 1)
        print(json.dumps(res), flush=True)
        results.append(res)
    print(f"\n{'case':40} {'window':>6} {'docs':>5} {'loss fpdtc':>11} {'loss HF/doc':>11} {'rel':>8} {'worst grad (ours / bf16)':>40}")
    for r in results:
        for w in r.get("windows", []):
            (gk, ge), (_, be) = w["grad_worst"], w["grad_bf16_worst"]
            print(f"{r['case']:40} {w['window']:>6} {w['documents']:>5} {w['loss_fpdtc']:>11.6f} {w['loss_hf_fp32']:>11.6f} {w['loss_rel']:>8.1e} {gk[-28:]:>28} {ge:.1e} / {be:.1e}")
        for f in r["failures"]:
            print(f"  FAIL {r['case']}: {f}")
    ok = all(r["ok"] for r in results)
    print(f"\n== {sum(r['ok'] for r in results)}/{len(results)} packed parity cases pass")
    with open(os.path.join(OUT, "packed-parity.json"), "w") as f:
        json.dump(results, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
