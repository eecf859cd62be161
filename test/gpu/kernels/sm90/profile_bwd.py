"""Where the wgmma attention backward (attention_bwd_sm90.cu.njk) spends its cycles, phase by phase.

  python3 test/gpu/kernels/sm90/profile_bwd.py [kernels_dir=.carry/kernels] [S=32768] [heads=32/8]

Builds each rendered spec folder that has attention_bwd_sm90.cu with -DFPDT_SM90_BWD_PROFILE=1 (thread 0
of each consumer warpgroup adds clock64 deltas per phase), twice: dQ by tensor-map reductions (the
default) and by float2 reductions (-DFPDT_SM90_DQ_BULK=0). Runs one causal backward of S tokens three
times and prints, per head dim and build, the cycles per q-tile iteration of each phase (both
warpgroups) and their shares, beside the time of the profiled backward. The clock reads cost a little:
compare the time with test/bench/attention.py's."""
import ctypes as C
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build as B  # noqa: E402
from phase_profile import F, I, P, measure, ok, print_phases, st  # noqa: E402

KDIR = sys.argv[1] if len(sys.argv) > 1 else ".carry/kernels"
S = int(sys.argv[2]) if len(sys.argv) > 2 else 32768
HQ, HK = (int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "32/8").split("/"))
PHASES = ["Q/dO wait", "S^T, dP^T, dQ hand-over", "softmax", "dV issue, dP wait", "dS", "barrier", "dQ/dK wait", "dQ staging"]
FLAGS = B.FLAGS + ["-DFPDT_SM90_BWD_PROFILE=1"]
dev = torch.device("cuda")


def profile(spec_dir, bulk):
    spec = json.load(open(os.path.join(spec_dir, "spec.json")))
    d = spec["headDim"]
    B.FLAGS = FLAGS + [f"-DFPDT_SM90_DQ_BULK={bulk}"]
    lib = C.CDLL(B.build(spec_dir, f"/tmp/fpdt_prof_build/{os.path.basename(spec_dir)}-bulk{bulk}", log=lambda *_: None))
    scale = 1 / math.sqrt(d)
    torch.manual_seed(0)
    q, do = (torch.randn(S, HQ, d, device=dev, dtype=torch.bfloat16) for _ in range(2))
    k, v = (torch.randn(S, HK, d, device=dev, dtype=torch.bfloat16) for _ in range(2))
    o = torch.empty_like(q)
    lse, delta = torch.empty(HQ, S, device=dev), torch.empty(HQ, S, device=dev)
    ok(lib.fpdt_attn_fwd(P(q), P(k), P(v), C.c_void_p(0), P(lse), P(o), I(S), I(S), I(HQ), I(HK), I(0), I(HQ // HK),
                         F(scale), I(1), I(2), st()), "fwd")
    ok(lib.fpdt_attn_bwd_delta(P(o), P(do), P(delta), I(S), I(HQ), st()), "delta")
    dq, dk, dv = torch.zeros(S, HQ, d, device=dev), torch.zeros(S, HK, d, device=dev), torch.zeros(S, HK, d, device=dev)

    def bwd():
        ok(lib.fpdt_attn_bwd_sm90(P(q), P(k), P(v), P(do), P(lse), P(delta), P(dq), P(dk), P(dv), I(S), I(S), I(HQ),
                                  I(HK), I(0), I(HQ // HK), F(scale), I(1), st()), "bwd_sm90")

    ms, counters = measure(bwd, lib.fpdt_attn_bwd_sm90_profile, PHASES, st)
    flops = 2.5 * 2 * S * S * d * HQ
    print(f"head dim {d}, S {S}, heads {HQ}/{HK}, dQ by {'tensor-map reductions' if bulk else 'float2 reductions'}: backward "
          f"{ms:.2f} ms ({flops / ms / 1e9:.1f} TFLOP/s, profiled build)")
    print_phases(counters, PHASES)


for name in sorted(os.listdir(KDIR)):
    sdir = os.path.join(KDIR, name)
    if os.path.exists(os.path.join(sdir, "attention_bwd_sm90.cu")):
        for bulk in (1, 0):
            profile(sdir, bulk)
