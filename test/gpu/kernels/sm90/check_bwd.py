"""Accuracy check of the sm_90a wgmma attention backward (libfa_bwd_sm90.so) on an H100/H200.

  python3 test/gpu/kernels/sm90/check_bwd.py [--full] [--fwd-so]

Loads test/gpu/kernels/sm90/libfa_bwd_sm90.so (FA_SM90_BWD_LIB overrides; build.sh if missing).
Random bf16 Q [S, H, 128], K/V [S, H_kv, 128], dO [S, H, 128]; O and LSE from a float64 torch
forward (O rounded to bf16, LSE to fp32, as our forward gives them; --fwd-so takes them from
libfa_sm90.so's forward instead); reference dQ, dK, dV by torch autograd in float64 (per query head,
dK/dV summed over the heads of a kv head). Outputs poisoned with NaN first. A second run must give
bit-identical dK/dV (no atomics there) and dQ within 1e-3 relative (fp32 atomics in any order: the
difference is printed). The mbarrier watchdog must stay at 0; bad arguments must be refused.
Sizes: S = 1, 77, 200, 128, 1000, 4096 (and 32768 with --full); H 32 / H_kv 8 and 4 / 4; causal and not.
dQ is returned in bf16 (accumulated in fp32). Exit 1 if any dQ/dK/dV error > 1e-2 or any check fails."""
import ctypes as C
import math
import os
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.environ.get("FA_SM90_BWD_LIB", os.path.join(HERE, "libfa_bwd_sm90.so"))
D = 128
TOL, RERUN_TOL = 1e-2, 1e-3


def load():
    if not os.path.exists(LIB):
        print(f"{LIB} missing: building it", flush=True)
        subprocess.run(["bash", os.path.join(HERE, "build.sh")], check=True)
    try:
        lib = C.CDLL(LIB)
    except OSError as e:  # a library built on another machine's image may not load here: rebuild
        print(f"loading {LIB} failed ({e}): rebuilding it", flush=True)
        subprocess.run(["bash", os.path.join(HERE, "build.sh")], check=True)
        lib = C.CDLL(LIB)
    vp, i = C.c_void_p, C.c_int
    lib.fa_bwd_sm90.argtypes = [vp, vp, vp, vp, vp, vp, vp, vp, vp, vp, i, i, i, i, vp]
    lib.fa_bwd_sm90.restype = i
    lib.fa_bwd_sm90_workspace_bytes.argtypes = [i, i, i]
    lib.fa_bwd_sm90_workspace_bytes.restype = C.c_size_t
    lib.fa_bwd_sm90_timeouts.argtypes = []
    lib.fa_bwd_sm90_timeouts.restype = i
    lib.fa_bwd_sm90_smem_bytes.argtypes = []
    lib.fa_bwd_sm90_smem_bytes.restype = i
    return lib


def ptr(t):
    return C.c_void_p(t.data_ptr())


def stream():
    return C.c_void_p(torch.cuda.current_stream().cuda_stream)


