"""Where the FPDT forward decomposition loses to one block: the block shapes themselves, or the fp32
accumulation across kv chunks. Paired (interleaved) timings at S with chunk S/2, 32 q / 8 kv heads:

  one block       one causal block over S, bf16 out (mode 2)
  shapes only     the decomposition's three blocks (two causal diagonals, one full) each with bf16 out
                  (mode 2): the same tiles, no accumulation (its o is not the attention, only its time counts)
  decomposition   as the programs run it: fp32 accumulators (mode 0, then 1), then the bf16 finalize
and each block of the decomposition alone, bf16 out against fp32 accumulation; where the library has the bench
copy fpdt_attn_fwd_heads (full blocks with the heads fastest, where the default runs the query blocks fastest),
its full block against the default's.

  python3 test/bench/fwd_blocks.py [kernels_dir=.carry/kernels/llama] [S=131072] [heads=32/8]

Ratios are speed (other's time / this one's), the median of 9 rounds of >= 0.2 s each (min-max)."""
import ctypes as C
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gpu", "kernels"))
from build import build  # noqa: E402
from cuda_timing import paired, timed  # noqa: E402
from launch import NULL, F, I, P, ok, st  # noqa: E402

KDIR = sys.argv[1] if len(sys.argv) > 1 else ".carry/kernels/llama"
S = int(sys.argv[2]) if len(sys.argv) > 2 else 131072
H, HKV = (int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "32/8").split("/"))
D = json.load(open(os.path.join(KDIR, "spec.json")))["headDim"]
lib = C.CDLL(build(KDIR, "/tmp/fpdt_build_fwd_blocks", log=lambda *_: None))
dev = torch.device("cuda")


def main():
    torch.manual_seed(0)
    c, G, scale = S // 2, H // HKV, 1 / math.sqrt(D)
    q = torch.randn(S, H, D, device=dev, dtype=torch.bfloat16)
    k, v = (torch.randn(S, HKV, D, device=dev, dtype=torch.bfloat16) for _ in range(2))
    o = torch.empty_like(q)
    lse = torch.empty(H, S, device=dev)
    acc, lse_c = torch.empty(c, H, D, device=dev), torch.empty(H, c, device=dev)

    def block(i, j, mode, dst=None, fn=lib.fpdt_attn_fwd):  # q chunk i against kv chunk j (i == j: the causal diagonal)
        qi, kj, vj = q[i * c:], k[j * c:], v[j * c:]
        acc_p, out_p = (NULL, P(dst)) if mode == 2 else (P(acc), NULL)
        ok(fn(P(qi), P(kj), P(vj), acc_p, P(lse_c), out_p, I(c), I(c), I(H), I(HKV), I(0), I(G), F(scale),
                             I(int(i == j)), I(mode), st()), f"block {i},{j}")

    def one_block():
        ok(lib.fpdt_attn_fwd(P(q), P(k), P(v), NULL, P(lse), P(o), I(S), I(S), I(H), I(HKV), I(0), I(G), F(scale),
                             I(1), I(2), st()), "one block")

    def shapes_only():
        block(0, 0, 2, o[:c])
        block(1, 0, 2, o[c:])
        block(1, 1, 2, o[c:])

    def decomposition():
        block(0, 0, 0)
        ok(lib.fpdt_attn_finalize(P(acc), P(o[:c]), I(c), I(H), st()), "finalize")
        block(1, 0, 0)
        block(1, 1, 1)
        ok(lib.fpdt_attn_finalize(P(acc), P(o[c:]), I(c), I(H), st()), "finalize")

    fl = 2 * S * S * D * H  # the causal count
    t1 = timed(one_block, 3)
    print(f"S={S} chunk {c // 1024}K head dim {D}, {H}/{HKV} heads: one block {t1 * 1e3:.2f} ms ({fl / t1 / 1e12:.1f} TFLOP/s)",
          flush=True)
    for name, fn in (("shapes only", shapes_only), ("decomposition", decomposition)):
        m, lo, hi = paired(fn, one_block)
        print(f"  speed {name} / one block: {m:.3f} ({lo:.3f}-{hi:.3f})", flush=True)
    m, lo, hi = paired(decomposition, shapes_only)
    print(f"  speed decomposition / shapes only: {m:.3f} ({lo:.3f}-{hi:.3f})", flush=True)
    for i, j, name in ((0, 0, "causal diagonal"), (1, 0, "full")):
        m, lo, hi = paired(lambda: block(i, j, 0), lambda: block(i, j, 2, o[i * c:]))
        t = timed(lambda: block(i, j, 2, o[i * c:]), 3)
        f = fl / 4 * (1 if i == j else 2)
        print(f"  {name} {c // 1024}K block: bf16 out {t * 1e3:.2f} ms ({f / t / 1e12:.1f} TFLOP/s); speed fp32 "
              f"accumulator / bf16 out {m:.3f} ({lo:.3f}-{hi:.3f})", flush=True)
    if hasattr(lib, "fpdt_attn_fwd_heads"):
        m, lo, hi = paired(lambda: block(1, 0, 0, fn=lib.fpdt_attn_fwd_heads), lambda: block(1, 0, 0))
        print(f"  full {c // 1024}K block, speed heads fastest (_heads) / default: {m:.3f} ({lo:.3f}-{hi:.3f})", flush=True)


if __name__ == "__main__":
    main()
