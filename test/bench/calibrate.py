"""Measures the rates the cost model reads and writes them as a calibration file for a device profile.

  python3 test/bench/calibrate.py [device=h200] [kernels=.carry/kernels]

On the GPU host, no Node: the kernels rendered into .carry/kernels/{gpt,llama} (head dims 64 and 128,
`npx tsx test/gpu/kernels/render.ts .carry/kernels` where Node is) are built with test/gpu/kernels/build.py;
torch supplies buffers, cuBLAS GEMMs and pinned copies. Writes $OUT/<device>.json (default /tmp), the
format compiler/schedule/calibration.ts reads; commit it as compiler/schedule/calibration/<device>.json.
FPDT_COMMIT names the commit the kernels were rendered at (the GPU host's copy may have no git).

What it times (median of a few runs after a warm-up, CUDA events on one stream):
- attention blocks as FPDT issues them: Lq = Lk = L (the chunk), 32 q heads over 8 kv heads, the causal
  diagonal block and the full block (accumulating into the fp32 (o, lse) accumulators forward, into fp32
  dq/dk/dv backward), for the default launchers (wgmma on sm_90a, with its mma.sync fallback) and the
  mma.sync kernels; FLOP/s in the schedule's count (4*L^2*d*heads, halved causal, x2.5 backward);
- bf16 GEMMs (torch, cuBLAS) at transformer shapes; the median is the cost model's GEMM rate;
- pinned host<->device copies each way and both ways at once, and a device-to-device copy;
- our element-wise kernels, at bytes as the schedule counts them (reads + writes)."""
import concurrent.futures as cf
import ctypes as C
import datetime
import json
import math
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gpu", "kernels"))
from build import build  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from launch import LL, NULL, F, I, P, ok, st  # noqa: E402,F401

DEVICE = sys.argv[1] if len(sys.argv) > 1 else "h200"
KROOT = sys.argv[2] if len(sys.argv) > 2 else ".carry/kernels"
OUT = os.environ.get("OUT", "/tmp")
H, HKV = 32, 8
SM90_LENGTHS = [4096, 16384, 65536]
MMA_LENGTHS = [4096, 16384]
dev = torch.device("cuda")


