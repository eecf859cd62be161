"""Causal attention benchmark: fpdtc kernels vs torch SDPA (flash, cuDNN), one H200, bf16, batch 1.

  python3 test/bench/attention.py [kernels_dir=.carry/kernels/llama] [seqs=32768,131072] [heads=32/32]
  PAIRED=1: also the default launchers against cuDNN, each variant against the default, and the FPDT
  decomposition against one block, interleaved: the median of paired ratios (paired_speed). BACKENDS=cudnn:
  only that SDPA backend (default flash,cudnn)

Head dim from the kernels' spec.json (llama 128, gpt 64); heads as q/kv (32/8: GQA, 4 q heads a kv head).
TFLOP/s counted causal: 2*S^2*d*heads forward, x3.5 forward+backward. SDPA gets K/V with kv heads
through enable_gqa=True where the backend takes it, else repeated to the q heads (said in the output).
'ours 1-block': one causal block over the whole sequence (Lq = Lk = S).
'ours FPDT': chunks of min(64K, S/2). Forward: q chunk i against kv chunks 0..i into fused fp32 accumulators,
then bf16. Backward as the programs run it: delta per q chunk, then for each kv chunk j the blocks of q chunks
j.. against the final lse (the diagonal one causal), dq accumulated across kv chunks; its gradients are
compared once with one block's."""
import ctypes as C
import json
import math
import os
import sys

import torch
import torch.nn.functional as Fn
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gpu", "kernels"))
from build import build  # noqa: E402
from cuda_timing import timed  # noqa: E402

KDIR = sys.argv[1] if len(sys.argv) > 1 else ".carry/kernels/llama"
SEQS = [int(s) for s in (sys.argv[2] if len(sys.argv) > 2 else "32768,131072").split(",")]
H, HKV = (int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "32/32").split("/"))
OUT = os.environ.get("OUT", "/tmp")
D = json.load(open(os.path.join(KDIR, "spec.json")))["headDim"]
assert H % HKV == 0, "q heads must be a multiple of kv heads"
dev = torch.device("cuda")
P = lambda t: C.c_void_p(t.data_ptr())  # noqa: E731
I, F = C.c_int, C.c_float
NULL = C.c_void_p(0)
lib = C.CDLL(build(KDIR, "/tmp/fpdt_build_bench", log=lambda *_: None))


def st():
    return C.c_void_p(torch.cuda.current_stream().cuda_stream)


def ok(err, what):
    if err != 0:
        raise RuntimeError(f"{what}: cudaError {err}")


