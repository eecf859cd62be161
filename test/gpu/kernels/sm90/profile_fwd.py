"""Where the wgmma attention forward (attention_fwd_sm90.cu.njk) spends its cycles, phase by phase.

  python3 test/gpu/kernels/sm90/profile_fwd.py [kernels_dir=.carry/kernels] [S=32768] [heads=32/8]

Builds each rendered spec folder that has attention_fwd_sm90.cu with -DFPDT_SM90_FWD_PROFILE=1 (thread 0
of each consumer warpgroup adds clock64 deltas per phase of a kv-tile iteration). Runs one causal forward
of S tokens three times and prints, per head dim, the cycles per iteration of each phase (both
warpgroups) and their shares, beside the time of the profiled forward. The clock reads cost a little and
change the schedule ptxas makes: compare the time with test/bench/attention.py's. The first kv tile of a
query block (the masked one) and the last P V are outside the iterations."""
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
PHASES = ["K/V wait", "GEMMs issued", "S wait", "softmax", "PV wait", "rescale, pack"]
B.FLAGS = B.FLAGS + ["-DFPDT_SM90_FWD_PROFILE=1"]
dev = torch.device("cuda")


def profile(spec_dir):
    spec = json.load(open(os.path.join(spec_dir, "spec.json")))
    d = spec["headDim"]
    lib = C.CDLL(B.build(spec_dir, f"/tmp/fpdt_prof_fwd_build/{os.path.basename(spec_dir)}", log=lambda *_: None))
    torch.manual_seed(0)
    q = torch.randn(S, HQ, d, device=dev, dtype=torch.bfloat16)
    k, v = (torch.randn(S, HK, d, device=dev, dtype=torch.bfloat16) for _ in range(2))
    o = torch.empty_like(q)
    lse = torch.empty(HQ, S, device=dev)

    def fwd():
        ok(lib.fpdt_attn_fwd_sm90(P(q), P(k), P(v), C.c_void_p(0), P(lse), P(o), I(S), I(S), I(HQ), I(HK), I(0),
                                  I(HQ // HK), F(1 / math.sqrt(d)), I(1), I(2), st()), "fwd_sm90")

    ms, counters = measure(fwd, lib.fpdt_attn_fwd_sm90_profile, PHASES, st)
    flops = 2 * S * S * d * HQ  # causal: half of 4 S^2 d per head
    print(f"head dim {d}, S {S}, heads {HQ}/{HK}: forward {ms:.2f} ms ({flops / ms / 1e9:.1f} TFLOP/s, profiled build)")
    print_phases(counters, PHASES)


for name in sorted(os.listdir(KDIR)):
    sdir = os.path.join(KDIR, name)
    if os.path.exists(os.path.join(sdir, "attention_fwd_sm90.cu")):
        profile(sdir)
