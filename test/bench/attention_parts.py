"""Where the attention bench's forward+backward time goes, piece by piece, and what the clocks do under it:
the forward, delta, the three zero fills of dq/dk/dv, the backward kernel alone, all four in a row, and twenty
backward launches back to back; the SM clock, board power and temperature (nvidia-smi) after each.

  python3 test/bench/attention_parts.py [kernels_dir=.carry/kernels/llama] [S=32768] [suffix=""] [heads=32/8]

suffix picks a bench copy's backward launcher (fpdt_attn_bwd<suffix>). The backward runs at the board's power
limit: a sustained run is slower than an isolated launch (results/kernels.md, 2026-12-01)."""
import ctypes as C
import math
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gpu", "kernels"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gpu", "kernels", "sm90"))
from build import build  # noqa: E402
from cuda_timing import timed  # noqa: E402
from phase_profile import F, I, P, ok, st  # noqa: E402

KDIR = sys.argv[1] if len(sys.argv) > 1 else ".carry/kernels/llama"
S = int(sys.argv[2]) if len(sys.argv) > 2 else 32768
SFX = sys.argv[3] if len(sys.argv) > 3 else ""
H, HKV = (int(x) for x in (sys.argv[4] if len(sys.argv) > 4 else "32/8").split("/"))
lib = C.CDLL(build(KDIR, "/tmp/fpdt_build_parts", log=lambda *_: None))
D = __import__("json").load(open(os.path.join(KDIR, "spec.json")))["headDim"]
dev = torch.device("cuda")


def board():
    q = "--query-gpu=clocks.sm,power.draw,temperature.gpu"
    return subprocess.run(["nvidia-smi", q, "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()


q, do = (torch.randn(S, H, D, device=dev, dtype=torch.bfloat16) for _ in range(2))
k, v = (torch.randn(S, HKV, D, device=dev, dtype=torch.bfloat16) for _ in range(2))
o = torch.empty_like(q)
lse, delta = torch.empty(H, S, device=dev), torch.empty(H, S, device=dev)
dq = torch.zeros(S, H, D, device=dev)
dk, dv = (torch.zeros(S, HKV, D, device=dev) for _ in range(2))
scale, G = 1 / math.sqrt(D), H // HKV
bwd_fn = getattr(lib, "fpdt_attn_bwd" + SFX)


def fwd():
    ok(lib.fpdt_attn_fwd(P(q), P(k), P(v), C.c_void_p(0), P(lse), P(o), I(S), I(S), I(H), I(HKV), I(0), I(G), F(scale),
                         I(1), I(2), st()), "fwd")


def dlt():
    ok(lib.fpdt_attn_bwd_delta(P(o), P(do), P(delta), I(S), I(H), st()), "delta")


def zero():
    for t in (dq, dk, dv):
        t.zero_()


def bwd():
    ok(bwd_fn(P(q), P(k), P(v), P(do), P(lse), P(delta), P(dq), P(dk), P(dv), I(S), I(S), I(H), I(HKV), I(0), I(G),
              F(scale), I(1), st()), "bwd")


fwd(), dlt(), bwd()
torch.cuda.synchronize()
flops = 2 * S * S * D * H  # causal forward, the bench's convention; the backward 2.5x
name = SFX or "default"
for what, fn, n in [("forward", fwd, 5), ("delta", dlt, 20), ("zero x3", zero, 20), ("backward kernel", bwd, 5),
                    ("all four", lambda: (fwd(), dlt(), zero(), bwd()), 5)]:
    ts = sorted(timed(fn) for _ in range(n))
    print(f"S={S} {name} {what:16s} median {ts[n // 2] * 1e3:8.3f} ms  min {ts[0] * 1e3:8.3f}  max {ts[-1] * 1e3:8.3f}"
          f"   clock, power, temperature after: {board()}", flush=True)
t = timed(bwd, 20)
print(f"S={S} {name} backward x20 back to back: {t * 1e3:.3f} ms each, {2.5 * flops / t / 1e12:.1f} TFLOP/s;"
      f" after: {board()}", flush=True)
