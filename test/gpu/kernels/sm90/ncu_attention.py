"""The program Nsight Compute profiles for ncu_attention.sh: one causal forward and backward of the rendered
wgmma attention kernels, twice, on random bf16 data.

  python3 test/gpu/kernels/sm90/ncu_attention.py SPEC_DIR [S=32768] [heads=32/8]

SPEC_DIR is one rendered spec folder (.carry/kernels/llama: head dim 128; .../gpt: 64), built here with
build.py's flags. The first pass warms up; ncu_attention.sh profiles the second (--launch-skip 2:
the first forward and backward)."""
import ctypes as C
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build as B  # noqa: E402
from phase_profile import F, I, P, ok, st  # noqa: E402

SDIR = sys.argv[1]
S = int(sys.argv[2]) if len(sys.argv) > 2 else 32768
HQ, HK = (int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "32/8").split("/"))
d = json.load(open(os.path.join(SDIR, "spec.json")))["headDim"]
# FPDT_NCU_PREBUILT=1 (ncu_attention.sh's profiled run): the library the unprofiled run built, not rebuilt
# under the profiler
name = os.path.basename(os.path.normpath(SDIR))
prebuilt = f"/tmp/fpdt_ncu_build/{name}/libfpdt_{name}.so"
lib = C.CDLL(prebuilt if os.environ.get("FPDT_NCU_PREBUILT") and os.path.exists(prebuilt)
             else B.build(SDIR, f"/tmp/fpdt_ncu_build/{name}", log=lambda *_: None))
dev = torch.device("cuda")
torch.manual_seed(0)
scale = 1 / math.sqrt(d)
q, do = (torch.randn(S, HQ, d, device=dev, dtype=torch.bfloat16) for _ in range(2))
k, v = (torch.randn(S, HK, d, device=dev, dtype=torch.bfloat16) for _ in range(2))
o = torch.empty_like(q)
lse, delta = torch.empty(HQ, S, device=dev), torch.empty(HQ, S, device=dev)
dq, dk, dv = torch.zeros(S, HQ, d, device=dev), torch.zeros(S, HK, d, device=dev), torch.zeros(S, HK, d, device=dev)
for _ in range(2):
    ok(lib.fpdt_attn_fwd_sm90(P(q), P(k), P(v), C.c_void_p(0), P(lse), P(o), I(S), I(S), I(HQ), I(HK), I(0), I(HQ // HK),
                              F(scale), I(1), I(2), st()), "fwd_sm90")
    ok(lib.fpdt_attn_bwd_delta(P(o), P(do), P(delta), I(S), I(HQ), st()), "delta")
    ok(lib.fpdt_attn_bwd_sm90(P(q), P(k), P(v), P(do), P(lse), P(delta), P(dq), P(dk), P(dv), I(S), I(S), I(HQ),
                              I(HK), I(0), I(HQ // HK), F(scale), I(1), st()), "bwd_sm90")
torch.cuda.synchronize()
print(f"{os.path.basename(os.path.normpath(SDIR))}: head dim {d}, S {S}, heads {HQ}/{HK}: forward and backward ran twice")