def bench(fn, reps):
    fn()
    torch.cuda.synchronize()
    times = sorted(timed(fn) for _ in range(reps))
    return times[len(times) // 2]


def paired_speed(ours, other, rounds=9, min_s=0.2):
    """Median over `rounds` of other's time / ours (> 1: ours faster), with min and max. Each round times
    both, alternating which goes first, each sample repeating the call for at least `min_s` seconds, so both
    see the same clocks and heat; one bench() after the other sees ours cold and the other warm."""
    ours()
    other()
    torch.cuda.synchronize()
    n = max(1, math.ceil(min_s / bench(ours, 1)))
    ratios = []
    for r in range(rounds):
        if r % 2 == 0:
            t_ours = timed(ours, n)
            t_other = timed(other, n)
        else:
            t_other = timed(other, n)
            t_ours = timed(ours, n)
        ratios.append(t_other / t_ours)
    ratios.sort()
    return ratios[len(ratios) // 2], ratios[0], ratios[-1]


def main():
    torch.manual_seed(0)
    rows = []
    scale = 1 / math.sqrt(D)
    # "_mma": the mma.sync kernels that the sm_90a ones (the default launchers, where rendered) fall back to;
    # "_st<N>": the sm_90a forward with an N-stage K/V ring (the default: 2 at head dim 128, 4 at 64);
    # "_dqpartial": the head-dim-64 sm_90a backward with partial dQ tiles (the default forward with it)
    # VARIANTS=default,_mma: only these (default = the "" launchers); a suffix named there that is not one of
    # the known ones above is timed too where the library has its launchers (a bench copy built beside them)
    keep = ["" if v == "default" else v for v in os.environ.get("VARIANTS", "").split(",") if v]
    variants = [s for s in dict.fromkeys(("", "_mma", "_v1", "_v2", "_v3", "_st2", "_st3", "_st4", "_wg2", "_dqpartial", *keep))
                if hasattr(lib, "fpdt_attn_fwd" + s) or hasattr(lib, "fpdt_attn_bwd" + s)]
    if keep:
        variants = [s for s in variants if s in keep]
    for S in SEQS:
        reps = 5 if S <= 32768 else 2
        flops = 2 * S * S * D * H
        q, do = (torch.randn(S, H, D, device=dev, dtype=torch.bfloat16) for _ in range(2))
        k, v = (torch.randn(S, HKV, D, device=dev, dtype=torch.bfloat16) for _ in range(2))
        o = torch.empty_like(q)
        lse = torch.empty(H, S, device=dev)
        delta = torch.empty(H, S, device=dev)
        dq = torch.empty(S, H, D, device=dev)
        dk, dv = (torch.empty(S, HKV, D, device=dev) for _ in range(2))
        G = H // HKV

        def fwd(sfx=""):
            sfx = sfx if hasattr(lib, "fpdt_attn_fwd" + sfx) else ""  # a backward-only variant: the default forward
            ok(getattr(lib, "fpdt_attn_fwd" + sfx)(P(q), P(k), P(v), NULL, P(lse), P(o), I(S), I(S), I(H), I(HKV),
                                                   I(0), I(G), F(scale), I(1), I(2), st()), "fwd")

        chunk = min(65536, S // 2)
        acc = torch.empty(chunk, H, D, device=dev)
        lse_c = torch.empty(H, chunk, device=dev)

        def fwd_fpdt(sfx=""):
            fwd_block = getattr(lib, "fpdt_attn_fwd" + sfx)
            for i in range(0, S, chunk):
                qi = q[i:i + chunk]
                for j in range(0, i + 1, chunk):
                    ok(fwd_block(P(qi), P(k[j:j + chunk]), P(v[j:j + chunk]), P(acc), P(lse_c), NULL,
                                         I(chunk), I(chunk), I(H), I(HKV), I(0), I(G), F(scale), I(int(i == j)), I(0 if j == 0 else 1),
                                         st()), "fwd chunk")
                ok(lib.fpdt_attn_finalize(P(acc), P(o[i:i + chunk]), I(chunk), I(H), st()), "finalize")

        ob = torch.empty(chunk, H, D, device=dev)
        lse_b = torch.empty(H, chunk, device=dev)

        def fwd_fpdt_merge():  # the unfused alternative: block result to scratch, then a merge pass
            for i in range(0, S, chunk):
                qi = q[i:i + chunk]
                for j in range(0, i + 1, chunk):
                    dst, dl = (acc, lse_c) if j == 0 else (ob, lse_b)
                    ok(lib.fpdt_attn_fwd(P(qi), P(k[j:j + chunk]), P(v[j:j + chunk]), P(dst), P(dl), NULL,
                                         I(chunk), I(chunk), I(H), I(HKV), I(0), I(G), F(scale), I(int(i == j)), I(0), st()), "fwd")
                    if j > 0:
                        ok(lib.fpdt_attn_merge(P(acc), P(lse_c), P(ob), P(lse_b), I(chunk), I(H), st()), "merge")
                ok(lib.fpdt_attn_finalize(P(acc), P(o[i:i + chunk]), I(chunk), I(H), st()), "finalize")

        def bwd(sfx=""):
            sfx = sfx if hasattr(lib, "fpdt_attn_bwd" + sfx) else ""  # a forward-only variant: the default backward
            ok(lib.fpdt_attn_bwd_delta(P(o), P(do), P(delta), I(S), I(H), st()), "delta")
            for t in (dq, dk, dv):
                t.zero_()
            ok(getattr(lib, "fpdt_attn_bwd" + sfx)(P(q), P(k), P(v), P(do), P(lse), P(delta), P(dq), P(dk), P(dv), I(S), I(S), I(H),
                                 I(HKV), I(0), I(G), F(scale), I(1), st()), "bwd")

        n_chunks = S // chunk
        lse_ck = torch.empty(n_chunks, H, chunk, device=dev)  # each q chunk's final lse, [H, chunk] as programs keep it
        delta_ck = torch.empty(n_chunks, H, chunk, device=dev)

        def bwd_fpdt(sfx=""):
            c = chunk
            bwd_block = getattr(lib, "fpdt_attn_bwd" + sfx)
            for i in range(n_chunks):
                ok(lib.fpdt_attn_bwd_delta(P(o[i * c:]), P(do[i * c:]), P(delta_ck[i]), I(c), I(H), st()), "delta chunk")
            for t in (dq, dk, dv):
                t.zero_()
            for j in range(n_chunks):  # kv chunk outer, as the programs' backward loop
                for i in range(j, n_chunks):
                    ok(bwd_block(P(q[i * c:]), P(k[j * c:]), P(v[j * c:]), P(do[i * c:]), P(lse_ck[i]), P(delta_ck[i]),
                                         P(dq[i * c:]), P(dk[j * c:]), P(dv[j * c:]), I(c), I(c), I(H), I(HKV), I(0), I(G),
                                         F(scale), I(int(i == j)), st()), "bwd block")

        def rel_err(a, b):
            return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30))

        def record(name, t_fwd, t_fb):
            rows.append({"S": S, "kernel": name, "fwd_ms": t_fwd * 1e3, "fwd_tflops": flops / t_fwd / 1e12,
                         "fwdbwd_ms": t_fb * 1e3 if t_fb else None,
                         "fwdbwd_tflops": 3.5 * flops / t_fb / 1e12 if t_fb else None})
            r = rows[-1]
            print(f"S={S:>6} {name:<24} fwd {r['fwd_tflops']:6.1f} TFLOP/s ({r['fwd_ms']:8.2f} ms)  fwd+bwd " +
                  (f"{r['fwdbwd_tflops']:6.1f} TFLOP/s ({r['fwdbwd_ms']:8.2f} ms)" if t_fb else "-"), flush=True)

        for sfx in variants:
            t_fwd = bench(lambda: fwd(sfx), reps)
            t_fb = bench(lambda: (fwd(sfx), bwd(sfx)), reps)
            record(f"ours 1-block{sfx or ' (default)'}", t_fwd, t_fb)
            if os.environ.get("PAIRED") and sfx:
                # PAIRED=1: each variant against the default launchers, interleaved (paired_speed)
                # (a backward-only copy runs the default forward: only its forward+backward is paired)
                pf = paired_speed(lambda: fwd(sfx), fwd) if hasattr(lib, "fpdt_attn_fwd" + sfx) else None
                pb = paired_speed(lambda: (fwd(sfx), bwd(sfx)), lambda: (fwd(), bwd()))
                rows[-1]["paired_speed_over_default"] = {"fwd": pf, "fwdbwd": pb}
                print(f"        paired, median of 9 rounds (min-max): speed {sfx} / default: " +
                      (f"forward {pf[0]:.3f} ({pf[1]:.3f}-{pf[2]:.3f}), " if pf else "") +
                      f"forward+backward {pb[0]:.3f} ({pb[1]:.3f}-{pb[2]:.3f})")
        # the decomposition's results against one block's, once (fp32 sums in another order: ~1e-6 expected)
        fwd()
        bwd()
        torch.cuda.synchronize()
        o1, g1 = o.clone(), [t.clone() for t in (dq, dk, dv)]
        lse_ck.copy_(lse.view(H, n_chunks, chunk).transpose(0, 1))
        fwd_fpdt()
        bwd_fpdt()
        torch.cuda.synchronize()
        errs = {"o": rel_err(o, o1), **{n: rel_err(t, r) for n, t, r in zip(("dq", "dk", "dv"), (dq, dk, dv), g1)}}
        name = f"ours FPDT chunk={chunk // 1024}K"
        record(name, bench(fwd_fpdt, reps), bench(lambda: (fwd_fpdt(), bwd_fpdt()), reps))
        rows[-1]["err_vs_one_block"] = errs
        print("        against one block: " + ", ".join(f"{n} {e:.1e}" for n, e in errs.items()))
        if max(errs.values()) > 2e-2:
            raise RuntimeError(f"{name}: results differ from one block's: {errs}")
        if os.environ.get("PAIRED"):
            pf = paired_speed(fwd_fpdt, fwd)
            pb = paired_speed(lambda: (fwd_fpdt(), bwd_fpdt()), lambda: (fwd(), bwd()))
            rows[-1]["paired_speed_over_one_block"] = {"fwd": pf, "fwdbwd": pb}
            print(f"        paired, median of 9 rounds (min-max): speed FPDT / one block: forward {pf[0]:.3f} "
                  f"({pf[1]:.3f}-{pf[2]:.3f}), forward+backward {pb[0]:.3f} ({pb[1]:.3f}-{pb[2]:.3f})")
            for sfx in [v for v in variants if v]:
                # each variant inside the decomposition (its full blocks), against the default launchers; a
                # forward-only or backward-only copy runs the default of the other direction
                vf = sfx if hasattr(lib, "fpdt_attn_fwd" + sfx) else ""
                vb = sfx if hasattr(lib, "fpdt_attn_bwd" + sfx) else ""
                pf = paired_speed(lambda: fwd_fpdt(vf), fwd_fpdt) if vf else None
                pb = paired_speed(lambda: (fwd_fpdt(vf), bwd_fpdt(vb)), lambda: (fwd_fpdt(), bwd_fpdt()))
                rows[-1].setdefault("paired_speed_variant_over_default", {})[sfx] = {"fwd": pf, "fwdbwd": pb}
                print(f"        paired, median of 9 rounds (min-max): FPDT, speed {sfx} / default: " +
                      (f"forward {pf[0]:.3f} ({pf[1]:.3f}-{pf[2]:.3f}), " if pf else "") +
                      f"forward+backward {pb[0]:.3f} ({pb[1]:.3f}-{pb[2]:.3f})")
        record(f"ours FPDT unfused merge", bench(fwd_fpdt_merge, reps), None)
        # accuracy of ours vs the flash backend at this size (single block)
        fwd()
        t_ours = next(r["fwd_ms"] for r in rows if r["S"] == S)  # the default launcher, measured first
        qt = q.transpose(0, 1).unsqueeze(0)
        backends = [(SDPBackend.FLASH_ATTENTION, "torch SDPA flash", "flash"), (SDPBackend.CUDNN_ATTENTION, "torch SDPA cuDNN", "cudnn")]
        for backend, name, _ in [b for b in backends if b[2] in os.environ.get("BACKENDS", "flash,cudnn").split(",")]:
            for gqa in ([True, False] if G > 1 else [False]):
                # K/V as [1, kv heads, S, D] with enable_gqa, else repeated to the q heads
                kt, vt = ((t if gqa else t.repeat_interleave(G, 1)).transpose(0, 1).unsqueeze(0) for t in (k, v))
                kw = {"enable_gqa": True} if gqa else {}
                how = " (enable_gqa)" if gqa else (" (K/V repeated)" if G > 1 else "")
                try:
                    with sdpa_kernel([backend]):
                        ref = Fn.scaled_dot_product_attention(qt, kt, vt, is_causal=True, **kw)
                        err = ((o.transpose(0, 1).unsqueeze(0).float() - ref.float()).norm() / ref.float().norm()).item()
                        t_fwd = bench(lambda: Fn.scaled_dot_product_attention(qt, kt, vt, is_causal=True, **kw), reps)
                        qg, kg, vg = (t.detach().clone().requires_grad_() for t in (qt, kt, vt))
                        dot = do.transpose(0, 1).unsqueeze(0)

                        def fb():
                            Fn.scaled_dot_product_attention(qg, kg, vg, is_causal=True, **kw).backward(dot)

                        t_fb = bench(fb, reps)
                    record(name + how, t_fwd, t_fb)
                    rows[-1]["ours_vs_this_rel_err"] = err
                    print(f"        ours vs {name}: relative difference {err:.2e}; forward speed ours (default) / this "
                          f"{t_fwd * 1e3 / t_ours:.3f}")
                    if os.environ.get("PAIRED") and backend == SDPBackend.CUDNN_ATTENTION:
                        # PAIRED=1: the default launchers against this backend, interleaved (paired_speed)
                        with sdpa_kernel([backend]):
                            pf = paired_speed(fwd, lambda: Fn.scaled_dot_product_attention(qt, kt, vt, is_causal=True, **kw))
                            pb = paired_speed(lambda: (fwd(), bwd()), fb)
                        rows[-1]["paired_speed_ours_over_this"] = {"fwd": pf, "fwdbwd": pb}
                        print(f"        paired, median of 9 rounds (min-max): speed ours (default) / this: forward "
                              f"{pf[0]:.3f} ({pf[1]:.3f}-{pf[2]:.3f}), forward+backward {pb[0]:.3f} ({pb[1]:.3f}-{pb[2]:.3f})")
                    del ref, qg, kg, vg
                    break
                except Exception as e:
                    print(f"S={S} {name}{how}: unavailable ({str(e).splitlines()[0][:200] if str(e) else e!r})")
        del q, k, v, do, o, dq, dk, dv, acc, ob, qt
        torch.cuda.empty_cache()
    name = f"attention_bench_{os.path.basename(os.path.normpath(KDIR))}_{H}-{HKV}.json"
    with open(os.path.join(OUT, name), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "head_dim": D, "heads": H,
                   "kv_heads": HKV, "kernels": KDIR, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
