"""Why a full 64K x 64K backward block at head dim 128 runs slower than every other block (383 against
474-499 TFLOP/s in calibrate.py, results/kernels.md): each case below runs the block back to back for a
few seconds while nvidia-smi samples the SM clock, power and temperature every 100 ms.

  python3 test/bench/block_clocks.py [kernels=.carry/kernels] [seconds=3]

On the GPU host (no Node): the kernels rendered by `npx tsx test/gpu/kernels/render.ts .carry/kernels`,
built with test/gpu/kernels/build.py. Cases, 32 q / 8 kv heads, head dim 128 (the llama spec):
- full 64K with the lse and delta of the full forward (the operands a program passes: every probability
  at most 1), dq/dk/dv cleared before each run;
- the same with the causal forward's lse (as calibrate.py times it: probabilities above 1 off the
  causal part, the fp32 partials growing run after run);
- causal 64K, and full 16K, with their own forward's lse.
Then, where the build has it, a backward bench copy (VARIANT, default _unrotated: the copy whose full blocks
start every kv tile at the first q tile with the heads fastest, attention_bwd_unrotated_sm90.cu; _heads: the
heads fastest, each kv tile from q tile 2n, where the default runs full blocks in L2-sized bands): its dq, dk, dv against fpdt_attn_bwd's on the same operands (full 64K, 16K, 4K,
causal 16K), and only if they agree, its full 64K and 16K runs beside the default's (VARIANT_ONLY=1: only
these).
Prints, per case, TFLOP/s (the schedule's count: 4 L^2 d H, halved causal, x2.5 backward) of the first
and last runs and their median, and the clock, power and temperature the samples saw. Writes
$OUT/block_clocks.json. Reads nothing of the GPU's settings and changes none."""
import ctypes as C
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gpu", "kernels"))
from build import build  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from launch import NULL, F, I, P, ok, st  # noqa: E402

KROOT = sys.argv[1] if len(sys.argv) > 1 else ".carry/kernels"
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
OUT = os.environ.get("OUT", "/tmp")
# SPEC=gpt: the head-dim-64 kernels (the gpt check spec) at the same head counts
SPEC = os.environ.get("SPEC", "llama")
H, HKV, D = 32, 8, (64 if SPEC == "gpt" else 128)
dev = torch.device("cuda")


def sampler():
    """nvidia-smi printing SM clock (MHz), power (W) and temperature (C) every 100 ms until stopped."""
    return subprocess.Popen(["nvidia-smi", "--query-gpu=clocks.sm,power.draw,temperature.gpu", "--format=csv,noheader,nounits",
                             "-lms", "100"], stdout=subprocess.PIPE, text=True)


def samples(proc):
    proc.terminate()
    out, _ = proc.communicate(timeout=5)
    rows = []
    for line in out.splitlines():
        try:
            rows.append([float(x) for x in line.split(",")])
        except ValueError:
            continue
    return rows


def case(lib, name, L, causal, lse_from_causal, fn="fpdt_attn_bwd"):
    scale = 1 / math.sqrt(D)
    G = H // HKV
    q, do = (torch.randn(L, H, D, device=dev, dtype=torch.bfloat16) for _ in range(2))
    k, v = (torch.randn(L, HKV, D, device=dev, dtype=torch.bfloat16) for _ in range(2))
    o = torch.empty(L, H, D, device=dev, dtype=torch.bfloat16)
    lse, delta = torch.empty(H, L, device=dev), torch.empty(H, L, device=dev)
    fwd_causal = causal or lse_from_causal
    ok(lib.fpdt_attn_fwd(P(q), P(k), P(v), NULL, P(lse), P(o), I(L), I(L), I(H), I(HKV), I(0), I(G), F(scale), I(int(fwd_causal)), I(2), st()), "fwd")
    ok(lib.fpdt_attn_bwd_delta(P(o), P(do), P(delta), I(L), I(H), st()), "delta")
    dq = torch.zeros(L, H, D, device=dev)
    dk, dv = (torch.zeros(L, HKV, D, device=dev) for _ in range(2))
    clear = not lse_from_causal  # calibrate.py's way lets the partials grow

    def run():
        if clear:
            dq.zero_(), dk.zero_(), dv.zero_()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        ok(getattr(lib, fn)(P(q), P(k), P(v), P(do), P(lse), P(delta), P(dq), P(dk), P(dv), I(L), I(L), I(H), I(HKV), I(0), I(G),
                            F(scale), I(int(causal)), st()), fn)
        b.record()
        torch.cuda.synchronize()
        return a.elapsed_time(b) / 1e3

    run()
    torch.cuda.synchronize()
    time.sleep(1.0)  # the samples start from the idle clock
    proc = sampler()
    time.sleep(0.3)
    times, t0 = [], time.time()
    while time.time() - t0 < SECONDS or len(times) < 3:
        times.append(run())
    rows = samples(proc)
    flops = 2.5 * 4 * L * L * D * H / (2 if causal else 1)
    rate = [flops / t / 1e12 for t in times]
    clock = [r[0] for r in rows] or [float("nan")]
    power = [r[1] for r in rows] or [float("nan")]
    temp = [r[2] for r in rows] or [float("nan")]
    finite = bool(torch.isfinite(dq).all().item())
    res = {"case": name, "kernel": fn, "L": L, "causal": causal, "lse_from_causal": lse_from_causal, "runs": len(times),
           "tflops_first": rate[0], "tflops_last": rate[-1], "tflops_median": statistics.median(rate),
           "sm_clock_mhz": [min(clock), statistics.median(clock), max(clock)], "power_w": [min(power), statistics.median(power), max(power)],
           "temperature_c": [min(temp), max(temp)], "dq_finite": finite}
    print(f"{name:<44} {len(times):3d} runs  TFLOP/s first {rate[0]:6.1f} last {rate[-1]:6.1f} median {statistics.median(rate):6.1f}"
          f"  SM MHz {min(clock):.0f}-{max(clock):.0f} (median {statistics.median(clock):.0f})  W {statistics.median(power):.0f} (max {max(power):.0f})"
          f"  C {min(temp):.0f}-{max(temp):.0f}  dq finite {finite}", flush=True)
    del q, do, k, v, o, lse, delta, dq, dk, dv
    torch.cuda.empty_cache()
    return res