def timed(fn, budget_s=0.4, most=10):
    """Median seconds of fn: one warm-up, then as many runs as fit `budget_s` (at least 3, at most `most`)."""
    fn()
    torch.cuda.synchronize()
    times = []
    while len(times) < 3 or (len(times) < most and sum(times) < budget_s):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return sorted(times)[len(times) // 2]


def sig(x):
    return float(f"{x:.4g}")


def attention_curves(lib, d):
    curves = []
    scale = 1 / math.sqrt(d)
    G = H // HKV
    kernels = [("sm90", "", SM90_LENGTHS)] + ([("mma", "_mma", MMA_LENGTHS)] if hasattr(lib, "fpdt_attn_fwd_mma") else [])
    for kernel, sfx, lengths in kernels:
        fwd_fn, bwd_fn = getattr(lib, "fpdt_attn_fwd" + sfx), getattr(lib, "fpdt_attn_bwd" + sfx)
        pts = {(dr, c): [] for dr in ("fwd", "bwd") for c in (True, False)}
        for L in lengths:
            q, do, o = (torch.randn(L, H, d, device=dev, dtype=torch.bfloat16) for _ in range(3))
            k, v = (torch.randn(L, HKV, d, device=dev, dtype=torch.bfloat16) for _ in range(2))
            acc = torch.zeros(L, H, d, device=dev)
            lse, delta = torch.empty(H, L, device=dev), torch.empty(H, L, device=dev)
            dq = torch.zeros(L, H, d, device=dev)
            dk, dv = (torch.zeros(L, HKV, d, device=dev) for _ in range(2))
            # o and lse of the whole causal block: what the backward reads
            ok(fwd_fn(P(q), P(k), P(v), NULL, P(lse), P(o), I(L), I(L), I(H), I(HKV), I(0), I(G), F(scale), I(1), I(2), st()), "fwd")
            ok(lib.fpdt_attn_bwd_delta(P(o), P(do), P(delta), I(L), I(H), st()), "delta")
            lse_acc = lse.clone()
            for causal in (True, False):
                flops = 4 * L * L * d * H / (2 if causal else 1)
                # mode 1: merged into the running (o_acc, lse) as every block after a q chunk's first
                t_f = timed(lambda: ok(fwd_fn(P(q), P(k), P(v), P(acc), P(lse_acc), NULL, I(L), I(L), I(H), I(HKV), I(0), I(G),
                                              F(scale), I(int(causal)), I(1), st()), "fwd block"))
                t_b = timed(lambda: ok(bwd_fn(P(q), P(k), P(v), P(do), P(lse), P(delta), P(dq), P(dk), P(dv), I(L), I(L), I(H),
                                              I(HKV), I(0), I(G), F(scale), I(int(causal)), st()), "bwd block"))
                pts[("fwd", causal)].append([L, sig(flops / t_f)])
                pts[("bwd", causal)].append([L, sig(2.5 * flops / t_b)])
                print(f"attention {kernel:<4} d {d:>3} L {L:>6} {'causal' if causal else 'full  '}  fwd {flops / t_f / 1e12:6.1f}"
                      f"  bwd {2.5 * flops / t_b / 1e12:6.1f} TFLOP/s", flush=True)
            del q, do, o, k, v, acc, lse, delta, dq, dk, dv, lse_acc
            torch.cuda.empty_cache()
        for (dr, c), p in pts.items():
            curves.append({"kernel": kernel, "headDim": d, "dir": dr, "causal": c, "points": p})
    return curves


def gemm_rates():
    shapes = [(16384, 2048, 2048), (16384, 8192, 2048), (16384, 2048, 8192), (16384, 4096, 4096), (16384, 14336, 4096),
              (16384, 4096, 14336), (16384, 128256, 2048), (8192, 8192, 8192)]
    rows = []
    for m, n, k in shapes:
        a = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
        b = torch.randn(k, n, device=dev, dtype=torch.bfloat16)
        t = timed(lambda: a @ b)
        rows.append({"m": m, "n": n, "k": k, "flops": sig(2 * m * n * k / t)})
        print(f"gemm {m}x{n}x{k}: {2 * m * n * k / t / 1e12:.1f} TFLOP/s", flush=True)
        del a, b
    rates = sorted(r["flops"] for r in rows)
    return sig(rates[len(rates) // 2]), rows


def copy_rates():
    n = 256 << 20
    h, h2 = (torch.empty(n, dtype=torch.uint8, pin_memory=True) for _ in range(2))
    d, d2 = (torch.empty(n, dtype=torch.uint8, device=dev) for _ in range(2))
    s1, s2 = torch.cuda.Stream(), torch.cuda.Stream()
    h2d = n / timed(lambda: d.copy_(h, non_blocking=True))
    d2h = n / timed(lambda: h.copy_(d, non_blocking=True))

    def both():
        cur = torch.cuda.current_stream()
        s1.wait_stream(cur)
        s2.wait_stream(cur)
        with torch.cuda.stream(s1):
            d.copy_(h, non_blocking=True)
        with torch.cuda.stream(s2):
            h2.copy_(d2, non_blocking=True)
        cur.wait_stream(s1)
        cur.wait_stream(s2)

    both_ways = 2 * n / timed(both)
    big = torch.empty(1 << 30, dtype=torch.uint8, device=dev)
    big2 = torch.empty_like(big)
    d2d = 2 * big.numel() / timed(lambda: big2.copy_(big))
    print(f"copies: h2d {h2d / 1e9:.1f} GB/s, d2h {d2h / 1e9:.1f}, both ways {both_ways / 1e9:.1f}, d2d {d2d / 1e12:.2f} TB/s", flush=True)
    return {"h2dBps": sig(h2d), "d2hBps": sig(d2h), "bothWaysBps": sig(both_ways), "d2dBps": sig(d2d)}


def elementwise_rates(lib, spec):
    """Our kernels at the llama spec's sizes, 16K rows; bytes as the schedule counts them (reads + writes)."""
    R, D, Fh, d = 16384, spec["hidden"], spec["ffn"], spec["headDim"]
    bf = lambda *s: torch.randn(*s, device=dev, dtype=torch.bfloat16)  # noqa: E731
    f32 = lambda *s: torch.zeros(*s, device=dev)  # noqa: E731
    x, y, z = bf(R, D), bf(R, D), bf(R, D)
    w, dw, rstd = bf(D), f32(D), f32(R)
    gate, up, out, dgate, dup = bf(R, Fh), bf(R, Fh), bf(R, Fh), bf(R, Fh), bf(R, Fh)
    qh, qo = bf(R, H, d), bf(R, H, d)
    acc, lse, delta = f32(R, H, d), f32(H, R), f32(H, R)
    s = st
    cases = {
        "add": (6 * R * D, lambda: lib.fpdt_add_bf16(P(x), P(y), P(z), LL(R * D), s())),
        "rmsnorm": (4 * R * D + 2 * D, lambda: lib.fpdt_rmsnorm_fwd(P(x), P(w), P(y), P(rstd), I(R), s())),
        "rmsnorm_bwd": (6 * R * D + 6 * D, lambda: lib.fpdt_rmsnorm_bwd(P(x), P(w), P(y), P(rstd), P(z), P(dw), I(R), s())),
        "swiglu": (6 * R * Fh, lambda: lib.fpdt_swiglu_fwd(P(gate), P(up), P(out), I(R), LL(Fh), s())),
        "swiglu_bwd": (10 * R * Fh, lambda: lib.fpdt_swiglu_bwd(P(gate), P(up), P(out), P(dgate), P(dup), I(R), LL(Fh), s())),
        "rope": (4 * R * H * d, lambda: lib.fpdt_rope_fwd(P(qh), P(qo), I(R), I(H), LL(0), s())),
        "rope_bwd": (4 * R * H * d, lambda: lib.fpdt_rope_bwd(P(qh), P(qo), I(R), I(H), LL(0), s())),
        "attn_init": (4 * R * H * d + 4 * R * H, lambda: lib.fpdt_attn_acc_init(P(acc), P(lse), I(R), I(H), s())),
        "attn_finalize": (6 * R * H * d + 8 * R * H, lambda: lib.fpdt_attn_finalize(P(acc), P(qo), I(R), I(H), s())),
        "attn_bwd_prep": (4 * R * H * d + 4 * R * H, lambda: lib.fpdt_attn_bwd_delta(P(qh), P(qo), P(delta), I(R), I(H), s())),
        "fill": (4 * R * H * d, lambda: lib.fpdt_zero(P(acc), LL(4 * R * H * d), s())),
    }
    rates = {}
    for op, (nbytes, fn) in cases.items():
        t = timed(lambda: ok(fn(), op), budget_s=0.1, most=20)
        rates[op] = sig(nbytes / t)
        print(f"element-wise {op:<14} {nbytes / t / 1e12:5.2f} TB/s", flush=True)
    ordered = sorted(rates.values())
    rates["default"] = ordered[len(ordered) // 2]
    return rates


def machine():
    try:
        drv = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        drv = "driver unknown"
    return f"one {torch.cuda.get_device_name()} ({drv}), torch {torch.__version__}, {os.cpu_count()} CPUs"


def commit():
    # FPDT_COMMIT first: the GPU host's copy of the tree may carry a stale git head
    if os.environ.get("FPDT_COMMIT"):
        return os.environ["FPDT_COMMIT"]
    try:
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.strip() + " (git head of the tree it ran in; set FPDT_COMMIT)"
    except OSError:
        pass
    return "unknown (set FPDT_COMMIT)"


def main():
    torch.manual_seed(0)
    specs = {name: json.load(open(os.path.join(KROOT, name, "spec.json"))) for name in ("gpt", "llama")}
    with cf.ThreadPoolExecutor(len(specs)) as ex:  # both libraries' nvcc runs at once
        built = dict(zip(specs, ex.map(lambda n: build(os.path.join(KROOT, n), f"/tmp/fpdt_build_calibrate_{n}", log=lambda *_: None), specs)))
    libs = {name: C.CDLL(path) for name, path in built.items()}
    attention = []
    for name in ("gpt", "llama"):
        attention += attention_curves(libs[name], specs[name]["headDim"])
    gemm, gemm_rows = gemm_rates()
    copies = copy_rates()
    ew = elementwise_rates(libs["llama"], specs["llama"])
    doc = {
        "format": "fpdtc calibration",
        "version": 1,
        "device": DEVICE,
        "source": {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "commit": commit(),
            "command": f"python3 test/bench/calibrate.py {DEVICE} {KROOT}",
            "attention": f"our kernels' FPDT blocks, Lq = Lk = L, {H} q heads over {HKV} kv heads; 'sm90' is the default "
                         "launcher (wgmma, falling back to mma.sync where it cannot run), 'mma' the mma.sync kernel",
            "gemm": "torch (cuBLAS) bf16, the median over the shapes in gemmShapes",
            "elementwise": f"our kernels at the llama check spec's sizes, {16384} rows; 'default' is their median",
            "assumed": "NVLink and inter-node rates, fixed costs per kernel, copy and collective (the hand-written profile)",
        },
        "gemmFlops": gemm,
        "gemmShapes": gemm_rows,
        **copies,
        "elementwiseBps": ew,
        "attention": attention,
    }
    path = os.path.join(OUT, f"{DEVICE}.json")
    with open(path, "w") as f:
        f.write(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
