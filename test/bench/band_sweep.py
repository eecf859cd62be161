"""Full attention blocks in bands, on one full L x L block (chunk L of FPDT, off the diagonal), 32 q / 8 kv
heads. The programs' kernels run a full block's CTAs with the kv tiles (backward) or query blocks (forward)
fastest, so the CTAs running together share one kv head, and the backward cuts the q tiles into bands of
32 MiB of Q, dO and dq rows per kv head. Paired against them: the bench copies fpdt_attn_{fwd,bwd}_heads (the
heads fastest, the programs' form until 2026-12-01) and fpdt_attn_bwd_band, whose band is FPDT_BAND_MIB MiB
(read at each launch; the sweep sets it per row). kernels.ts: sm90HeadsFastestAttention, sm90BandSweepBackward.

  python3 test/bench/band_sweep.py [kernels_dir=.carry/kernels/llama] [L=65536] [heads=32/8] [MiB list=8,16,64]

Ratios are speed (the default's time / the copy's), the median of 9 rounds of >= 0.2 s each (min-max); TFLOP/s
with the schedule's count (4 L^2 D H forward, 2.5x that backward). Each copy's gradients are checked against
the default's first (dq, dk, dv within fp32 atomics' order)."""
import ctypes as C
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gpu", "kernels"))
from build import build  # noqa: E402
from cuda_timing import paired, timed  # noqa: E402
from launch import NULL, F, I, P, ok, st  # noqa: E402

KDIR = sys.argv[1] if len(sys.argv) > 1 else ".carry/kernels/llama"
L = int(sys.argv[2]) if len(sys.argv) > 2 else 65536
H, HKV = (int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "32/8").split("/"))
MIBS = [float(x) for x in (sys.argv[4] if len(sys.argv) > 4 else "8,16,64").split(",")]
D = json.load(open(os.path.join(KDIR, "spec.json")))["headDim"]
lib = C.CDLL(build(KDIR, "/tmp/fpdt_build_band_sweep", log=lambda *_: None))
dev = torch.device("cuda")


def main():
    if not hasattr(lib, "fpdt_attn_bwd_band") or not hasattr(lib, "fpdt_attn_bwd_heads"):
        sys.exit(f"{KDIR}: no fpdt_attn_bwd_band or _heads (render with sm90BandSweepBackward, sm90HeadsFastestAttention)")
    torch.manual_seed(0)
    G, scale = H // HKV, 1 / math.sqrt(D)
    q, do = (torch.randn(L, H, D, device=dev, dtype=torch.bfloat16) for _ in range(2))
    k, v = (torch.randn(L, HKV, D, device=dev, dtype=torch.bfloat16) for _ in range(2))
    o = torch.empty_like(q)
    lse, delta = torch.empty(H, L, device=dev), torch.empty(H, L, device=dev)
    dq = torch.zeros(L, H, D, device=dev)
    dk, dv = torch.zeros(L, HKV, D, device=dev), torch.zeros(L, HKV, D, device=dev)

    def fwd(fn=lib.fpdt_attn_fwd):
        ok(fn(P(q), P(k), P(v), NULL, P(lse), P(o), I(L), I(L), I(H), I(HKV), I(0), I(G), F(scale), I(0), I(2), st()), "fwd")

    def bwd(fn=lib.fpdt_attn_bwd):
        ok(fn(P(q), P(k), P(v), P(do), P(lse), P(delta), P(dq), P(dk), P(dv), I(L), I(L), I(H), I(HKV), I(0), I(G),
              F(scale), I(0), st()), "bwd")

    fwd()
    ok(lib.fpdt_attn_bwd_delta(P(o), P(do), P(delta), I(L), I(H), st()), "delta")
    fl = 4 * L * L * D * H
    t = timed(fwd, 3)
    print(f"full {L // 1024}K block, head dim {D}, {H}/{HKV} heads: forward {t * 1e3:.2f} ms ({fl / t / 1e12:.1f} TFLOP/s)",
          flush=True)
    if hasattr(lib, "fpdt_attn_fwd_heads"):
        o_ref = o.clone()
        fwd(lib.fpdt_attn_fwd_heads)
        print(f"  forward _heads against default: o {(o.float() - o_ref.float()).abs().max().item():.1e}", flush=True)
        m, lo, hi = paired(lambda: fwd(lib.fpdt_attn_fwd_heads), fwd)
        t = timed(lambda: fwd(lib.fpdt_attn_fwd_heads), 3)
        print(f"  forward _heads: {fl / t / 1e12:.1f} TFLOP/s; speed _heads / default {m:.3f} ({lo:.3f}-{hi:.3f})", flush=True)

    def grads(fn):
        for x in (dq, dk, dv):
            x.zero_()
        bwd(fn)
        torch.cuda.synchronize()
        return dq.clone(), dk.clone(), dv.clone()

    ref = grads(lib.fpdt_attn_bwd)
    t = timed(bwd, 2)
    print(f"  backward default: {2.5 * fl / t / 1e12:.1f} TFLOP/s ({t * 1e3:.1f} ms)", flush=True)
    for name, mib in [("_heads", None)] + [("_band", x) for x in MIBS]:
        fn = getattr(lib, "fpdt_attn_bwd" + name)
        if mib is not None:
            os.environ["FPDT_BAND_MIB"] = f"{mib:g}"
        got = grads(fn)
        err = max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(got, ref))
        m, lo, hi = paired(lambda: bwd(fn), bwd)
        t = timed(lambda: bwd(fn), 2)
        what = name if mib is None else f"{name}, bands of {mib:g} MiB"
        print(f"  backward {what}: {2.5 * fl / t / 1e12:.1f} TFLOP/s; speed {name} / default "
              f"{m:.3f} ({lo:.3f}-{hi:.3f}); gradients against default {err:.1e}", flush=True)


if __name__ == "__main__":
    main()