def same_outputs(lib, L, causal, fn):
    """fn's dq, dk, dv against fpdt_attn_bwd's on the same operands (one run each from zero): relative norm errors."""
    scale = 1 / math.sqrt(D)
    G = H // HKV
    g = torch.Generator(device=dev).manual_seed(5)
    q, do = (torch.randn(L, H, D, device=dev, dtype=torch.bfloat16, generator=g) for _ in range(2))
    k, v = (torch.randn(L, HKV, D, device=dev, dtype=torch.bfloat16, generator=g) for _ in range(2))
    o = torch.empty(L, H, D, device=dev, dtype=torch.bfloat16)
    lse, delta = torch.empty(H, L, device=dev), torch.empty(H, L, device=dev)
    ok(lib.fpdt_attn_fwd(P(q), P(k), P(v), NULL, P(lse), P(o), I(L), I(L), I(H), I(HKV), I(0), I(G), F(scale), I(int(causal)), I(2), st()), "fwd")
    ok(lib.fpdt_attn_bwd_delta(P(o), P(do), P(delta), I(L), I(H), st()), "delta")
    outs = []
    for name in ("fpdt_attn_bwd", fn):
        dq = torch.zeros(L, H, D, device=dev)
        dk, dv = (torch.zeros(L, HKV, D, device=dev) for _ in range(2))
        ok(getattr(lib, name)(P(q), P(k), P(v), P(do), P(lse), P(delta), P(dq), P(dk), P(dv), I(L), I(L), I(H), I(HKV), I(0), I(G),
                              F(scale), I(int(causal)), st()), name)
        torch.cuda.synchronize()
        outs.append((dq, dk, dv))
    err = {n: ((a - b).norm() / b.norm()).item() for n, a, b in zip(("dq", "dk", "dv"), outs[1], outs[0])}
    print(f"{fn} against fpdt_attn_bwd, L {L} {'causal' if causal else 'full'}: " + ", ".join(f"{n} {e:.1e}" for n, e in err.items()), flush=True)
    return err


def main():
    sdir = os.path.join(KROOT, SPEC)
    lib = C.CDLL(build(sdir, "/tmp/fpdt_build_block_clocks"))
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; {SECONDS:.0f} s a case, nvidia-smi every 100 ms", flush=True)
    cases = [
        ("full 64K, full forward's lse", 65536, False, False),
        ("full 64K, causal forward's lse (calibrate.py)", 65536, False, True),
        ("causal 64K", 65536, True, False),
        ("full 16K", 16384, False, False),
        ("full 64K again", 65536, False, False),
    ]
    results = [] if os.environ.get("VARIANT_ONLY") == "1" else [case(lib, *c) for c in cases]
    sfx = os.environ.get("VARIANT", "_unrotated")
    variant = "fpdt_attn_bwd" + sfx
    if hasattr(lib, variant):
        checks = [same_outputs(lib, L, causal, variant) for L, causal in ((65536, False), (16384, False), (4096, False), (16384, True))]
        # dk and dv sum a kv tile's q tiles in another order (fp32, their terms cancel: 5.6e-5 seen at 64K);
        # the kernel checks hold both kernels within 2e-3 of float64
        if max(max(e.values()) for e in checks) > 5e-4:
            print(f"FAIL: {variant} differs from fpdt_attn_bwd beyond fp32 summation order", flush=True)
        else:
            for name, L in [("full 64K", 65536), ("full 16K", 16384), ("full 64K again", 65536)]:
                results.append(case(lib, f"{name} {sfx}", L, False, False, fn=variant))
                results.append(case(lib, f"{name} (default)", L, False, False, fn="fpdt_attn_bwd"))
    with open(os.path.join(OUT, "block_clocks.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