def workspace(lib, s, h, h_kv, dev):
    n = lib.fa_bwd_sm90_workspace_bytes(s, h, h_kv)
    return torch.empty((n + 3) // 4, device=dev, dtype=torch.float32)


def run_bwd(lib, q, k, v, o, do, lse, causal, ws=None):
    s, h, _ = q.shape
    h_kv = k.shape[1]
    dq = torch.full_like(q, float("nan"))
    dk = torch.full_like(k, float("nan"))
    dv = torch.full_like(v, float("nan"))
    if ws is None:
        ws = workspace(lib, s, h, h_kv, q.device)
    ws.fill_(float("nan"))  # the kernel must not depend on the workspace's old contents
    err = lib.fa_bwd_sm90(ptr(q), ptr(k), ptr(v), ptr(o), ptr(do), ptr(lse), ptr(dq), ptr(dk), ptr(dv), ptr(ws), s, h,
                          h_kv, int(causal), stream())
    if err != 0:
        raise RuntimeError(f"launcher returned cudaError {err}")
    torch.cuda.synchronize()
    return dq, dk, dv


def reference(q, k, v, do, causal):
    """float64 O [S, H, D], LSE [H, S] and dQ, dK, dV by autograd, one query head at a time."""
    s, h, _ = q.shape
    h_kv = k.shape[1]
    grp = h // h_kv
    scale = 1.0 / math.sqrt(D)
    o = torch.empty(s, h, D, dtype=torch.float64, device=q.device)
    lse = torch.empty(h, s, dtype=torch.float64, device=q.device)
    dq = torch.empty(s, h, D, dtype=torch.float64, device=q.device)
    dk = torch.zeros(s, h_kv, D, dtype=torch.float64, device=q.device)
    dv = torch.zeros(s, h_kv, D, dtype=torch.float64, device=q.device)
    mask = torch.ones(s, s, dtype=torch.bool, device=q.device).triu(1) if causal else None
    for hh in range(h):
        qh = q[:, hh].double().requires_grad_()
        kh = k[:, hh // grp].double().requires_grad_()
        vh = v[:, hh // grp].double().requires_grad_()
        sc = (qh @ kh.T) * scale
        if mask is not None:
            sc = sc.masked_fill(mask, float("-inf"))
        l = torch.logsumexp(sc, dim=-1)
        oh = torch.exp(sc - l[:, None]) @ vh
        oh.backward(do[:, hh].double())
        o[:, hh] = oh.detach()
        lse[hh] = l.detach()
        dq[:, hh] = qh.grad
        dk[:, hh // grp] += kh.grad
        dv[:, hh // grp] += vh.grad
        del qh, kh, vh, sc, l, oh
    return o, lse, dq, dk, dv


def rel(a, b):
    """Relative norm error; where the reference is zero up to float64 rounding (S = 1: dS = P (dP - delta)
    is exactly 0, so dQ = dK = 0), the RMS absolute error instead (inputs are O(1), so the same gate)."""
    a, b = a.double(), b.double()
    if not torch.isfinite(a).all():
        return float("nan")
    rms_b = (b.norm() / math.sqrt(max(b.numel(), 1))).item()
    if rms_b < 1e-9:
        return ((a - b).norm() / math.sqrt(max(b.numel(), 1))).item()
    return ((a - b).norm() / b.norm()).item()


def our_forward(q, k, v, causal):
    sys.path.insert(0, HERE)
    from check import load as load_fwd  # noqa: E402
    lib = load_fwd()
    s, h, _ = q.shape
    h_kv = k.shape[1]
    o = torch.empty_like(q)
    lse = torch.empty(h, s, device=q.device, dtype=torch.float32)
    err = lib.fa_fwd_sm90(ptr(q), ptr(k), ptr(v), ptr(o), ptr(lse), s, s, h, h_kv, int(causal), stream())
    if err != 0:
        raise RuntimeError(f"forward returned cudaError {err}")
    torch.cuda.synchronize()
    return o, lse


def main():
    full = "--full" in sys.argv
    fwd_so = "--fwd-so" in sys.argv
    torch.manual_seed(0)
    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  lib {LIB}")
    lib = load()
    print(f"dynamic smem bytes {lib.fa_bwd_sm90_smem_bytes()}; dQ output bf16 (fp32 atomics); "
          f"O/LSE from {'libfa_sm90.so' if fwd_so else 'float64 torch'}")
    if lib.fa_bwd_sm90_timeouts() != 0:
        print("note: watchdog counter was nonzero before the first run")
    fails = []
    # (S, H, H_kv, causal)
    cases = [(1, 4, 4, 1), (77, 4, 2, 1), (200, 4, 1, 0), (129, 2, 1, 1)]
    for s in (128, 1000, 4096) + ((32768,) if full else ()):
        for (h, h_kv) in ((32, 8), (4, 4)):
            for causal in (0, 1):
                cases.append((s, h, h_kv, causal))

    for (s, h, h_kv, causal) in cases:
        q = torch.randn(s, h, D, device=dev, dtype=torch.bfloat16)
        k = torch.randn(s, h_kv, D, device=dev, dtype=torch.bfloat16)
        v = torch.randn(s, h_kv, D, device=dev, dtype=torch.bfloat16)
        do = torch.randn(s, h, D, device=dev, dtype=torch.bfloat16)
        t0 = time.time()
        o64, lse64, dq_r, dk_r, dv_r = reference(q, k, v, do, causal)
        torch.cuda.synchronize()
        t_ref = time.time() - t0
        if fwd_so:
            o, lse = our_forward(q, k, v, causal)
        else:
            o, lse = o64.to(torch.bfloat16), lse64.float().contiguous()
        del o64, lse64
        name = f"S={s:6d} H={h:2d}/{h_kv:<2d} causal={causal}"
        try:
            ws = workspace(lib, s, h, h_kv, dev)
            dq, dk, dv = run_bwd(lib, q, k, v, o, do, lse, causal, ws)
            dq2, dk2, dv2 = run_bwd(lib, q, k, v, o, do, lse, causal, ws)
        except Exception as e:  # noqa: BLE001
            fails.append(f"{name}: {e}")
            print(f"{name}: FAILED {e}", flush=True)
            if "launcher" not in str(e):
                print("CUDA error: the context is probably broken, stopping here", flush=True)
                print(f"{len(fails)} FAILED")
                sys.exit(1)
            continue
        nto = lib.fa_bwd_sm90_timeouts()
        e_q, e_k, e_v = rel(dq, dq_r), rel(dk, dk_r), rel(dv, dv_r)
        d_q = rel(dq2, dq)
        same_kv = torch.equal(dk, dk2) and torch.equal(dv, dv2)
        line = (f"{name}: dQ err {e_q:.2e}  dK err {e_k:.2e}  dV err {e_v:.2e}  rerun dQ diff {d_q:.1e}"
                f" dK/dV {'identical' if same_kv else 'DIFFER'}  (ref {t_ref:.1f}s)")
        bad = []
        for nm, e in (("dQ", e_q), ("dK", e_k), ("dV", e_v)):
            if not (e <= TOL):
                bad.append(f"{nm} err > {TOL}" if e == e else f"{nm} has NaN/Inf")
        if not (d_q <= RERUN_TOL):
            bad.append(f"rerun dQ differs by {d_q:.2e} > {RERUN_TOL}")
        if not same_kv:
            bad.append("rerun dK/dV not bit-identical (race?)")
        if nto != 0:
            bad.append(f"mbarrier watchdog fired {nto} times")
        print(line + ("  FAIL: " + "; ".join(bad) if bad else "  ok"), flush=True)
        if bad:
            fails.append(f"{name}: " + "; ".join(bad))
        del q, k, v, do, o, lse, dq_r, dk_r, dv_r, dq, dk, dv, dq2, dk2, dv2, ws
        torch.cuda.empty_cache()

    # argument checks
    q = torch.randn(64, 4, D, device=dev, dtype=torch.bfloat16)
    lse = torch.zeros(4, 64, device=dev)
    ws = workspace(lib, 64, 4, 4, dev)
    for args, what in (((64, 4, 3, 0), "h % h_kv != 0"), ((0, 4, 4, 0), "s == 0")):
        err = lib.fa_bwd_sm90(ptr(q), ptr(q), ptr(q), ptr(q), ptr(q), ptr(lse), ptr(q), ptr(q), ptr(q), ptr(ws), *args,
                              stream())
        print(f"refuses {what}: {'ok' if err != 0 else 'FAIL (returned 0)'}")
        if err == 0:
            fails.append(f"accepted {what}")

    print()
    if fails:
        print(f"{len(fails)} FAILED:")
        for f in fails:
            print("  " + f)
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
